"""Run checked SQL on a pooled connection into a pandas DataFrame, bounded in rows and time.

Rows are fetched in a stream (server-side cursor on PostgreSQL) and only ``row_cap + 1`` are ever read, so a
ten-million-row result neither freezes the kernel nor fills its memory; the extra row only tells that the result
was truncated.  A statement timeout stops runaway queries: ``statement_timeout`` on PostgreSQL, a progress
handler on SQLite, an interrupt on DuckDB.
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import pandas as pd
import sqlalchemy as sa

from ..connections import Connection, redact
from ..errors import ConnectionFailed, ExecutionError, first_line as _one_line


@dataclass
class ExecutionResult:
    """What a statement returned."""

    dataframe: pd.DataFrame | None
    truncated: bool
    rowcount: int
    execute_seconds: float
    fetch_seconds: float


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
        conn.exec_driver_sql(f"SET LOCAL statement_timeout = {int(seconds * 1000)}")
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


def execute(connection: Connection, sql: str, *, row_cap: int = 1000, timeout: float | None = 30.0,
            allow_writes: bool = False, cancel: threading.Event | None = None,
            stream: bool = False) -> ExecutionResult:
    """Run one checked statement and return at most ``row_cap`` rows as a DataFrame.

    ``stream`` (for statements known to be queries) reads rows through a server-side cursor on PostgreSQL.

    Read-only unless ``allow_writes`` (then the transaction commits).  Database errors and timeouts raise
    :class:`~jupyter_nl2sql.errors.ExecutionError` with the driver's first line, password-free; a connection lost
    while the statement ran (the server stopped or restarted) raises
    :class:`~jupyter_nl2sql.errors.ConnectionFailed`, which the pipeline does not try to repair.
    """
    if row_cap < 1:
        raise ValueError("row_cap must be at least 1")
    t0 = time.perf_counter()
    try:
        with connection.connect(allow_writes=allow_writes) as conn:
            with statement_timeout(conn, timeout, cancel):
                if stream and connection.dialect == "postgresql":  # server-side cursor: rows arrive as they are read
                    conn = conn.execution_options(stream_results=True, max_row_buffer=min(row_cap + 1, 1000))
                result = conn.exec_driver_sql(sql)
                if not result.returns_rows:
                    rowcount = result.rowcount
                    t1 = time.perf_counter()
                    return ExecutionResult(None, False, rowcount, t1 - t0, 0.0)
                keys = list(result.keys())
                rows = result.fetchmany(row_cap + 1)
                result.close()
            t1 = time.perf_counter()
    except sa.exc.SQLAlchemyError as exc:
        message = _one_line(exc)
        if cancel is not None and cancel.is_set():
            message = "cancelled"
        elif "interrupt" in message.lower() or "statement timeout" in message.lower() or "cancel" in message.lower():
            message = f"timed out after {timeout:g} s ({message}); raise the timeout or narrow the question"
        elif getattr(exc, "connection_invalidated", False):  # the server went away: not the SQL's fault
            raise ConnectionFailed(redact_message(
                f"lost the connection to {connection.display_url} ({message}): check that the database server is "
                "running, then run the question again", connection)) from None
        raise ExecutionError(redact_message(message, connection)) from None
    finally:
        if allow_writes:
            connection.release_writer()
    truncated = len(rows) > row_cap
    rows = rows[:row_cap]
    frame = pd.DataFrame.from_records([tuple(r) for r in rows], columns=keys)
    t2 = time.perf_counter()
    return ExecutionResult(frame, truncated, len(rows), t1 - t0, t2 - t1)


def redact_message(message: str, connection: Connection) -> str:
    """Remove the connection's password from a driver message, should the driver have echoed it."""
    password = connection.engine.url.password
    return message.replace(str(password), "***") if password else message


def explain(connection: Connection, sql: str, *, analyze: bool = False, timeout: float | None = 30.0) -> str:
    """The database's plan for ``sql`` as text (``EXPLAIN``, or ``EXPLAIN ANALYZE`` on PostgreSQL)."""
    prefix = {"sqlite": "EXPLAIN QUERY PLAN"}.get(connection.dialect, "EXPLAIN")
    if analyze and connection.dialect == "postgresql":
        prefix = "EXPLAIN ANALYZE"
    res = execute(connection, f"{prefix} {sql}", row_cap=10_000, timeout=timeout)
    frame = res.dataframe if res.dataframe is not None else pd.DataFrame()
    return "\n".join(" | ".join(str(v) for v in row) for row in frame.itertuples(index=False))


__all__ = ["ExecutionResult", "execute", "explain", "statement_timeout", "redact"]
