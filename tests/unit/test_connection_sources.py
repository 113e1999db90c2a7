"""Where connections come from: the installed PostgreSQL driver, one listing entry per database, jupysql-style
``connections.ini`` sections and ``$DATABASE_URL``."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import sqlalchemy as sa
from IPython.core.error import UsageError
from IPython.utils.capture import capture_output

from jupyter_nl2sql import connections
from jupyter_nl2sql.connections import (ConnectionManager, POSTGRES_DRIVER_HINT, ini_section_url, manager,
                                        with_installed_driver)
from jupyter_nl2sql.errors import ConnectionFailed


def installed(*modules: str):
    """A stand-in for :func:`connections.driver_installed` that sees exactly ``modules`` (which drivers exist)."""
    return lambda module: module in modules


# -- the PostgreSQL driver -----------------------------------------------------------------------------------
@pytest.mark.parametrize("url, present, expected", [
    ("postgresql://me@host/db", ("psycopg",), "postgresql+psycopg"),
    ("postgresql://me@host/db", ("psycopg2", "psycopg"), "postgresql"),  # SQLAlchemy's default where it exists
    ("postgres://me@host/db", ("psycopg",), "postgresql+psycopg"),  # as hosting services write DATABASE_URL
    ("postgresql+psycopg2://me@host/db", ("psycopg",), "postgresql+psycopg2"),  # a driver named is kept
    ("postgresql+pg8000://me@host/db", (), "postgresql+pg8000"),
    ("sqlite:///shop.db", (), "sqlite"),
])
def test_postgres_urls_get_the_installed_driver(monkeypatch, url, present, expected) -> None:
    monkeypatch.setattr(connections, "driver_installed", installed(*present))
    assert with_installed_driver(sa.make_url(url)).drivername == expected


def test_no_postgres_driver_is_one_line_naming_the_install(monkeypatch) -> None:
    monkeypatch.setattr(connections, "driver_installed", installed())
    with pytest.raises(ConnectionFailed) as info:
        ConnectionManager().resolve("postgresql://me:s3cret-pw@127.0.0.1/db")
    message = str(info.value)
    assert POSTGRES_DRIVER_HINT in message and 'pip install "psycopg[binary]"' in message
    assert "\n" not in message and "s3cret-pw" not in message


@pytest.mark.postgres
def test_postgresql_url_without_driver_connects(demo_pg_url) -> None:
    bare = sa.make_url(demo_pg_url).set(drivername="postgresql").render_as_string(hide_password=False)
    explicit = sa.make_url(bare).set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    mgr = ConnectionManager()
    try:
        conn = mgr.resolve(bare)
        expected = "psycopg2" if connections.driver_installed("psycopg2") else "psycopg"
        assert conn.engine.dialect.driver == expected
        with conn.connect() as c:
            assert c.exec_driver_sql("SELECT count(*) FROM customers").scalar() == 60
        if expected == "psycopg":
            assert mgr.resolve(explicit) is conn  # one database, one pool, however the URL names the driver
    finally:
        mgr.close_all()


# -- one entry per database ----------------------------------------------------------------------------------
def test_listing_has_one_row_per_database(demo_sqlite_url, demo_copy_url, monkeypatch) -> None:
    mgr = ConnectionManager()
    assert [row["names"] for row in mgr.listing()] == [["demo"]]  # the bundled demo, not opened yet
    demo = mgr.resolve("demo")
    assert mgr.resolve(demo_sqlite_url) is demo
    path = Path(sa.make_url(demo_sqlite_url).database)
    monkeypatch.chdir(path.parent)
    assert mgr.resolve(f"sqlite:///{path.name}") is demo  # a relative spelling of the same file: the same pool
    mgr.resolve(demo_sqlite_url, alias="shop")
    assert mgr.listing() == [{"names": ["demo", "shop"], "url": demo.display_url, "current": True}]
    copy = mgr.resolve(demo_copy_url)
    rows = mgr.listing()
    assert len(rows) == 2
    assert [row["current"] for row in rows] == [False, True] and rows[1]["url"] == copy.display_url
    mgr.close_all()


def test_demo_opened_by_url_is_still_listed_once_as_demo(demo_sqlite_url) -> None:
    mgr = ConnectionManager()
    mgr.resolve(demo_sqlite_url)
    assert [row["names"] for row in mgr.listing()] == [["demo"]]
    mgr.close_all()


def test_connections_subcommand_lists_the_demo_once(ip, cell, demo_sqlite_url) -> None:
    with capture_output():
        cell("%nl2sql connect demo")
        cell(f"%nl2sql connect {demo_sqlite_url}")
    frame = cell("%nl2sql connections")
    demo_rows = frame[frame["alias"].str.contains("demo")]
    assert len(demo_rows) == 1 and demo_rows["current"].tolist() == [True]
    assert not frame["url"].str.contains("<bundled").any()
    assert frame["current"].sum() == 1


# -- connections.ini -------------------------------------------------------------------------------------------
def write_ini(folder: Path, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "connections.ini"
    path.write_text(text)
    return path


@pytest.fixture()
def home(tmp_path, monkeypatch) -> Path:
    """An empty home directory and working directory, so only the files a test writes are read."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    return tmp_path / "home"


def test_section_of_the_working_directory_file(home, demo_copy_url) -> None:
    write_ini(Path.cwd(), f"[shop]\ndrivername = sqlite\ndatabase = {sa.make_url(demo_copy_url).database}\n")
    mgr = ConnectionManager()
    conn = mgr.resolve("shop")
    assert conn.name == "shop" and conn.dialect == "sqlite"
    with conn.connect() as c:
        assert c.exec_driver_sql("SELECT count(*) FROM customers").scalar() == 60
    assert mgr.resolve("shop") is conn
    assert mgr.listing()[-1]["names"] == ["shop"]
    mgr.close_all()


def test_working_directory_file_comes_before_jupysql_default(home, tmp_path, demo_copy_url) -> None:
    other = tmp_path / "other.sqlite"
    shutil.copy(sa.make_url(demo_copy_url).database, other)
    write_ini(home / ".jupysql", f"[shop]\ndrivername = sqlite\ndatabase = {other}\n"
                                 f"[only_home]\ndrivername = sqlite\ndatabase = {other}\n")
    write_ini(Path.cwd(), f"[shop]\ndrivername = sqlite\ndatabase = {sa.make_url(demo_copy_url).database}\n")
    assert ini_section_url("shop").database == sa.make_url(demo_copy_url).database
    assert ini_section_url("only_home").database == str(other)
    assert ini_section_url("absent") is None


@pytest.mark.postgres
def test_jupysql_default_file_reaches_postgresql(home, demo_pg_url) -> None:
    url = sa.make_url(demo_pg_url)
    write_ini(home / ".jupysql", f"[warehouse]\ndrivername = postgresql\nusername = {url.username}\n"
                                 f"password = {url.password.replace('%', '%%')}\nhost = {url.host}\n"
                                 f"port = {url.port or 5432}\ndatabase = {url.database}\nquery = sslmode=disable\n")
    mgr = ConnectionManager()
    try:
        conn = mgr.resolve("warehouse")
        assert conn.engine.url.query == {"sslmode": "disable"}
        with conn.connect() as c:
            assert c.exec_driver_sql("SELECT count(*) FROM customers").scalar() == 60
    finally:
        mgr.close_all()


@pytest.mark.parametrize("body, fragment", [
    ("[bad]\ndrivername = sqlite\npasword = s3cret-pw\n", "unknown key pasword"),
    ("[bad]\nusername = me\npassword = s3cret-pw\n", "has no drivername"),
    ("[bad]\ndrivername = postgresql\npassword = s3cret-pw\nport = five\n", "port must be a number"),
    ("[bad]\ndrivername = postgresql\npassword = s3cret-pw\nquery = {'sslmode': \n", "query must be like"),
    ("drivername = sqlite\npassword = s3cret-pw\n", "cannot read"),
    ("[other]\ndrivername = sqlite\n", "not a section of"),
])
def test_bad_sections_fail_with_one_line(home, body, fragment) -> None:
    write_ini(Path.cwd(), body)
    with pytest.raises(ConnectionFailed) as info:
        ConnectionManager().resolve("bad")
    message = str(info.value)
    assert fragment in message and "\n" not in message and "s3cret-pw" not in message


def test_connect_subcommand_takes_a_section(ip, cell, home, demo_copy_url) -> None:
    # (a name no other test makes an alias of: an alias of the shared manager comes before a section)
    write_ini(Path.cwd(), f"[ini_shop]\ndrivername = sqlite\ndatabase = {sa.make_url(demo_copy_url).database}\n"
                          "[broken]\nusername = me\n")
    with capture_output() as out:
        cell("%nl2sql connect ini_shop")
    assert out.stdout.startswith("Connected: sqlite:///")
    assert manager.current.name == "ini_shop"
    with pytest.raises(UsageError, match="has no drivername"):
        cell("%nl2sql connect broken")


# -- DATABASE_URL ----------------------------------------------------------------------------------------------
def test_database_url_when_no_connection_is_given(monkeypatch, demo_copy_url) -> None:
    monkeypatch.setenv("DATABASE_URL", demo_copy_url)
    mgr = ConnectionManager()
    assert mgr.resolve(None).display_url == demo_copy_url
    mgr.close_all()
    monkeypatch.delenv("DATABASE_URL")
    with pytest.raises(ConnectionFailed, match="or set DATABASE_URL"):
        ConnectionManager().resolve(None)


def test_magic_uses_database_url_and_says_so(ip, cell, scripted, monkeypatch, demo_copy_url) -> None:
    backend = scripted("SELECT count(*) AS n FROM customers")
    monkeypatch.setenv("DATABASE_URL", demo_copy_url)
    monkeypatch.setattr(manager, "current", None)
    with capture_output() as out:
        frame = cell("%nl2sql --no-stats How many customers does the DATABASE_URL shop have")
    assert frame["n"].iat[0] == 60 and len(backend.calls) == 1
    assert f"Using DATABASE_URL: {demo_copy_url}" in out.stdout
    assert manager.current.display_url == demo_copy_url
    monkeypatch.setattr(manager, "current", None)
    with capture_output() as out:
        cell("%nl2sql connect")
    assert out.stdout.strip() == f"Connected: {demo_copy_url} (from DATABASE_URL)"
    monkeypatch.delenv("DATABASE_URL")
    with pytest.raises(UsageError, match=r"usage: .*\$DATABASE_URL"):
        cell("%nl2sql connect")

