"""SQLite strftime formats the library does not know are refused by the checker (they give NULL, silently).

The Assistant test uses a scripted backend (prepared replies): plumbing only, not the model."""

from __future__ import annotations

import sqlite3

import pytest

from jupyter_nl2sql import Assistant
from jupyter_nl2sql.errors import SQLCheckError
from jupyter_nl2sql.pipeline.sqlcheck import check_sql, sqlite_date_codes


def test_the_probe_matches_sqlite() -> None:
    with sqlite3.connect(":memory:") as con:
        assert con.execute("SELECT strftime('%Q', '2024-05-06')").fetchone()[0] is None  # why the check exists
    assert {"Y", "m", "d", "H", "M", "S", "j", "w"} <= sqlite_date_codes()
    assert "Q" not in sqlite_date_codes() and "q" not in sqlite_date_codes()


@pytest.mark.parametrize("sql, code", [
    ("SELECT strftime('%Q', order_date) FROM orders", "%Q"),
    ("SELECT STRFTIME('%Y-%q', order_date) AS quarter FROM orders", "%q"),
    ("SELECT name FROM orders WHERE strftime('%b', order_date) = 'May'", "%b"),
])
def test_unknown_codes_are_refused_with_what_sqlite_knows(sql: str, code: str) -> None:
    with pytest.raises(SQLCheckError, match=f"SQLite's strftime has no {code}: it gives NULL; it knows .*%Y"):
        check_sql(sql, dialect="sqlite")


@pytest.mark.parametrize("sql", [
    "SELECT strftime('%Y-%m', order_date), COUNT(*) FROM orders GROUP BY 1",
    "SELECT strftime('100%%', order_date) FROM orders",       # a percent sign, not a code
    "SELECT (CAST(strftime('%m', order_date) AS INTEGER) + 2) / 3 FROM orders",
])
def test_known_codes_pass(sql: str) -> None:
    assert check_sql(sql, dialect="sqlite").sql


def test_duckdb_is_not_judged_by_sqlite() -> None:
    assert check_sql("SELECT strftime(d, '%q') FROM t", dialect="duckdb").sql


def test_the_refusal_feeds_a_repair_round(scripted, demo_sqlite_url) -> None:
    backend = scripted("SELECT strftime('%Q', order_date) AS quarter, COUNT(*) FROM orders GROUP BY quarter",
                       "SELECT (CAST(strftime('%m', order_date) AS INTEGER) + 2) / 3 AS quarter, COUNT(*) "
                       "FROM orders GROUP BY quarter")
    answer = Assistant(generation_cache=False, few_shot=0).ask("orders per quarter", demo_sqlite_url)
    assert answer.ok, answer.error
    assert sorted(answer.dataframe["quarter"]) == [1, 2, 3, 4]
    assert len(backend.calls) == 2 and "strftime has no %Q" in str(backend.calls[1])
