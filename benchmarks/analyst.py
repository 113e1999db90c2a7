"""The analyst question suite: questions as data scientists type them, on the demo shop and a streaming service.

``benchmarks/data/analyst.json`` holds the questions, each with its gold SQL (SQLite) and one category: ``period``
(per month, quarter, year, weekday), ``date range``, ``share`` (shares and percentages), ``top n per group``,
``never`` (anti-joins), ``at least`` (thresholds on counts and sums), ``running total`` (window functions),
``null handling``, ``many-to-many`` and ``lookup`` (plain lookups and aggregates).  ``"database"`` is ``demo`` (the
bundled shop, :mod:`jupyter_nl2sql.demo`) or ``streaming`` (:mod:`benchmarks.analyst_db`, built into the benchmark
cache on first use).  The questions and their golds were written before any model was run on them.

Scoring is :func:`benchmarks.scoring.execution_match` with DISTINCT kept (what the user sees), rows as a multiset
unless the gold has an outermost ORDER BY, and two tolerances that change no meaning: text that spells a number
equals that number (SQLite's ``strftime`` returns text: ``'2024'`` is the year ``2024``, ``'03'`` the month ``3``),
and floats compare to :data:`FLOAT_DIGITS` significant digits (sums of money in another order differ in the last
bits).  Where a question wants a rounded number it says so, and the gold rounds.

    python -m benchmarks.analyst --out /tmp/analyst-RUN   (then python -m benchmarks.index --add /tmp/analyst-RUN)

:func:`gold_problems` is what the unit tests hold every gold to: it runs, returns a row that is not all NULL, and
its result does not depend on how ties are broken (at a ``LIMIT``, in an ordered result, or in a ``ROW_NUMBER()``
cut).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any, Mapping, Sequence

import sqlglot
from sqlglot import exp

from benchmarks.runner import REPO_ROOT, RESULTS_FILE, Benchmark, Item, Score, build_parser, load_records, run
from benchmarks.scoring import DEFAULT_TIMEOUT, Row, execute_sqlite, execution_match, numeric_text_as_numbers

#: The questions scored by default.
DEFAULT_DATA = REPO_ROOT / "benchmarks" / "data" / "analyst.json"
#: The categories, in report order.
CATEGORIES = ("period", "date range", "share", "top n per group", "never", "at least", "running total",
              "null handling", "many-to-many", "lookup")
#: Significant digits floats are compared to.
FLOAT_DIGITS = 9


def database_file(name: str) -> Path:
    """The SQLite file of a database of the suite: ``demo`` or ``streaming`` (each built on first use)."""
    if name == "demo":
        from jupyter_nl2sql.demo import demo_path

        return demo_path()
    from benchmarks import analyst_db

    if name != analyst_db.NAME:
        raise ValueError(f"unknown analyst database {name!r} (demo or {analyst_db.NAME})")
    return analyst_db.analyst_db_path()


def load_questions(path: Path = DEFAULT_DATA) -> list[dict[str, Any]]:
    """The questions of a suite file, in file order."""
    return json.loads(Path(path).read_text(encoding="utf-8"))["questions"]


class AnalystBenchmark(Benchmark):
    """The analyst suite through the shared runner, one :class:`Item` per question (``payload``: its id); the
    report's breakdown is the category."""

    name = "analyst"
    breakdown = "category"
    breakdown_levels = CATEGORIES

    def __init__(self, data: Path = DEFAULT_DATA) -> None:
        self.data = data

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """``--data FILE``: another question file of the same shape."""
        parser.add_argument("--data", type=Path, default=DEFAULT_DATA,
                            help=f"question file (default: {DEFAULT_DATA.relative_to(REPO_ROOT)})")

    def configure(self, args: argparse.Namespace) -> dict[str, Any]:
        """Take ``--data``; the file's name and digest and the scoring rules go into run.json."""
        self.data = Path(args.data).resolve()
        digest = hashlib.sha256(self.data.read_bytes()).hexdigest()[:16]
        return {"keep_distinct": True, "float_digits": FLOAT_DIGITS, "numeric_text": True, "data": self.data.name,
                "data_sha256": digest, "order": "outermost ORDER BY of the gold (sqlglot)"}

    def load(self, data_dir: Path, split: str) -> list[Item]:
        """Every question of the file, in file order (``data_dir`` and ``split`` are not used)."""
        return [Item(index=i, db_id=q["database"], question=q["question"], gold=q["gold"], hardness=q["category"],
                     payload=q["id"]) for i, q in enumerate(load_questions(self.data))]

    def database_path(self, item: Item) -> Path:
        """:func:`database_file` of the item's database."""
        return database_file(item.db_id)

    def score(self, item: Item, pred_sql: str | None, *, timeout: float = DEFAULT_TIMEOUT) -> Score:
        """Execution match against the gold: DISTINCT kept, numeric text as numbers, floats to
        :data:`FLOAT_DIGITS` digits."""
        return execution_match(self.database_path(item), pred_sql, item.gold, timeout=timeout, keep_distinct=True,
                               float_digits=FLOAT_DIGITS, normalize=numeric_text_as_numbers)


# ---------------------------------------------------------------------------------------------------------------
# What every gold is held to
# ---------------------------------------------------------------------------------------------------------------
def _rows(db: Path, sql: str) -> list[Row]:
    result = execute_sqlite(db, sql)
    if not result.ok:
        raise ValueError(f"{result.error}: {sql}")
    assert result.rows is not None
    return result.rows


def _key_columns(select: exp.Select) -> list[int]:
    """The output column of each ORDER BY key of ``select``, appending a projection for a key that is none of them
    (``select`` is changed in place)."""
    names = [p.alias_or_name for p in select.expressions]
    texts = [(p.unalias() if isinstance(p, exp.Alias) else p).sql("sqlite") for p in select.expressions]
    columns = []
    for ordered in select.args["order"].expressions:
        key = ordered.this
        if isinstance(key, exp.Literal) and not key.is_string:
            columns.append(int(key.this) - 1)
        elif isinstance(key, exp.Column) and not key.table and key.name in names:
            columns.append(names.index(key.name))
        elif key.sql("sqlite") in texts:
            columns.append(texts.index(key.sql("sqlite")))
        else:
            select.select(key.copy(), copy=False)
            columns.append(len(select.expressions) - 1)
    return columns


def order_ties(db: Path, sql: str) -> list[str]:
    """Where the gold's outermost ORDER BY leaves the result to chance: two different rows with the same sort key
    side by side (their order is arbitrary), or across a ``LIMIT`` cut (which of them is kept is arbitrary).

    Empty when the gold has no outermost ORDER BY, or when it is a set operation."""
    tree = sqlglot.parse_one(sql, read="sqlite")
    if not isinstance(tree, exp.Select) or not tree.args.get("order"):
        return []
    width = len(tree.expressions)
    limit = tree.args.get("limit")
    cut = int(limit.expression.this) if limit is not None else None
    unlimited = tree.copy()
    unlimited.set("limit", None)
    keys = _key_columns(unlimited)
    rows = _rows(db, unlimited.sql("sqlite"))
    problems = []
    for i in range(1, len(rows)):
        a, b = rows[i - 1], rows[i]
        if [a[k] for k in keys] != [b[k] for k in keys] or a[:width] == b[:width]:
            continue
        if cut is None or i < cut:
            problems.append(f"rows {i} and {i + 1} tie on the sort key: {a[:width]} / {b[:width]}")
        elif i == cut:
            problems.append(f"the LIMIT {cut} cuts between tied rows: {a[:width]} / {b[:width]}")
    return problems


def _with_ranking(tree: exp.Expression, ranking: type[exp.Expression]) -> str:
    """``tree`` with every ``ROW_NUMBER()``/``RANK()`` window function replaced by ``ranking``."""
    def swap(node: exp.Expression) -> exp.Expression:
        return ranking() if isinstance(node, (exp.RowNumber, exp.Rank)) else node

    return tree.copy().transform(swap).sql("sqlite")


def rank_ties(db: Path, sql: str) -> list[str]:
    """Where a ``ROW_NUMBER()``/``RANK()`` cut (top n per group) depends on ties: the result with every one of them
    as ``ROW_NUMBER()`` differs from the result with every one as ``RANK()``."""
    tree = sqlglot.parse_one(sql, read="sqlite")
    if not any(isinstance(w.this, (exp.RowNumber, exp.Rank)) for w in tree.find_all(exp.Window)):
        return []
    numbered, ranked = (_rows(db, _with_ranking(tree, r)) for r in (exp.RowNumber, exp.Rank))
    if Counter(numbered) == Counter(ranked):
        return []
    return [f"ROW_NUMBER() gives {len(numbered)} rows, RANK() {len(ranked)}: ties at the cut"]


def gold_problems(db: Path, sql: str) -> list[str]:
    """Why a gold is not fit to score with (empty when it is): it fails, finds nothing (no row, or only NULLs), or
    its result depends on how ties are broken (:func:`order_ties`, :func:`rank_ties`)."""
    try:
        rows = _rows(db, sql)
    except ValueError as exc:
        return [f"does not run: {exc}"]
    if not rows or all(v is None for row in rows for v in row):
        return ["returns no row, or only NULLs"]
    return order_ties(db, sql) + rank_ties(db, sql)


def accuracy_by_database(records: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, int]]:
    """Questions and right answers per database, from a run's records."""
    out: dict[str, dict[str, int]] = {}
    for r in records:
        tally = out.setdefault(str(r["db_id"]), {"n": 0, "correct": 0})
        tally["n"] += 1
        tally["correct"] += bool(r["correct"])
    return out


def parser_for(benchmark: AnalystBenchmark) -> argparse.ArgumentParser:
    """The command line of ``python -m benchmarks.analyst``: the runner's options and ``--data``."""
    parser = build_parser(benchmark.name)
    parser.set_defaults(split="all")
    benchmark.add_arguments(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m benchmarks.analyst``: run (or resume) the suite, then print the right answers per database."""
    argv = list(sys.argv[1:] if argv is None else argv)
    benchmark = AnalystBenchmark()
    args = parser_for(benchmark).parse_args(argv)
    out = run(benchmark, args, [f"benchmarks.{benchmark.name}", *argv])
    wanted = set(json.loads((out / "run.json").read_text(encoding="utf-8"))["selected_indices"])
    records = [r for r in load_records(out / RESULTS_FILE) if r["index"] in wanted]
    print("; ".join(f"{db}: {t['correct']}/{t['n']}" for db, t in accuracy_by_database(records).items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
