"""Helpers for the reliability tests: process memory, what the pool and the server hold, and server control.

Everything here observes the code under test from outside: PostgreSQL sessions through ``pg_stat_activity`` on a
connection of its own, SQLite locks through a plain ``sqlite3`` handle that asks for an exclusive lock.
``NL2SQL_TEST_PG_CTL`` (e.g. ``pg_ctlcluster 15 main``) names the command that stops and starts the PostgreSQL
server; without it, the tests that restart the server skip.
"""

from __future__ import annotations

import gc
import os
import shlex
import sqlite3
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from jupyter_nl2sql.connections import ConnectionManager

#: The ``application_name`` every PostgreSQL session of jupyter-nl2sql carries.
APP_NAME = "jupyter-nl2sql"

_PROCESS = psutil.Process()


def rss_after_gc() -> int:
    """Resident set size of this process in bytes, read after a full garbage collection."""
    gc.collect()
    return _PROCESS.memory_info().rss


def open_files() -> int:
    """Open file descriptors of this process (sockets and database files included)."""
    return _PROCESS.num_fds()


def checked_out(manager: ConnectionManager) -> dict[str, int]:
    """Connection display URL → pooled connections still checked out (zero once every call released its own)."""
    return {conn.display_url: conn.pool_status()["checkedout"] for conn in manager.connections()}


def pg_session_states(url: str) -> Counter[str]:
    """State → count of jupyter-nl2sql's sessions on ``url``'s database (``idle``, ``idle in transaction``…)."""
    engine = sa.create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as c:
            rows = c.execute(sa.text("SELECT coalesce(state, 'unknown'), count(*) FROM pg_stat_activity "
                                     "WHERE application_name = :app AND datname = current_database() "
                                     "AND pid <> pg_backend_pid() GROUP BY 1"), {"app": APP_NAME}).all()
    finally:
        engine.dispose()
    return Counter({state: int(n) for state, n in rows})


def sqlite_unlocked(path: Path) -> bool:
    """True when no connection holds a lock on the SQLite file: no open cursor, no open transaction.

    An exclusive lock is granted at once only when no other connection holds even a shared (reading) lock, which
    a statement left half-read or a transaction left open would.  Needs a rollback-journal database (not WAL).
    """
    con = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        mode = con.execute("PRAGMA journal_mode").fetchone()[0]
        assert mode.lower() != "wal", f"{path} is in WAL mode: an exclusive lock would not see readers"
        con.execute("BEGIN EXCLUSIVE")
        con.execute("ROLLBACK")
        return True
    except sqlite3.OperationalError:
        return False
    finally:
        con.close()


def wait_for_postgres(url: str, *, timeout: float = 30.0) -> float:
    """Seconds until the server behind ``url`` accepts a query (raises TimeoutError after ``timeout``)."""
    t0 = time.perf_counter()
    engine = sa.create_engine(url, poolclass=NullPool, connect_args={"connect_timeout": 2})
    try:
        while True:
            try:
                with engine.connect() as c:
                    c.exec_driver_sql("SELECT 1")
                return time.perf_counter() - t0
            except sa.exc.OperationalError:
                if time.perf_counter() - t0 > timeout:
                    raise TimeoutError(f"PostgreSQL did not come back within {timeout:g} s") from None
                time.sleep(0.1)
    finally:
        engine.dispose()


@pytest.fixture()
def manager() -> Iterator[ConnectionManager]:
    """A connection manager of the test's own (the process-wide one is left alone), closed afterwards."""
    own = ConnectionManager()
    yield own
    own.close_all()


@pytest.fixture()
def restartable_pg_url(pg_admin_url: str) -> Iterator[str]:
    """A PostgreSQL database of the test's own holding the demo data, dropped afterwards.

    Unlike the session's ``demo_pg_url``, its administration connections are not pooled, so they survive the
    server restarts the test causes.
    """
    from jupyter_nl2sql.demo import copy_demo

    name = f"nl2sql_restart_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(pg_admin_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with admin.connect() as c:
        c.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = sa.make_url(pg_admin_url).set(database=name).render_as_string(hide_password=False)
    try:
        copy_demo(url)
        yield url
    finally:
        wait_for_postgres(pg_admin_url)
        with admin.connect() as c:
            c.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@pytest.fixture()
def pg_ctl() -> Callable[[str], float]:
    """``pg_ctl("stop")`` / ``pg_ctl("start")`` run ``$NL2SQL_TEST_PG_CTL <action>`` and return its seconds."""
    prefix = os.environ.get("NL2SQL_TEST_PG_CTL", "").strip()
    if not prefix:
        pytest.skip("NL2SQL_TEST_PG_CTL is not set: restarting PostgreSQL needs a command prefix such as "
                    "'pg_ctlcluster 15 main' (.ci/run sets it)")

    def run(action: str) -> float:
        t0 = time.perf_counter()
        subprocess.run([*shlex.split(prefix), action], check=True, capture_output=True, timeout=120)
        return time.perf_counter() - t0

    return run


class Probes:
    """The helpers above as one fixture value (conftest modules cannot be imported reliably by test modules)."""

    app_name = APP_NAME
    rss_after_gc = staticmethod(rss_after_gc)
    open_files = staticmethod(open_files)
    checked_out = staticmethod(checked_out)
    pg_session_states = staticmethod(pg_session_states)
    sqlite_unlocked = staticmethod(sqlite_unlocked)
    wait_for_postgres = staticmethod(wait_for_postgres)


@pytest.fixture(scope="session")
def probes() -> type[Probes]:
    """Observers of memory, pools, server sessions and file locks: ``probes.rss_after_gc()`` and so on."""
    return Probes
