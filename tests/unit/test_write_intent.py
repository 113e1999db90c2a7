"""A question that asks to change the database is refused before the model is asked, unless writes are allowed
(:mod:`jupyter_nl2sql.pipeline.write_intent`; a scripted model: plumbing only)."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import pytest

from benchmarks.runner import default_data_dir
from jupyter_nl2sql.pipeline.assistant import Assistant
from jupyter_nl2sql.pipeline.write_intent import WRITE_VERBS, write_request

SPIDER = default_data_dir() / "spider"


@pytest.mark.parametrize("question, verb", [
    ("Drop the customers table", "drop"), ("Please delete all cancelled orders", "delete"),
    ("Can you update the price of the Laptop Pro 14 to 999?", "update"), ("Truncate orders.", "truncate"),
    ("Set every order's status to shipped", "set"),
    ("Which customers placed an order?", None), ("Add up the revenue per month", None),
    ("Create a list of customers in France", None), ("Remove duplicates and list the cities", None),
    ("How many orders were deleted?", None), ("", None),
])
def test_the_verb_a_question_opens_with(question: str, verb: str | None) -> None:
    assert write_request(question) == verb


def test_no_spider_question_opens_with_a_write_verb() -> None:
    found = []
    for name in ("train_spider_compact.json", "dev.json"):
        path = SPIDER / name
        if not path.is_file():
            pytest.skip(f"Spider data not found under {SPIDER}")
        found += [q["question"] for q in json.loads(path.read_text(encoding="utf-8")) if write_request(q["question"])]
    assert found == []


def test_a_write_request_is_refused_without_the_model_and_changes_nothing(scripted, demo_sqlite_url) -> None:
    backend = scripted("SELECT name FROM customers")
    before = _rows(demo_sqlite_url)
    answer = Assistant(generation_cache=False, few_shot=0).ask("Drop the customers table", demo_sqlite_url)
    assert answer.error == ("refused: the question asks to change the database (drop); only read-only queries run "
                            "unless writes are allowed (--allow-writes in the magic, allow_writes=True in Python)")
    assert answer.error_kind == "WriteRefused" and not answer.executed and backend.calls == []
    assert _rows(demo_sqlite_url) == before
    # allowed, the model is asked (the SQL check and the write's own confirmation decide what runs)
    Assistant(generation_cache=False, few_shot=0).ask("Drop the customers table", demo_sqlite_url,
                                                      allow_writes=True)
    assert len(backend.calls) == 1
    assert set(WRITE_VERBS) >= {"drop", "delete", "update", "insert"}


def _rows(url: str) -> int:
    path = Path(re.sub(r"^sqlite:/+", "/", url))
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT count(*) FROM customers").fetchone()[0]
