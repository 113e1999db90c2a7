"""Schema introspection, fingerprints, rendering for the prompt, and the mapping the SQL checker uses.

:func:`introspect` reads tables, columns, types, primary and foreign keys and a few sample rows through
SQLAlchemy's inspector (so it works the same on SQLite, DuckDB and PostgreSQL).  :class:`SchemaCache` keeps one
:class:`Schema` per connection.  :func:`render_schema` writes compact ``CREATE TABLE`` statements with sample rows
as comments (and, given a value source, a few values next to each text column); when the whole schema is too long
for the prompt, :func:`fit_schema` shows the tables :func:`link_tables` links to the question in full — with every
table on the foreign-key paths between them, so no join is cut — and the other tables as one line each.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

import sqlalchemy as sa
from sqlglot import exp

from ..connections import Connection, scrub
from ..errors import Cancelled, ConnectionFailed, first_line as _one_line
from .execution import statement_timeout

#: Seconds schema introspection may take in all (structure and sample rows) unless the caller says otherwise.
INTROSPECT_TIMEOUT = 30.0

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

    def links(self) -> list[tuple[str, list[str], str, list[str]]]:
        """Every foreign key as (table, columns, referenced table, referenced columns)."""
        return [(t.name, fk.columns, fk.ref_table, fk.ref_columns) for t in self.tables for fk in t.foreign_keys]

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


def introspect(connection: Connection, *, sample_rows: int = 3, schema: str | None = None,
               timeout: float | None = INTROSPECT_TIMEOUT, cancel: threading.Event | None = None) -> Schema:
    """Read the database's structure (and ``sample_rows`` rows per table) through SQLAlchemy.

    The whole read runs under ``timeout`` seconds and ``cancel``, like a query: the structure must be read in
    time (else :class:`~jupyter_nl2sql.errors.ConnectionFailed` says so); sample rows are read with what is left,
    and a table whose sample is too slow (a slow view) is shown without rows, as are the tables after it.
    """
    deadline = time.monotonic() + timeout if timeout else None
    try:
        with connection.connect() as conn:
            with statement_timeout(conn, timeout, cancel):
                tables = _read_structure(conn, schema)
            for table in tables:
                if cancel is not None and cancel.is_set():
                    raise Cancelled("cancelled while reading the schema")
                left = deadline - time.monotonic() if deadline is not None else None
                if left is not None and left <= 0:
                    break
                with statement_timeout(conn, left, cancel):
                    table.sample_rows = _sample_rows(conn, table, sample_rows)
    except sa.exc.SQLAlchemyError as exc:
        failure = _schema_failure(exc, connection, deadline, timeout, cancel)
    else:
        return Schema(dialect=connection.dialect, tables=tables)
    raise failure  # outside the except block: the driver's exception stays out of __context__


def _schema_failure(exc: sa.exc.SQLAlchemyError, connection: Connection, deadline: float | None,
                    timeout: float | None, cancel: threading.Event | None) -> Exception:
    """The one-line error for a failed introspection: cancelled, over the timeout, or the driver's reason."""
    if cancel is not None and cancel.is_set():
        return Cancelled("cancelled while reading the schema")
    if deadline is not None and time.monotonic() >= deadline:
        return ConnectionFailed(f"reading the schema of {connection.display_url} took longer than the timeout "
                                f"({timeout:g} s): raise the timeout, or connect to a schema with fewer or faster "
                                "views")
    return ConnectionFailed(f"cannot read the schema of {connection.display_url}: "
                            f"{scrub(_one_line(exc), connection.secrets)}")


def _read_structure(conn: sa.Connection, schema: str | None) -> list[Table]:
    """Tables and views with their columns, keys and comments (no rows)."""
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
        tables.append(Table(name=name, schema=schema, comment=comment, foreign_keys=fks, columns=[
            Column(c["name"], _type_name(c["type"]), c["name"] in pk, bool(c.get("nullable", True)),
                   c.get("comment")) for c in cols]))
    return tables


class SchemaCache:
    """One introspected :class:`Schema` per connection, refreshed on demand.

    ``shared``: a second level shared with other processes (:class:`~jupyter_nl2sql.caches.redis_store.RedisSchemaCache`),
    asked before introspecting and updated after; None: this process only.
    """

    def __init__(self, shared: Any = None, *, timeout: float | None = INTROSPECT_TIMEOUT) -> None:
        self._schemas: dict[tuple[str, int], Schema] = {}
        self._lock = threading.Lock()
        self.shared = shared
        self.timeout = timeout

    def get(self, connection: Connection, *, sample_rows: int = 3, refresh: bool = False,
            cancel: threading.Event | None = None) -> Schema:
        """The cached schema of ``connection`` (introspected on first use or when ``refresh``, under the cache's
        ``timeout`` and ``cancel``)."""
        key = (connection.key, sample_rows)
        with self._lock:
            cached = None if refresh else self._schemas.get(key)
        if cached is None and self.shared is not None and not refresh:
            cached = self.shared.get(connection.key, sample_rows)
            if cached is not None:
                with self._lock:
                    self._schemas[key] = cached
        if cached is not None:
            return cached
        fresh = introspect(connection, sample_rows=sample_rows, timeout=self.timeout, cancel=cancel)
        with self._lock:
            self._schemas[key] = fresh
        if self.shared is not None:
            self.shared.put(connection.key, sample_rows, fresh)
        return fresh

    def clear(self) -> None:
        """Forget every schema."""
        with self._lock:
            self._schemas.clear()


def _quote(name: str, dialect: str) -> str:
    return exp.to_identifier(name).sql(dialect=dialect) if name else name


def _format_value(value: Any, quote: bool = True) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "<binary>"
    text = " ".join(str(value).split())
    if len(text) > MAX_SAMPLE_CHARS:
        text = text[: MAX_SAMPLE_CHARS - 1] + "…"
    return repr(text) if quote and isinstance(value, str) else text


ValuesFor = Callable[[str, str], Sequence[str]]
"""``values_for(table, column)`` → a few values of that column (from :class:`jupyter_nl2sql.pipeline.values.ValueIndex`)."""


#: How sample rows are shown: ``"sql"`` as ``SELECT * FROM t LIMIT 3;`` and tab-separated rows in a comment (the
#: layout Qwen2.5-Coder's text-to-SQL evaluation uses), ``"chat"`` as ``|``-separated rows with quoted strings.
ROW_LAYOUTS = ("sql", "chat")


def render_table(table: Table, *, dialect: str = "sqlite", sample_rows: int = 3,
                 values_for: ValuesFor | None = None, layout: str = "sql") -> str:
    """``CREATE TABLE`` with primary and foreign keys, followed by sample rows as a comment (see
    :data:`ROW_LAYOUTS` for ``layout``).

    With ``values_for``, each text column whose values are known gets a comment listing a few of them
    (``Country TEXT  -- e.g. 'France', 'Netherlands'``), next to or instead of the sample rows.
    """
    q = lambda n: _quote(n, dialect)  # noqa: E731
    lines = []
    for col in table.columns:
        line = f"  {q(col.name)} {col.type}"
        notes = [col.comment] if col.comment else []
        shown = list(values_for(table.name, col.name)) if values_for is not None else []
        if shown:
            notes.append("e.g. " + ", ".join(_format_value(v) for v in shown))
        if notes:
            line += f"  -- {'; '.join(notes)}"
        lines.append(line)
    pk = [c.name for c in table.columns if c.primary_key]
    if pk:
        lines.append(f"  PRIMARY KEY ({', '.join(q(c) for c in pk)})")
    for fk in table.foreign_keys:
        lines.append(f"  FOREIGN KEY ({', '.join(q(c) for c in fk.columns)}) REFERENCES "
                     f"{q(fk.ref_table)}({', '.join(q(c) for c in fk.ref_columns)})")
    # a comment's line break must not swallow the comma that separates it from the next line
    body = "\n".join(_join_line(line, i < len(lines) - 1) for i, line in enumerate(lines))
    head = f"-- {table.comment}\n" if table.comment else ""
    text = f"{head}CREATE TABLE {q(table.name)} (\n{body}\n);"
    rows = table.sample_rows[:sample_rows]
    if rows and layout == "sql":
        header = "\t".join(c.name for c in table.columns)
        shown_rows = "\n".join("\t".join(_format_value(v, quote=False) for v in row) for row in rows)
        text += (f"\n/*\n{len(rows)} example rows:\nSELECT * FROM {q(table.name)} LIMIT {len(rows)};\n"
                 f"{header}\n{shown_rows}\n*/")
    elif rows:
        header = " | ".join(c.name for c in table.columns)
        shown_rows = "\n".join(" | ".join(_format_value(v) for v in row) for row in rows)
        text += f"\n/* {len(rows)} example rows from {table.name}:\n{header}\n{shown_rows}\n*/"
    return text


def _join_line(line: str, comma: bool) -> str:
    if not comma:
        return line
    code, sep, note = line.partition("  -- ")
    return f"{code},{sep}{note}" if sep else f"{line},"


def render_compact(table: Table, *, dialect: str = "sqlite") -> str:
    """One comment line naming a table, its columns and its foreign keys (for tables outside the linked set)."""
    q = lambda n: _quote(n, dialect)  # noqa: E731
    cols = ", ".join(q(c.name) + ("*" if c.primary_key else "") for c in table.columns)
    refs = "; ".join(f"{', '.join(fk.columns)} -> {fk.ref_table}({', '.join(fk.ref_columns)})"
                     for fk in table.foreign_keys)
    return f"-- {q(table.name)}({cols})" + (f"  [{refs}]" if refs else "")


def render_schema(schema: Schema, tables: Iterable[str] | None = None, *, sample_rows: int = 3,
                  values_for: ValuesFor | None = None, compact: Iterable[str] = (), layout: str = "sql") -> str:
    """The prompt's schema part: every table (or those named in ``tables``) rendered by :func:`render_table`;
    the tables named in ``compact`` follow as one line each (columns and keys only)."""
    wanted = None if tables is None else {t.lower() for t in tables}
    dialect = _sqlglot_name(schema.dialect)
    text = "\n\n".join(render_table(t, dialect=dialect, sample_rows=sample_rows, values_for=values_for,
                                    layout=layout)
                       for t in schema.tables if wanted is None or t.name.lower() in wanted)
    short = {t.lower() for t in compact} - (wanted or set())
    lines = [render_compact(t, dialect=dialect) for t in schema.tables if t.name.lower() in short]
    if lines:
        text += "\n\n-- Other tables (columns only; * marks the primary key):\n" + "\n".join(lines)
    return text


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


def _link_scores(schema: Schema, question: str, must: Iterable[str] = ()) -> dict[str, int]:
    q = _words(question)
    forced = {m.lower() for m in must}
    out = {}
    for t in schema.tables:
        tw = _words(t.name.replace("_", " "))
        cw = set().union(*(_words(c.name.replace("_", " ")) for c in t.columns)) if t.columns else set()
        out[t.name] = 3 * len(q & tw) + len(q & cw) + (5 if t.name.lower() in forced else 0)
    return out


def join_graph(schema: Schema) -> dict[str, set[str]]:
    """Tables linked by a foreign key, in both directions (names as the schema spells them)."""
    names = {t.name.lower(): t.name for t in schema.tables}
    graph: dict[str, set[str]] = {t.name: set() for t in schema.tables}
    for t in schema.tables:
        for fk in t.foreign_keys:
            ref = names.get(fk.ref_table.lower())
            if ref and ref != t.name:
                graph[t.name].add(ref)
                graph[ref].add(t.name)
    return graph


def join_path(graph: dict[str, set[str]], start: str, goal: str) -> list[str]:
    """The shortest chain of tables from ``start`` to ``goal`` along foreign keys ([] when none)."""
    if start == goal:
        return [start]
    parents: dict[str, str | None] = {start: None}
    frontier = [start]
    while frontier:
        nxt = []
        for node in frontier:
            for other in sorted(graph.get(node, ())):
                if other in parents:
                    continue
                parents[other] = node
                if other == goal:
                    path = [goal]
                    while parents[path[-1]] is not None:
                        path.append(parents[path[-1]])  # type: ignore[arg-type]
                    return path[::-1]
                nxt.append(other)
        frontier = nxt
    return []


def link_tables(schema: Schema, question: str, *, max_chars: int = 12_000, sample_rows: int = 3,
                must: Iterable[str] = (), values_for: ValuesFor | None = None, layout: str = "sql") -> list[str]:
    """Tables to show the model in full: all of them when the rendering fits ``max_chars``, else the ones the
    question mentions (by table, column or split-identifier words, or by a value in ``must``'s tables), plus
    every table on a foreign-key path between them (a join needs the tables in between, too) and the tables the
    chosen ones reference.  The order is the schema's."""
    names = [t.name for t in schema.tables]
    if len(render_schema(schema, sample_rows=sample_rows, values_for=values_for, layout=layout)) <= max_chars:
        return names
    scores = _link_scores(schema, question, must)
    ranked = sorted(schema.tables, key=lambda t: -scores[t.name])
    chosen = [t.name for t in ranked if scores[t.name] > 0] or [t.name for t in ranked[:3]]
    graph = join_graph(schema)
    by_name = {t.name: t for t in schema.tables}
    # grow greedily from the best table: each next table comes with the path that joins it to what is kept
    keep: list[str] = []
    for name in chosen:
        extra = [name]
        if keep:
            paths = [p for p in (join_path(graph, k, name) for k in keep) if p]
            if paths:
                extra = min(paths, key=len)
        trial = keep + [n for n in extra if n not in keep]
        for n in list(trial):  # the tables a kept table references (their keys explain its foreign keys)
            trial += [r.ref_table for r in by_name[n].foreign_keys
                      if r.ref_table in by_name and r.ref_table not in trial]
        trial_text = render_schema(schema, trial, sample_rows=sample_rows, values_for=values_for, layout=layout)
        if keep and len(trial_text) > max_chars:
            continue
        keep = trial
    wanted = set(keep)
    return [n for n in names if n in wanted]


def fit_schema(schema: Schema, question: str, *, max_chars: int = 12_000, sample_rows: int = 3,
               values_for: ValuesFor | None = None, must: Iterable[str] = (), linking: bool = True,
               layout: str = "sql") -> tuple[str, list[str]]:
    """The schema text for a question and the tables it shows in full.

    Everything when it fits ``max_chars``.  Otherwise (unless ``linking`` is off) the linked tables of
    :func:`link_tables` in full, with fewer sample rows if that is what makes them fit, and every other table as
    one compact line while there is room — so the model still sees that the other tables exist.
    """
    names = [t.name for t in schema.tables]
    full = render_schema(schema, sample_rows=sample_rows, values_for=values_for, layout=layout)
    if len(full) <= max_chars or not linking:
        return full, names
    tables = link_tables(schema, question, max_chars=max_chars, sample_rows=sample_rows, must=must,
                         values_for=values_for, layout=layout)
    rows = sample_rows
    text = render_schema(schema, tables, sample_rows=rows, values_for=values_for, layout=layout)
    while len(text) > max_chars and rows > 0:
        rows -= 1
        text = render_schema(schema, tables, sample_rows=rows, values_for=values_for, layout=layout)
    compact: list[str] = []
    for name in names:
        if name in tables:
            continue
        trial = render_schema(schema, tables, sample_rows=rows, values_for=values_for, compact=compact + [name],
                              layout=layout)
        if len(trial) > max_chars:
            break
        compact.append(name)
        text = trial
    return text, tables
