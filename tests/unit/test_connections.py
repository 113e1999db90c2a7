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


# --- engine guards (issue 18) ----------------------------------------------------------------------------------

def test_user_engine_query_only_on_is_restored_exactly(demo_copy_url: str) -> None:
    """A user's own ``query_only = ON`` survives a call (the library used to switch it OFF afterwards)."""
    engine = sa.create_engine(demo_copy_url, poolclass=sa.pool.StaticPool)
    with engine.connect() as c:
        c.exec_driver_sql("PRAGMA query_only = ON")
    conn = ConnectionManager().resolve(engine)
    assert execute(conn, "SELECT count(*) FROM customers").dataframe.iat[0, 0] == 60
    with engine.connect() as c:
        assert c.exec_driver_sql("PRAGMA query_only").scalar() == 1
        with pytest.raises(sa.exc.OperationalError, match="readonly"):
            c.exec_driver_sql("DELETE FROM customers")


@pytest.mark.parametrize("statement, fragment", [
    ("ATTACH DATABASE ':memory:' AS other", "not authorized"),
    ("PRAGMA writable_schema = ON", "not authorized"),
    ("PRAGMA query_only = OFF", "not authorized"),
    ("PRAGMA journal_mode = DELETE", "not authorized"),
    ("SELECT load_extension('x')", "not authorized"),
    ("SELECT my_function(1)", "no such function|not authorized"),
])
def test_sqlite_authorizer_denies_at_prepare_time(demo_copy_url: str, statement: str, fragment: str) -> None:
    """The engine itself refuses, even when a statement reaches it without the SQL check."""
    conn = ConnectionManager().resolve(demo_copy_url)
    with conn.connect() as session:
        with pytest.raises(sa.exc.DatabaseError, match=fragment):
            session.exec_driver_sql(statement)


@pytest.mark.parametrize("statement", ["PRAGMA table_info(customers)", "PRAGMA user_version", "PRAGMA read_uncommitted",
                                       "SELECT lower(name), count(*) FROM customers GROUP BY 1 LIMIT 1",
                                       "SELECT name FROM sqlite_master WHERE name LIKE 'cust%'"])
def test_sqlite_authorizer_lets_reads_through(demo_copy_url: str, statement: str) -> None:
    conn = ConnectionManager().resolve(demo_copy_url)
    with conn.connect() as session:
        assert session.exec_driver_sql(statement).fetchall()


def test_sqlalchemy_reads_the_isolation_level_under_the_authorizer(demo_copy_url: str) -> None:
    conn = ConnectionManager().resolve(demo_copy_url)
    with conn.engine.connect() as session:
        assert session.get_isolation_level() == "SERIALIZABLE"


def test_sqlite_write_engine_keeps_the_authorizer(demo_copy_url: str) -> None:
    conn = ConnectionManager().resolve(demo_copy_url)
    with pytest.raises(ExecutionError, match="not authorized"):
        execute(conn, "ATTACH DATABASE ':memory:' AS other", allow_writes=True)


def test_duckdb_engine_refuses_settings_and_files(demo_duckdb_url: str, tmp_path) -> None:
    conn = ConnectionManager().resolve(demo_duckdb_url)
    with conn.connect() as session:
        with pytest.raises(sa.exc.DBAPIError, match="locked|configuration"):
            session.exec_driver_sql("SET threads = 1")
    with conn.connect() as session:
        with pytest.raises(sa.exc.DBAPIError):
            session.exec_driver_sql(f"COPY customers TO '{tmp_path}/out.csv'")
    assert not list(tmp_path.iterdir())
    conn.close()


def test_user_duckdb_engine_reads_in_a_read_only_transaction(tmp_path) -> None:
    import duckdb

    path = tmp_path / "user.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE t (a INTEGER)")
    con.execute("INSERT INTO t VALUES (1)")
    con.close()
    engine = sa.create_engine(f"duckdb:///{path}")
    conn = ConnectionManager().resolve(engine)
    with pytest.raises(ExecutionError, match="read-only"):
        execute(conn, "DELETE FROM t")
    assert execute(conn, "SELECT count(*) FROM t").dataframe.iat[0, 0] == 1
    with engine.begin() as c:  # the user's engine still writes on its own
        c.exec_driver_sql("INSERT INTO t VALUES (2)")
    assert execute(conn, "SELECT count(*) FROM t").dataframe.iat[0, 0] == 2
    engine.dispose()


@pytest.mark.postgres
def test_postgres_role_that_can_write_is_reported_once(demo_pg_url: str) -> None:
    mgr = ConnectionManager()
    with pytest.warns(UserWarning, match="pg_read_all_data") as caught:
        conn = mgr.resolve(demo_pg_url)
        mgr.resolve(demo_pg_url)
        mgr.resolve(demo_pg_url)
    assert len([w for w in caught if "pg_read_all_data" in str(w.message)]) == 1
    assert conn.role_warning and "\n" not in conn.role_warning
    assert "may write" in conn.role_warning or "superuser" in conn.role_warning
    mgr.close_all()


@pytest.mark.postgres
def test_postgres_read_only_role_is_not_reported(demo_pg_url: str) -> None:
    import os
    import uuid
    import warnings

    superuser = os.environ.get("NL2SQL_TEST_PG_SUPERUSER_URL")
    if not superuser:
        pytest.skip("NL2SQL_TEST_PG_SUPERUSER_URL is not set (needed to create a read-only role)")
    role, password = f"nl2sql_ro_{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    admin = sa.create_engine(superuser, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    with admin.connect() as c:
        c.exec_driver_sql(f"CREATE ROLE {role} LOGIN PASSWORD '{password}' IN ROLE pg_read_all_data")
    try:
        url = sa.make_url(demo_pg_url).set(username=role, password=password).render_as_string(hide_password=False)
        mgr = ConnectionManager()
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            conn = mgr.resolve(url)
        assert conn.role_warning is None
        assert execute(conn, "SELECT count(*) FROM customers").dataframe.iat[0, 0] == 60
        mgr.close_all()
    finally:
        with admin.connect() as c:
            c.exec_driver_sql(f"DROP ROLE IF EXISTS {role}")
        admin.dispose()
