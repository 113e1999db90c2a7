"""The %nl2sql / %%nl2sql magics in a real IPython shell (ScriptedBackend: plumbing only)."""

from __future__ import annotations

import sys

import pandas as pd
import pytest
from IPython.core.error import UsageError


def test_load_ext_is_light(ip) -> None:
    # loading the extension must not import torch or transformers
    import subprocess

    code = ("from IPython.testing.globalipapp import start_ipython; ip = start_ipython(); "
            "ip.run_line_magic('load_ext', 'jupyter_nl2sql'); import sys; "
            "print('torch' in sys.modules, 'transformers' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().endswith("False False")


def test_cell_magic_returns_dataframe_and_stores_it(ip, cell, scripted, demo_sqlite_url) -> None:
    scripted("```sql\nSELECT name FROM products WHERE category = 'Audio' ORDER BY name\n```")
    df = cell(f"%%nl2sql -c {demo_sqlite_url} -o audio\nWhich audio products do we sell?")
    assert isinstance(df, pd.DataFrame)
    assert df["name"].tolist() == ["Bluetooth Speaker", "Noise-cancelling Headphones", "Studio Microphone"]
    assert ip.user_ns["audio"] is df


def test_line_magic_uses_current_connection_and_interpolates(ip, cell, scripted, demo_sqlite_url) -> None:
    backend = scripted("SELECT count(*) AS n FROM orders WHERE status = 'cancelled'")
    cell(f"%nl2sql connect {demo_sqlite_url} --alias shop")
    ip.user_ns["state"] = "cancelled"
    df = cell("df = %nl2sql How many orders are {state}?\ndf")
    assert df["n"].iat[0] > 0
    assert "How many orders are cancelled?" in backend.calls[0][-1]["content"]
    df2 = cell("%%nl2sql -c shop\nHow many orders are {state}?")
    assert df2["n"].iat[0] == df["n"].iat[0]


def test_engine_variable_as_connection(ip, cell, scripted, demo_sqlite_url) -> None:
    scripted("SELECT count(*) AS n FROM customers")
    ip.run_cell(f"import sqlalchemy as sa; eng = sa.create_engine('{demo_sqlite_url}')")
    assert cell("%%nl2sql -c eng\nHow many customers?")["n"].iat[0] == 60


def test_generate_only_and_show_prompt(ip, cell, scripted, demo_sqlite_url, monkeypatch) -> None:
    shown = []
    monkeypatch.setattr(ip.display_pub, "publish", lambda data, **kw: shown.append(data))
    backend = scripted("SELECT name FROM departments")
    result = cell(f"%%nl2sql -c {demo_sqlite_url} -g -p\nDepartment names?")
    assert result is None  # -g: the SQL is written, not run
    texts = [d.get("text/plain", "") for d in shown]
    assert len(backend.calls) == 1
    question_turn = backend.calls[0][-1]["content"]
    assert question_turn in texts[0] and "Department names?" in texts[0]  # -p: the prompt the model received
    assert "CREATE TABLE departments" in texts[0]
    assert "SELECT name FROM departments" in texts[1:]  # then the SQL
    assert shown[0].get("text/html", "").startswith("<pre class='nl2sql-prompt'>")


@pytest.mark.parametrize("source, fragment", [
    ("%%nl2sql -c demo\n   ", "question is empty"),
    ("%%nl2sql -c nowhere\nHow many?", "unknown connection"),
    ("%%nl2sql -c sqlite:///no/such.db\nHow many?", "no SQLite database"),
    ("%%nl2sql -c demo --bogus\nHow many?", "unrecognized arguments"),
    ("%%nl2sql -c demo extra words\nHow many?", "cell body"),
    ("%nl2sql connect", "usage"),
])
def test_user_mistakes_raise_usage_error(ip, cell, scripted, source, fragment) -> None:
    scripted("SELECT 1")
    with pytest.raises(UsageError, match=fragment):
        cell(source)


def test_model_sql_that_writes_is_a_usage_error(ip, cell, scripted, demo_copy_url) -> None:
    scripted("DELETE FROM customers")
    with pytest.raises(UsageError, match="(?i)refused"):
        cell(f"%%nl2sql -c {demo_copy_url}\nDelete all customers")
    scripted("SELECT count(*) AS n FROM customers")  # the shell goes on, the data is intact
    assert cell(f"%%nl2sql -c {demo_copy_url}\nHow many customers?")["n"].iat[0] == 60


def test_config_traits_are_registered_and_validated(ip) -> None:
    from jupyter_nl2sql.frontends.magics import Nl2SqlMagics

    assert any(isinstance(c, Nl2SqlMagics) for c in ip.configurables)
    magics = next(c for c in ip.configurables if isinstance(c, Nl2SqlMagics))
    ip.run_line_magic("config", "Nl2SqlMagics.row_cap = 7")
    assert magics.row_cap == 7
    from traitlets import TraitError

    with pytest.raises(TraitError):
        magics.row_cap = 0
    with pytest.raises(TraitError):
        magics.dtype = "int3"
    with pytest.raises(TraitError, match="prompt_layout must be one of sql, chat"):
        magics.prompt_layout = "xml"
    with pytest.raises(TraitError):
        magics.candidates = 0
    assert Nl2SqlMagics.class_traits()["model"].help


def test_accuracy_switches_reach_the_pipeline(ip, scripted, demo_sqlite_url) -> None:
    from jupyter_nl2sql.pipeline.assistant import get_assistant

    backend = scripted("SELECT count(*) AS n FROM customers")
    for line in ("prompt_layout = 'chat'", "fix_names = False", "fix_values = False", "candidates = 2"):
        ip.run_line_magic("config", f"Nl2SqlMagics.{line}")
    try:
        ip.run_cell(f"%%nl2sql -c {demo_sqlite_url}\nHow many customers?")
        a = get_assistant()
        assert (a.prompt_layout, a.fix_names, a.fix_values, a.candidates) == ("chat", False, False, 2)
        assert backend.calls[0][0]["role"] == "system" and len(backend.calls) == 2
    finally:
        for line in ("prompt_layout = 'sql'", "fix_names = True", "fix_values = True", "candidates = 1"):
            ip.run_line_magic("config", f"Nl2SqlMagics.{line}")
        ip.run_cell(f"%%nl2sql -c {demo_sqlite_url}\nHow many customers?")  # the shared assistant back as it was


def test_stats_shown_after_the_cell(ip, scripted, demo_sqlite_url) -> None:
    shown = []
    ip.display_pub.publish = lambda data, **kw: shown.append(data)
    scripted("SELECT 1 AS one")
    ip.run_cell(f"%%nl2sql -c {demo_sqlite_url}\nOne?")
    texts = [d.get("text/plain", "") for d in shown]
    assert any(t.startswith("total ") for t in texts), texts
    assert texts[0] == "SELECT 1 AS one"  # the SQL comes first, the stats last
    assert texts[-1].startswith("total ")


def test_shared_cache_settings_reach_the_assistant(ip, scripted, demo_sqlite_url, redis_url) -> None:
    """%config Nl2SqlMagics.result_cache / schema_cache: applied at the next cell, removed when set back to None."""
    from jupyter_nl2sql.pipeline.assistant import get_assistant

    scripted("SELECT count(*) AS n FROM customers")
    ip.run_line_magic("config", f"Nl2SqlMagics.result_cache = '{redis_url}#ttl=30&namespace=m-results'")
    ip.run_line_magic("config", f"Nl2SqlMagics.schema_cache = '{redis_url}#namespace=m-schema'")
    try:
        ip.run_cell(f"%%nl2sql -c {demo_sqlite_url}\nHow many customers?")
        ip.run_cell(f"%%nl2sql -c {demo_sqlite_url}\nHow many customers?")
        assistant = get_assistant()
        assert assistant.result_cache.ttl == 30 and assistant.result_cache.hits >= 1
        assert assistant.schemas.shared.namespace == "m-schema"
    finally:
        ip.run_line_magic("config", "Nl2SqlMagics.result_cache = None")
        ip.run_line_magic("config", "Nl2SqlMagics.schema_cache = None")
        ip.run_cell(f"%%nl2sql -c {demo_sqlite_url}\nHow many customers?")
    assert get_assistant().result_cache is None and get_assistant().schemas.shared is None
