"""Charts of results (jupyter_nl2sql.frontends.charts): which picture a result has, the PNG, forced kinds, and
large results aggregated in the database (SQLite) rather than read in full."""

from __future__ import annotations

import datetime as dt
import sqlite3
from decimal import Decimal

import pandas as pd
import pytest

from jupyter_nl2sql.connections import ConnectionManager
from jupyter_nl2sql.errors import ConfigError
from jupyter_nl2sql.frontends import charts
from jupyter_nl2sql.frontends.charts import MAX_BARS, MAX_POINTS, SIZE, ChartError, ChartPlan, choose, png_size
from jupyter_nl2sql.pipeline.assistant import Assistant

D = pd.DataFrame


# -- which picture ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("frame, expected", [
    # one category + one number: bar
    (D({"country": ["FR", "DE", "US"], "n": [3, 5, 9]}), ("bar", "country", ("n",))),
    (D({"category": ["a", "b"], "revenue": [1.5, 2.25]}), ("bar", "category", ("revenue",))),
    (D({"status": ["x", "y"], "total": [Decimal("1.10"), Decimal("2.20")]}), ("bar", "status", ("total",))),
    (D({"active": [True, False], "n": [4, 6]}), ("bar", "active", ("n",))),
    (D({"year": ["2023", "2024"], "n": [4, 6]}), ("bar", "year", ("n",))),  # a bare year is not a date
    (D({"code": ["2024-13", "2024-14"], "n": [1, 2]}), ("bar", "code", ("n",))),  # ISO-shaped, not dates
    (D({"when": ["2024-01-01", "soon"], "n": [1, 2]}), ("bar", "when", ("n",))),  # not all dates
    (D({"name": pd.Series(["a", "b"], dtype="string"), "n": [1, 2]}), ("bar", "name", ("n",))),
    (D({"name": ["a", "b"], "empty": [None, None], "n": [1, 2]}), ("bar", "name", ("n",))),  # all-NULL ignored
    (D({"name": pd.Categorical(["a", "b"]), "n": [1, 2]}), ("bar", "name", ("n",))),
    # a date/time + numbers: line (SQLite's dates are ISO text)
    (D({"day": ["2024-01-01", "2024-01-02", None], "n": [1, 2, 3]}), ("line", "day", ("n",))),
    (D({"month": ["2024-01", "2024-02"], "n": [1, 2]}), ("line", "month", ("n",))),
    (D({"at": ["2024-01-01 10:00:00", "2024-01-01T11:30"], "v": [1.0, 2.0]}), ("line", "at", ("v",))),
    (D({"at": ["2024-01-01 10:00:00+01:00", "2024-01-01 11:00:00-05:00"], "v": [1, 2]}), ("line", "at", ("v",))),
    (D({"d": [dt.date(2024, 1, 1), dt.date(2024, 2, 1)], "n": [1, 2]}), ("line", "d", ("n",))),
    (D({"d": pd.to_datetime(["2024-01-01", "2024-02-01"]), "n": [1, 2], "m": [3.0, 4.0]}),
     ("line", "d", ("n", "m"))),
    (D({"d": pd.to_datetime(["2024-01-01", "2024-02-01"]).tz_localize("UTC"), "n": [1, 2]}), ("line", "d", ("n",))),
    # two numbers: scatter
    (D({"price": [1.0, 2.0, 3.0], "qty": [3, 2, 1]}), ("scatter", "price", ("qty",))),
    (D({"a": [Decimal(1), Decimal(2)], "b": [1, 2]}), ("scatter", "a", ("b",))),
])
def test_natural_picture(frame, expected) -> None:
    assert choose(frame) == ChartPlan(*expected)


@pytest.mark.parametrize("frame", [
    D({"n": [1, 2, 3]}),                                          # one number
    D({"country": ["FR"], "n": [3]}),                             # one row
    D({"country": [], "n": []}),                                  # no rows
    D({"name": ["a", "b"], "city": ["x", "y"]}),                  # no number
    D({"name": ["a", "b"], "n": [1, 2], "m": [3, 4]}),            # a category and two numbers
    D({"a": [1, 2], "b": [3, 4], "c": [5, 6]}),                   # three numbers
    D({"d": ["2024-01-01", "2024-01-02"], "c": ["x", "y"], "n": [1, 2]}),  # date + category + number
    D({"d": ["2024-01-01", "2024-01-02"], "e": ["2024-02-01", "2024-02-02"], "n": [1, 2]}),  # two dates
    D([[1, 2], [3, 4]], columns=["a", "a"]),                      # duplicate names
])
def test_no_natural_picture(frame) -> None:
    assert choose(frame) is None
    assert choose(frame, "none") is None


@pytest.mark.parametrize("frame, kind, expected", [
    (D({"year": [2023, 2024], "n": [4, 6]}), "bar", ("bar", "year", ("n",))),
    (D({"year": [2023, 2024], "n": [4, 6]}), "line", ("line", "year", ("n",))),
    (D({"country": ["FR"], "n": [3]}), "bar", ("bar", "country", ("n",))),  # one row is drawn when asked
    (D({"d": ["2024-01-01", "2024-01-02"], "n": [1, 2]}), "bar", ("bar", "d", ("n",))),
    (D({"d": ["2024-01-01", "2024-01-02"], "n": [1, 2]}), "scatter", ("scatter", "d", ("n",))),
    (D({"name": ["a", "b"], "n": [1, 2], "m": [3, 4]}), "scatter", ("scatter", "n", ("m",))),
    (D({"name": ["a", "b"], "n": [1, 2], "m": [3, 4]}), "bar", ("bar", "name", ("n",))),
    (D({"country": ["FR", "DE"], "n": [3, 5]}), "BAR", ("bar", "country", ("n",))),
])
def test_forced_kinds(frame, kind, expected) -> None:
    assert choose(frame, kind) == ChartPlan(*expected)


@pytest.mark.parametrize("frame, kind, words", [
    (D({"name": ["a", "b"], "city": ["x", "y"]}), "bar", "name (text), city (text)"),
    (D({"country": ["FR", "DE"], "n": [3, 5]}), "line", "country (text), n (number)"),
    (D({"country": ["FR", "DE"], "n": [3, 5]}), "scatter", "two number columns"),
    (D({"n": [1, 2]}), "bar", "n (number)"),
    (D({"country": [], "n": []}), "bar", "no rows"),
    (D([[1, 2], [3, 4]], columns=["a", "a"]), "scatter", "same name"),
])
def test_forced_kind_that_does_not_fit_is_one_line(frame, kind, words) -> None:
    with pytest.raises(ChartError, match=f"no {kind.lower()} chart") as info:
        choose(frame, kind)
    assert words in str(info.value) and "\n" not in str(info.value)


def test_unknown_kind_is_refused_by_the_setting() -> None:
    with pytest.raises(ConfigError, match="plot must be one of auto, bar, line, scatter, none, not 'pie'"):
        choose(D({"a": [1]}), "pie")


# -- the picture -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("frame, kind", [
    (D({"country": ["FR", "DE", "US"], "n": [3, 5, 9]}), "bar"),
    (D({"customer": [f"customer number {i}" for i in range(25)], "total": range(25)}), "bar"),  # horizontal
    (D({"month": ["2024-01", "2024-02", "2024-03"], "n": [1, 4, 2], "m": [2.0, 1.0, None]}), "line"),
    (D({"price": [1.0, 2.0, 3.0], "qty": [3, 2, 1]}), "scatter"),
    (D({"year": [2022, 2023, 2024], "n": [1, 2, 3]}), "line"),
    (D({"day": ["2024-01-01", "2024-01-05", "2024-01-02"], "n": [1, 2, 3]}), "scatter"),
    (D({"at": ["2024-01-01 10:00:00+01:00", "2024-03-31 11:00:00+02:00"], "v": [1, 2]}), "line"),
    (D({"d": [dt.date(2024, 1, 1), dt.date(2024, 2, 1)], "n": [Decimal("1.5"), None]}), "line"),
])
def test_png_of_each_kind(frame, kind) -> None:
    import matplotlib

    backend = matplotlib.get_backend()
    made = charts.chart(frame, kind)
    assert made.plan.kind == kind
    assert made.png.startswith(b"\x89PNG\r\n\x1a\n") and len(made.png) > 2000  # a picture, not a blank header
    assert png_size(made.png) == SIZE
    assert matplotlib.get_backend() == backend  # the notebook's backend is left alone
    bundle = made._repr_mimebundle_()
    assert set(bundle) == {"image/png", "text/plain"}
    assert bundle["text/plain"].startswith(f"{kind} chart of ")


def test_png_size_can_be_chosen_and_different_data_give_different_pictures() -> None:
    frame = D({"country": ["FR", "DE"], "n": [3, 5]})
    small = charts.chart(frame, size=(320, 200))
    assert png_size(small.png) == (320, 200)
    assert charts.chart(frame).png != charts.chart(frame.assign(n=[5, 3])).png


def test_pyplot_figures_are_not_created() -> None:
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    charts.chart(D({"a": [1.0, 2.0], "b": [2.0, 1.0]}))
    assert plt.get_fignums() == before


def test_column_labels_that_are_not_text() -> None:
    made = charts.chart(D({0: ["a", "b"], 1: [1, 2]}))
    assert made.plan == ChartPlan("bar", 0, (1,)) and made.description == "bar chart of 1 by 0 (2 bars)"


def test_charts_load_nothing_at_load_ext() -> None:
    import subprocess
    import sys

    code = ("import sys, jupyter_nl2sql, jupyter_nl2sql.frontends.magics, jupyter_nl2sql.frontends.widget; "
            "print('matplotlib' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "False\n"


def test_description_is_stable_text() -> None:
    made = charts.chart(D({"country": ["FR", "DE", "US"], "n": [3, 5, 9]}))
    assert made.description == "bar chart of n by country (3 bars)"


# -- complete results reduced in memory ------------------------------------------------------------------------
def test_bar_sums_repeated_categories_and_keeps_the_largest() -> None:
    frame = D({"c": ["a", "b", "a"], "n": [1, 2, 3]})
    data, note = charts.reduce_frame(frame, choose(frame))
    assert dict(zip(data["c"], data["n"])) == {"a": 4, "b": 2} and note == "summed per c over 3 rows"
    many = D({"c": [f"k{i}" for i in range(100)], "n": range(100)})
    data, note = charts.reduce_frame(many, choose(many))
    assert len(data) == MAX_BARS and data["n"].min() == 100 - MAX_BARS
    assert note == f"the {MAX_BARS} largest of 100 c values by n"


def test_long_line_is_bucketed_and_scatter_sampled() -> None:
    days = pd.date_range("2015-01-01", periods=3000, freq="D")
    frame = D({"day": days.strftime("%Y-%m-%d"), "n": 1})
    data, note = charts.reduce_frame(frame, choose(frame))
    assert len(data) == 99 and data["n"].sum() == 3000 and note == "summed per month over 3000 rows"
    assert data["day"].iloc[0] == "2015-01"
    points = D({"a": range(5000), "b": range(5000)})
    data, note = charts.reduce_frame(points, choose(points))
    assert len(data) <= MAX_POINTS and note == "every 3th of 5000 rows"


# -- results cut at the row cap: aggregated in the database ----------------------------------------------------
BIG_ROWS = 30_000


@pytest.fixture(scope="module")
def big_url(tmp_path_factory) -> str:
    """A SQLite table of BIG_ROWS sales over 40 countries and about 8 years, plus two number columns."""
    path = tmp_path_factory.mktemp("big") / "big.sqlite"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE sales (day TEXT, country TEXT, amount REAL, x REAL, y REAL)")
    start = dt.date(2016, 1, 1)
    con.executemany("INSERT INTO sales VALUES (?, ?, ?, ?, ?)",
                    [((start + dt.timedelta(days=i % 3000)).isoformat(), f"C{i % 40:02d}", float(i % 97),
                      float(i), float(i % 13)) for i in range(BIG_ROWS)])
    con.commit()
    con.close()
    return f"sqlite:///{path}"


@pytest.fixture()
def big(big_url):
    manager = ConnectionManager()
    assistant = Assistant(connections=manager, generation_cache=False)
    conn = manager.resolve(big_url)
    yield assistant, conn
    manager.close_all()


def direct(conn, sql: str) -> pd.DataFrame:
    with conn.connect() as c:
        return pd.read_sql_query(sql, c.connection.dbapi_connection)


def spy(conn, log: list):
    """A runner that runs read-only through the execution path and records each query and its row count."""
    from jupyter_nl2sql.pipeline.execution import execute

    def run(sql: str) -> pd.DataFrame:
        frame = execute(conn, sql, row_cap=MAX_POINTS + 1).dataframe
        log.append((sql, len(frame)))
        return frame

    return run


def test_cut_bar_is_summed_in_the_database(big) -> None:
    assistant, conn = big
    answer = assistant.run_sql("SELECT country, amount FROM sales", conn, row_cap=100)
    assert answer.truncated and len(answer.dataframe) == 100
    log: list = []
    made = charts.chart(answer.dataframe, sql=answer.sql, truncated=True, dialect="sqlite", run=spy(conn, log))
    expected = direct(conn, "SELECT country, SUM(amount) AS amount FROM sales GROUP BY country "
                            "ORDER BY 2 DESC LIMIT 30")
    assert made.plan == ChartPlan("bar", "country", ("amount",))
    assert made.frame["amount"].tolist() == expected["amount"].tolist()
    assert made.note == f"the {MAX_BARS} largest of 40 country values by amount, summed in the database"
    assert len(log) == 1 and log[0][1] == MAX_BARS  # one query, 30 rows read: not 30 000
    assert "GROUP BY" in log[0][0]


def test_cut_line_is_bucketed_in_the_database(big) -> None:
    assistant, conn = big
    answer = assistant.run_sql("SELECT day, amount FROM sales", conn, row_cap=500)
    made = charts.answer_chart(answer, "auto", conn)  # the real path: checked, executed read-only
    expected = direct(conn, "SELECT strftime('%Y-%m', day) AS m, SUM(amount) AS s FROM sales GROUP BY 1 ORDER BY 1")
    assert made.plan.kind == "line" and len(made.frame) == len(expected) < MAX_POINTS
    assert made.frame["day"].tolist() == expected["m"].tolist()
    assert made.frame["amount"].tolist() == expected["s"].tolist()
    assert made.note == f"summed per month over {BIG_ROWS} rows, in the database"
    assert png_size(made.png) == SIZE


def test_cut_line_with_few_dates_is_summed_per_date(big) -> None:
    assistant, conn = big
    answer = assistant.run_sql("SELECT day, amount FROM sales WHERE day < '2016-03-01'", conn, row_cap=20)
    made = charts.answer_chart(answer, "line", conn)
    expected = direct(conn, "SELECT day, SUM(amount) AS s FROM sales WHERE day < '2016-03-01' GROUP BY 1 ORDER BY 1")
    assert made.frame["amount"].tolist() == expected["s"].tolist() and len(expected) == 60
    assert made.note.startswith("summed per day over ")


def test_cut_scatter_is_sampled_in_the_database(big) -> None:
    assistant, conn = big
    answer = assistant.run_sql("SELECT x, y FROM sales", conn, row_cap=100)
    log: list = []
    made = charts.chart(answer.dataframe, sql=answer.sql, truncated=True, run=spy(conn, log))
    step = -(-BIG_ROWS // MAX_POINTS)
    assert made.plan.kind == "scatter" and made.note == f"every {step}th of {BIG_ROWS} rows, sampled in the database"
    assert len(made.frame) == -(-BIG_ROWS // step) <= MAX_POINTS
    assert [rows for _, rows in log] == [1, len(made.frame)]  # the count, then the sample: never every row


def test_unnamed_columns_are_named_for_the_database(big) -> None:
    assistant, conn = big
    answer = assistant.run_sql("SELECT country, count(*) FROM sales GROUP BY country", conn, row_cap=10)
    made = charts.answer_chart(answer, "bar", conn)
    assert made.plan == ChartPlan("bar", "country", ("count(*)",))
    assert made.frame["count(*)"].tolist() == [BIG_ROWS // 40] * MAX_BARS


def test_cut_result_without_a_database_says_what_was_drawn() -> None:
    frame = D({"country": ["FR", "DE"], "n": [3, 5]})
    made = charts.chart(frame, sql="SELECT country, n FROM t", truncated=True, run=None)
    assert made.note == "only the first 2 rows (the rest of the result was not read)"

    def failing(sql: str) -> pd.DataFrame:
        from jupyter_nl2sql.errors import ExecutionError

        raise ExecutionError("no such function: strftime")

    made = charts.chart(D({"d": ["2024-01-01", "2024-01-02"], "n": [1, 2]}), sql="SELECT d, n FROM t",
                        truncated=True, run=failing)
    assert made.note.endswith("the database could not aggregate it (no such function: strftime)")
    assert len(made.frame) == 2


@pytest.mark.parametrize("url", ["demo_sqlite_url", "demo_duckdb_url",
                                 pytest.param("demo_pg_url", marks=pytest.mark.postgres)])
def test_cut_results_are_aggregated_on_each_database(request, url) -> None:
    manager = ConnectionManager()
    assistant = Assistant(connections=manager, generation_cache=False)
    try:
        conn = manager.resolve(request.getfixturevalue(url))
        join = ("FROM order_items oi JOIN orders o ON o.order_id = oi.order_id "
                "JOIN customers c ON c.customer_id = o.customer_id")
        answer = assistant.run_sql(f"SELECT c.country, oi.quantity {join}", conn, row_cap=10)
        made = charts.answer_chart(answer, "auto", conn)
        full = assistant.run_sql(f"SELECT c.country, SUM(oi.quantity) AS q {join} GROUP BY c.country", conn).dataframe
        assert answer.truncated and made.note == "summed per country in the database"
        assert dict(zip(made.frame["country"], made.frame["quantity"].astype(int))) == dict(
            zip(full["country"], full["q"].astype(int)))
        answer = assistant.run_sql(f"SELECT o.order_date, oi.quantity {join}", conn, row_cap=10)
        made = charts.answer_chart(answer, "line", conn)
        assert made.plan.kind == "line" and made.frame["quantity"].astype(int).sum() == full["q"].astype(int).sum()
        assert made.note.startswith("summed per order_date over 750 rows")
    finally:
        manager.close_all()
