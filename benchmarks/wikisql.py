"""WikiSQL dev: gold logical forms executed as WikiSQL's ``lib/dbengine.py`` does, predictions on real headers.

Gold: a question's ``sql`` is ``{"sel": i, "agg": a, "conds": [[col, op, value], ...]}``; it runs on ``dev.db``
(tables ``table_<id with - -> _>``, columns ``col0..N``) as ``SELECT agg(col_sel) AS result FROM table WHERE
col_c op :col_c AND ...`` with dbengine's rules: string values lower-cased, values of ``real`` columns parsed as
numbers (``1,234.5`` -> 1234.5, else the first number in the text), one parameter per column (a second condition on
the same column overwrites the first one's value, as dbengine's ``where_map`` does).

Prediction: the model must see the real column names, so every table gets its own small SQLite file (cached on
disk) whose table has the headers of ``dev.tables.jsonl`` as column names (an empty header takes its name from
``wikisql-v2/dev_empty_columns_names.json`` or becomes ``col{i}``; duplicates get ``_2``, ``_3``...) and holds the
rows of ``dev.db`` unchanged (text lower-cased, as dbengine stores it).  The prediction runs there; its single
result column is compared with the gold result as a set of values, case-insensitively.

``python -m benchmarks.wikisql --help`` runs the benchmark through the shared loop of :mod:`benchmarks.runner`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sqlite3
import tempfile
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from benchmarks.runner import Benchmark, Item, Score, main as runner_main
from benchmarks.scoring import DEFAULT_TIMEOUT, ExecResult, Row, execute_sqlite, sqlite_readonly_uri

AGG_OPS = ("", "MAX", "MIN", "COUNT", "SUM", "AVG")
COND_OPS = ("=", ">", "<", "OP")
_NUM_RE = re.compile(r"[-+]?\d*\.\d+|\d+")
_SCHEMA_RE = re.compile(r"\((.+)\)", re.S)
#: Bump when the layout of the per-table databases changes, so stale caches are not reused.
_CACHE_VERSION = 1


# ---------------------------------------------------------------------------------------------------------------
# Logical forms, dbengine semantics
# ---------------------------------------------------------------------------------------------------------------
def devdb_table_name(table_id: str) -> str:
    """``1-10015132-11`` -> ``table_1_10015132_11`` (dbengine's naming)."""
    return table_id if table_id.startswith("table") else "table_" + table_id.replace("-", "_")


def parse_number(value: str) -> float:
    """A number out of a condition value for a ``real`` column, as dbengine does it.

    First like babel's ``parse_decimal`` for English (thousands separators dropped, then a decimal), then the first
    number found in the text.  Raises ValueError when the text holds no number.

    >>> parse_number("1,234.5"), parse_number("about 12 km"), parse_number(" 7 ")
    (1234.5, 12.0, 7.0)
    """
    try:
        return float(Decimal(value.replace(",", "")))
    except InvalidOperation:
        found = _NUM_RE.findall(value)
        if not found:
            raise ValueError(f"no number in {value!r}") from None
        return float(found[0])


@dataclass(frozen=True)
class LogicalForm:
    """A WikiSQL query: selected column, aggregation and conditions (indices into the header)."""

    sel: int
    agg: int
    conds: tuple[tuple[int, int, Any], ...]

    @classmethod
    def from_json(cls, sql: Mapping[str, Any]) -> "LogicalForm":
        """From the ``sql`` field of a dev.jsonl line."""
        return cls(int(sql["sel"]), int(sql["agg"]), tuple((int(c), int(o), v) for c, o, v in sql["conds"]))


def dbengine_conditions(lf: LogicalForm, column_types: Sequence[str]) -> list[tuple[int, str, Any]]:
    """The WHERE terms dbengine builds: ``(column, operator, bound value)``, values processed as dbengine does.

    Strings are lower-cased; a non-numeric value for a ``real`` column is parsed with :func:`parse_number`; when two
    conditions name the same column, both compare against the value of the last one (dbengine binds one parameter
    per column name).
    """
    values: dict[int, Any] = {}
    terms: list[tuple[int, str]] = []
    for col, op, val in lf.conds:
        if isinstance(val, str):
            val = val.lower()
        if column_types[col] == "real" and not isinstance(val, (int, float)):
            val = parse_number(str(val))
        terms.append((col, COND_OPS[op]))
        values[col] = val
    return [(col, op, values[col]) for col, op in terms]


def read_devdb_types(conn: sqlite3.Connection, table: str) -> list[str]:
    """Column types (``text``/``real``) of a dev.db table, read from its CREATE statement as dbengine does."""
    row = conn.execute("SELECT sql FROM sqlite_master WHERE tbl_name = ?", (table,)).fetchone()
    if row is None:
        raise KeyError(f"no table {table} in dev.db")
    columns = _SCHEMA_RE.findall(row[0])[0]
    types = {}
    for part in columns.split(", "):
        name, typ = part.split()
        types[name] = typ
    return [types[f"col{i}"] for i in range(len(types))]


def execute_logical_form(conn: sqlite3.Connection, table_id: str, lf: LogicalForm) -> list[Any]:
    """The gold result of ``lf`` on dev.db: the list of ``result`` values, exactly as dbengine computes it."""
    table = devdb_table_name(table_id)
    types = read_devdb_types(conn, table)
    select = f"col{lf.sel}"
    if AGG_OPS[lf.agg]:
        select = f"{AGG_OPS[lf.agg]}({select})"
    terms = dbengine_conditions(lf, types)
    where = " AND ".join(f"col{c} {op} :col{c}" for c, op, _ in terms)
    sql = f"SELECT {select} AS result FROM {table}" + (f" WHERE {where}" if where else "")
    return [r[0] for r in conn.execute(sql, {f"col{c}": v for c, _, v in terms}).fetchall()]


def quote_identifier(name: str) -> str:
    """``name`` as a double-quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def sql_literal(value: Any) -> str:
    """A Python value as a SQLite literal (strings single-quoted, numbers as written by ``repr``)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value) if value == value and abs(value) != float("inf") else "NULL"
    return "'" + str(value).replace("'", "''") + "'"


def logical_form_to_sql(lf: LogicalForm, table: "WikiTable") -> str:
    """SQL with the real column names that means what dbengine executes for ``lf`` (values inlined).

    It is the ``gold`` shown in the results, and the query the scorer is validated with: on the table's
    real-header database it must give the gold result for every question.
    """
    column = quote_identifier(table.columns[lf.sel])
    select = f"{AGG_OPS[lf.agg]}({column})" if AGG_OPS[lf.agg] else column
    terms = dbengine_conditions(lf, table.types)
    where = " AND ".join(f"{quote_identifier(table.columns[c])} {op} {sql_literal(v)}" for c, op, v in terms)
    return f"SELECT {select} FROM {quote_identifier(table.sql_name)}" + (f" WHERE {where}" if where else "")


# ---------------------------------------------------------------------------------------------------------------
# Tables with real headers
# ---------------------------------------------------------------------------------------------------------------
def column_names(header: Sequence[str], fallback_names: Mapping[int, str] | None = None) -> list[str]:
    """Usable, unique column names from a WikiSQL header.

    Blank names take ``fallback_names[i]`` or ``col{i}``; names are stripped of outer blanks; a name already used
    (compared case-insensitively, as SQLite does) gets ``_2``, ``_3``... appended.

    >>> column_names(["Name", "", "name", "Year "])
    ['Name', 'col1', 'name_2', 'Year']
    """
    names: list[str] = []
    seen: set[str] = set()
    for i, raw in enumerate(header):
        name = " ".join(str(raw).split())
        if not name:
            name = (fallback_names or {}).get(i) or f"col{i}"
        candidate, k = name, 1
        while candidate.lower() in seen:
            k += 1
            candidate = f"{name}_{k}"
        seen.add(candidate.lower())
        names.append(candidate)
    return names


@dataclass(frozen=True)
class WikiTable:
    """One dev table: its id, the real (deduplicated) column names and the column types."""

    id: str
    columns: tuple[str, ...]
    types: tuple[str, ...]

    @property
    def sql_name(self) -> str:
        """The table's name in its real-header database (the dev.db name, so gold and prediction read alike)."""
        return devdb_table_name(self.id)


def load_tables(path: Path, empty_names_path: Path | None = None) -> dict[str, WikiTable]:
    """Tables of ``dev.tables.jsonl`` with usable column names (rows are read from dev.db, not from here)."""
    fallback: dict[str, dict[int, str]] = {}
    if empty_names_path is not None and empty_names_path.exists():
        named = json.loads(empty_names_path.read_text(encoding="utf-8"))
        header_of = {}
        with path.open(encoding="utf-8") as fh:
            for line in fh:
                t = json.loads(line)
                header_of[t["id"]] = t["header"]
        for entry in named:
            header = header_of.get(entry["Table"])
            if header is None:
                continue
            blanks = [i for i, h in enumerate(header) if not str(h).strip()]
            if blanks:
                fallback.setdefault(entry["Table"], {})[blanks[0]] = entry["Name"]
    tables = {}
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            t = json.loads(line)
            names = column_names(t["header"], fallback.get(t["id"]))
            tables[t["id"]] = WikiTable(t["id"], tuple(names), tuple(str(x).lower() for x in t["types"]))
    return tables


def default_cache_dir() -> Path:
    """Where the per-table databases go: ``$NL2SQL_BENCH_CACHE`` or ``~/.cache/jupyter-nl2sql/benchmarks``."""
    root = os.environ.get("NL2SQL_BENCH_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "jupyter-nl2sql", "benchmarks")
    return Path(root)


class TableDatabases:
    """Builds (once) and finds the real-header SQLite file of each WikiSQL table.

    Files live in ``cache_dir/wikisql-v<version>-<dev.db size>-<mtime>/<table>.sqlite``; each is written to a
    temporary name and renamed into place, so concurrent runs and interrupted builds never leave a half file.
    """

    def __init__(self, devdb: Path, tables: Mapping[str, WikiTable], cache_dir: Path | None = None) -> None:
        stat = devdb.stat()
        self.devdb = devdb
        self.tables = tables
        self.root = (cache_dir or default_cache_dir()) / (
            f"wikisql-v{_CACHE_VERSION}-{stat.st_size}-{stat.st_mtime_ns}")

    def path(self, table_id: str) -> Path:
        """Path of the table's database, building it when it is not there yet."""
        target = self.root / f"{devdb_table_name(table_id)}.sqlite"
        if not target.exists():
            self._build(self.tables[table_id], target)
        return target

    def _build(self, table: WikiTable, target: Path) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        src = sqlite3.connect(sqlite_readonly_uri(self.devdb), uri=True)
        try:
            devdb_types = read_devdb_types(src, table.sql_name)
            rows = src.execute(f"SELECT * FROM {table.sql_name}").fetchall()
        finally:
            src.close()
        if len(devdb_types) != len(table.columns):
            raise ValueError(f"{table.id}: {len(table.columns)} headers but {len(devdb_types)} dev.db columns")
        fd, tmp = tempfile.mkstemp(prefix=target.stem, suffix=".tmp", dir=target.parent)
        os.close(fd)
        try:
            dst = sqlite3.connect(tmp)
            cols = ", ".join(f"{quote_identifier(c)} {t.upper()}" for c, t in zip(table.columns, devdb_types))
            dst.execute(f"CREATE TABLE {quote_identifier(table.sql_name)} ({cols})")
            marks = ", ".join("?" * len(table.columns))
            dst.executemany(f"INSERT INTO {quote_identifier(table.sql_name)} VALUES ({marks})", rows)
            dst.commit()
            dst.close()
            os.replace(tmp, target)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)


# ---------------------------------------------------------------------------------------------------------------
# Comparing
# ---------------------------------------------------------------------------------------------------------------
def _norm_value(value: Any) -> Any:
    if isinstance(value, str):
        return value.strip().casefold()
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return float(f"{float(value):.12g}")
    if isinstance(value, bytes):
        return value.decode(errors="ignore").strip().casefold()
    return value


def values_match(gold: Iterable[Any], pred_rows: Sequence[Row]) -> bool:
    """Whether a prediction's rows equal the gold values as sets, case-insensitively.

    The prediction must return one column (any number of rows, none included); numbers compare as floats rounded
    to 12 significant digits, strings case-folded and stripped.

    >>> values_match(["guard"], [("Guard",), ("guard",)])
    True
    >>> values_match([3], [(3.0,)]), values_match(["a"], [("a", 1)])
    (True, False)
    """
    if any(len(r) != 1 for r in pred_rows):
        return False
    return {_norm_value(v) for v in gold} == {_norm_value(r[0]) for r in pred_rows}


# ---------------------------------------------------------------------------------------------------------------
# The benchmark
# ---------------------------------------------------------------------------------------------------------------
def condition_bucket(n_conds: int) -> str:
    """The breakdown label of a WikiSQL question: its number of conditions."""
    return f"{n_conds} cond" if n_conds < 3 else "3+ cond"


class WikiSQLBenchmark(Benchmark):
    """WikiSQL dev through the shared runner (breakdown by number of WHERE conditions)."""

    name = "wikisql"
    breakdown = "conditions"
    breakdown_levels = ("0 cond", "1 cond", "2 cond", "3+ cond")

    def __init__(self, cache_dir: Path | None = None) -> None:
        self.cache_dir = cache_dir
        self._tables: dict[str, WikiTable] = {}
        self._databases: TableDatabases | None = None
        self._devdb: Path | None = None
        self._devdb_conn: sqlite3.Connection | None = None

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """``--cache-dir`` for the real-header table databases."""
        parser.add_argument("--cache-dir", type=Path, default=None,
                            help="where the per-table databases with real headers are built "
                                 "(default: $NL2SQL_BENCH_CACHE or ~/.cache/jupyter-nl2sql/benchmarks)")

    def configure(self, args: argparse.Namespace) -> dict[str, Any]:
        """Take ``--cache-dir``; report the comparison rule for run.json."""
        if getattr(args, "cache_dir", None) is not None:
            self.cache_dir = args.cache_dir
        return {"compare": "set of values, case-insensitive, floats to 12 significant digits"}

    def load(self, data_dir: Path, split: str) -> list[Item]:
        """All questions of ``wikisql/<split>.jsonl`` (every one is scorable)."""
        base = data_dir / "wikisql"
        self._devdb = base / f"{split}.db"
        self._tables = load_tables(base / f"{split}.tables.jsonl",
                                   data_dir / "wikisql-v2" / f"{split}_empty_columns_names.json")
        self._databases = TableDatabases(self._devdb, self._tables, self.cache_dir)
        items = []
        with (base / f"{split}.jsonl").open(encoding="utf-8") as fh:
            for index, line in enumerate(fh):
                if not line.strip():
                    continue
                d = json.loads(line)
                lf = LogicalForm.from_json(d["sql"])
                table = self._tables[d["table_id"]]
                items.append(Item(index=index, db_id=d["table_id"], question=d["question"],
                                  gold=logical_form_to_sql(lf, table), hardness=condition_bucket(len(lf.conds)),
                                  payload=lf))
        return items

    def database_path(self, item: Item) -> Path:
        """The real-header database of the item's table (built on first use)."""
        assert self._databases is not None, "load() first"
        return self._databases.path(item.db_id)

    def gold_values(self, item: Item) -> list[Any]:
        """The item's gold result, from dev.db with dbengine semantics."""
        if self._devdb_conn is None:
            assert self._devdb is not None, "load() first"
            self._devdb_conn = sqlite3.connect(sqlite_readonly_uri(self._devdb), uri=True,
                                               check_same_thread=False)
        return execute_logical_form(self._devdb_conn, item.db_id, item.payload)

    def score(self, item: Item, pred_sql: str | None, *, timeout: float = DEFAULT_TIMEOUT) -> Score:
        """Run the prediction on the real-header table and compare it with the gold values."""
        try:
            gold = self.gold_values(item)
        except (sqlite3.Error, KeyError, ValueError, IndexError) as exc:
            return Score(correct=False, gold_error=f"{type(exc).__name__}: {exc}")
        if pred_sql is None or not pred_sql.strip():
            return Score(correct=False, pred_error="no SQL predicted")
        result: ExecResult = execute_sqlite(self.database_path(item), pred_sql, timeout=timeout)
        if not result.ok:
            return Score(correct=False, pred_error=result.error, pred_seconds=result.seconds)
        assert result.rows is not None
        return Score(correct=values_match(gold, result.rows), pred_seconds=result.seconds,
                     pred_rows=len(result.rows), gold_rows=len(gold))


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m benchmarks.wikisql``."""
    return runner_main(WikiSQLBenchmark(), argv)


if __name__ == "__main__":
    raise SystemExit(main())
