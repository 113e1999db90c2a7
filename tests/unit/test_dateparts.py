"""Date parts in another engine's words (``YEAR(d)``) are written in the database's own, without asking the model.

The Assistant test uses a scripted backend (prepared replies): plumbing only, not the model."""

from __future__ import annotations

import sqlite3

import pytest

from jupyter_nl2sql import Assistant
from jupyter_nl2sql.pipeline.dateparts import portable_date_parts
from jupyter_nl2sql.pipeline.explain import explain_sql

DATES = "(SELECT '2024-05-06 10:11:12' AS d UNION ALL SELECT '2023-11-30 23:59:01')"


@pytest.mark.parametrize("part, expected", [
    ("YEAR(d)", [2024, 2023]), ("MONTH(d)", [5, 11]), ("DAY(d)", [6, 30]), ("QUARTER(d)", [2, 4]),
    ("HOUR(d)", [10, 23]), ("EXTRACT(YEAR FROM d)", [2024, 2023]), ("EXTRACT(month FROM d)", [5, 11]),
    ("EXTRACT(QUARTER FROM d)", [2, 4]),
])
def test_sqlite_gets_the_same_numbers(part: str, expected: list[int]) -> None:
    ported = portable_date_parts(f"SELECT {part} FROM {DATES}", "sqlite")
    assert ported is not None and len(ported.changes) == 1 and "STRFTIME" in ported.sql
    with sqlite3.connect(":memory:") as con:
        with pytest.raises(sqlite3.OperationalError):  # why the port exists
            con.execute(f"SELECT {part} FROM {DATES}")
        assert [row[0] for row in con.execute(ported.sql)] == expected


def test_a_quarter_written_as_percent_q_becomes_its_number() -> None:
    sql = f"SELECT strftime('%Y-%q', d), strftime('Q%q', d), strftime('%q', d), strftime('100%%q', d) FROM {DATES}"
    ported = portable_date_parts(sql, "sqlite")
    assert ported is not None and len(ported.changes) == 3  # '100%%q': a percent sign and a q, as SQLite reads it
    with sqlite3.connect(":memory:") as con:
        assert con.execute(sql).fetchall()[0][:3] == (None, None, None)  # why: SQLite gives NULL for %q
        assert con.execute(ported.sql).fetchall() == [("2024-2", "Q2", 2, "100%q"), ("2023-4", "Q4", 4, "100%q")]


def test_postgres_gets_extract_and_keeps_its_own() -> None:
    ported = portable_date_parts("SELECT YEAR(d), QUARTER(d), EXTRACT(DAY FROM d) FROM t", "postgres")
    assert ported is not None
    assert ported.sql == "SELECT EXTRACT(YEAR FROM d), EXTRACT(QUARTER FROM d), EXTRACT(DAY FROM d) FROM t"
    assert ported.changes == ["YEAR(d) → EXTRACT(YEAR FROM d)", "QUARTER(d) → EXTRACT(QUARTER FROM d)"]


@pytest.mark.parametrize("sql, dialect", [
    ("SELECT strftime('%Y', d) FROM t", "sqlite"),           # already SQLite's words
    ("SELECT DAYOFWEEK(d), WEEK(d) FROM t", "sqlite"),        # numbered differently by each engine: left alone
    ("SELECT YEAR(d) FROM t", "duckdb"),                      # DuckDB has YEAR()
    ("SELECT YEAR(d FROM t", "sqlite"),                       # does not parse: the checker says so
    ("SELECT EXTRACT(YEAR FROM d) FROM t", "postgres"),
])
def test_nothing_to_port(sql: str, dialect: str) -> None:
    assert portable_date_parts(sql, dialect) is None


def test_the_explanation_reads_the_ported_year() -> None:
    ported = portable_date_parts("SELECT COUNT(*) FROM orders WHERE YEAR(order_date) = 2024", "sqlite")
    assert ported is not None
    assert explain_sql(ported.sql, "sqlite") == "Counts orders whose order_date is in 2024."


def test_assistant_runs_the_ported_query_without_a_repair(scripted, demo_sqlite_url) -> None:
    backend = scripted("SELECT COUNT(*) FROM orders WHERE YEAR(order_date) = 2024")
    answer = Assistant(generation_cache=False, few_shot=0).ask("How many orders were placed in 2024?",
                                                               demo_sqlite_url)
    assert answer.ok and len(backend.calls) == 1 and "STRFTIME('%Y', order_date)" in answer.sql
    assert answer.dataframe.iloc[0, 0] > 0
    assert any(w.startswith("wrote the date parts in this database's words: YEAR(order_date) → ")
               for w in answer.warnings)
    assert not any("repair" in w for w in answer.warnings)
