"""Bounded work on a huge schema: 400 tables of 30 columns in SQLite.

The whole schema renders to far more than the Assistant's ``max_schema_chars``; linking must keep the prompt's
schema part under that bound, keep the table the question names, say in a warning that it showed only part of the
schema, and do it in bounded time.  When even the linked schema cannot fit (one table alone is longer than the
bound), the user is told so in a warning naming ``max_schema_chars``.  Run with ``-s`` to see sizes and timings.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jupyter_nl2sql.pipeline.assistant import Answer, Assistant
from jupyter_nl2sql.connections import ConnectionManager
from jupyter_nl2sql.pipeline.schema import render_schema

TABLES = 400
COLUMNS = 30
SUBJECTS = ["warehouse", "invoice", "shipment", "supplier", "payroll", "ledger", "campaign", "ticket", "contract",
            "vehicle", "sensor", "patient", "course", "booking", "listing", "account", "device", "project",
            "claim", "parcel"]
KINDS = ["code", "amount", "status", "created_at", "updated_at", "owner", "region", "score", "note", "flag"]
MAX_SCHEMA_CHARS = 12_000
#: Generous bounds that only catch runaway work (run with ``-s`` to see the measured figures).
MAX_FIRST_ASK_SECONDS = 60.0
MAX_ASK_SECONDS = 10.0


def table_name(i: int) -> str:
    """``warehouse_000``, ``invoice_001``…: twenty subjects, numbered."""
    return f"{SUBJECTS[i % len(SUBJECTS)]}_{i:03d}"


def build_huge_sqlite(path: Path) -> Path:
    """400 tables × 30 columns, each table referencing the previous one, three rows each."""
    con = sqlite3.connect(path)
    with con:
        for i in range(TABLES):
            cols = [f"{KINDS[j % len(KINDS)]}_{j:02d} TEXT" for j in range(COLUMNS - 2)]
            parent = f", parent_id INTEGER REFERENCES {table_name(i - 1)}(id)" if i else ", parent_id INTEGER"
            con.execute(f"CREATE TABLE {table_name(i)} (id INTEGER PRIMARY KEY{parent}, {', '.join(cols)})")
            con.executemany(f"INSERT INTO {table_name(i)} VALUES ({', '.join('?' * COLUMNS)})",
                            [(r, None, *(f"value {r}-{j}" for j in range(COLUMNS - 2))) for r in range(1, 4)])
    con.close()
    return path


@pytest.fixture(scope="module")
def huge_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """URL of the huge SQLite database (built once per module)."""
    return f"sqlite:///{build_huge_sqlite(tmp_path_factory.mktemp('huge') / 'huge.sqlite')}"


@pytest.fixture(scope="module")
def huge_manager() -> Iterator[ConnectionManager]:
    """A connection manager for this module, closed afterwards."""
    own = ConnectionManager()
    yield own
    own.close_all()


@pytest.fixture(scope="module")
def huge_assistant(huge_url: str, huge_manager: ConnectionManager) -> tuple[Assistant, float]:
    """One Assistant for the module (its schema and value caches are filled once) and the introspection seconds."""
    assistant = Assistant(connections=huge_manager, max_schema_chars=MAX_SCHEMA_CHARS, generation_cache=False)
    t0 = time.perf_counter()
    assistant.schemas.get(huge_manager.resolve(huge_url), sample_rows=assistant.sample_rows)
    return assistant, time.perf_counter() - t0


def timed_ask(assistant: Assistant, question: str, url: str) -> tuple[Answer, float]:
    """The answer and the seconds it took."""
    t0 = time.perf_counter()
    answer = assistant.ask(question, url)
    return answer, time.perf_counter() - t0


def stage_times(answer: Answer) -> str:
    """``values 9.8 s, prompt 2.1 s…``: the stages that took a tenth of a second or more."""
    return ", ".join(f"{name} {stage.seconds:.1f} s" for name, stage in answer.stats.stages.items()
                     if stage.seconds >= 0.1) or "all stages under 0.1 s"


#: Where the parts that follow the schema in the user message begin, in either layout (``prompting.build_messages``).
AFTER_SCHEMA = ("\n\nExamples of questions", "\n\nValues in the database that", "\n\nQuestion: ",
                "\n\n-- Examples of questions", "\n\n-- Values in the database that", "\n\n-- Using valid ")


def schema_part(answer: Answer) -> str:
    """The schema text the model was shown (after the chat layout's header line, up to what follows it)."""
    assert answer.messages
    body = answer.messages[-1]["content"]
    if answer.messages[0]["role"] == "system":
        body = body.split("\n\n", 1)[1]
    return body[:min(i for i in (body.find(marker) for marker in AFTER_SCHEMA) if i >= 0)]


def test_linking_keeps_the_prompt_under_the_bound(huge_url: str, huge_manager: ConnectionManager,
                                                 huge_assistant: tuple[Assistant, float], scripted: Any) -> None:
    scripted("SELECT count(*) AS n FROM warehouse_120")
    assistant, introspection_seconds = huge_assistant
    question = "How many rows are in warehouse_120?"
    first, first_seconds = timed_ask(assistant, question, huge_url)  # builds the per-connection indexes once
    answer, seconds = timed_ask(assistant, question, huge_url)
    schema = assistant.schemas.get(huge_manager.resolve(huge_url), sample_rows=assistant.sample_rows)
    full = len(render_schema(schema))
    shown = schema_part(answer)
    print(f"\nhuge schema: {len(schema.tables)} tables, full rendering {full:,} chars, introspection "
          f"{introspection_seconds:.1f} s; prompt schema {len(shown):,} chars (bound {MAX_SCHEMA_CHARS:,})")
    print(f"huge schema: first ask {first_seconds:.2f} s ({stage_times(first)}); next {seconds:.2f} s "
          f"({stage_times(answer)})")
    print(f"huge schema: warnings: {[w[:150] for w in answer.warnings]}")
    assert len(schema.tables) == TABLES and full > 10 * MAX_SCHEMA_CHARS
    assert first.ok and answer.ok and answer.dataframe is not None and answer.dataframe["n"].iat[0] == 3
    assert len(shown) <= MAX_SCHEMA_CHARS and len(schema_part(first)) <= MAX_SCHEMA_CHARS
    assert "CREATE TABLE warehouse_120 (" in shown
    assert any(f"of {TABLES} tables" in w for w in answer.warnings), answer.warnings
    assert first_seconds < MAX_FIRST_ASK_SECONDS and seconds < MAX_ASK_SECONDS, (first_seconds, seconds)


def test_schema_that_cannot_fit_is_reported(huge_url: str, huge_assistant: tuple[Assistant, float], scripted: Any,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    scripted("SELECT count(*) AS n FROM warehouse_120")
    assistant = huge_assistant[0]
    answer = assistant.ask("How many rows are in warehouse_120?", huge_url, max_schema_chars=500)  # this call only
    shown = schema_part(answer)
    print(f"\nhuge schema, bound 500: prompt schema {len(shown):,} chars; warnings {answer.warnings}")
    assert len(shown) > 500  # one table alone is longer than the bound
    assert any("max_schema_chars" in w for w in answer.warnings), answer.warnings
