"""Charts in the front ends: the magic's image/png output, ``--plot`` and ``%config Nl2SqlMagics.plot``, the
panel's chart view, and ``%nl2sql panel --side`` (ScriptedBackend: plumbing only)."""

from __future__ import annotations

import base64
import sys

import pandas as pd
import pytest
from IPython.core.error import UsageError

from jupyter_nl2sql.frontends import widget
from jupyter_nl2sql.frontends.charts import SIZE, png_size

from test_widget import ask, assistant, make_panel  # noqa: F401 - fixtures and the click helper

COUNT_SQL = "SELECT country, count(*) AS customers FROM customers GROUP BY country ORDER BY 2 DESC"
COUNT_QUESTION = "How many customers are there per country?"


@pytest.fixture()
def published(ip, monkeypatch) -> list[dict]:
    """Every display data the shell publishes (what the cell's outputs hold); model replies are not remembered
    (each question takes the next scripted reply)."""
    shown: list[dict] = []
    monkeypatch.setattr(ip.display_pub, "publish", lambda data, **kw: shown.append(data))
    ip.run_line_magic("config", "Nl2SqlMagics.generation_cache = 'off'")
    yield shown
    ip.run_line_magic("config", "Nl2SqlMagics.generation_cache = None")
    ip.run_line_magic("config", "Nl2SqlMagics.plot = 'auto'")


def images(shown: list[dict]) -> list[dict]:
    return [data for data in shown if "image/png" in data]


def texts(shown: list[dict]) -> list[str]:
    return [data.get("text/plain", "") for data in shown]


def test_magic_shows_the_natural_chart_under_the_table(ip, cell, scripted, published, demo_sqlite_url) -> None:
    scripted(COUNT_SQL)
    df = cell(f"%%nl2sql -c {demo_sqlite_url}\n{COUNT_QUESTION}")
    assert isinstance(df, pd.DataFrame) and len(df) > 1
    [chart] = images(published)
    png = base64.b64decode(chart["image/png"])
    assert png_size(png) == SIZE
    assert chart["text/plain"] == f"bar chart of customers by country ({len(df)} bars)"
    assert not any(text.startswith("chart: ") for text in texts(published))  # every row drawn: no note
    stats = [i for i, text in enumerate(texts(published)) if text.startswith("total ")]
    assert stats and stats[0] > published.index(chart)  # the chart comes before the stats line


def test_magic_plot_option_and_config_default(ip, cell, scripted, published, demo_sqlite_url) -> None:
    scripted(COUNT_SQL, COUNT_SQL, COUNT_SQL, "SELECT name, city FROM departments")
    cell(f"%%nl2sql -c {demo_sqlite_url} --plot none\n{COUNT_QUESTION}")
    assert images(published) == []
    ip.run_line_magic("config", "Nl2SqlMagics.plot = 'none'")
    cell(f"%%nl2sql -c {demo_sqlite_url}\nCustomers per country?")
    assert images(published) == []
    cell(f"%%nl2sql -c {demo_sqlite_url} --plot line\nCount the customers of each country")  # the cell's option wins
    assert images(published) == [] and any("no line chart: it needs a date/time" in t for t in texts(published))
    ip.run_line_magic("config", "Nl2SqlMagics.plot = 'auto'")
    published.clear()
    cell(f"%%nl2sql -c {demo_sqlite_url}\nDepartment names and cities?")
    assert images(published) == []  # no natural picture: nothing, and nothing said


def test_magic_forced_kind_that_does_not_fit_is_one_line_and_the_table_stays(ip, cell, scripted, published,
                                                                            demo_sqlite_url) -> None:
    scripted(COUNT_SQL)
    df = cell(f"%%nl2sql -c {demo_sqlite_url} --plot scatter\n{COUNT_QUESTION}")
    assert isinstance(df, pd.DataFrame)
    [line] = [t for t in texts(published) if "scatter" in t]
    assert line == ("⚠ no scatter chart: it needs two number columns (or a date/time and a number); this result "
                    "has country (text), customers (number)")


def test_magic_line_chart_of_sqlite_dates(ip, cell, scripted, published, demo_sqlite_url) -> None:
    scripted("SELECT strftime('%Y-%m', order_date) AS month, count(*) AS orders FROM orders GROUP BY 1 ORDER BY 1")
    df = cell(f"%%nl2sql -c {demo_sqlite_url} -o per_month\nOrders per month?")
    [chart] = images(published)
    assert chart["text/plain"] == f"line chart of orders by month ({len(df)} points)"


def test_magic_chart_of_a_result_cut_at_the_row_cap(ip, cell, scripted, published, demo_sqlite_url) -> None:
    scripted("SELECT c.country, oi.quantity FROM order_items oi JOIN orders o USING (order_id) "
             "JOIN customers c USING (customer_id)")
    df = cell(f"%%nl2sql -c {demo_sqlite_url} -l 50\nQuantities by country?")
    assert len(df) == 50
    [chart] = images(published)
    assert chart["text/plain"].startswith("bar chart of quantity by country (")
    assert chart["text/plain"].endswith("; summed per country in the database")
    note = published[published.index(chart) + 1]  # visible under the picture (a front end shows the PNG only)
    assert note["text/plain"] == "chart: summed per country in the database"
    assert note["text/html"].startswith("<div class='nl2sql-chart-note'")


def test_a_failing_chart_costs_neither_the_cell_nor_the_panel_its_answer(ip, cell, scripted, published, monkeypatch,
                                                                         make_panel, demo_sqlite_url) -> None:
    from jupyter_nl2sql.frontends import charts

    def broken(*args, **kwargs):
        raise RuntimeError("renderer exploded")

    monkeypatch.setattr(charts, "draw", broken)
    scripted(COUNT_SQL)
    df = cell(f"%%nl2sql -c {demo_sqlite_url}\n{COUNT_QUESTION}")
    assert isinstance(df, pd.DataFrame) and images(published) == []
    assert "⚠ no chart: RuntimeError: renderer exploded" in texts(published)
    p = make_panel(demo_sqlite_url)
    p.view.value = "Chart"
    ask(p, COUNT_QUESTION)
    assert p.answer.dataframe is not None and "renderer exploded" in p.chart_note.value
    assert p.error.layout.display == "none"


def test_without_matplotlib_auto_is_silent_and_a_forced_kind_says_so(ip, cell, scripted, published, monkeypatch,
                                                                      demo_sqlite_url) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib.backends.backend_agg", None)  # import raises ImportError
    scripted(COUNT_SQL, COUNT_SQL)
    assert isinstance(cell(f"%%nl2sql -c {demo_sqlite_url}\n{COUNT_QUESTION}"), pd.DataFrame)
    assert images(published) == [] and not any("chart" in t for t in texts(published))
    assert isinstance(cell(f"%%nl2sql -c {demo_sqlite_url} --plot bar\nCustomers per country?"), pd.DataFrame)
    assert "⚠ no chart: matplotlib is not installed (pip install matplotlib)" in texts(published)


@pytest.mark.parametrize("line, message", [
    ("--plot pie", "plot must be one of auto, bar, line, scatter, none, not 'pie'"),
])
def test_magic_bad_plot_kind_is_a_usage_error(ip, cell, scripted, demo_sqlite_url, line, message) -> None:
    backend = scripted(COUNT_SQL)
    with pytest.raises(UsageError, match=message):
        cell(f"%%nl2sql -c {demo_sqlite_url} {line}\n{COUNT_QUESTION}")
    assert backend.calls == []  # refused before the model


def test_config_refuses_a_bad_plot_kind(ip) -> None:
    ip.run_line_magic("config", "Nl2SqlMagics.plot = 'pie'")
    magics = next(c for c in ip.configurables if type(c).__name__ == "Nl2SqlMagics")
    assert magics.plot == "auto"


# -- the panel's chart view ------------------------------------------------------------------------------------
def test_panel_chart_view(make_panel, scripted, demo_sqlite_url) -> None:
    scripted(COUNT_SQL, "SELECT name, city FROM departments")
    p = ask(make_panel(demo_sqlite_url), COUNT_QUESTION)
    assert p.view.value == "Table" and p.chart_view.layout.display == "none" and p.chart.value == b""
    p.view.value = "Chart"  # drawn when first looked at
    assert p.table_view.layout.display == "none" and p.chart_view.layout.display is None
    assert png_size(p.chart.value) == SIZE
    assert "bar chart of customers by country" in p.chart_note.value
    ask(p, "Department names and cities?")  # drawn in the worker while the chart view is open
    assert p.chart.value == b"" and p.chart.layout.display == "none"
    assert "No natural chart for this result (name (text), city (text))" in p.chart_note.value
    p.view.value = "Table"
    assert p.table_view.layout.display is None and p.chart_view.layout.display == "none"


def test_panel_chart_follows_the_plot_option_and_history(make_panel, scripted, demo_sqlite_url) -> None:
    scripted(COUNT_SQL, "SELECT name, city FROM departments")
    p = ask(make_panel(demo_sqlite_url, plot="line"), COUNT_QUESTION)
    p.view.value = "Chart"
    assert p.chart.value == b"" and "No line chart: it needs a date/time" in p.chart_note.value
    p.options["plot"] = "bar"
    ask(p, "Department names and cities?")
    p.restore(1)  # the first answer, charted again with the panel's settings now
    assert png_size(p.chart.value) == SIZE and "bar chart of customers by country" in p.chart_note.value


# -- %nl2sql panel --side ----------------------------------------------------------------------------------------
def test_panel_side_docks_in_a_sidecar(ip, cell, monkeypatch, capsys) -> None:
    from sidecar import Sidecar

    docked: list = []
    real = widget.dock
    monkeypatch.setattr(widget, "dock", lambda shown, **kw: docked.append((shown, real(shown, **kw))) or docked[-1][1])
    assert cell("%nl2sql panel demo --side") is None
    [(shown, side)] = docked
    assert isinstance(side, Sidecar) and side.title == "nl2sql"
    [output] = side.outputs
    view = output["data"]["application/vnd.jupyter.widget-view+json"]
    assert view["model_id"] == shown.widget.model_id
    assert "side area" in capsys.readouterr().out
    shown.close()
    side.close()


def test_panel_side_without_sidecar_says_how_to_install_it(ip, cell, monkeypatch, capsys) -> None:
    monkeypatch.setitem(sys.modules, "sidecar", None)  # import sidecar raises ImportError
    shown = cell("%nl2sql panel demo --side")
    assert isinstance(shown, widget.Nl2SqlPanel)  # shown in the cell instead
    assert capsys.readouterr().out.splitlines()[0] == widget.SIDECAR_MISSING
    assert "pip install sidecar" in widget.SIDECAR_MISSING
    shown.close()


def test_panel_subcommand_usage(ip, cell) -> None:
    with pytest.raises(UsageError, match=r"usage: %nl2sql panel \[CONNECTION\] \[--side\]"):
        cell("%nl2sql panel demo other --side")
