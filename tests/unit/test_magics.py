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
    result = cell(f"%%nl2sql -c {demo_sqlite_url} -g -p --new\nDepartment names?")  # --new: no follow-up note
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
    before = magics.row_cap
    ip.run_line_magic("config", "Nl2SqlMagics.row_cap = 7")
    assert magics.row_cap == 7
    ip.run_line_magic("config", f"Nl2SqlMagics.row_cap = {before}")  # later tests (charts) count rows
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
    """%config switches apply to the next cell's question, without changing the shared assistant's settings."""
    from jupyter_nl2sql.pipeline.assistant import get_assistant

    backend = scripted("SELECT count(*) AS n FROM customers")
    before = get_assistant().settings
    for line in ("prompt_layout = 'chat'", "fix_names = False", "fix_values = False", "candidates = 2"):
        ip.run_line_magic("config", f"Nl2SqlMagics.{line}")
    try:
        # --new: a fresh question (a follow-up would continue an earlier test's conversation, in its layout)
        ip.run_cell(f"%%nl2sql -c {demo_sqlite_url} --new\nHow many customers?")
        assert backend.calls[0][0]["role"] == "system" and len(backend.calls) == 2
        assert get_assistant().settings is before and before.prompt_layout == "sql" and before.candidates == 1
    finally:
        for line in ("prompt_layout = 'sql'", "fix_names = True", "fix_values = True", "candidates = 1"):
            ip.run_line_magic("config", f"Nl2SqlMagics.{line}")


def test_stats_shown_after_the_cell(ip, scripted, demo_sqlite_url) -> None:
    shown = []
    ip.display_pub.publish = lambda data, **kw: shown.append(data)
    scripted("SELECT 1 AS one")
    ip.run_cell(f"%%nl2sql -c {demo_sqlite_url} --new\nOne?")  # --new: no follow-up note first
    texts = [d.get("text/plain", "") for d in shown]
    assert any(t.startswith("total ") for t in texts), texts
    assert texts[0] == "SELECT 1 AS one"  # the SQL comes first, the stats last
    assert texts[-1].startswith("total ")


def test_shared_cache_settings_reach_the_pipeline(ip, scripted, demo_sqlite_url, redis_url) -> None:
    """%config Nl2SqlMagics.result_cache / schema_cache: used from the next cell on, not any more once set to None."""
    import redis

    from jupyter_nl2sql.pipeline.assistant import get_assistant

    scripted("SELECT count(*) AS n FROM customers")
    client = redis.Redis.from_url(redis_url)
    ip.run_line_magic("config", f"Nl2SqlMagics.result_cache = '{redis_url}#ttl=30&namespace=m-results'")
    ip.run_line_magic("config", f"Nl2SqlMagics.schema_cache = '{redis_url}#namespace=m-schema'")
    try:
        for _ in range(2):
            ip.run_cell(f"%%nl2sql -c {demo_sqlite_url}\nHow many customers?")
        assert get_assistant().history[-1].stats.result_cache_hit is True
        assert client.keys("m-schema:*") and client.keys("m-results:*")
    finally:
        ip.run_line_magic("config", "Nl2SqlMagics.result_cache = None")
        ip.run_line_magic("config", "Nl2SqlMagics.schema_cache = None")
    ip.run_cell(f"%%nl2sql -c {demo_sqlite_url}\nHow many customers?")
    assert get_assistant().history[-1].stats.result_cache_hit is None  # off again
    assert get_assistant().results is None and get_assistant().schemas.shared is None


def test_traits_are_the_settings(ip) -> None:
    """One trait per option of Settings, with its default, help and check."""
    from jupyter_nl2sql.frontends.magics import Nl2SqlMagics
    from jupyter_nl2sql.settings import OPTIONS, Settings

    traits = Nl2SqlMagics.class_traits(config=True)
    assert set(traits) == set(OPTIONS)
    for name, spec in OPTIONS.items():
        assert traits[name].help == spec.help and traits[name].default_value == spec.default, name
    magics = next(c for c in ip.configurables if isinstance(c, Nl2SqlMagics))
    assert magics.settings() == Settings(row_cap=magics.row_cap)  # the defaults (row_cap: set by another test)
    magics.backend, magics.dtype = "hf", "bf16"  # the models' aliases, accepted here as in Python
    try:
        assert (magics.backend, magics.dtype) == ("transformers", "bfloat16")
    finally:
        magics.backend, magics.dtype = "auto", None


@pytest.mark.parametrize("setting, fragment", [
    ("row_cap = -5", "row_cap must be a whole number ≥ 1"), ("row_cap = 0", "row_cap must be a whole number ≥ 1"),
    ("prompt_layout = 'xml'", "prompt_layout must be one of sql, chat"), ("backend = 'bogus'", "unknown backend"),
    ("dtype = 'bogus'", "unknown dtype"),
])
def test_config_refuses_bad_settings_in_one_line(ip, setting, fragment) -> None:
    from traitlets import TraitError

    from jupyter_nl2sql.frontends.magics import Nl2SqlMagics

    magics = next(c for c in ip.configurables if isinstance(c, Nl2SqlMagics))
    name, value = (part.strip() for part in setting.split("="))
    with pytest.raises(TraitError, match=fragment) as info:
        setattr(magics, name, eval(value))
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("options, fragment", [("-l -5", "row_cap must be a whole number ≥ 1, not -5"),
                                               ("-l 0", "row_cap must be a whole number ≥ 1, not 0")])
def test_bad_cell_options_are_refused_before_the_model(ip, cell, scripted, demo_sqlite_url, options,
                                                       fragment) -> None:
    backend = scripted("SELECT 1")
    with pytest.raises(UsageError, match=fragment) as info:
        cell(f"%%nl2sql -c {demo_sqlite_url} {options}\nHow many customers?")
    assert "\n" not in str(info.value) and backend.calls == []


def test_cell_model_option_does_not_change_the_shared_settings(ip, cell, scripted, demo_sqlite_url,
                                                              monkeypatch) -> None:
    """``-m`` is for that cell: the question loads that model; the shared assistant keeps its own settings."""
    from jupyter_nl2sql.models.testing import ScriptedBackend
    from jupyter_nl2sql.pipeline.assistant import Assistant, get_assistant

    backend = ScriptedBackend(replies=["SELECT 1 AS one"])
    asked: list = []

    def load(self, settings=None):
        asked.append(settings.model if settings is not None else self.settings.model)
        return backend, None

    monkeypatch.setattr(Assistant, "backend", load)
    cell(f"%%nl2sql -c {demo_sqlite_url} -m other/model\nOne?")
    assert asked == ["other/model"] and get_assistant().settings.model is None


def test_load_keeps_the_model_for_the_next_questions(ip, cell, demo_sqlite_url, monkeypatch, capsys) -> None:
    """``%nl2sql load MODEL`` makes MODEL the configured model: the next question asks it, not the default."""
    from jupyter_nl2sql.frontends.magics import Nl2SqlMagics
    from jupyter_nl2sql.models.testing import ScriptedBackend
    from jupyter_nl2sql.pipeline.assistant import Assistant

    backend = ScriptedBackend(replies=["SELECT 1 AS one"] * 3)
    asked: list = []

    def load(self, settings=None):
        asked.append((settings or self.settings).model)
        return backend, None

    monkeypatch.setattr(Assistant, "backend", load)
    magics = next(c for c in ip.configurables if isinstance(c, Nl2SqlMagics))
    try:
        cell("%nl2sql load my/model")
        cell(f"%%nl2sql -c {demo_sqlite_url}\nOne?")
        assert asked == ["my/model", "my/model"] and magics.model == "my/model"
    finally:
        magics.model = None


def test_teach_examples_forget_subcommands(ip, cell, scripted, demo_sqlite_url, tmp_path, monkeypatch,
                                           capsys) -> None:
    """``%nl2sql teach`` saves a checked example (in the configured examples_dir), ``examples`` lists it, ``forget``
    removes it; mistakes are one-line UsageErrors."""
    from jupyter_nl2sql.frontends.magics import Nl2SqlMagics

    magics = next(c for c in ip.configurables if isinstance(c, Nl2SqlMagics))
    monkeypatch.setattr(magics, "examples_dir", str(tmp_path / "examples"))  # %config, set back after the test
    cell(f"%nl2sql teach -c {demo_sqlite_url} Orders per status? => SELECT status, count(*) FROM orders "
         "GROUP BY status")
    saved = capsys.readouterr().out
    assert saved.startswith("Saved example ") and "%nl2sql forget" in saved
    frame = cell(f"%nl2sql examples -c {demo_sqlite_url}")
    assert frame["question"].tolist() == ["Orders per status?"]
    cell(f"%%nl2sql teach -c {demo_sqlite_url}\nHow many customers?\nSELECT count(*) FROM customers")
    assert len(cell(f"%nl2sql examples -c {demo_sqlite_url}")) == 2
    assert list(tmp_path.glob("examples/*.json"))
    cell(f"%nl2sql forget {frame['id'].iat[0]} -c {demo_sqlite_url}")
    assert cell(f"%nl2sql examples -c {demo_sqlite_url}")["question"].tolist() == ["How many customers?"]
    for source, fragment in ((f"%nl2sql forget nosuch -c {demo_sqlite_url}", "no taught example"),
                             ("%nl2sql teach just a question", "usage: %nl2sql teach"),
                             (f"%nl2sql teach -c {demo_sqlite_url} Bad? => SELECT nme FROM customers", "nme"),
                             (f"%nl2sql teach -c {demo_sqlite_url} Drop? => DELETE FROM customers", "(?i)refused")):
        with pytest.raises(UsageError, match=fragment):
            cell(source)
