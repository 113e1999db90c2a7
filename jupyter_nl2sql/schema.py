"""Schema introspection, fingerprints, rendering for the prompt, and the mapping the SQL checker uses.

:func:`introspect` reads tables, columns, types, primary and foreign keys and a few sample rows through
SQLAlchemy's inspector (so it works the same on SQLite, DuckDB and PostgreSQL).  :class:`SchemaCache` keeps one
:class:`Schema` per connection.  :func:`render_schema` writes compact ``CREATE TABLE`` statements with sample rows
as comments; :func:`link_tables` keeps only the tables a question needs when the whole schema is too long.
"""

from __future__ import annotations

import hashlib
import json
import threading
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any, Iterable

import sqlalchemy as sa
from sqlglot import exp

from .connections import Connection, _one_line
from .errors import ConnectionFailed

#: Longest value shown in a sample row; longer ones are cut with an ellipsis.
MAX_SAMPLE_CHARS = 40


@dataclass
class Column:
    """One column."""

    name: str
    type: str
    primary_key: bool = False
    nullable: bool = True
    comment: str | None = None


@dataclass
class ForeignKey:
    """``columns`` of this table reference ``ref_columns`` of ``ref_table``."""

    columns: list[str]
    ref_table: str
    ref_columns: list[str]


@dataclass
class Table:
    """One table or view, with a few sample rows."""

    name: str
    columns: list[Column]
    foreign_keys: list[ForeignKey] = field(default_factory=list)
    sample_rows: list[tuple] = field(default_factory=list)
    comment: str | None = None
    schema: str | None = None

    def column(self, name: str) -> Column | None:
        """Column by case-insensitive name."""
        low = name.lower()
        return next((c for c in self.columns if c.name.lower() == low), None)


@dataclass
class Schema:
    """A database's tables as the pipeline sees them."""

    dialect: str
    tables: list[Table]

    @property
    def fingerprint(self) -> str:
        """sha256 (16 hex digits) over table/column names, types and keys — not the data."""
        shape = [[t.schema, t.name, [(c.name, c.type, c.primary_key) for c in t.columns],
                  [(fk.columns, fk.ref_table, fk.ref_columns) for fk in t.foreign_keys]] for t in self.tables]
        return hashlib.sha256(json.dumps([self.dialect, shape], default=str).encode()).hexdigest()[:16]

    def table(self, name: str) -> Table | None:
        """Table by case-insensitive name."""
        low = name.lower()
        return next((t for t in self.tables if t.name.lower() == low), None)

    def mapping(self) -> dict[str, dict[str, str]]:
        """``{"table": {"column": "TYPE"}}`` for sqlglot's qualify (the checker)."""
        return {t.name: {c.name: c.type for c in t.columns} for t in self.tables}


def _type_name(col_type: Any) -> str:
    try:
        return str(col_type).split("(")[0].upper() or "TEXT"
    except Exception:  # noqa: BLE001 - some dialect types fail to compile without a dialect
        return type(col_type).__name__.upper()


def _sample_rows(conn: sa.Connection, table: Table, n: int) -> list[tuple]:
    if n <= 0:
        return []
    cols = [sa.column(c.name) for c in table.columns]
    stmt = sa.select(*cols).select_from(sa.table(table.name, *cols, schema=table.schema)).limit(n)
    # PostgreSQL aborts the whole transaction on an error: fence the sample in a savepoint there.
    fence = conn.begin_nested() if conn.dialect.name == "postgresql" else nullcontext()
    try:
        with fence:
            return [tuple(r) for r in conn.execute(stmt).fetchall()]
    except sa.exc.SQLAlchemyError:
        return []


def _optional(fn: Any, default: Any, *args: Any, **kwargs: Any) -> Any:
    """Call an inspector method that some dialects lack or break on (e.g. foreign keys on DuckDB)."""
    try:
        return fn(*args, **kwargs)
    except (NotImplementedError, sa.exc.SQLAlchemyError):
        return default


def introspect(connection: Connection, *, sample_rows: int = 3, schema: str | None = None) -> Schema:
    """Read the database's structure (and ``sample_rows`` rows per table) through SQLAlchemy."""
    try:
        with connection.connect() as conn:
            insp = sa.inspect(conn)
            names = sorted(insp.get_table_names(schema=schema))
            names += sorted(v for v in _optional(insp.get_view_names, [], schema=schema) if v not in names)
            tables = []
            for name in names:
                cols = insp.get_columns(name, schema=schema)
                pk = set((_optional(insp.get_pk_constraint, {}, name, schema=schema) or {})
                         .get("constrained_columns") or [])
                fks = [ForeignKey(list(fk["constrained_columns"]), fk["referred_table"], list(fk["referred_columns"]))
                       for fk in _optional(insp.get_foreign_keys, [], name, schema=schema)
                       if fk.get("referred_table")]
                comment = (_optional(insp.get_table_comment, {}, name, schema=schema) or {}).get("text")
                table = Table(name=name, schema=schema, comment=comment, foreign_keys=fks, columns=[
                    Column(c["name"], _type_name(c["type"]), c["name"] in pk, bool(c.get("nullable", True)),
                           c.get("comment")) for c in cols])
                table.sample_rows = _sample_rows(conn, table, sample_rows)
                tables.append(table)
    except sa.exc.SQLAlchemyError as exc:
        raise ConnectionFailed(f"cannot read the schema of {connection.display_url}: {_one_line(exc)}") from None
    return Schema(dialect=connection.dialect, tables=tables)


class SchemaCache:
    """One introspected :class:`Schema` per connection, refreshed on demand."""

    def __init__(self) -> None:
        self._schemas: dict[tuple[str, int], Schema] = {}
        self._lock = threading.Lock()

    def get(self, connection: Connection, *, sample_rows: int = 3, refresh: bool = False) -> Schema:
        """The cached schema of ``connection`` (introspected on first use or when ``refresh``)."""
        key = (connection.key, sample_rows)
        with self._lock:
            cached = None if refresh else self._schemas.get(key)
        if cached is not None:
            return cached
        fresh = introspect(connection, sample_rows=sample_rows)
        with self._lock:
            self._schemas[key] = fresh
        return fresh

    def clear(self) -> None:
        """Forget every schema."""
        with self._lock:
            self._schemas.clear()


def _quote(name: str, dialect: str) -> str:
    return exp.to_identifier(name).sql(dialect=dialect) if name else name


def _format_value(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "<binary>"
    text = str(value).replace("\n", " ")
    if len(text) > MAX_SAMPLE_CHARS:
        text = text[: MAX_SAMPLE_CHARS - 1] + "…"
    return repr(text) if isinstance(value, str) else text


def render_table(table: Table, *, dialect: str = "sqlite", sample_rows: int = 3) -> str:
    """``CREATE TABLE`` with primary and foreign keys, followed by sample rows as a comment."""
    q = lambda n: _quote(n, dialect)  # noqa: E731
    lines = []
    for col in table.columns:
        line = f"  {q(col.name)} {col.type}"
        if col.comment:
            line += f"  -- {col.comment}"
        lines.append(line)
    pk = [c.name for c in table.columns if c.primary_key]
    if pk:
        lines.append(f"  PRIMARY KEY ({', '.join(q(c) for c in pk)})")
    for fk in table.foreign_keys:
        lines.append(f"  FOREIGN KEY ({', '.join(q(c) for c in fk.columns)}) REFERENCES "
                     f"{q(fk.ref_table)}({', '.join(q(c) for c in fk.ref_columns)})")
    body = ",\n".join(lines)
    head = f"-- {table.comment}\n" if table.comment else ""
    text = f"{head}CREATE TABLE {q(table.name)} (\n{body}\n);"
    rows = table.sample_rows[:sample_rows]
    if rows:
        header = " | ".join(c.name for c in table.columns)
        shown = "\n".join(" | ".join(_format_value(v) for v in row) for row in rows)
        text += f"\n/* {len(rows)} example rows from {table.name}:\n{header}\n{shown}\n*/"
    return text


def render_schema(schema: Schema, tables: Iterable[str] | None = None, *, sample_rows: int = 3) -> str:
    """The prompt's schema part: every table (or those named in ``tables``) rendered by :func:`render_table`."""
    wanted = None if tables is None else {t.lower() for t in tables}
    return "\n\n".join(render_table(t, dialect=_sqlglot_name(schema.dialect), sample_rows=sample_rows)
                       for t in schema.tables if wanted is None or t.name.lower() in wanted)


def _sqlglot_name(dialect: str) -> str:
    return {"postgresql": "postgres"}.get(dialect, dialect)


def _words(text: str) -> set[str]:
    out, word = set(), []
    for ch in text.lower() + " ":
        if ch.isalnum():
            word.append(ch)
        elif word:
            w = "".join(word)
            out.add(w)
            out.add(w[:-1] if w.endswith("s") and len(w) > 3 else w)
            word = []
    return out


def link_tables(schema: Schema, question: str, *, max_chars: int = 12_000, sample_rows: int = 3) -> list[str]:
    """Tables to show the model: all of them when the rendering fits ``max_chars``, else the ones the question
    mentions (by table, column or split-identifier words), plus every table a foreign key joins them to."""
    names = [t.name for t in schema.tables]
    if len(render_schema(schema, sample_rows=sample_rows)) <= max_chars:
        return names
    q = _words(question)

    def score(t: Table) -> int:
        tw = _words(t.name.replace("_", " "))
        cw = set().union(*(_words(c.name.replace("_", " ")) for c in t.columns)) if t.columns else set()
        return 3 * len(q & tw) + len(q & cw)

    ranked = sorted(schema.tables, key=score, reverse=True)
    chosen = [t for t in ranked if score(t) > 0] or ranked[:3]
    keep = {t.name for t in chosen}
    for t in chosen:  # never drop what a join needs: the tables the chosen ones reference
        keep.update(fk.ref_table for fk in t.foreign_keys)
    out: list[str] = []
    for t in ranked:
        if t.name not in keep:
            continue
        trial = out + [t.name]
        if out and len(render_schema(schema, trial, sample_rows=sample_rows)) > max_chars:
            break
        out = trial
    return out
