"""Run checked SQL on a pooled connection into a pandas DataFrame, bounded in rows, bytes and time.

Rows are fetched in a stream (server-side cursor on PostgreSQL) and only ``row_cap + 1`` are ever read, so a
ten-million-row result neither freezes the kernel nor fills its memory; the extra row only tells that the result
was truncated.  Rows are read in batches sized from the rows seen so far, and reading stops once the values held
would pass ``max_result_bytes`` (:data:`MAX_RESULT_BYTES` by default), with a note saying so; on SQLite a single
value longer than the budget is refused by the engine (``SQLITE_LIMIT_LENGTH``, restored afterwards).  A statement
timeout stops runaway queries: ``statement_timeout`` on PostgreSQL, a progress handler on SQLite, an interrupt on
DuckDB.
"""

from __future__ import annotations

import sqlite3
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

import pandas as pd
import sqlalchemy as sa
import sqlglot
import sqlglot.errors
from sqlglot import exp
from sqlglot.tokens import TokenType

from ..connections import Connection, redact, scrub
from ..errors import ConnectionFailed, ExecutionError, first_line as _one_line


#: Bytes of result values one call may hold (as Python holds them) before reading stops: sized for a notebook.
MAX_RESULT_BYTES = 256 * 1024 * 1024

#: Rows read per batch at most (the batch shrinks when rows are large).
_MAX_BATCH = 1024

#: Rows DuckDB computes at once (its vector size) before the first of them can be read.
_DUCKDB_VECTOR_ROWS = 2048

#: DuckDB result types of a fixed, small width (a wider type, or one of variable width, needs the one-row probe).
_DUCKDB_FIXED_TYPES = frozenset({
    "BOOLEAN", "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT",
    "UHUGEINT", "FLOAT", "DOUBLE", "DECIMAL", "DATE", "TIME", "TIME WITH TIME ZONE", "TIMESTAMP", "TIMESTAMP_S",
    "TIMESTAMP_MS", "TIMESTAMP_NS", "TIMESTAMP WITH TIME ZONE", "INTERVAL", "UUID", "NULL"})

#: Bytes Python holds at most for one value of a fixed-width type (a Decimal is the largest).
_FIXED_VALUE_BYTES = 128


@dataclass
class ExecutionResult:
    """What a statement returned.

    ``truncated``: rows were left unread (the row cap or the byte budget); ``note`` says why, in one line, when it
    was the byte budget.
    """

    dataframe: pd.DataFrame | None
    truncated: bool
    rowcount: int
    execute_seconds: float
    fetch_seconds: float
    note: str | None = None


@contextmanager
def statement_timeout(conn: sa.Connection, seconds: float | None,
                      cancel: threading.Event | None = None) -> Iterator[None]:
    """Abort the statement run inside this block after ``seconds`` (or when ``cancel`` is set)."""
    if not seconds and cancel is None:
        yield
        return
    deadline = time.monotonic() + seconds if seconds else float("inf")
    name = conn.dialect.name
    if name == "postgresql" and seconds:
        conn.exec_driver_sql(f"SET LOCAL statement_timeout = {max(1, int(seconds * 1000))}")  # 0 would mean none
    if name == "sqlite":
        raw = conn.connection.dbapi_connection

        def handler() -> int:
            return int(time.monotonic() > deadline or (cancel is not None and cancel.is_set()))

        raw.set_progress_handler(handler, 5000)
        try:
            yield
        finally:
            raw.set_progress_handler(None, 0)
        return
    stop = threading.Event()
    interrupt: Callable[[], Any] | None = _interrupter(conn)
    watcher = None
    if interrupt is not None:
        def watch() -> None:
            while not stop.wait(0.05):
                if time.monotonic() > deadline or (cancel is not None and cancel.is_set()):
                    interrupt()
                    return
        watcher = threading.Thread(target=watch, daemon=True, name="nl2sql-timeout")
        watcher.start()
    try:
        yield
    finally:
        stop.set()
        if watcher is not None:
            watcher.join()


def _interrupter(conn: sa.Connection) -> Callable[[], Any] | None:
    """A callable that cancels the running statement from another thread, where the driver offers one."""
    raw = conn.connection.dbapi_connection
    for obj in (raw, getattr(raw, "driver_connection", None), getattr(raw, "_ConnectionWrapper__c", None)):
        for attr in ("interrupt", "cancel"):
            fn = getattr(obj, attr, None)
            if callable(fn):
                return fn
    return None


def value_bytes(value: Any) -> int:
    """About how many bytes Python holds for one result value (strings and bytes by length)."""
    if isinstance(value, (str, bytes, bytearray, memoryview)):
        return sys.getsizeof(value) if not isinstance(value, memoryview) else value.nbytes + 200
    return sys.getsizeof(value) if isinstance(value, (int, float, bool)) or value is None else 64 + len(str(value))


def row_bytes(row: Sequence[Any]) -> int:
    """About how many bytes Python holds for one row (its values and the tuple)."""
    return 56 + 8 * len(row) + sum(value_bytes(v) for v in row)


def fetch_bounded(result: Any, limit: int, max_bytes: int | None) -> tuple[list[Any], bool]:
    """Read at most ``limit`` rows whose values hold at most ``max_bytes``; return (rows, stopped by bytes).

    The first batch is one row; later batches are sized so that one batch holds at most a quarter of what is left
    of the budget (by the mean row size so far), so that no batch overshoots the budget by much.
    """
    rows: list[Any] = []
    used = 0
    batch = 1
    while len(rows) < limit:
        chunk = result.fetchmany(min(batch, limit - len(rows)))
        if not chunk:
            break
        for row in chunk:
            size = row_bytes(row)
            if max_bytes is not None and used + size > max_bytes:
                return rows, True
            rows.append(row)
            used += size
        mean = used / len(rows)
        room = (max_bytes - used) / 4 if max_bytes is not None else float("inf")
        batch = int(max(1, min(_MAX_BATCH, room / max(mean, 1.0))))
    return rows, False


def _budget_note(rows: int, max_bytes: int) -> str:
    """One line saying that the byte budget stopped the read."""
    return (f"result stopped after {rows} rows to stay within {_megabytes(max_bytes)} (max_result_bytes), the most "
            "one call keeps in memory; select fewer or narrower columns, aggregate, or raise max_result_bytes")


def _megabytes(count: int) -> str:
    return f"{count / 1024 / 1024:,.0f} MB" if count >= 1024 * 1024 else f"{count:,} bytes"


@contextmanager
def _value_length_limit(conn: sa.Connection, max_bytes: int | None) -> Iterator[None]:
    """On SQLite, refuse any single string or blob longer than ``max_bytes`` (the previous limit restored)."""
    raw = conn.connection.dbapi_connection if conn.dialect.name == "sqlite" else None
    if raw is None or max_bytes is None or not hasattr(raw, "setlimit"):
        yield
        return
    previous = raw.getlimit(sqlite3.SQLITE_LIMIT_LENGTH)
    raw.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, max(1, min(previous, max_bytes)))
    try:
        yield
    finally:
        raw.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, previous)


def execute(connection: Connection, sql: str, *, row_cap: int = 1000, timeout: float | None = 30.0,
            allow_writes: bool = False, cancel: threading.Event | None = None,
            stream: bool = False, max_result_bytes: int | None = MAX_RESULT_BYTES) -> ExecutionResult:
    """Run one checked statement and return at most ``row_cap`` rows as a DataFrame.

    ``stream`` (for statements known to be queries) reads rows through a server-side cursor on PostgreSQL.
    ``max_result_bytes`` bounds the bytes of values read (None: no bound); a result that passes it comes back
    truncated with a ``note``.

    Read-only unless ``allow_writes`` (then the transaction commits).  Database errors and timeouts raise
    :class:`~jupyter_nl2sql.errors.ExecutionError` with the driver's first line, password-free; a connection lost
    while the statement ran (the server stopped or restarted) raises
    :class:`~jupyter_nl2sql.errors.ConnectionFailed`, which the pipeline does not try to repair.
    """
    if row_cap < 1:
        raise ValueError("row_cap must be at least 1")
    if max_result_bytes is not None and max_result_bytes < 1:
        raise ValueError("max_result_bytes must be at least 1 (or None for no bound)")
    t0 = time.perf_counter()
    failure: Exception | None = None
    try:
        with connection.connect(allow_writes=allow_writes) as conn:
            with statement_timeout(conn, timeout, cancel), _value_length_limit(conn, max_result_bytes):
                if stream and connection.dialect == "postgresql" and _cursor_query(sql):  # rows arrive as read
                    conn = conn.execution_options(stream_results=True, max_row_buffer=min(row_cap + 1, 64))
                byte_rows = None  # DuckDB: the statement was limited to this many rows by the byte budget
                if connection.dialect == "duckdb" and max_result_bytes is not None:
                    sql, byte_rows = _duckdb_within_budget(conn, sql, row_cap + 1, max_result_bytes)
                result = conn.exec_driver_sql(sql)
                if not result.returns_rows:
                    rowcount = result.rowcount
                    t1 = time.perf_counter()
                    return ExecutionResult(None, False, rowcount, t1 - t0, 0.0)
                keys = list(result.keys())
                rows, over_budget = fetch_bounded(result, row_cap + 1, max_result_bytes)
                result.close()
                if byte_rows is not None and len(rows) >= byte_rows:  # the last row only tells there were more
                    rows, over_budget = rows[:byte_rows - 1], True
            t1 = time.perf_counter()
    except sa.exc.SQLAlchemyError as exc:
        failure = _failure(exc, connection, timeout=timeout, cancel=cancel, max_result_bytes=max_result_bytes)
    finally:
        if allow_writes:
            connection.release_writer()
    if failure is not None:
        raise failure  # raised outside the except block: the driver's exception stays out of __context__
    truncated = len(rows) > row_cap or over_budget
    rows = rows[:row_cap]
    frame = pd.DataFrame.from_records([tuple(r) for r in rows], columns=keys)
    del rows
    t2 = time.perf_counter()
    note = _budget_note(len(frame), max_result_bytes) if over_budget and max_result_bytes is not None else None
    return ExecutionResult(frame, truncated, len(frame), t1 - t0, t2 - t1, note)


def _duckdb_within_budget(conn: sa.Connection, sql: str, limit: int, max_bytes: int) -> tuple[str, int | None]:
    """DuckDB: ``sql`` limited to the rows whose vector fits half of ``max_bytes``, and that row count (None: as is).

    A query whose result types are all of small fixed width runs as it is.  Otherwise it is first run for one row;
    the row count is half the budget over that row's size, plus one row that only tells there were more.  Rows much
    wider than the first are not foreseen.
    """
    body = _query_body(sql, "duckdb")
    if body is None:
        return sql, None

    def limited(rows: int) -> str:
        return f"SELECT * FROM (\n{body}\n) AS _nl2sql_rows LIMIT {rows}"

    empty = conn.exec_driver_sql(limited(0))  # bound, not run: the result's column types
    description = empty.cursor.description or []
    empty.close()
    types = [str(column[1]).split("(", 1)[0].upper() for column in description]
    vector_bytes = _DUCKDB_VECTOR_ROWS * len(types) * _FIXED_VALUE_BYTES
    if all(t in _DUCKDB_FIXED_TYPES for t in types) and vector_bytes <= max_bytes // 4:
        return sql, None
    first = conn.exec_driver_sql(limited(1)).first()
    if first is None:
        return sql, None
    rows = int(max_bytes / 2 / row_bytes(first)) + 1
    return (limited(rows), rows) if rows < limit else (sql, None)


def _query_body(sql: str, dialect: str) -> str | None:
    """The text of ``sql`` without a trailing semicolon when it is one query (SELECT, WITH, set operation), else None.
    """
    try:
        statements = [s for s in sqlglot.parse(sql, read=dialect) if s is not None]
        tokens = sqlglot.tokenize(sql, read=dialect)
    except sqlglot.errors.SqlglotError:
        return None
    if len(statements) != 1 or not isinstance(statements[0], exp.Query):
        return None
    while tokens and tokens[-1].token_type == TokenType.SEMICOLON:
        tokens.pop()
    return sql[:tokens[-1].end + 1] if tokens else None


def _cursor_query(sql: str) -> bool:
    """True when PostgreSQL can run ``sql`` in a server-side cursor (a query, not SHOW or EXPLAIN)."""
    try:
        first = next(iter(sqlglot.tokenize(sql, read="postgres")), None)
    except sqlglot.errors.TokenError:
        return False
    return first is not None and first.text.lower() in ("select", "with", "values", "table", "(")


def _failure(exc: sa.exc.SQLAlchemyError, connection: Connection, *, timeout: float | None,
             cancel: threading.Event | None, max_result_bytes: int | None) -> Exception:
    """The one-line, password-free error for a driver exception (to raise outside the ``except`` block)."""
    message = _one_line(exc)
    if "string or blob too big" in message.lower() and max_result_bytes is not None:
        return ExecutionError(f"a single value in the result is larger than {_megabytes(max_result_bytes)} "
                              "(max_result_bytes): select a shorter part of it (substr) or raise max_result_bytes")
    if cancel is not None and cancel.is_set():
        message = "cancelled"
    elif "interrupt" in message.lower() or "statement timeout" in message.lower() or "cancel" in message.lower():
        message = f"timed out after {timeout or 0:g} s ({message}); raise the timeout or narrow the question"
    elif getattr(exc, "connection_invalidated", False):  # the server went away: not the SQL's fault
        return ConnectionFailed(redact_message(
            f"lost the connection to {connection.display_url} ({message}): check that the database server is "
            "running, then run the question again", connection))
    return ExecutionError(redact_message(message, connection))


def redact_message(message: str, connection: Connection) -> str:
    """Remove the connection's secrets (and any URL or DSN password) from a driver message."""
    return scrub(message, connection.secrets)


def explain(connection: Connection, sql: str, *, analyze: bool = False, timeout: float | None = 30.0) -> str:
    """The database's plan for ``sql`` as text (``EXPLAIN``, or ``EXPLAIN ANALYZE`` on PostgreSQL)."""
    prefix = {"sqlite": "EXPLAIN QUERY PLAN"}.get(connection.dialect, "EXPLAIN")
    if analyze and connection.dialect == "postgresql":
        prefix = "EXPLAIN ANALYZE"
    res = execute(connection, f"{prefix} {sql}", row_cap=10_000, timeout=timeout)
    frame = res.dataframe if res.dataframe is not None else pd.DataFrame()
    return "\n".join(" | ".join(str(v) for v in row) for row in frame.itertuples(index=False))


__all__ = ["ExecutionResult", "MAX_RESULT_BYTES", "execute", "explain", "fetch_bounded", "statement_timeout", "redact"]
