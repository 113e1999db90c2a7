"""The ipywidgets panel, driven with ``Button.click()`` (ScriptedBackend / GatedBackend: plumbing only).

Every test waits for the panel's worker threads with ``panel.wait()`` and then checks what a user would see:
the SQL area, the table, the stats line, the status line, inline errors, the history.
"""

from __future__ import annotations

import time
import uuid
from html.parser import HTMLParser

import pandas as pd
import pytest

from jupyter_nl2sql.pipeline.assistant import Assistant
from jupyter_nl2sql.connections import ConnectionManager
from jupyter_nl2sql.models.testing import GatedBackend
from jupyter_nl2sql.frontends.widget import Nl2SqlPanel, panel

SLOW_SQL = ("SELECT count(*) AS n FROM order_items a, order_items b, order_items c, order_items d")


@pytest.fixture()
def gated(monkeypatch: pytest.MonkeyPatch) -> GatedBackend:
    backend = GatedBackend()
    monkeypatch.setattr(Assistant, "backend", lambda self: (backend, None))
    yield backend
    backend.gate.set()


@pytest.fixture()
def assistant() -> Assistant:
    """A private assistant (own history, own connections, no generation cache) per test."""
    a = Assistant(connections=ConnectionManager(), generation_cache=False)
    yield a
    a.connections.close_all()


@pytest.fixture()
def make_panel(assistant):
    panels: list[Nl2SqlPanel] = []

    def make(connection=None, **kwargs) -> Nl2SqlPanel:
        kwargs.setdefault("assistant", assistant)
        kwargs.setdefault("namespace", {})
        p = panel(connection, **kwargs)
        panels.append(p)
        return p

    yield make
    for p in panels:
        p.wait(10)
        p.close()


def ask(p: Nl2SqlPanel, question: str, button: str = "run") -> Nl2SqlPanel:
    p.question.value = question
    getattr(p, f"{button}_button").click()
    assert p.wait(30), "worker thread did not finish"
    return p


class _TableParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.header: list[str] = []
        self.rows: list[list[str]] = []
        self._cell: list[str] | None = None
        self._in_head = False

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag == "thead":
            self._in_head = True
        elif tag == "tr" and not self._in_head:
            self.rows.append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "thead":
            self._in_head = False
        elif tag in ("td", "th") and self._cell is not None:
            text = "".join(self._cell).strip()
            (self.header if self._in_head else self.rows[-1]).append(text)
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def parse_table(p: Nl2SqlPanel) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of the HTML table the panel shows."""
    parser = _TableParser()
    parser.feed(p.table.value)
    return parser.header, parser.rows


def table_cells(p: Nl2SqlPanel) -> list[str]:
    return [cell for row in parse_table(p)[1] for cell in row]


def column(p: Nl2SqlPanel, name: str) -> list[str]:
    header, rows = parse_table(p)
    return [row[header.index(name)] for row in rows]


def idle(p: Nl2SqlPanel) -> bool:
    return (not p.busy and not p.run_button.disabled and not p.generate_button.disabled
            and p.cancel_button.disabled)


def wait_for(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


# -- the main path ----------------------------------------------------------------------------------------------
def test_run_fills_sql_table_stats_and_history(make_panel, scripted, demo_sqlite_url) -> None:
    scripted("```sql\nSELECT name FROM products WHERE category = 'Audio' ORDER BY name\n```")
    p = ask(make_panel(demo_sqlite_url), "Which audio products do we sell?")
    assert p.sql.value == "SELECT name FROM products WHERE category = 'Audio' ORDER BY name"
    assert table_cells(p) == ["Bluetooth Speaker", "Noise-cancelling Headphones", "Studio Microphone"]
    assert "✓ 3 rows" in p.status.value
    assert "nl2sql-stats" in p.stats.value and "generate" in p.stats.value and "execute" in p.stats.value
    assert p.error.layout.display == "none"
    assert idle(p) and not p.save_button.disabled and not p.insert_button.disabled
    assert [label for label, _ in p.history.options] == ["1. Which audio products do we sell? — 3 rows"]
    assert "scripted-test-backend" in p.model_label.value and "cpu float32" in p.model_label.value


def test_generate_writes_sql_only_then_run_executes_it_without_the_model(make_panel, scripted,
                                                                          demo_sqlite_url) -> None:
    backend = scripted("SELECT count(*) AS n FROM customers")
    p = ask(make_panel(demo_sqlite_url), "How many customers are there?", button="generate")
    assert p.sql.value == "SELECT count(*) AS n FROM customers"
    assert p.table.value == "" and p.pager.layout.display == "none"
    assert "review it" in p.status.value
    assert "executes this SQL" in p.sql_hint.value
    p.run_button.click()
    assert p.wait(30)
    assert len(backend.calls) == 1  # Run executed the generated SQL; the model was not asked again
    assert table_cells(p) == ["60"]


def test_edited_sql_goes_through_run_sql(make_panel, scripted, demo_sqlite_url, monkeypatch) -> None:
    backend = scripted("SELECT count(*) AS n FROM customers")
    p = ask(make_panel(demo_sqlite_url), "How many customers are there?")
    seen: list[str] = []
    original = Assistant.run_sql
    monkeypatch.setattr(Assistant, "run_sql", lambda self, sql, *a, **k: seen.append(sql) or original(self, sql, *a, **k))
    p.sql.value = "SELECT count(*) AS n FROM customers WHERE country = 'France'"
    assert "edited" in p.sql_hint.value  # typing gets a visible reaction
    p.run_button.click()
    assert p.wait(30)
    assert seen == ["SELECT count(*) AS n FROM customers WHERE country = 'France'"]
    assert len(backend.calls) == 1
    assert int(table_cells(p)[0]) < 60
    assert p.history.options[0][0].startswith("2. SQL: SELECT count(*)")


def test_new_question_asks_the_model_again(make_panel, scripted, demo_sqlite_url) -> None:
    backend = scripted("SELECT count(*) AS n FROM customers", "SELECT count(*) AS n FROM products")
    p = ask(make_panel(demo_sqlite_url), "How many customers are there?")
    p.question.value = "How many products are there?"
    assert "asks the model again" in p.sql_hint.value
    p.run_button.click()
    assert p.wait(30)
    assert len(backend.calls) == 2 and table_cells(p) == ["20"]


def test_pagination_of_large_results(make_panel, scripted, demo_sqlite_url) -> None:
    scripted("SELECT customer_id, name FROM customers ORDER BY customer_id")
    p = make_panel(demo_sqlite_url, page_size=20)
    ask(p, "List the customers")
    assert p.pager.layout.display is None
    assert "rows 1–20 of 60" in p.page_label.value and "page 1/3" in p.page_label.value
    assert p.prev_button.disabled and not p.next_button.disabled
    assert column(p, "customer_id") == [str(i) for i in range(1, 21)]
    p.next_button.click()
    p.next_button.click()
    assert "rows 41–60 of 60" in p.page_label.value and p.next_button.disabled
    assert column(p, "customer_id") == [str(i) for i in range(41, 61)]
    p.prev_button.click()
    assert "rows 21–40" in p.page_label.value
    p.page_size.value = 50
    assert "rows 1–50 of 60" in p.page_label.value and "page 1/2" in p.page_label.value


def test_row_cap_truncation_is_said(make_panel, scripted, demo_sqlite_url) -> None:
    scripted("SELECT * FROM order_items")
    p = ask(make_panel(demo_sqlite_url, row_cap=100), "Show all order items")
    assert "truncated" in p.status.value and "row cap" in p.page_label.value
    assert "row cap" in p.warnings.value


# -- history ----------------------------------------------------------------------------------------------------
def test_history_click_restores_question_sql_and_result(make_panel, scripted, demo_sqlite_url) -> None:
    scripted("SELECT count(*) AS n FROM customers", "SELECT name FROM departments ORDER BY name")
    p = make_panel(demo_sqlite_url)
    ask(p, "How many customers are there?")
    ask(p, "Name the departments")
    assert table_cells(p)[0] == "Engineering"
    labels = [label for label, _ in p.history.options]
    assert labels[1].startswith("1. How many customers are there?")
    p.history.value = p.history.options[1][1]  # a click on the older entry
    assert p.question.value == "How many customers are there?"
    assert p.sql.value == "SELECT count(*) AS n FROM customers"
    assert table_cells(p) == ["60"]
    assert "Restored" in p.status.value and "nl2sql-stats" in p.stats.value
    assert "executes this SQL" in p.sql_hint.value  # Run re-runs the restored SQL, no model call


def test_history_is_shared_with_the_magic(ip, cell, scripted, demo_sqlite_url) -> None:
    from jupyter_nl2sql.pipeline.assistant import get_assistant

    question = f"How many customers are there ({uuid.uuid4().hex[:6]})?"
    scripted("SELECT count(*) AS n FROM customers")
    p = cell("%nl2sql panel")
    try:
        assert isinstance(p, Nl2SqlPanel) and p.assistant is get_assistant()
        assert p._repr_mimebundle_()["text/plain"] == "nl2sql panel"
        cell(f"%%nl2sql -c {demo_sqlite_url} --no-stats --new\n{question}")
        assert p.history.options[0][0].startswith(f"{len(get_assistant().history)}. {question}")
        p.history.value = p.history.options[0][1]
        assert p.question.value == question and table_cells(p) == ["60"]
        # the panel's answers land in the shared history the magic reads
        p.sql.value = "SELECT count(*) AS n FROM products"
        p.run_button.click()
        assert p.wait(30)
        history = cell("%nl2sql history")
        assert history["sql"].iloc[-1] == "SELECT count(*) AS n FROM products"
    finally:
        p.close()


def test_panel_honours_magic_config(ip, cell) -> None:
    from jupyter_nl2sql.pipeline.assistant import get_assistant

    try:
        cell("%config Nl2SqlMagics.model = 'qwen2.5-coder-0.5b'")
        p = cell("%nl2sql panel")
        assert p.settings().model == "qwen2.5-coder-0.5b" and get_assistant().settings.model is None
        assert "qwen2.5-coder-0.5b" in p.model_label.value
        p.close()
    finally:
        cell("%config Nl2SqlMagics.model = None")


@pytest.mark.parametrize("options, fragment", [
    ({"row_cap": -5}, "row_cap must be a whole number ≥ 1, not -5"), ({"row_cap": 0}, "row_cap must be"),
    ({"prompt_layout": "xml"}, "prompt_layout must be one of sql, chat"), ({"backend": "bogus"}, "unknown backend"),
    ({"dtype": "bogus"}, "unknown dtype"),
])
def test_bad_settings_are_refused_inline_before_the_model(make_panel, scripted, demo_sqlite_url, options,
                                                          fragment) -> None:
    backend = scripted("SELECT 1")
    p = make_panel(demo_sqlite_url, **options)
    for button in (p.run_button, p.generate_button):
        p.question.value = "How many customers are there?"
        button.click()
        p.wait(30)
        assert fragment in p.error.value and "Traceback" not in p.error.value and not p.busy
    assert backend.calls == [] and idle(p)


# -- errors stay inline -----------------------------------------------------------------------------------------
def test_refused_write_is_inline_and_panel_stays_usable(make_panel, scripted, demo_copy_url) -> None:
    scripted("DELETE FROM customers", "SELECT count(*) AS n FROM customers")
    p = ask(make_panel(demo_copy_url), "Get rid of all customers")
    assert p.error.layout.display is None
    assert "refused" in p.error.value.lower() and "Traceback" not in p.error.value
    assert p.sql.value == "DELETE FROM customers"  # kept for the user to see
    assert idle(p)
    ask(p, "Delete all customers")  # asks for a write in words: refused before the model, inline too
    assert p.error.layout.display is None and "asks to change the database (delete)" in p.error.value
    assert idle(p)
    ask(p, "How many customers are there?")
    assert p.error.layout.display == "none" and table_cells(p) == ["60"]  # the data is intact


def test_bad_edited_sql_is_inline(make_panel, scripted, demo_sqlite_url) -> None:
    scripted("SELECT count(*) AS n FROM customers")
    p = ask(make_panel(demo_sqlite_url), "How many customers are there?")
    p.sql.value = "SELECT nme FROM customers"
    p.run_button.click()
    assert p.wait(30)
    assert "not run" in p.error.value and "nme" in p.error.value
    assert "Failed" in p.status.value and idle(p)
    assert table_cells(p) == ["60"]  # the previous result stays on screen


def test_unknown_connection_and_database_down_are_inline(make_panel, scripted, demo_sqlite_url) -> None:
    scripted("SELECT 1")
    p = make_panel(demo_sqlite_url)
    p.connection_text.value = "sqlite:///no/such/file.db"
    p.add_connection_button.click()
    assert p.wait(30)
    assert "no SQLite database" in p.error.value and idle(p)
    p.connection_text.value = "nowhere"
    p.add_connection_button.click()
    assert p.wait(30)
    assert "unknown connection" in p.error.value
    pytest.importorskip("psycopg")
    p.connection_text.value = "postgresql+psycopg://nobody:secret@127.0.0.1:9/none"
    p.add_connection_button.click()
    assert p.wait(30)
    assert "cannot connect" in p.error.value and "secret" not in p.error.value and idle(p)


def test_database_down_during_run_is_inline(make_panel, scripted) -> None:
    pytest.importorskip("psycopg")
    scripted("SELECT 1")
    p = ask(make_panel("postgresql+psycopg://nobody:pw@127.0.0.1:9/none"), "How many customers?")
    assert "Cannot use that database" in p.error.value and "pw@" not in p.error.value and idle(p)


def test_empty_question_and_empty_sql_are_inline(make_panel, scripted, demo_sqlite_url) -> None:
    backend = scripted("SELECT 1")
    p = make_panel(demo_sqlite_url)
    p.generate_button.click()
    assert "Write a question" in p.error.value and not p.busy
    p.run_button.click()
    assert "Write a question (or SQL)" in p.error.value and not p.busy
    assert backend.calls == [] and idle(p)


def test_model_error_is_inline(make_panel, demo_sqlite_url, monkeypatch) -> None:
    from jupyter_nl2sql.errors import ModelError

    def broken(self):
        raise ModelError("model file or folder not found: /nope.gguf")

    monkeypatch.setattr(Assistant, "backend", broken)
    p = ask(make_panel(demo_sqlite_url), "How many customers are there?")
    assert "model is not available" in p.error.value and "/nope.gguf" in p.error.value and idle(p)


def test_unexpected_exception_in_callback_is_inline(make_panel, scripted, demo_sqlite_url, monkeypatch) -> None:
    scripted("SELECT 1")
    p = make_panel(demo_sqlite_url)
    monkeypatch.setattr(p, "_run_plan", lambda: 1 / 0)
    p.run_button.click()
    assert "ZeroDivisionError" in p.error.value and "still usable" in p.error.value


# -- responsiveness and Cancel ----------------------------------------------------------------------------------
def test_click_shows_busy_state_before_the_work_is_done(make_panel, gated, demo_sqlite_url) -> None:
    p = make_panel(demo_sqlite_url)
    p.question.value = "How many customers are there?"
    p.run_button.click()
    # the visible reaction is synchronous in the click handler; the model is still blocked
    assert p.busy and p.run_button.disabled and p.generate_button.disabled and not p.cancel_button.disabled
    assert "nl2sql-busy" in p.status.value
    assert gated.entered.wait(10)
    wait_for(lambda: "writing SQL" in p.status.value)
    assert "schema✓" in p.status.value  # the stage chips show progress
    gated.gate.set()
    assert p.wait(30)
    assert table_cells(p) == ["60"] and idle(p)
    kind, seconds = p.reaction_log[0]
    assert kind == "ask" and seconds >= 0


def test_cancel_during_generation_recovers_at_once(make_panel, gated, demo_sqlite_url) -> None:
    p = make_panel(demo_sqlite_url)
    p.question.value = "How many customers are there?"
    p.run_button.click()
    assert gated.entered.wait(10)
    p.cancel_button.click()
    assert idle(p) and "Cancelled" in p.status.value  # recovered while the model is still busy
    assert p.table.value == "" and p.sql.value == ""
    gated.gate.set()  # the model finishes; its abandoned result must not appear
    assert p.wait(30)
    assert p.table.value == "" and p.sql.value == "" and "Cancelled" in p.status.value
    # ... and the panel works again
    gated.text = "SELECT count(*) AS n FROM products"
    ask(p, "How many products are there?")
    assert table_cells(p) == ["20"] and "✓" in p.status.value


def test_cancel_interrupts_the_database_query(make_panel, scripted, demo_sqlite_url) -> None:
    scripted("SELECT 1")
    p = make_panel(demo_sqlite_url)
    p.question.value = "count a huge cross join"
    p.sql.value = SLOW_SQL
    p.run_button.click()
    wait_for(lambda: p.busy and "Running" in p.status.value)
    time.sleep(0.3)
    p.cancel_button.click()
    assert idle(p) and "Cancelled" in p.status.value
    assert p.wait(10), "the query kept running after Cancel"
    assert p.error.layout.display == "none"
    p.sql.value = "SELECT count(*) AS n FROM customers"
    p.run_button.click()
    assert p.wait(30) and table_cells(p) == ["60"]


def test_cancel_between_stages_stops_before_execution(make_panel, gated, demo_sqlite_url, assistant) -> None:
    p = make_panel(demo_sqlite_url)
    p.question.value = "How many customers are there?"
    p.run_button.click()
    assert gated.entered.wait(10)
    job = p._job
    p.cancel_button.click()
    gated.gate.set()
    assert p.wait(30) and job.done.is_set()
    assert len(assistant.history) == 0  # the pipeline stopped at the next stage: nothing ran, nothing recorded


def test_second_click_while_busy_does_not_start_another_job(make_panel, gated, demo_sqlite_url) -> None:
    p = make_panel(demo_sqlite_url)
    p.question.value = "How many customers are there?"
    p.run_button.click()
    assert gated.entered.wait(10)
    p._start("ask", "again", lambda job: (lambda: None))  # what a fast double click would reach
    assert "Still working" in p.status.value
    gated.gate.set()
    assert p.wait(30) and len(gated.calls) == 1


# -- candidates, copy out, connections --------------------------------------------------------------------------
def test_candidates_are_offered_when_there_are_several(make_panel, scripted, demo_sqlite_url) -> None:
    scripted("SELECT nme FROM customers", "SELECT count(*) AS n FROM customers")
    p = ask(make_panel(demo_sqlite_url), "How many customers are there?")
    assert table_cells(p) == ["60"]
    assert p.candidates_box.layout.display is None
    assert [v for _, v in p.candidates.options] == ["SELECT nme FROM customers", "SELECT count(*) AS n FROM customers"]
    assert "repair" in p.warnings.value
    p.candidates.value = "SELECT nme FROM customers"
    p.use_candidate_button.click()
    assert p.sql.value == "SELECT nme FROM customers" and "edited" in p.sql_hint.value


def test_single_candidate_hides_the_menu(make_panel, scripted, demo_sqlite_url) -> None:
    scripted("SELECT count(*) AS n FROM customers")
    p = ask(make_panel(demo_sqlite_url), "How many customers are there?")
    assert p.candidates_box.layout.display == "none"


def test_save_dataframe_into_a_variable(make_panel, scripted, demo_sqlite_url) -> None:
    scripted("SELECT name FROM departments ORDER BY name")
    namespace: dict = {}
    p = make_panel(demo_sqlite_url, namespace=namespace)
    assert p.save_button.disabled
    ask(p, "Name the departments")
    p.variable_name.value = "depts"
    p.save_button.click()
    assert isinstance(namespace["depts"], pd.DataFrame)
    assert namespace["depts"]["name"].tolist()[0] == "Engineering"
    assert "Saved 5×1" in p.status.value
    for bad in ("1x", "class", "a-b", ""):
        p.variable_name.value = bad
        p.save_button.click()
        assert "not a valid Python variable name" in p.error.value
    assert set(namespace) == {"depts"}


def test_insert_sql_into_a_new_cell(make_panel, scripted, demo_sqlite_url, monkeypatch) -> None:
    from jupyter_nl2sql.frontends import widget

    scripted("SELECT count(*) AS n FROM customers")
    p = ask(make_panel(demo_sqlite_url), "How many customers are there?")
    inserted: list[tuple[str, bool]] = []

    class Shell:
        def __init__(self) -> None:
            self.user_ns: dict = {}

        def set_next_input(self, text: str, replace: bool = False) -> None:
            inserted.append((text, replace))

    monkeypatch.setattr(widget, "_user_shell", lambda: Shell())
    p.insert_button.click()
    assert len(inserted) == 1 and inserted[0][1] is False
    code = inserted[0][0]
    assert "SELECT count(*) AS n FROM customers" in code and "How many customers" in code
    namespace: dict = {}
    exec(compile(code, "<new cell>", "exec"), namespace)  # noqa: S102 - the new cell runs as it is
    assert int(namespace["df"]["n"].iat[0]) == 60
    assert "new cell" in p.status.value


def test_connection_picker_lists_aliases_urls_and_adds_one(make_panel, scripted, demo_sqlite_url,
                                                           demo_copy_url, assistant) -> None:
    assistant.connections.resolve(demo_copy_url, alias="shop")
    scripted("SELECT count(*) AS n FROM products")
    p = make_panel()
    labels = [label for label, _ in p.connection.options]
    assert any(label.startswith("demo — bundled demo") for label in labels)
    assert any(label.startswith("shop — sqlite:///") for label in labels)
    assert p.connection.value == "alias:shop"  # the current connection is selected
    p.connection_text.value = demo_sqlite_url
    p.add_connection_button.click()
    assert p.wait(30)
    assert p.connection.label == demo_sqlite_url and p.connection_text.value == ""
    assert "Connected" in p.status.value
    p.connection.value = "alias:demo"
    ask(p, "How many products are there?")
    assert table_cells(p) == ["20"]
    assert assistant.connections.current.display_url == demo_sqlite_url  # the one opened by Add


def test_engine_variable_as_connection(make_panel, scripted, demo_sqlite_url) -> None:
    import sqlalchemy as sa

    scripted("SELECT count(*) AS n FROM customers")
    namespace = {"eng": sa.create_engine(demo_sqlite_url)}
    p = make_panel(namespace=namespace)
    p.connection_text.value = "eng"
    p.add_connection_button.click()
    assert p.wait(30) and "Connected" in p.status.value
    ask(p, "How many customers are there?")
    assert table_cells(p) == ["60"]
    namespace["eng"].dispose()


def test_allow_writes_is_for_one_run_only(make_panel, scripted, demo_copy_url) -> None:
    scripted("SELECT 1")
    p = make_panel(demo_copy_url)
    p.sql.value = "UPDATE products SET unit_price = unit_price WHERE product_id = 1"
    p.allow_writes.value = True
    p.run_button.click()
    assert p.allow_writes.value is False  # reset as soon as the run starts
    assert p.wait(30)
    assert "row(s) changed" in p.status.value and p.error.layout.display == "none"
    p.run_button.click()
    assert p.wait(30)
    assert "refused" in p.error.value.lower()


def test_model_label_before_any_answer(make_panel, assistant) -> None:
    from jupyter_nl2sql.models import DEFAULT_MODEL, loaded_backends

    p = make_panel()
    assert DEFAULT_MODEL in p.model_label.value
    if not loaded_backends():
        assert "loads at the first question" in p.model_label.value


def test_close_stops_listening(make_panel, scripted, demo_sqlite_url, assistant) -> None:
    scripted("SELECT count(*) AS n FROM customers")
    p = make_panel(demo_sqlite_url)
    p.close()
    assert p._listener not in assistant._listeners
    assistant.ask("How many customers are there?", demo_sqlite_url)  # no error from a closed panel
