"""Connections: SQLAlchemy URLs, aliases and existing engines, pooled once and reused.

A *connection token* is what a user writes after ``-c``: a SQLAlchemy URL (``sqlite:///shop.db``,
``postgresql+psycopg://user@host/db``, ``duckdb:///file.duckdb``), an alias registered earlier (``demo`` is
built in), the name of an existing :class:`sqlalchemy.engine.Engine` in the notebook namespace, or the name of a
section of a jupysql-style ``connections.ini`` (:func:`connections_files`; read on each use, after aliases and
variables).  With no token and no connection yet, ``$DATABASE_URL`` is used (:func:`environment_url`).
``postgresql://`` URLs get the driver that is installed (:func:`with_installed_driver`).  :class:`ConnectionManager`
turns a token into a :class:`Connection` holding one pooled engine, created once and reused by every cell, the widget
and the benchmarks.

Read-only is enforced by the database session as a second layer behind the SQL policy of
:mod:`jupyter_nl2sql.pipeline.sqlcheck`: SQLite runs with ``PRAGMA query_only`` (and files opened by URL with
``mode=ro``), PostgreSQL in a ``READ ONLY`` transaction, DuckDB in a ``READ ONLY`` transaction (files opened by URL
with ``read_only`` too).  On connections this module opens, the engines themselves say no as well: SQLite through an
authorizer callback (no ATTACH, no PRAGMA that writes, no function off the allow-list, checked when a statement is
prepared), DuckDB with ``enable_external_access=false`` and ``lock_configuration=true``.  An Engine the user passed
in keeps its settings: whatever the library changes for a statement is restored exactly afterwards.  A PostgreSQL
role that is a superuser or may write is reported once per connection, with the recipe for a read-only role.
"""

from __future__ import annotations

import ast
import configparser
import functools
import hashlib
import hmac
import importlib.util
import logging
import os
import sqlite3
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, quote, unquote
from typing import Any, Iterator, Mapping, Sequence
from contextlib import contextmanager

import sqlalchemy as sa
import sqlglot
import sqlglot.errors
from sqlalchemy.engine import Engine, URL
from sqlalchemy.exc import ArgumentError, NoSuchModuleError
from sqlglot.tokens import TokenType

from .demo import demo_url
from .errors import ConnectionFailed, SQLCheckError, first_line as _one_line
from .frames import ALL_FRAMES, FrameSet, is_frame, is_frame_mapping, sources_from_token, sources_from_value
from .paths import cache_root
from .pipeline.sqlcheck import STRING_TOKENS
from .pipeline.sqlfunctions import (ADMIN_FUNCTIONS, ALLOWED_FUNCTIONS, DUCKDB_READ_PRAGMAS, SQLITE_READ_PRAGMAS,
                                    SQLITE_SETTING_PRAGMAS, function_policy)

log = logging.getLogger(__name__)

#: Seconds a connection attempt may take before it fails with a clear message.
CONNECT_TIMEOUT_S = 5

_SQLGLOT_DIALECTS = {"postgresql": "postgres", "sqlite": "sqlite", "duckdb": "duckdb", "mysql": "mysql",
                     "mssql": "tsql", "oracle": "oracle", "snowflake": "snowflake", "bigquery": "bigquery"}


#: Query parameter and DSN keys whose values are secrets (compared lower case, by substring).
SECRET_KEYS = ("password", "passwd", "pwd", "secret", "token", "api_key", "apikey", "access_key", "private_key")

#: Per-process salt for connection identities that must tell two passwords apart without storing either.
_SALT = os.urandom(16)


def _secret_key(key: str) -> bool:
    low = key.lower()
    return any(word in low for word in SECRET_KEYS)


def _split_credentials(text: str) -> tuple[str, str, str | None, str] | None:
    """``scheme://user:password@rest`` split at the last ``@`` before the query (a password may hold ``@``)."""
    scheme, sep, tail = text.partition("://")
    if not sep:
        return None
    query = tail.find("?")
    at = tail.rfind("@", 0, query if query >= 0 else len(tail))
    if at < 0:
        return None
    user, colon, password = tail[:at].partition(":")
    return scheme, user, password if colon else None, tail[at + 1:]


def _redact_query(text: str) -> str:
    """``?password=x&sslmode=y`` with every secret value replaced by ``***``."""
    base, sep, query = text.partition("?")
    if not sep:
        return text
    parts = []
    for pair in query.split("&"):
        key, eq, _ = pair.partition("=")
        parts.append(f"{key}=***" if eq and _secret_key(key) else pair)
    return f"{base}?{'&'.join(parts)}"


def redact_dsn(text: str) -> str:
    """A libpq-style DSN (``host=h user=u password='p w'``) with secret values replaced by ``***``."""
    out, i, n = [], 0, len(text)
    while i < n:
        eq = text.find("=", i)
        if eq < 0:
            out.append(text[i:])
            break
        key = text[i:eq].split()[-1] if text[i:eq].split() else ""
        out.append(text[i:eq + 1])
        j = eq + 1
        while j < n and text[j] == " ":
            out.append(" ")
            j += 1
        if j < n and text[j] == "'":  # quoted value: up to the closing quote, \' escaped
            k = j + 1
            while k < n and text[k] != "'":
                k += 2 if text[k] == "\\" else 1
            end = min(k + 1, n)
        else:
            end = j
            while end < n and not text[end].isspace():
                end += 1
        out.append("***" if _secret_key(key) else text[j:end])
        i = end
    return "".join(out)


def redact(url: str | URL) -> str:
    """The URL with every password hidden: the userinfo password (``@`` inside it included), secret query
    parameters (``?password=``), and ``password=`` in a libpq DSN (safe for messages, logs and provenance)."""
    if isinstance(url, URL):
        url = url.render_as_string(hide_password=False)
    text = str(url)
    split = _split_credentials(text)
    if split is not None:
        scheme, user, password, rest = split
        text = f"{scheme}://{user}{':***' if password is not None else ''}@{rest}"
    elif "://" not in text and "=" in text:
        return redact_dsn(text)
    return _redact_query(text)


def url_secrets(url: URL | str | None) -> list[str]:
    """Every secret a URL carries (password, secret query values), longest first, for scrubbing messages."""
    if url is None:
        return []
    text = url.render_as_string(hide_password=False) if isinstance(url, URL) else str(url)
    found: set[str] = set()
    split = _split_credentials(text)
    if split is not None and split[2]:
        found.update({split[2], unquote(split[2])})
    if isinstance(url, URL):
        if url.password:
            found.add(str(url.password))
        found.update(str(v) for k, v in url.query.items() if _secret_key(k) and isinstance(v, str))
    _, _, query = text.partition("?")
    for pair in query.split("&"):
        key, eq, value = pair.partition("=")
        if eq and _secret_key(key) and value:
            found.update({value, unquote(value)})
    return sorted((s for s in found if len(s) >= 3), key=len, reverse=True)


def scrub(message: str, secrets: list[str]) -> str:
    """``message`` with each of ``secrets`` and every URL or DSN password in it replaced by ``***``."""
    for secret in secrets:
        message = message.replace(secret, "***")
    words = [redact(w) if "://" in w else w for w in message.split(" ")]
    message = " ".join(words)
    return redact_dsn(message) if "password" in message.lower() else message


@dataclass
class Connection:
    """One database as the pipeline sees it: a pooled engine plus what the pipeline needs to know of it."""

    name: str
    engine: Engine = field(repr=False)
    read_only_engine: bool = False  # the engine itself can only read (SQLite mode=ro, DuckDB read_only)
    owned: bool = True  # created by us (disposed on close) rather than passed in by the user
    url: str | None = None  # the URL as the user gave it, password hidden (None: the engine's own URL)
    _key: str | None = None
    _source_url: URL | None = field(default=None, repr=False)  # the URL before read-only rewriting
    _rw_engine: Engine | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    role_warning: str | None = field(default=None, repr=False)  # PostgreSQL: the role can write (set once)
    _role_checked: bool = field(default=False, repr=False)
    _role_told: bool = field(default=False, repr=False)

    @property
    def dialect(self) -> str:
        """SQLAlchemy dialect name: ``sqlite``, ``postgresql``, ``duckdb``…"""
        return self.engine.dialect.name

    @property
    def sqlglot_dialect(self) -> str:
        """The same dialect as sqlglot names it."""
        return _SQLGLOT_DIALECTS.get(self.dialect, self.dialect)

    @property
    def display_url(self) -> str:
        """The URL with the password hidden."""
        return self.url or redact(self.engine.url)

    @property
    def key(self) -> str:
        """Stable identity for caches, free of any password: the redacted URL (plus the engine's id for engines
        passed in)."""
        return self.display_url if self._key else f"{self.display_url}#{id(self.engine)}"

    @property
    def registry_key(self) -> str:
        """The manager's key: :attr:`key`, plus a salted digest of the password (two passwords, two pools)."""
        return self._key or self.key

    @property
    def secrets(self) -> list[str]:
        """The secrets of this connection's URLs, to scrub from driver messages."""
        return url_secrets(self._source_url or self.engine.url) + url_secrets(self.engine.url)

    @contextmanager
    def connect(self, *, allow_writes: bool = False) -> Iterator[sa.Connection]:
        """A pooled connection inside a transaction: read-only unless ``allow_writes``.

        Read-only transactions are always rolled back; write transactions commit when the block succeeds.
        """
        engine = self._engine_for(allow_writes)
        with engine.connect() as conn:
            conn = conn.execution_options(no_parameters=True)
            restore = _user_sqlite_query_only(conn) if self.dialect == "sqlite" and not self.owned else None
            try:
                with conn.begin() as trans:
                    _guard_session(conn, read_only=not allow_writes)
                    yield conn
                    if not allow_writes:
                        trans.rollback()  # a read-only transaction never commits
            finally:
                if restore is not None:  # leave the user's own engine exactly as we found it
                    conn.rollback()
                    conn.exec_driver_sql(f"PRAGMA query_only = {restore}")
                    conn.commit()

    def check_role(self, conn: sa.Connection) -> str | None:
        """Once per connection (PostgreSQL): a one-line warning when the URL's role is a superuser or may write.

        The warning is kept in :attr:`role_warning`, logged and issued as a :class:`UserWarning` the first time.
        """
        if self._role_checked or self.dialect != "postgresql":
            return self.role_warning
        self._role_checked = True
        try:
            self.role_warning = _postgres_role_warning(conn)
        except sa.exc.SQLAlchemyError as exc:  # a catalog we may not read: say nothing rather than fail
            log.debug("could not check the PostgreSQL role: %s", _one_line(exc))
        if self.role_warning:
            log.warning("%s", self.role_warning)
            warnings.warn(self.role_warning, UserWarning, stacklevel=3)
        return self.role_warning

    def role_warning_once(self) -> str | None:
        """:attr:`role_warning` the first time it is asked for, then None (the connection's first answer shows it)."""
        with self._lock:
            if self.role_warning is None or self._role_told:
                return None
            self._role_told = True
            return self.role_warning

    def _engine_for(self, allow_writes: bool) -> Engine:
        if not allow_writes or not self.read_only_engine:
            return self.engine
        with self._lock:
            if self._rw_engine is None:
                self._rw_engine = _make_engine(self._source_url or self.engine.url, read_only=False,
                                               engine_name=self.name)
                if self.dialect == "duckdb":  # DuckDB cannot open one file twice with different modes
                    self.engine.dispose()
            return self._rw_engine

    def release_writer(self) -> None:
        """Close the read-write engine opened for an allowed write (DuckDB then reopens read-only)."""
        with self._lock:
            if self._rw_engine is not None:
                self._rw_engine.dispose()
                self._rw_engine = None

    def pool_status(self) -> dict[str, int]:
        """Checked-out / idle / overflow counts of the engine's pool (zeros where the pool has none)."""
        pool = self.engine.pool
        out = {}
        for name in ("checkedout", "checkedin", "overflow", "size"):
            fn = getattr(pool, name, None)
            out[name] = int(fn()) if callable(fn) else 0
        return out

    def close(self) -> None:
        """Dispose the engines this connection created."""
        self.release_writer()
        if self.owned:
            self.engine.dispose()



#: Per-process token in the cache identity of DataFrames (an ``id()`` means nothing in another process).
_PROCESS = os.urandom(6).hex()


@dataclass
class FrameConnection(Connection):
    """DataFrames and data files asked as one in-memory DuckDB database (:mod:`jupyter_nl2sql.frames`).

    :attr:`key` holds the frame set's :attr:`~jupyter_nl2sql.frames.FrameSet.signature`, so a schema, value index
    or result cached for other columns, dtypes, objects or file versions is never used.  Writes are refused: the
    sources are the user's objects and files, not a database.
    """

    frames: FrameSet | None = field(default=None, repr=False)
    _database: Any = field(default=None, repr=False)  # the DuckDB database's own connection

    @property
    def key(self) -> str:
        """The display URL, this process, and the frame set's signature."""
        return f"{self.display_url}#{_PROCESS}:{self.frames.signature if self.frames else ''}"

    def _engine_for(self, allow_writes: bool) -> Engine:
        if allow_writes:
            raise ConnectionFailed(f"{self.display_url} is read-only: DataFrames and files are not written through "
                                   "SQL (change the DataFrame in Python instead)")
        return self.engine

    def close(self) -> None:
        """Dispose the engine and close the in-memory database."""
        self.engine.dispose()
        if self._database is not None:
            self._database.close()
            self._database = None


def open_frames(frames: FrameSet) -> FrameConnection:
    """A :class:`FrameConnection` serving ``frames`` (DuckDB must be installed)."""
    try:
        from .frames_duckdb import frames_engine  # DuckDB is an optional dependency
    except ImportError:
        frames_engine = None
    if frames_engine is None:
        raise ConnectionFailed("asking DataFrames and files needs DuckDB: pip install 'jupyter-nl2sql[duckdb]'")
    engine, database = frames_engine(frames)
    _install_duckdb_guards(engine)  # as on every DuckDB engine the library opens
    return FrameConnection(name=frames.spec or frames.display_url, engine=engine,
                           url=frames.display_url, _key=f"frames:{','.join(frames.names)}", frames=frames,
                           _database=database)


def _guard_session(conn: sa.Connection, *, read_only: bool) -> None:
    """Make the current transaction read-only at the database where the dialect supports it."""
    name = conn.dialect.name
    if name == "sqlite":
        conn.exec_driver_sql(f"PRAGMA query_only = {'ON' if read_only else 'OFF'}")
    elif name == "duckdb" and read_only:
        # the transaction SQLAlchemy began is replaced by a read-only one (the driver rolls it back at the end)
        conn.exec_driver_sql("ROLLBACK")
        conn.exec_driver_sql("BEGIN TRANSACTION READ ONLY")
    elif name == "postgresql":
        if read_only:
            # After the first query of a transaction its mode can no longer be changed by the statement.
            conn.exec_driver_sql("SET TRANSACTION READ ONLY")
            conn.exec_driver_sql("SELECT 1")
        else:
            conn.exec_driver_sql("SET TRANSACTION READ WRITE")


def _user_sqlite_query_only(conn: sa.Connection) -> str:
    """The ``query_only`` setting of a user's SQLite connection, read before the library changes it."""
    value = conn.exec_driver_sql("PRAGMA query_only").scalar()
    conn.rollback()
    return "ON" if value else "OFF"


#: How to make a role that can only read, in one line (PostgreSQL 14+).
READ_ONLY_ROLE_RECIPE = ("for a read-only role: CREATE ROLE nl2sql_ro LOGIN PASSWORD '...'; "
                         "GRANT pg_read_all_data TO nl2sql_ro; then connect as nl2sql_ro")

_ROLE_QUERY = """
SELECT r.rolname, r.rolsuper, r.rolcreaterole, r.rolcreatedb, r.rolreplication, r.rolbypassrls,
       EXISTS (SELECT 1 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
               WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
                 AND n.nspname NOT LIKE 'pg_toast%%'
                 AND (pg_catalog.has_table_privilege(c.oid, 'INSERT') OR pg_catalog.has_table_privilege(c.oid, 'UPDATE')
                      OR pg_catalog.has_table_privilege(c.oid, 'DELETE')
                      OR pg_catalog.has_table_privilege(c.oid, 'TRUNCATE')))
FROM pg_catalog.pg_roles r WHERE r.rolname = current_user
"""


def _postgres_role_warning(conn: sa.Connection) -> str | None:
    """A one-line warning when the session's role is a superuser or holds write or administrative privileges."""
    row = conn.exec_driver_sql(_ROLE_QUERY).first()
    if row is None:
        return None
    name, superuser, createrole, createdb, replication, bypassrls, writes = row
    powers = [label for flag, label in ((superuser, "is a superuser"), (replication, "may replicate"),
                                         (createrole, "may create roles"), (bypassrls, "bypasses row security"),
                                         (writes, "may write to tables of this database")) if flag]
    if not powers:
        return None
    powers = powers[:1] if superuser else powers
    return (f"the PostgreSQL role '{name}' {' and '.join(powers)}: queries run read-only, but a read-only role is "
            f"the safer second layer ({READ_ONLY_ROLE_RECIPE})")


_SQLITE_DENY, _SQLITE_OK = sqlite3.SQLITE_DENY, sqlite3.SQLITE_OK


def sqlite_authorizer(*, read_only: bool) -> Any:
    """An authorizer callback for :meth:`sqlite3.Connection.set_authorizer` (checked when a statement is prepared).

    Denies ATTACH and DETACH, PRAGMAs that write (anything but the read-only pragmas, a setting read without a
    value, and ``query_only`` turned on; off as well on a connection opened for allowed writes), and every function
    that is not on SQLite's allow-list.
    """
    allowed_functions = ALLOWED_FUNCTIONS["sqlite"]

    def authorize(action: int, arg1: str | None, arg2: str | None, _db: str | None, _source: str | None) -> int:
        if action in (sqlite3.SQLITE_ATTACH, sqlite3.SQLITE_DETACH):
            return _SQLITE_DENY
        if action == sqlite3.SQLITE_PRAGMA:
            name = (arg1 or "").lower()
            if name in SQLITE_READ_PRAGMAS or (name in SQLITE_SETTING_PRAGMAS and arg2 is None):
                return _SQLITE_OK
            if name == "query_only" and (not read_only or str(arg2).lower() in ("on", "1", "true", "yes")):
                return _SQLITE_OK
            return _SQLITE_DENY
        if action == sqlite3.SQLITE_FUNCTION:
            return _SQLITE_OK if (arg2 or "").lower() in allowed_functions else _SQLITE_DENY
        return _SQLITE_OK

    return authorize


def _install_sqlite_guards(engine: Engine, *, read_only: bool) -> None:
    """Install the authorizer on every connection the engine opens."""
    authorize = sqlite_authorizer(read_only=read_only)

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.set_authorizer(authorize)


def duckdb_admin_call(sql: str) -> str | None:
    """The first DuckDB administration function ``sql`` calls (``enable_logging(...)``, ``CALL checkpoint()``,
    ``PRAGMA enable_profiling``), by sqlglot's tokens; a statement that cannot be tokenized counts as one.

    The SQL check refuses these already; this is the engine-level second layer for DuckDB, which has no authorizer:
    ``enable_logging(storage='file')`` runs despite ``lock_configuration`` and then fails every later statement,
    and closing that connection aborts the process.
    """
    try:
        tokens = sqlglot.tokenize(sql, read="duckdb")
    except sqlglot.errors.TokenError:
        return "(SQL that cannot be read)"
    for before, token, after in zip([None, *tokens], tokens, [*tokens[1:], None]):
        if before is not None and before.token_type in _duckdb_commands():  # CALL f(): the rest is one token
            inner = duckdb_admin_call(token.text)
            if inner is not None:
                return inner
        name = token.text.lower()
        if name not in _DUCKDB_ADMIN or token.token_type in STRING_TOKENS:
            continue
        called = after is not None and after.token_type == TokenType.L_PAREN
        if called or (before is not None and before.text.upper() in ("CALL", "PRAGMA")):
            return name
    return None


_DUCKDB_ADMIN = ADMIN_FUNCTIONS["duckdb"] - DUCKDB_READ_PRAGMAS


@functools.cache
def _duckdb_commands() -> frozenset[Any]:
    """The token types after which DuckDB's tokenizer reads the rest of a statement as one token (``CALL``):
    read on first use, since loading sqlglot's DuckDB dialect costs about 0.1 s at import."""
    return frozenset(sqlglot.Dialect.get_or_raise("duckdb").tokenizer_class.COMMANDS)


def _install_duckdb_guards(engine: Engine) -> None:
    """Refuse DuckDB administration functions before they reach a connection the library opened."""

    @sa.event.listens_for(engine, "before_cursor_execute", retval=True)
    def _before_execute(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any,
                        _many: bool) -> tuple[str, Any]:
        name = duckdb_admin_call(statement)
        if name is not None:
            denied = function_policy(name, "duckdb", table_function=True)
            reason = denied.reason if denied is not None else "is not a read-only DuckDB function"
            raise SQLCheckError(f"refused: {name} {reason}; connections the library opens never run it")
        return statement, parameters


_CONNECT_HINTS = [
    (("password", "authentication", "access denied", "role"), "check the user name and password in the URL"),
    (("does not exist", "unknown database"), "check the database name in the URL"),
    (("refused", "timeout", "timed out", "translate host", "unreachable", "no route", "server closed"),
     "check the host and port, and that the database server is running"),
]


def _connect_hint(message: str) -> str:
    """What to do about a failed connection, from the driver's message."""
    low = message.lower()
    for needles, hint in _CONNECT_HINTS:
        if any(n in low for n in needles):
            return hint
    return "check the URL, the credentials and that the database server is running"


def sqlite_path(url: URL) -> Path | None:
    """The file behind a SQLite URL, or None for in-memory databases."""
    db = url.database
    if not db or db == ":memory:" or db.startswith("file::memory:"):
        return None
    if db.startswith("file:"):
        db = db[5:].split("?", 1)[0]
    return Path(db).expanduser()


def _make_engine(url: URL, *, read_only: bool, engine_name: str) -> Engine:
    """Create a pooled engine with the right pool and timeouts for the dialect."""
    backend = url.get_backend_name()
    kwargs: dict[str, Any] = {"pool_pre_ping": True}
    connect_args: dict[str, Any] = {}
    if backend == "sqlite":
        path = sqlite_path(url)
        if path is not None:
            if not path.is_file():
                raise ConnectionFailed(f"no SQLite database at {path}: check the path "
                                       f"(a URL like sqlite:///relative.db or sqlite:////absolute/path.db)")
            if read_only:
                url = url.set(database=f"file:{path.resolve()}", query={**url.query, "mode": "ro", "uri": "true"})
        connect_args["timeout"] = CONNECT_TIMEOUT_S
        connect_args["check_same_thread"] = False
    elif backend == "duckdb":
        path = url.database
        if path and path != ":memory:" and not Path(path).expanduser().is_file():
            raise ConnectionFailed(f"no DuckDB database at {path}: check the path")
        if read_only and path and path != ":memory:":
            connect_args["read_only"] = True
        # no reading or writing of other files or URLs (COPY TO, read_text, httpfs), no SET of any setting
        connect_args["config"] = {"enable_external_access": False, "lock_configuration": True}
    elif backend == "postgresql":
        connect_args["connect_timeout"] = CONNECT_TIMEOUT_S
        connect_args["application_name"] = "jupyter-nl2sql"
        # every session starts read-only; a write (allowed per call) switches its own transaction to READ WRITE
        connect_args["options"] = "-c default_transaction_read_only=on"
        kwargs.update(pool_size=5, max_overflow=10, pool_timeout=30, pool_recycle=1800)
    failure = None
    try:
        engine = sa.create_engine(url, connect_args=connect_args, **kwargs)
        if backend == "sqlite":
            _install_sqlite_guards(engine, read_only=read_only)
        elif backend == "duckdb":
            _install_duckdb_guards(engine)
        return engine
    except NoSuchModuleError as exc:
        failure = (f"no SQLAlchemy driver for '{backend}' ({scrub(_one_line(exc), url_secrets(url))}): install "
                   f"it, e.g. pip install 'jupyter-nl2sql[{'postgres' if backend == 'postgresql' else backend}]'")
    except (ArgumentError, ValueError, TypeError, ImportError) as exc:
        failure = f"cannot use '{redact(url)}': {scrub(_one_line(exc), url_secrets(url))}"
    raise ConnectionFailed(failure)  # outside the except blocks: the driver error stays out of the chain


def driver_installed(module: str) -> bool:
    """Whether the driver module ``module`` can be imported (looked up, not imported)."""
    return importlib.util.find_spec(module) is not None


#: What to install when no PostgreSQL driver is.
POSTGRES_DRIVER_HINT = 'pip install "psycopg[binary]"'


def with_installed_driver(url: URL) -> URL:
    """A PostgreSQL URL without a driver (``postgresql://``, or ``postgres://`` as hosting services write it) with
    the driver that is installed: psycopg2 (SQLAlchemy's default) when it can be imported, else psycopg 3.  A driver
    the URL names is kept; other databases are left as they are.  Neither driver: :class:`ConnectionFailed`.

    >>> with_installed_driver(sa.make_url("postgresql+psycopg2://me@host/db")).drivername
    'postgresql+psycopg2'
    """
    if url.drivername == "postgres":
        url = url.set(drivername="postgresql")
    if url.drivername != "postgresql" or driver_installed("psycopg2"):
        return url
    if driver_installed("psycopg"):
        return url.set(drivername="postgresql+psycopg")
    raise ConnectionFailed(f"no PostgreSQL driver is installed for {redact(url)}: {POSTGRES_DRIVER_HINT}")


#: The environment variable read when no connection is given (as Heroku, Render, Railway and Django tools set it).
DATABASE_URL_ENV = "DATABASE_URL"


def environment_url() -> str | None:
    """The URL in ``$DATABASE_URL`` (None when unset or blank)."""
    return os.environ.get(DATABASE_URL_ENV, "").strip() or None


#: The keys of a ``connections.ini`` section (those of :meth:`sqlalchemy.engine.URL.create`, as jupysql reads them).
INI_KEYS = ("drivername", "username", "password", "host", "port", "database", "query")


def connections_files() -> list[Path]:
    """Where a connection name is looked up as a ``connections.ini`` section, first match first: the working
    directory's ``connections.ini``, then jupysql's default ``~/.jupysql/connections.ini``."""
    return [Path.cwd() / "connections.ini", Path.home() / ".jupysql" / "connections.ini"]


def ini_section_url(name: str, files: Sequence[Path] | None = None) -> URL | None:
    """The URL that section ``[name]`` of the first of ``files`` (default :func:`connections_files`) holding it
    describes; None when none has it.  A file that cannot be read or a section that is wrong: one-line
    :class:`ConnectionFailed` naming the file (never a value from it)."""
    for path in connections_files() if files is None else files:
        if not path.is_file():
            continue
        parser = configparser.ConfigParser()
        failure = None
        try:
            parser.read(path, encoding="utf-8")
            values = dict(parser.items(name)) if parser.has_section(name) else None
        except (configparser.Error, OSError, UnicodeDecodeError) as exc:
            failure = f"cannot read {path}: {type(exc).__name__}"
        if failure is not None:
            raise ConnectionFailed(failure)  # outside the except block: the parser's text (a password?) stays out
        if values is not None:
            return _section_url(values, f"section [{name}] of {path}")
    return None


def _section_url(values: dict[str, str], where: str) -> URL:
    """:meth:`URL.create` from a ``connections.ini`` section's values (``query`` as ``{'k': 'v'}`` or ``k=v&k2=v2``)."""
    unknown = sorted(set(values) - set(INI_KEYS))
    if unknown:
        raise ConnectionFailed(f"{where}: unknown key {', '.join(unknown)} (the keys are {', '.join(INI_KEYS)})")
    if not values.get("drivername"):
        raise ConnectionFailed(f"{where} has no drivername (e.g. drivername = postgresql)")
    port, query = values.get("port") or None, (values.get("query") or "").strip()
    if port is not None and not port.isdigit():
        raise ConnectionFailed(f"{where}: port must be a number")
    try:
        options = (ast.literal_eval(query) if query.startswith("{")
                   else dict(parse_qsl(query, strict_parsing=bool(query))))
    except (ValueError, SyntaxError):
        options = None
    if not isinstance(options, dict):
        raise ConnectionFailed(f"{where}: query must be like {{'sslmode': 'require'}} or sslmode=require")
    return URL.create(values["drivername"], username=values.get("username") or None,
                      password=values.get("password") or None, host=values.get("host") or None,
                      port=int(port) if port else None, database=values.get("database") or None,
                      query={str(k): str(v) for k, v in options.items()})


def _registry_key(url: URL) -> str:
    """The manager's key of a URL: the password-free URL naming the database (a SQLite file by its absolute path, so
    two spellings of one file share one pool), plus a salted digest of its secrets (two passwords, two pools)."""
    path = sqlite_path(url) if url.get_backend_name() == "sqlite" else None
    if path is not None and not str(url.database).startswith("file:"):
        url = url.set(database=str(path.resolve()))
    key = redact(url)
    secrets = url_secrets(url)
    if secrets:  # one of two passwords may be wrong; a salted digest, never the password
        key += "#" + hmac.new(_SALT, "\0".join(secrets).encode(), hashlib.sha256).hexdigest()[:12]
    return key


def _parse_url(token: str) -> URL:
    """A SQLAlchemy URL; a password holding an unencoded ``@`` is read up to the last ``@`` of the userinfo."""
    failure = None
    try:
        url = sa.make_url(token)
    except (ArgumentError, ValueError) as exc:
        failure = f"'{redact(token)}' is not a valid SQLAlchemy URL ({scrub(_one_line(exc), url_secrets(token))}); " \
                  "write e.g. sqlite:///shop.db or postgresql+psycopg://user@host/db"
    if failure is not None:
        raise ConnectionFailed(failure)  # raised outside the except block: no driver error in __context__
    split = _split_credentials(token)
    if split is not None and "@" in (url.host or "") and split[2] is not None:
        scheme, user, password, rest = split
        url = sa.make_url(f"{scheme}://{quote(unquote(user), safe='')}:{quote(password, safe='')}@{rest}")
    if split is not None and split[2] is not None and url.host and "@" in (url.database or ""):
        # the password's tail would be sent as the database name (and the server logs it): refuse before connecting
        raise ConnectionFailed(f"'{redact(token)}': the URL's password holds an unencoded '@' (or '/'), so part of "
                               "it would be read as the database name; percent-encode it (@ as %40, / as %2F)")
    return url


#: How the bundled demo database is shown before it is opened.
DEMO_PLACEHOLDER = "sqlite:///<bundled demo database>"


class ConnectionManager:
    """Registry of connections by alias and URL; every engine is created once per process.

    Thread-safe. ``resolve`` accepts a URL, an alias, an :class:`Engine`, a :class:`Connection`, or the name of
    an Engine variable in ``namespace``.
    """

    def __init__(self) -> None:
        self._by_key: dict[str, Connection] = {}
        self._aliases: dict[str, str] = {}
        self._lock = threading.RLock()
        self.current: Connection | None = None

    # -- registry ----------------------------------------------------------------------------------------------
    def aliases(self) -> dict[str, str]:
        """Alias → redacted URL of every alias known, the built-in ``demo`` included."""
        with self._lock:
            known = {alias: self._by_key[key].display_url for alias, key in self._aliases.items()}
        known.setdefault("demo", DEMO_PLACEHOLDER)
        return known

    def connections(self) -> list[Connection]:
        """Every connection opened in this process."""
        with self._lock:
            return list(self._by_key.values())

    def add_alias(self, alias: str, conn: Connection) -> None:
        """Remember ``conn`` under ``alias``."""
        if not alias.isidentifier():
            raise ConnectionFailed(f"alias '{alias}' must be a simple name (letters, digits, underscores)")
        with self._lock:
            self._aliases[alias] = conn.registry_key

    def resolve(self, token: Any = None, namespace: Mapping[str, Any] | None = None, *,
                alias: str | None = None, check: bool = True) -> Connection:
        """Turn a connection token into a pooled :class:`Connection` (and make it the current one)."""
        conn = self._resolve(token, namespace)
        if check:
            try:
                self.check(conn)
            except ConnectionFailed:
                self._forget(conn)
                raise
        if alias:
            self.add_alias(alias, conn)
        self.current = conn
        return conn

    def _resolve(self, token: Any, namespace: Mapping[str, Any] | None) -> Connection:
        if token is None or (isinstance(token, str) and not token.strip()):
            current = self.current
            if isinstance(current, FrameConnection) and current.frames.spec and namespace is not None:
                return self._frames_again(current.frames.spec, namespace)
            if current is not None:
                return current
            if environment_url() is not None:
                return self._from_url(environment_url())
            raise ConnectionFailed("no database: pass a connection (a SQLAlchemy URL, an alias, an Engine "
                                   "variable or a connections.ini section), e.g. -c demo or -c sqlite:///shop.db, "
                                   f"or set {DATABASE_URL_ENV}")
        if isinstance(token, Connection):
            return token
        if isinstance(token, Engine):
            return self._from_engine(token)
        frames = sources_from_value(token)
        if frames is not None:
            return self._from_frames(frames)
        if not isinstance(token, str):
            raise ConnectionFailed(f"cannot connect to a {type(token).__name__}: pass a SQLAlchemy URL, an "
                                   "alias, an Engine, a pandas DataFrame (or a dict of them) or a data file's path")
        token = token.strip()
        with self._lock:
            if token in self._aliases:
                conn = self._by_key.get(self._aliases[token])
                if conn is None:
                    raise ConnectionFailed(f"alias '{token}' has no connection any more: connect again with "
                                           f"%nl2sql connect URL --alias {token}")
                return conn
        if namespace is not None and token.isidentifier() and token in namespace:
            value = namespace[token]
            if isinstance(value, Engine):
                return self._from_engine(value)
            if isinstance(value, Connection):
                return value
            if is_frame(value) or is_frame_mapping(value):
                return self._from_frames(sources_from_token(token, namespace))
            if token not in ("demo", ALL_FRAMES):
                raise ConnectionFailed(f"variable '{token}' is of type {type(value).__name__}, neither a SQLAlchemy "
                                       "Engine nor a pandas DataFrame: pass an Engine (sqlalchemy.create_engine(URL)), "
                                       "a DataFrame, a URL or an alias")
        if token == "demo":
            return self._from_url(demo_url(), name="demo")
        frames = sources_from_token(token, namespace)
        if frames is not None:
            return self._from_frames(frames)
        if "://" not in token and ":" not in token:
            section = ini_section_url(token)
            if section is not None:
                return self._from_url(section, name=token)
            known = ", ".join(sorted(self.aliases())) or "none"
            files = " or ".join(str(p) for p in connections_files())
            raise ConnectionFailed(f"unknown connection '{token}': not an alias ({known}), not an Engine or "
                                   f"DataFrame variable, not a data file, not a section of {files}, not a URL like "
                                   "sqlite:///shop.db")
        return self._from_url(token)

    def _from_engine(self, engine: Engine) -> Connection:
        key = f"{redact(engine.url)}#{id(engine)}"  # password-free: the engine's id tells engines apart
        with self._lock:
            if key not in self._by_key:
                self._by_key[key] = Connection(name=redact(engine.url), engine=engine, owned=False,
                                               url=redact(engine.url))
            return self._by_key[key]

    def _frames_again(self, spec: str, namespace: Mapping[str, Any]) -> FrameConnection:
        """The current frames connection read again from the namespace (a DataFrame may have been replaced)."""
        frames = sources_from_token(spec, namespace)
        if frames is None:
            raise ConnectionFailed(f"the current connection -c {spec} names no DataFrame any more: pass -c again")
        return self._from_frames(frames)

    def _from_frames(self, frames: FrameSet) -> FrameConnection:
        """The connection serving ``frames``: the one open for the same tables when their signature is unchanged,
        else a new one, replacing it (so a DataFrame replaced or reshaped under the same name is seen, and the old
        objects are not kept alive).  Frame connections no alias names are closed when another one opens."""
        key = f"frames:{','.join(frames.names)}"
        with self._lock:
            existing = self._by_key.get(key)
            if isinstance(existing, FrameConnection) and existing.frames.signature == frames.signature:
                existing.frames = frames  # the same shape: the spec it was last asked by
                return existing
            stale = [k for k, c in self._by_key.items() if isinstance(c, FrameConnection)
                     and (k == key or k not in self._aliases.values())]
            closing = [self._by_key.pop(k) for k in stale]
            conn = open_frames(frames)
            self._by_key[key] = conn
        for old in closing:
            if old is self.current:
                self.current = None
            old.close()
        return conn

    def _from_url(self, token: str | URL, name: str | None = None) -> Connection:
        url = with_installed_driver(token if isinstance(token, URL) else _parse_url(token))
        key = _registry_key(url)
        with self._lock:
            existing = self._by_key.get(key)
            if existing is not None:
                return existing
            read_only = url.get_backend_name() in ("sqlite", "duckdb")
            engine = _make_engine(url, read_only=read_only, engine_name=name or key)
            conn = Connection(name=name or redact(url), engine=engine, read_only_engine=read_only, url=redact(url),
                              _key=key, _source_url=url)
            self._by_key[key] = conn
            return conn

    def listing(self) -> list[dict[str, Any]]:
        """One row per database: ``names`` (its aliases, ``demo``, the connections.ini section it was opened by),
        ``url`` (password hidden) and ``current``.  The bundled demo is listed until it is opened."""
        demo_key = _registry_key(_parse_url(demo_url()))
        with self._lock:
            builtin_demo = "demo" not in self._aliases  # an alias "demo" of the user's replaces the bundled one
            rows = []
            for key, conn in self._by_key.items():
                names = [alias for alias, target in self._aliases.items() if target == key]
                if conn.name != conn.display_url and conn.name not in names:
                    names.insert(0, conn.name)
                if key == demo_key and builtin_demo and "demo" not in names:
                    names.insert(0, "demo")
                rows.append({"names": names, "url": conn.display_url, "current": conn is self.current})
            if builtin_demo and demo_key not in self._by_key:
                rows.insert(0, {"names": ["demo"], "url": DEMO_PLACEHOLDER, "current": False})
        return rows

    def _forget(self, conn: Connection) -> None:
        """Drop a connection that failed (so a corrected retry starts afresh).

        A connection an alias names stays registered, so the alias works again once the server is back: only its
        pool is emptied of the dead sessions.
        """
        with self._lock:
            if self._by_key.get(conn.registry_key) is not conn or not conn.owned:
                return
            if conn.registry_key in self._aliases.values():
                conn.engine.dispose()
                return
            del self._by_key[conn.registry_key]
        conn.close()

    @staticmethod
    def check(conn: Connection) -> float:
        """Open (or borrow from the pool) one connection; return seconds taken, or raise ConnectionFailed."""
        t0 = time.perf_counter()
        failure = None
        try:
            with conn.engine.connect() as c:
                c.exec_driver_sql("SELECT 1")
                conn.check_role(c)
        except Exception as exc:  # noqa: BLE001 - every driver has its own error types
            message = scrub(_one_line(exc), conn.secrets)  # should the driver echo its connection string
            failure = f"cannot connect to {conn.display_url}: {message}; {_connect_hint(message)}"
        if failure is not None:
            raise ConnectionFailed(failure)  # outside the except block: the driver error stays out of the chain
        return time.perf_counter() - t0

    def close_all(self) -> None:
        """Dispose every engine this manager created."""
        with self._lock:
            for conn in self._by_key.values():
                conn.close()
            self._by_key.clear()
            self._aliases.clear()
            self.current = None


#: The process-wide manager shared by the magic, the widget and the API.
manager = ConnectionManager()


def default_cache_dir() -> Path:
    """Per-user cache directory: the one cache root (:func:`jupyter_nl2sql.paths.cache_root`)."""
    return cache_root()
