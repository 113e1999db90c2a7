"""Execution: row cap with streaming, timeouts, DataFrames."""

from __future__ import annotations

import threading

import pytest

from jupyter_nl2sql.connections import ConnectionManager
from jupyter_nl2sql.errors import ExecutionError
from jupyter_nl2sql.pipeline.execution import execute, explain

RUNAWAY = "WITH RECURSIVE x(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM x) SELECT count(*) FROM x"


def test_row_cap_truncates_and_says_so(demo_sqlite_url: str) -> None:
    res = execute(ConnectionManager().resolve(demo_sqlite_url), "SELECT * FROM order_items", row_cap=10)
    assert res.truncated and len(res.dataframe) == 10
    assert list(res.dataframe.columns) == ["order_id", "product_id", "quantity", "unit_price"]


def test_huge_result_reads_only_the_cap(demo_sqlite_url: str) -> None:
    sql = "WITH RECURSIVE x(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM x LIMIT 10000000) SELECT n FROM x"
    res = execute(ConnectionManager().resolve(demo_sqlite_url), sql, row_cap=5)
    assert res.truncated and res.dataframe["n"].tolist() == [1, 2, 3, 4, 5]


def test_timeout_stops_a_runaway_query(demo_sqlite_url: str) -> None:
    with pytest.raises(ExecutionError, match="timed out"):
        execute(ConnectionManager().resolve(demo_sqlite_url), RUNAWAY, timeout=0.5)


def test_cancel_event_stops_a_query(demo_sqlite_url: str) -> None:
    cancel = threading.Event()
    threading.Timer(0.3, cancel.set).start()
    with pytest.raises(ExecutionError, match="cancelled"):
        execute(ConnectionManager().resolve(demo_sqlite_url), RUNAWAY, timeout=None, cancel=cancel)


def test_explain(demo_sqlite_url: str) -> None:
    plan = explain(ConnectionManager().resolve(demo_sqlite_url), "SELECT * FROM customers WHERE customer_id = 3")
    assert "customers" in plan


@pytest.mark.postgres
def test_postgres_streaming_and_timeout(demo_pg_url: str) -> None:
    conn = ConnectionManager().resolve(demo_pg_url)
    res = execute(conn, "SELECT generate_series(1, 5000000) AS g", row_cap=3, stream=True)
    assert res.truncated and res.dataframe["g"].tolist() == [1, 2, 3]
    with pytest.raises(ExecutionError, match="timed out"):  # a sleep that long would return if the limit did not act
        execute(conn, "SELECT pg_sleep(600)", timeout=0.5)
    assert conn.pool_status()["checkedout"] == 0
    # LIKE patterns with % reach the server untouched (no driver placeholder parsing)
    assert execute(conn, "SELECT count(*) FROM customers WHERE email LIKE '%@example.com'").dataframe.iat[0, 0] == 60


# --- bounded bytes (issue 18) ----------------------------------------------------------------------------------

BLOBS = "WITH RECURSIVE x(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM x WHERE n < 50) SELECT n, zeroblob(100000) FROM x"


def test_byte_budget_stops_the_read_with_a_note(demo_sqlite_url: str) -> None:
    res = execute(ConnectionManager().resolve(demo_sqlite_url), BLOBS, max_result_bytes=1_000_000)
    assert res.truncated and 5 <= len(res.dataframe) < 10
    assert res.note and "max_result_bytes" in res.note and "\n" not in res.note
    whole = execute(ConnectionManager().resolve(demo_sqlite_url), BLOBS, max_result_bytes=None)
    assert not whole.truncated and len(whole.dataframe) == 50 and whole.note is None


def test_a_single_value_over_the_budget_is_refused_by_sqlite(demo_sqlite_url: str) -> None:
    conn = ConnectionManager().resolve(demo_sqlite_url)
    with pytest.raises(ExecutionError, match="single value .* larger than"):
        execute(conn, "SELECT zeroblob(2000000)", max_result_bytes=1_000_000)
    assert execute(conn, "SELECT length(zeroblob(2000000))").dataframe.iat[0, 0] == 2_000_000  # limit restored


def test_byte_budget_must_be_positive(demo_sqlite_url: str) -> None:
    with pytest.raises(ValueError, match="max_result_bytes"):
        execute(ConnectionManager().resolve(demo_sqlite_url), "SELECT 1", max_result_bytes=0)
