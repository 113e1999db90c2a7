"""Layer 2: the read-only session of :mod:`jupyter_nl2sql.connections` refuses writes by itself.

These tests bypass ``check_sql`` and hand write statements straight to ``Connection.connect()`` (read-only by
default), as if the SQL check had a hole.  The database must refuse, and stay unchanged by fingerprint.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jupyter_nl2sql.connections import Connection, ConnectionManager

DIALECTS = ["sqlite", "duckdb", "postgres"]

WRITES = [
    "DELETE FROM users",
    "UPDATE users SET email = 'pwned@example.com'",
    "INSERT INTO users VALUES (99, 'mallory', 'm@example.com')",
    "DROP TABLE orders",
    "CREATE TABLE pwned (a INTEGER)",
    "ALTER TABLE users ADD COLUMN pwned INTEGER",
]

# Attempts to leave the read-only session from inside it: each list runs statement by statement on one session.
ESCAPES: dict[str, list[tuple[list[str], str | None]]] = {
    "sqlite": [(["PRAGMA query_only = OFF", "DELETE FROM users"], None)],
    "duckdb": [(["SET access_mode = 'READ_WRITE'", "DELETE FROM users"], None),
               (["ATTACH '{tmp}/evil.duckdb' AS evil"], None),
               (["COPY users TO '{tmp}/users.csv'"], None),
               (["SELECT * FROM read_text('/etc/hostname')"], None)],
    "postgres": [(["COMMIT", "DELETE FROM users"], None),
                 (["ROLLBACK", "DROP TABLE orders"], None),
                 (["SELECT 1; COMMIT; DELETE FROM users"], None),
                 (["SET TRANSACTION READ WRITE", "DELETE FROM users"], None),
                 (["SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE", "DELETE FROM users"], None)],
}


@pytest.fixture()
def connection(fresh_target: Any) -> Iterator[Connection]:
    """The target opened the way the pipeline opens it, through a manager of its own."""
    manager = ConnectionManager()
    yield manager.resolve(fresh_target.url)
    manager.close_all()


def _run_read_only(connection: Connection, statements: list[str]) -> None:
    with connection.connect() as session:
        for statement in statements:
            session.exec_driver_sql(statement)


def _assert_refused(connection: Connection, statements: list[str], target: Any, canary: Path) -> None:
    before = _fingerprint_after_closing(connection, target)
    with pytest.raises(Exception) as info:
        _run_read_only(connection, [s.replace("{tmp}", str(canary)) for s in statements])
    assert not isinstance(info.value, AssertionError)
    assert _fingerprint_after_closing(connection, target) == before, f"{target.dialect} database changed"
    assert not list(canary.iterdir()), f"files were written: {list(canary.iterdir())}"


def _fingerprint_after_closing(connection: Connection, target: Any) -> str:
    """DuckDB opens a file with one configuration per process: release the pipeline's handle first."""
    connection.engine.dispose()
    return target.fingerprint()


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("statement", WRITES)
def test_read_only_session_refuses_writes(dialect: str, statement: str, fresh_target: Any, connection: Connection,
                                          canary: Path) -> None:
    _assert_refused(connection, [statement], fresh_target, canary)


@pytest.mark.parametrize("dialect, statements", [
    pytest.param(dialect, statements, id=f"{dialect}-{' | '.join(statements)}",
                 marks=[pytest.mark.xfail(strict=True, reason=gap)] if gap else [])
    for dialect, attempts in ESCAPES.items() for statements, gap in attempts
])
def test_read_only_session_cannot_be_escaped(dialect: str, statements: list[str], fresh_target: Any,
                                             connection: Connection, canary: Path) -> None:
    _assert_refused(connection, statements, fresh_target, canary)


@pytest.mark.parametrize("dialect", DIALECTS)
def test_read_only_session_still_reads(dialect: str, fresh_target: Any, connection: Connection) -> None:
    with connection.connect() as session:
        assert session.exec_driver_sql("SELECT count(*) FROM users").scalar() == 3


@pytest.mark.parametrize("dialect", ["postgres-superuser", "postgres"])
def test_a_role_that_may_write_is_named_in_the_first_answer(dialect: str, target: Any) -> None:
    """The one-line warning with the read-only role recipe reaches the person: in the connection's first answer
    (text and HTML as the magic, panel and CLI show it), logged and warned once, not repeated after."""
    from jupyter_nl2sql.pipeline.assistant import Assistant

    manager = ConnectionManager()
    assistant = Assistant(connections=manager, generation_cache=False)
    try:
        with pytest.warns(UserWarning, match="pg_read_all_data"):
            first = assistant.run_sql("SELECT count(*) AS n FROM users", target.url)
        second = assistant.run_sql("SELECT count(*) AS n FROM users", target.url)
    finally:
        manager.close_all()
    told = [w for w in first.warnings if "pg_read_all_data" in w]
    assert len(told) == 1 and "\n" not in told[0]
    assert ("superuser" in told[0]) == (dialect == "postgres-superuser")
    assert told[0] in str(first) and "pg_read_all_data" in first._repr_html_()
    assert not [w for w in second.warnings if "pg_read_all_data" in w]
