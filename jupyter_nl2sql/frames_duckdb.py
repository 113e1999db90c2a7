"""A :class:`~jupyter_nl2sql.frames.FrameSet` served as an in-memory DuckDB database, without copying.

One DuckDB database per frame set.  Each DataFrame is registered with DuckDB (which scans its arrays where they are)
under an internal name, on every pooled connection and again at every checkout, so a value changed in place is
seen; the table the user asks about is a view over it.  Each file is a view over ``read_csv_auto`` /
``read_parquet`` / ``read_json_auto`` of the file itself (read at query time, never loaded).

Guards, set before the first pooled connection and then locked (``lock_configuration``): no external access
(``enable_external_access=false``) except the files of the set (``allowed_paths``), so the SQL can read no other file
and write none; no Python replacement scans (a query cannot read a variable of the kernel by naming it).  Sessions
are read-only transactions like every DuckDB connection; the connection refuses writes altogether (an allowed
write could otherwise rewrite a file of the set: see :class:`~jupyter_nl2sql.connections.FrameConnection`).

:class:`FramesDialect` is duckdb-engine's dialect with the internal names left out of the view list, so schema
introspection sees exactly the user's tables (``duckdb+nl2sql_frames://``).
"""

from __future__ import annotations

import threading
from typing import Any

import duckdb
import sqlalchemy as sa
from sqlalchemy.dialects import registry
from duckdb_engine import ConnectionWrapper, Dialect

from .errors import ConnectionFailed, first_line
from .frames import FrameSet, Source

#: Prefix of the internal name each DataFrame is registered under (the view named after it reads from it).
INTERNAL_PREFIX = "__nl2sql_frame_"

#: The SQLAlchemy driver name of :class:`FramesDialect`.
DRIVER = "duckdb+nl2sql_frames"


class FramesDialect(Dialect):
    """duckdb-engine's dialect, with the registered DataFrames' internal names left out of :meth:`get_view_names`."""

    supports_statement_cache = False

    def get_view_names(self, connection: Any, schema: Any = None, include: Any = None, **kw: Any) -> Any:
        """The views of ``schema``, without the internal registrations."""
        return [name for name in super().get_view_names(connection, schema, include, **kw)
                if not name.startswith(INTERNAL_PREFIX)]


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _file_view(source: Source) -> str:
    """``CREATE VIEW`` over the source's files (one file, or a list read as one table by column name)."""
    files = [_literal(str(p)) for p in source.files]
    arg = files[0] if len(files) == 1 else f"[{', '.join(files)}]"
    options = ", union_by_name = true" if len(files) > 1 and source.reader != "read_json_auto" else ""
    if source.files[0].suffix.lower() == ".tsv" or source.files[0].name.lower().endswith((".tsv.gz", ".tsv.zst")):
        options += ", delim = '\\t'"
    return f"CREATE VIEW {_quote(source.name)} AS SELECT * FROM {source.reader}({arg}{options})"


def _register(conn: Any, frames: FrameSet) -> None:
    """Register every DataFrame of ``frames`` on ``conn`` (a DuckDB connection, or duckdb-engine's wrapper of one)."""
    for source in frames.sources:
        if source.frame is not None:
            conn.register(INTERNAL_PREFIX + source.name, source.frame)


def open_database(frames: FrameSet) -> duckdb.DuckDBPyConnection:
    """The in-memory database: views created, guards set and locked.  A file that cannot be read (missing, not
    valid for its type): one-line :class:`ConnectionFailed` naming it."""
    base = duckdb.connect(":memory:")
    allowed = [str(p) for s in frames.sources for p in s.files]
    if allowed:
        base.execute("SET allowed_paths = " + "[" + ", ".join(_literal(p) for p in allowed) + "]")
    _register(base, frames)
    for source in frames.sources:
        failure = None
        try:
            if source.frame is not None:
                base.execute(f"CREATE VIEW {_quote(source.name)} AS SELECT * FROM "
                             f"{_quote(INTERNAL_PREFIX + source.name)}")
            else:
                base.execute(_file_view(source))
        except duckdb.Error as exc:
            failure = f"cannot read {source.label or source.name}: {first_line(exc)}"
        if failure is not None:
            base.close()
            raise ConnectionFailed(failure)
    for setting in ("python_enable_replacements = false", "enable_external_access = false",
                    "lock_configuration = true"):
        base.execute(f"SET {setting}")
    return base


def frames_engine(frames: FrameSet) -> tuple[sa.engine.Engine, duckdb.DuckDBPyConnection]:
    """A pooled SQLAlchemy engine over :func:`open_database` (each pooled connection a cursor of it), and the
    database's own connection (close it after disposing the engine)."""
    base = open_database(frames)
    lock = threading.Lock()

    def connect() -> ConnectionWrapper:
        with lock:  # one DuckDB connection object, cursors made from several threads
            cursor = base.cursor()
        _register(cursor, frames)
        return ConnectionWrapper(cursor)

    engine = sa.create_engine(f"{DRIVER}://", creator=connect, poolclass=sa.pool.QueuePool, pool_size=5,
                              max_overflow=10)

    @sa.event.listens_for(engine, "checkout")
    def _fresh(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        _register(dbapi_connection, frames)  # the DataFrames' current arrays (a value set in place since)

    return engine, base


registry.register(DRIVER.replace("+", "."), __name__, "FramesDialect")
