"""Connections: tokens → pooled engines, read-only sessions, clear failures, redaction."""

from __future__ import annotations

import sqlite3

import pytest
import sqlalchemy as sa

from jupyter_nl2sql.connections import ConnectionManager, redact
from jupyter_nl2sql.errors import ConnectionFailed, ExecutionError
from jupyter_nl2sql.pipeline.execution import execute


def test_redact_hides_password() -> None:
    assert redact("postgresql+psycopg://bob:s3cret@db:5432/x") == "postgresql+psycopg://bob:***@db:5432/x"
    assert "s3cret" not in redact("postgresql://bob:s3cret@")


def test_url_alias_and_engine_variable_share_one_pool(demo_copy_url: str) -> None:
    mgr = ConnectionManager()
    a = mgr.resolve(demo_copy_url, alias="shop")
    assert mgr.resolve("shop") is a
    assert mgr.resolve(demo_copy_url) is a  # same URL → same engine, not a new pool
    engine = sa.create_engine(demo_copy_url)
    b = mgr.resolve("eng", {"eng": engine})
    assert b.engine is engine and not b.owned
    assert mgr.resolve(None) is b  # no token → the current connection
    mgr.close_all()


@pytest.mark.parametrize("token, fragment", [
    ("sqlite:///does/not/exist.db", "no SQLite database"),
    ("nonsense", "unknown connection 'nonsense'"),
    ("nosuchdriver://x/y", "no SQLAlchemy driver"),
    ("postgresql+psycopg://u:pw@127.0.0.1:1/x", "cannot connect"),
    ("", "no database"),
])
def test_bad_connections_fail_with_one_line(token: str, fragment: str) -> None:
    with pytest.raises(ConnectionFailed) as info:
        ConnectionManager().resolve(token)
    assert fragment in str(info.value)
    assert "\n" not in str(info.value)
    assert "pw@" not in str(info.value)


def test_failed_connection_is_forgotten(tmp_path) -> None:
    mgr = ConnectionManager()
    with pytest.raises(ConnectionFailed):
        mgr.resolve("postgresql+psycopg://u:pw@127.0.0.1:1/x")
    assert mgr.connections() == []


def test_sqlite_session_is_read_only(demo_copy_url: str) -> None:
    conn = ConnectionManager().resolve(demo_copy_url)
    with pytest.raises(ExecutionError, match="readonly|read-only"):
        execute(conn, "DELETE FROM customers")
    path = sa.make_url(demo_copy_url).database
    assert sqlite3.connect(path).execute("SELECT count(*) FROM customers").fetchone()[0] == 60


def test_user_engine_gets_query_only_then_restored(demo_copy_url: str) -> None:
    engine = sa.create_engine(demo_copy_url)
    conn = ConnectionManager().resolve(engine)
    with pytest.raises(ExecutionError):
        execute(conn, "UPDATE customers SET name = 'x'")
    with engine.begin() as c:  # the user's own engine still writes afterwards
        c.exec_driver_sql("UPDATE customers SET name = 'y' WHERE customer_id = 1")
    assert execute(conn, "SELECT name FROM customers WHERE customer_id = 1").dataframe.iat[0, 0] == "y"


def test_allowed_write_commits(demo_copy_url: str) -> None:
    conn = ConnectionManager().resolve(demo_copy_url)
    execute(conn, "DELETE FROM order_items WHERE order_id = 1", allow_writes=True)
    assert execute(conn, "SELECT count(*) FROM order_items WHERE order_id = 1").dataframe.iat[0, 0] == 0


def test_duckdb_read_only(demo_duckdb_url: str) -> None:
    conn = ConnectionManager().resolve(demo_duckdb_url)
    assert execute(conn, "SELECT count(*) FROM customers").dataframe.iat[0, 0] == 60
    with pytest.raises(ExecutionError, match="read-only"):
        execute(conn, "DELETE FROM customers")
    assert execute(conn, "SELECT count(*) FROM customers").dataframe.iat[0, 0] == 60


@pytest.mark.postgres
def test_postgres_read_only_and_pool(demo_pg_url: str) -> None:
    mgr = ConnectionManager()
    conn = mgr.resolve(demo_pg_url)
    with pytest.raises(ExecutionError, match="read-only transaction"):
        execute(conn, "DELETE FROM customers")
    assert execute(conn, "SELECT count(*) FROM customers").dataframe.iat[0, 0] == 60
    assert conn.pool_status()["checkedout"] == 0
    assert "***" in conn.display_url and sa.make_url(demo_pg_url).password not in conn.display_url
    mgr.close_all()


@pytest.mark.postgres
def test_postgres_wrong_password(demo_pg_url: str) -> None:
    bad = sa.make_url(demo_pg_url).set(password="definitely-wrong").render_as_string(hide_password=False)
    with pytest.raises(ConnectionFailed, match="password authentication failed") as info:
        ConnectionManager().resolve(bad)
    assert "definitely-wrong" not in str(info.value)
