"""Schema introspection and value-index building run under the statement timeout and cancellation.

A view that never finishes (a count over an endless recursive CTE) used to hang every call on its database in the
schema stage.  These tests would hang without the bound; with it, introspection returns the structure, the slow
view without sample rows, and the value index comes back partial.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from jupyter_nl2sql.connections import ConnectionManager
from jupyter_nl2sql.errors import Cancelled, ConnectionFailed
from jupyter_nl2sql.pipeline.schema import introspect
from jupyter_nl2sql.pipeline.values import ValueIndex

ENDLESS = "WITH RECURSIVE x(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM x) SELECT count(*) AS c FROM x"


@pytest.fixture()
def slow_db(tmp_path: Path) -> str:
    """A SQLite file with a table and a view that never finishes (as a table, and as a text column)."""
    path = tmp_path / "slow.sqlite"
    con = sqlite3.connect(path)
    con.executescript(f"""
        CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT);
        INSERT INTO users VALUES (1, 'alice'), (2, 'bob');
        CREATE VIEW endless AS SELECT CAST(c AS TEXT) AS label FROM ({ENDLESS});
    """)
    con.close()
    return f"sqlite:///{path}"


def test_a_view_that_never_finishes_does_not_hang_introspection(slow_db: str) -> None:
    manager = ConnectionManager()
    schema = introspect(manager.resolve(slow_db), sample_rows=2, timeout=1.0)
    assert [t.name for t in schema.tables] == ["users", "endless"]
    assert schema.table("users").sample_rows and not schema.table("endless").sample_rows
    manager.close_all()


def test_introspection_can_be_cancelled(slow_db: str) -> None:
    manager = ConnectionManager()
    cancel = threading.Event()
    cancel.set()
    with pytest.raises((Cancelled, ConnectionFailed)):
        introspect(manager.resolve(slow_db), timeout=None, cancel=cancel)
    manager.close_all()


def test_value_index_over_a_slow_view_is_partial_not_hung(slow_db: str) -> None:
    manager = ConnectionManager()
    conn = manager.resolve(slow_db)
    schema = introspect(conn, sample_rows=0, timeout=5.0)
    index = ValueIndex.build(conn, schema, seconds=1.0)
    assert index.partial
    assert index.column_values("users", "name", 5)  # what was read before the deadline is kept
    manager.close_all()
