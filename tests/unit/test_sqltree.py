"""Unit tests for :mod:`jupyter_nl2sql.pipeline.sqltree`: the one parse the SQL rewrites and doubts share."""

from __future__ import annotations

import sys
from typing import Iterator

import pytest

from jupyter_nl2sql.pipeline.assistant import Assistant
from jupyter_nl2sql.pipeline.sqltree import parse_or_none

#: A reply nested deeper than sqlglot's parser can recurse under Python's default limit (a small model stuck
#: repeating "(" writes one).
DEEP = "SELECT " + "(" * 200 + "name" + ")" * 200 + " FROM customers"


@pytest.fixture(autouse=True)
def default_recursion_limit() -> Iterator[None]:
    """Python's default recursion limit, whatever a module imported earlier in the run set it to."""
    before = sys.getrecursionlimit()
    sys.setrecursionlimit(1000)
    try:
        yield
    finally:
        sys.setrecursionlimit(before)


def test_what_sqlglot_cannot_read_is_none() -> None:
    assert parse_or_none("SELECT name FROM customers", "sqlite") is not None
    assert parse_or_none("SELECT FROM WHERE (", "sqlite") is None
    assert parse_or_none(DEEP, "sqlite") is None  # too deep: not a RecursionError out of the rewrites


def test_a_reply_nested_too_deep_gets_the_checkers_one_line_error(scripted, demo_sqlite_url) -> None:
    scripted(DEEP)
    answer = Assistant(generation_cache=False, few_shot=0).ask("List the customers' names.", demo_sqlite_url)
    assert answer.error_kind == "SQLCheckError" and answer.error == "the SQL is nested too deeply to check"
    assert not answer.executed
