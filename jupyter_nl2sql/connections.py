"""Connections: SQLAlchemy URLs, aliases and existing engines, pooled once and reused.

A *connection token* is what a user writes after ``-c``: a SQLAlchemy URL (``sqlite:///shop.db``,
``postgresql+psycopg://user@host/db``, ``duckdb:///file.duckdb``), an alias registered earlier (``demo`` is
built in), or the name of an existing :class:`sqlalchemy.engine.Engine` in the notebook namespace.
:class:`ConnectionManager` turns a token into a :class:`Connection` holding one pooled engine, created once and
reused by every cell, the widget and the benchmarks.

Read-only is enforced by the database session as a second layer behind the SQL policy of
:mod:`jupyter_nl2sql.pipeline.sqlcheck`: SQLite runs with ``PRAGMA query_only`` (and files opened by URL with
``mode=ro``), PostgreSQL in a ``READ ONLY`` transaction, DuckDB files opened with ``read_only``.
"""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping
from contextlib import contextmanager

import sqlalchemy as sa
from sqlalchemy.engine import Engine, URL
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from .errors import ConnectionFailed, first_line as _one_line
from .paths import cache_root

#: Seconds a connection attempt may take before it fails with a clear message.
CONNECT_TIMEOUT_S = 5

_SQLGLOT_DIALECTS = {"postgresql": "postgres", "sqlite": "sqlite", "duckdb": "duckdb", "mysql": "mysql",
                     "mssql": "tsql", "oracle": "oracle", "snowflake": "snowflake", "bigquery": "bigquery"}


def redact(url: str | URL) -> str:
    """The URL with any password replaced by ``***`` (safe for messages, logs and provenance)."""
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError, TypeError):
        text = str(url)
        if "@" in text and "://" in text:
            scheme, rest = text.split("://", 1)
            creds, host = rest.rsplit("@", 1)
            user = creds.split(":", 1)[0]
            return f"{scheme}://{user}:***@{host}"
        return text


@dataclass
class Connection:
    """One database as the pipeline sees it: a pooled engine plus what the pipeline needs to know of it."""

    name: str
    engine: Engine
    read_only_engine: bool = False  # the engine itself can only read (SQLite mode=ro, DuckDB read_only)
    owned: bool = True  # created by us (disposed on close) rather than passed in by the user
    url: str | None = None  # the URL as the user gave it, password hidden (None: the engine's own URL)
    _key: str | None = None
    _source_url: URL | None = field(default=None, repr=False)  # the URL before read-only rewriting
    _rw_engine: Engine | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

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
        """Stable identity for caches: the redacted URL plus the engine's id for engines passed in."""
        return self._key or f"{self.display_url}#{id(self.engine)}"

    @contextmanager
    def connect(self, *, allow_writes: bool = False) -> Iterator[sa.Connection]:
        """A pooled connection inside a transaction: read-only unless ``allow_writes``.

        Read-only transactions are always rolled back; write transactions commit when the block succeeds.
        """
        engine = self._engine_for(allow_writes)
        with engine.connect() as conn:
            conn = conn.execution_options(no_parameters=True)
            try:
                with conn.begin() as trans:
                    _guard_session(conn, read_only=not allow_writes)
                    yield conn
                    if not allow_writes:
                        trans.rollback()  # a read-only transaction never commits
            finally:
                if self.dialect == "sqlite" and not allow_writes and not self.owned:
                    conn.rollback()
                    conn.exec_driver_sql("PRAGMA query_only = OFF")  # leave the user's own engine as we found it
                    conn.commit()

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


def _guard_session(conn: sa.Connection, *, read_only: bool) -> None:
    """Make the current transaction read-only at the database where the dialect supports it."""
    name = conn.dialect.name
    if name == "sqlite":
        conn.exec_driver_sql(f"PRAGMA query_only = {'ON' if read_only else 'OFF'}")
    elif name == "postgresql":
        if read_only:
            # After the first query of a transaction its mode can no longer be changed by the statement.
            conn.exec_driver_sql("SET TRANSACTION READ ONLY")
            conn.exec_driver_sql("SELECT 1")
        else:
            conn.exec_driver_sql("SET TRANSACTION READ WRITE")


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
            # read-only file, and no reading or writing of other files or URLs (COPY TO, read_text, httpfs)
            connect_args["read_only"] = True
            connect_args["config"] = {"enable_external_access": False}
    elif backend == "postgresql":
        connect_args["connect_timeout"] = CONNECT_TIMEOUT_S
        connect_args["application_name"] = "jupyter-nl2sql"
        # every session starts read-only; a write (allowed per call) switches its own transaction to READ WRITE
        connect_args["options"] = "-c default_transaction_read_only=on"
        kwargs.update(pool_size=5, max_overflow=10, pool_timeout=30, pool_recycle=1800)
    try:
        return sa.create_engine(url, connect_args=connect_args, **kwargs)
    except NoSuchModuleError as exc:
        raise ConnectionFailed(f"no SQLAlchemy driver for '{backend}' ({_one_line(exc)}): install it, e.g. "
                               f"pip install 'jupyter-nl2sql[{'postgres' if backend == 'postgresql' else backend}]'"
                               ) from None
    except (ArgumentError, ValueError, TypeError, ImportError) as exc:
        raise ConnectionFailed(f"cannot use '{redact(url)}': {_one_line(exc)}") from None


def _parse_url(token: str) -> URL:
    try:
        return sa.make_url(token)
    except (ArgumentError, ValueError) as exc:
        raise ConnectionFailed(f"'{redact(token)}' is not a valid SQLAlchemy URL ({_one_line(exc)}); "
                               "write e.g. sqlite:///shop.db or postgresql+psycopg://user@host/db") from None


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
        known.setdefault("demo", "sqlite:///<bundled demo database>")
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
            self._aliases[alias] = conn.key

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
            if self.current is not None:
                return self.current
            raise ConnectionFailed("no database: pass a connection (a SQLAlchemy URL, an alias, or an Engine "
                                   "variable), e.g. -c demo or -c sqlite:///shop.db")
        if isinstance(token, Connection):
            return token
        if isinstance(token, Engine):
            return self._from_engine(token)
        if not isinstance(token, str):
            raise ConnectionFailed(f"cannot connect to a {type(token).__name__}: pass a SQLAlchemy URL, an "
                                   "alias or an Engine")
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
            if token != "demo":
                raise ConnectionFailed(f"variable '{token}' is of type {type(value).__name__}, not a SQLAlchemy "
                                       "Engine: pass an Engine (sqlalchemy.create_engine(URL)), a URL or an alias")
        if token == "demo":
            from .demo import demo_url

            return self._from_url(demo_url(), name="demo")
        if "://" not in token and ":" not in token:
            known = ", ".join(sorted(self.aliases())) or "none"
            raise ConnectionFailed(f"unknown connection '{token}': not an alias ({known}), not an Engine "
                                   "variable, not a URL like sqlite:///shop.db")
        return self._from_url(token)

    def _from_engine(self, engine: Engine) -> Connection:
        key = f"{redact(engine.url)}#{id(engine)}"
        with self._lock:
            if key not in self._by_key:
                self._by_key[key] = Connection(name=redact(engine.url), engine=engine, owned=False)
            return self._by_key[key]

    def _from_url(self, token: str, name: str | None = None) -> Connection:
        url = _parse_url(token)
        key = redact(url)
        if url.password is not None:  # two passwords for one URL are two connections (one may be wrong)
            digest = hashlib.sha256(url.render_as_string(hide_password=False).encode()).hexdigest()[:12]
            key = f"{key}#{digest}"
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

    def _forget(self, conn: Connection) -> None:
        """Drop a connection that failed (so a corrected retry starts afresh).

        A connection an alias names stays registered, so the alias works again once the server is back: only its
        pool is emptied of the dead sessions.
        """
        with self._lock:
            if self._by_key.get(conn.key) is not conn or not conn.owned:
                return
            if conn.key in self._aliases.values():
                conn.engine.dispose()
                return
            del self._by_key[conn.key]
        conn.close()

    @staticmethod
    def check(conn: Connection) -> float:
        """Open (or borrow from the pool) one connection; return seconds taken, or raise ConnectionFailed."""
        t0 = time.perf_counter()
        try:
            with conn.engine.connect() as c:
                c.exec_driver_sql("SELECT 1")
        except Exception as exc:  # noqa: BLE001 - every driver has its own error types
            message = _one_line(exc)
            password = conn.engine.url.password
            if password:  # should the driver echo its connection string
                message = message.replace(str(password), "***")
            raise ConnectionFailed(f"cannot connect to {conn.display_url}: {message}; {_connect_hint(message)}"
                                   ) from None
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
