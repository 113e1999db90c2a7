"""Execution accuracy and Spider hardness.

Execution accuracy follows test-suite-sql-eval (Zhong, Yu and Klein, 2020; ``exec_eval.py``):

- the prediction and the gold query are both run on the database (SQLite, opened read-only, with a timeout);
- a prediction that raises or times out is wrong;
- results are compared as bags (multisets) of rows, or as lists of rows when the gold query orders its output;
- the columns of the prediction may come back in any order: a column permutation is searched, pruned first by a
  cheap necessary test (the bag of per-row sorted values must agree) and, for more than three columns, by sampling
  rows of the prediction and discarding mappings whose values never occur in the gold column;
- ``DISTINCT`` is removed from both queries before they run (test-suite's default; ``keep_distinct=True`` keeps it).

Two differences from the reference, both deliberate:

- "ordered" is decided with sqlglot from the gold query's *outermost* ORDER BY (on its top-level SELECT or set
  operation). The reference tests for the substring ``order by`` anywhere, so it also orders a result whose only
  ORDER BY sits in a subquery (``WHERE id = (SELECT ... ORDER BY x LIMIT 1)``); such an ORDER BY does not order the
  output. When the gold does not parse, the tokenizer is used: an ORDER BY token outside any parentheses.
- the reference rewrites ``> =`` to ``>=`` and MySQL's ``YEAR(CURDATE())`` to 2020 in the text; both repair the
  output of token-level seq2seq models and are not done here.

Spider hardness (:func:`spider_hardness`) applies the rules of the official ``evaluation.py`` (``eval_hardness``)
to sqlglot's AST; :func:`hardness_from_spider_sql` applies the same rules to the parsed ``sql`` dict stored in
Spider's dev.json, and serves as the oracle for the AST version.
"""

from __future__ import annotations

import math
import random
import sqlite3
import time
from collections import Counter
from dataclasses import dataclass
from itertools import product
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError
from sqlglot.tokens import TokenType

Row = tuple[Any, ...]

#: Seconds a query may run before it is interrupted (test-suite-sql-eval's TIMEOUT).
DEFAULT_TIMEOUT = 60.0
#: SQLite VM instructions between two looks at the clock.
_PROGRESS_STEPS = 10_000

HARDNESS_LEVELS = ("easy", "medium", "hard", "extra")


# ---------------------------------------------------------------------------------------------------------------
# Running a query
# ---------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ExecResult:
    """Rows of one query, or the reason it produced none."""

    rows: list[Row] | None
    error: str | None
    seconds: float
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        """True when the query ran to completion."""
        return self.error is None


def sqlite_readonly_uri(path: str | Path) -> str:
    """``file:`` URI that opens ``path`` read-only (``mode=ro``), with the path percent-encoded."""
    return Path(path).resolve().as_uri() + "?mode=ro"


def _decode_ignore(raw: bytes) -> str:
    # Some Spider databases hold bytes that are not UTF-8; test-suite-sql-eval drops them the same way.
    return raw.decode(errors="ignore")


def execute_sqlite(db_path: str | Path, sql: str, *, timeout: float = DEFAULT_TIMEOUT) -> ExecResult:
    """Run ``sql`` on the SQLite file ``db_path`` opened read-only, stopping it after ``timeout`` seconds.

    The timeout is enforced by SQLite's progress handler, so it also interrupts a long ``fetchall``.  Errors
    (syntax, unknown column, several statements, timeout, a missing file) come back in ``error``, never raised.
    """
    t0 = time.perf_counter()
    deadline = t0 + timeout
    try:
        conn = sqlite3.connect(sqlite_readonly_uri(db_path), uri=True)
    except sqlite3.Error as exc:
        return ExecResult(None, f"cannot open database: {exc}", time.perf_counter() - t0)
    conn.text_factory = _decode_ignore
    conn.set_progress_handler(lambda: 1 if time.perf_counter() > deadline else 0, _PROGRESS_STEPS)
    try:
        cur = conn.cursor()
        cur.execute(sql)
        rows = [tuple(r) for r in cur.fetchall()]
        return ExecResult(rows, None, time.perf_counter() - t0)
    except sqlite3.OperationalError as exc:
        elapsed = time.perf_counter() - t0
        if "interrupted" in str(exc) and elapsed >= timeout:
            return ExecResult(None, f"timeout after {timeout:g} s", elapsed, timed_out=True)
        return ExecResult(None, f"{type(exc).__name__}: {exc}", elapsed)
    except (sqlite3.Error, ValueError, OverflowError) as exc:  # ValueError: e.g. NUL in the SQL text
        return ExecResult(None, f"{type(exc).__name__}: {exc}", time.perf_counter() - t0)
    finally:
        conn.close()


# ---------------------------------------------------------------------------------------------------------------
# Query rewrites and properties (sqlglot)
# ---------------------------------------------------------------------------------------------------------------
def _first_statement(sql: str, dialect: str = "sqlite") -> exp.Expression | None:
    try:
        statements = [s for s in sqlglot.parse(sql, read=dialect) if s is not None]
    except SqlglotError:
        return None
    return statements[0] if statements else None


def _unwrap(node: exp.Expression) -> exp.Expression:
    while isinstance(node, (exp.Subquery, exp.Paren)) and isinstance(node.this, exp.Expression):
        node = node.this
    return node


def has_top_level_order_by(sql: str, dialect: str = "sqlite") -> bool:
    """Whether the outermost query of ``sql`` has an ORDER BY (so its rows come back in a defined order).

    >>> has_top_level_order_by("SELECT a FROM t ORDER BY a")
    True
    >>> has_top_level_order_by("SELECT a FROM t WHERE b = (SELECT b FROM u ORDER BY c LIMIT 1)")
    False
    >>> has_top_level_order_by("SELECT a FROM t UNION SELECT a FROM u ORDER BY a")
    True
    """
    tree = _first_statement(sql, dialect)
    if tree is not None:
        return _unwrap(tree).args.get("order") is not None
    # Unparseable: an ORDER BY token outside every parenthesis.
    try:
        tokens = sqlglot.tokenize(sql, read=dialect)
    except SqlglotError:
        return False
    depth = 0
    for tok in tokens:
        if tok.token_type == TokenType.L_PAREN:
            depth += 1
        elif tok.token_type == TokenType.R_PAREN:
            depth = max(0, depth - 1)
        elif tok.token_type == TokenType.ORDER_BY and depth == 0:
            return True
    return False


def _wordlike(ch: str) -> bool:
    return bool(ch) and (ch.isalnum() or ch in "_\"'`[]*")


def remove_distinct(sql: str, dialect: str = "sqlite") -> str:
    """Drop every DISTINCT keyword from ``sql``, token by token, as test-suite-sql-eval does.

    Like the reference this also turns ``count(DISTINCT x)`` into ``count(x)``.  The text outside the removed
    keywords is kept byte for byte; a string that does not tokenize is returned unchanged.

    >>> remove_distinct("SELECT DISTINCT name FROM t WHERE x = 'distinct'")
    "SELECT name FROM t WHERE x = 'distinct'"
    """
    try:
        tokens = sqlglot.tokenize(sql, read=dialect)
    except SqlglotError:
        return sql
    spans = [(t.start, t.end + 1) for t in tokens if t.token_type == TokenType.DISTINCT]
    if not spans:
        return sql
    out, pos = [], 0
    for start, end in spans:
        out.append(sql[pos:start])
        pos = end
        # the keyword and the blank after it go; keep one separator so tokens do not merge
        while pos < len(sql) and sql[pos] in " \t\r\n":
            pos += 1
        before = "".join(out)[-1:]
        after = sql[pos:pos + 1]
        if _wordlike(before) and _wordlike(after):
            out.append(" ")
    out.append(sql[pos:])
    return "".join(out)


# ---------------------------------------------------------------------------------------------------------------
# Comparing results (test-suite-sql-eval's result_eq, re-implemented)
# ---------------------------------------------------------------------------------------------------------------
def _sorted_row(row: Row) -> Row:
    """The values of ``row`` in a canonical order (mixed types are ordered by text, then type name)."""
    return tuple(sorted(row, key=lambda v: str(v) + str(type(v))))


def _bags_of_sorted_rows_agree(a: Sequence[Row], b: Sequence[Row], ordered: bool) -> bool:
    """Necessary condition for equality under some column permutation (cheap rejection)."""
    sa = [_sorted_row(r) for r in a]
    sb = [_sorted_row(r) for r in b]
    return sa == sb if ordered else set(sa) == set(sb)


def _candidate_permutations(gold: Sequence[Row], pred: Sequence[Row], rng: random.Random
                            ) -> Iterator[tuple[int, ...]]:
    """Column mappings worth trying: ``perm[j]`` is the prediction column placed at gold column ``j``."""
    n = len(gold[0])
    allowed = [set(range(n)) for _ in range(n)]
    if n > 3:
        gold_columns = [{row[j] for row in gold} for j in range(n)]
        for _ in range(20):
            sample = rng.choice(pred)
            for j in range(n):
                for i in list(allowed[j]):
                    if sample[i] not in gold_columns[j]:
                        allowed[j].discard(i)
    for perm in product(*[sorted(s) for s in allowed]):
        if len(set(perm)) == n:
            yield perm


def normalize_floats(rows: Iterable[Row], digits: int) -> list[Row]:
    """Round every float in ``rows`` to ``digits`` significant digits (an opt-in tolerance, not test-suite's)."""
    def norm(v: Any) -> Any:
        return float(f"{v:.{digits}g}") if isinstance(v, float) else v
    return [tuple(norm(v) for v in row) for row in rows]


def _number_or_text(value: Any) -> Any:
    """``value`` as a number when it is text that spells a finite one (``'2024'``, ``' 03'``, ``'4.5'``), else as
    it is."""
    if not isinstance(value, str):
        return value
    try:
        return int(value)
    except ValueError:
        pass
    try:
        number = float(value)
    except ValueError:
        return value
    return number if math.isfinite(number) else value


def numeric_text_as_numbers(rows: Iterable[Row]) -> list[Row]:
    """Every text value that spells a number replaced by that number (an opt-in tolerance, not test-suite's):
    SQLite's ``strftime`` returns text, so ``strftime('%Y', d)`` and ``CAST(strftime('%Y', d) AS INTEGER)`` give the
    same year, and ``'03'`` the same month as ``3``.

    >>> numeric_text_as_numbers([("2024", "03", "2024-03", 1.5, None, "inf")])
    [(2024, 3, '2024-03', 1.5, None, 'inf')]
    """
    return [tuple(_number_or_text(v) for v in row) for row in rows]


def results_equal(gold: Sequence[Row], pred: Sequence[Row], *, ordered: bool, float_digits: int | None = None,
                  seed: int = 0) -> bool:
    """Whether ``pred`` denotes the same result as ``gold``, up to a column permutation.

    Rows are compared as a multiset, or as a list when ``ordered``.  Values compare with Python's ``==`` (so
    ``1 == 1.0`` and ``None == None``); ``float_digits`` rounds floats first.  Two empty results are equal whatever
    their columns.  The row sampling that prunes permutations uses ``seed``, so the answer is deterministic.
    """
    if float_digits is not None:
        gold, pred = normalize_floats(gold, float_digits), normalize_floats(pred, float_digits)
    if not gold and not pred:
        return True
    if len(gold) != len(pred):
        return False
    n = len(gold[0])
    if any(len(r) != n for r in pred):
        return False
    if not _bags_of_sorted_rows_agree(gold, pred, ordered):
        return False
    gold_list = list(gold)
    gold_set = set(gold_list) if not ordered else None
    gold_bag = Counter(gold_list) if not ordered else None
    for perm in _candidate_permutations(gold, pred, random.Random(seed)):
        permuted = list(pred) if n == 1 else [tuple(row[i] for i in perm) for row in pred]
        if ordered:
            if permuted == gold_list:
                return True
        elif set(permuted) == gold_set and Counter(permuted) == gold_bag:
            return True
    return False


@dataclass(frozen=True)
class Score:
    """How one prediction fared: correct?, why not (prediction or gold failure), execution sizes and times."""

    correct: bool
    pred_error: str | None = None
    gold_error: str | None = None
    pred_rows: int | None = None
    gold_rows: int | None = None
    pred_seconds: float = 0.0
    gold_seconds: float = 0.0

    @property
    def exec_failed(self) -> bool:
        """The prediction was missing, did not run, or timed out."""
        return self.pred_error is not None


@dataclass(frozen=True)
class MatchResult(Score):
    """A :class:`Score` from :func:`execution_match`, which also says whether rows were compared in order."""

    ordered: bool = False


def execution_match(db_path: str | Path, pred_sql: str | None, gold_sql: str, *, timeout: float = DEFAULT_TIMEOUT,
                    keep_distinct: bool = False, float_digits: int | None = None,
                    gold_result: ExecResult | None = None,
                    normalize: Callable[[Sequence[Row]], list[Row]] | None = None) -> MatchResult:
    """Score ``pred_sql`` against ``gold_sql`` on the SQLite database ``db_path`` (test-suite semantics).

    ``gold_result`` may pass an already computed gold execution (it must have been run with the same
    ``keep_distinct``).  ``normalize``, when given, maps both row lists before they are compared (an opt-in
    tolerance, e.g. :func:`numeric_text_as_numbers`).  A missing or empty prediction is wrong with ``pred_error``
    set; a gold that fails is wrong with ``gold_error`` set (the runner reports these apart, they should never
    happen).
    """
    ordered = has_top_level_order_by(gold_sql)
    if gold_result is None:
        gold_result = execute_sqlite(db_path, gold_sql if keep_distinct else remove_distinct(gold_sql),
                                     timeout=timeout)
    if not gold_result.ok:
        return MatchResult(False, ordered=ordered, gold_error=gold_result.error, gold_seconds=gold_result.seconds)
    assert gold_result.rows is not None
    if pred_sql is None or not pred_sql.strip():
        return MatchResult(False, ordered=ordered, pred_error="no SQL predicted", gold_rows=len(gold_result.rows),
                           gold_seconds=gold_result.seconds)
    pred_result = execute_sqlite(db_path, pred_sql if keep_distinct else remove_distinct(pred_sql), timeout=timeout)
    if not pred_result.ok:
        return MatchResult(False, ordered=ordered, pred_error=pred_result.error, gold_rows=len(gold_result.rows),
                           pred_seconds=pred_result.seconds, gold_seconds=gold_result.seconds)
    assert pred_result.rows is not None
    gold_rows, pred_rows = gold_result.rows, pred_result.rows
    if normalize is not None:
        gold_rows, pred_rows = normalize(gold_rows), normalize(pred_rows)
    correct = results_equal(gold_rows, pred_rows, ordered=ordered, float_digits=float_digits)
    return MatchResult(correct, ordered=ordered, gold_rows=len(gold_result.rows), pred_rows=len(pred_result.rows),
                       pred_seconds=pred_result.seconds, gold_seconds=gold_result.seconds)


# ---------------------------------------------------------------------------------------------------------------
# Spider hardness
# ---------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class HardnessCounts:
    """The three counts Spider's ``eval_hardness`` classifies on."""

    component1: int
    component2: int
    others: int

    @property
    def level(self) -> str:
        """easy / medium / hard / extra, by the thresholds of the official evaluation.py."""
        c1, c2, o = self.component1, self.component2, self.others
        if c1 <= 1 and o == 0 and c2 == 0:
            return "easy"
        if (o <= 2 and c1 <= 1 and c2 == 0) or (c1 <= 2 and o < 2 and c2 == 0):
            return "medium"
        if (o > 2 and c1 <= 2 and c2 == 0) or (2 < c1 <= 3 and o <= 2 and c2 == 0) or \
                (c1 <= 1 and o == 0 and c2 <= 1):
            return "hard"
        return "extra"


_AGGREGATES = (exp.Count, exp.Max, exp.Min, exp.Sum, exp.Avg)


def _split_condition(node: exp.Expression | None) -> tuple[list[exp.Expression], list[str]]:
    """Flatten an AND/OR tree into its leaves and the connectors between them (parentheses ignored)."""
    if node is None:
        return [], []
    node = node.unnest() if isinstance(node, exp.Paren) else node
    if isinstance(node, exp.Connector) and isinstance(node, (exp.And, exp.Or)):
        left_leaves, left_ops = _split_condition(node.this)
        right_leaves, right_ops = _split_condition(node.expression)
        op = "or" if isinstance(node, exp.Or) else "and"
        return left_leaves + right_leaves, left_ops + [op] + right_ops
    return [node], []


@dataclass(frozen=True)
class _Cond:
    """One condition unit as Spider's parser sees it: negated?, a LIKE?, how many subqueries as its values."""

    negated: bool
    like: bool
    subqueries: int


def _cond_unit(leaf: exp.Expression) -> _Cond:
    negated = isinstance(leaf, exp.Not)
    inner = leaf.this if negated and isinstance(leaf.this, exp.Expression) else leaf
    inner = _unwrap(inner) if isinstance(inner, exp.Paren) else inner
    like = isinstance(inner, (exp.Like, exp.ILike))
    subqueries = 0
    if isinstance(inner, exp.Exists):
        subqueries = 1
    else:
        for key, value in inner.args.items():
            if key == "this":
                continue
            for v in value if isinstance(value, list) else [value]:
                if isinstance(v, (exp.Subquery, exp.Select, exp.SetOperation)):
                    subqueries += 1
    return _Cond(negated, like, subqueries)


def _leading_aggregate(node: exp.Expression | None) -> bool:
    """Whether an expression starts with an aggregate, as Spider's parser records ``agg_id`` for it."""
    if node is None:
        return False
    if isinstance(node, exp.Alias):
        node = node.this
    while isinstance(node, (exp.Paren, exp.Binary)) and not isinstance(node, _AGGREGATES):
        node = node.this
    return isinstance(node, _AGGREGATES)


def _second_operand_aggregate(node: exp.Expression) -> bool:
    node = node.this if isinstance(node, exp.Alias) else node
    node = node.unnest() if isinstance(node, exp.Paren) else node
    if isinstance(node, (exp.Add, exp.Sub, exp.Mul, exp.Div)):
        return _leading_aggregate(node.expression)
    return False


def _main_select(tree: exp.Expression) -> tuple[exp.Expression, int]:
    """The first SELECT of a query and the number of set operations attached to it (0 or 1)."""
    node = _unwrap(tree)
    set_ops = 0
    if isinstance(node, exp.SetOperation):
        set_ops = 1
        while isinstance(node, exp.SetOperation):
            node = _unwrap(node.this)
    return node, set_ops


def hardness_counts(sql: str | exp.Expression, dialect: str = "sqlite") -> HardnessCounts:
    """component1 / component2 / others of Spider's ``eval_hardness``, computed on sqlglot's AST.

    Only the first SELECT counts, as in the official parser's dict: subqueries and the right side of
    UNION / INTERSECT / EXCEPT add one to component2 each, but their own clauses are not counted.
    Two quirks of the official counting are kept because they decide the published labels: in
    ``count_others``, a WHERE condition counts as an "aggregation" when it is negated (``NOT IN``, ``NOT LIKE``), and
    a HAVING clause counts one "aggregation" per negated condition and per AND/OR connector.
    """
    tree = sqlglot.parse_one(sql, read=dialect) if isinstance(sql, str) else sql
    select, set_ops = _main_select(tree)
    if not isinstance(select, exp.Select):
        raise ValueError(f"not a SELECT query: {tree.sql()[:80]}")

    joins = select.args.get("joins") or []
    from_ = select.args.get("from_") or select.args.get("from")
    table_units = (1 if from_ is not None else 0) + len(joins)
    on_leaves: list[exp.Expression] = []
    on_ops: list[str] = []
    for join in joins:
        leaves, ops = _split_condition(join.args.get("on"))
        if leaves and on_leaves:
            on_ops.append("and")
        on_leaves += leaves
        on_ops += ops
    where_node = select.args.get("where")
    where_leaves, where_ops = _split_condition(where_node.this if where_node else None)
    having_node = select.args.get("having")
    having_leaves, having_ops = _split_condition(having_node.this if having_node else None)
    group_node = select.args.get("group")
    group_items = list(group_node.expressions) if group_node else []
    order_node = select.args.get("order")
    order_items = [o.this if isinstance(o, exp.Ordered) else o for o in (order_node.expressions if order_node else [])]
    has_limit = select.args.get("limit") is not None

    on_conds = [_cond_unit(x) for x in on_leaves]
    where_conds = [_cond_unit(x) for x in where_leaves]
    having_conds = [_cond_unit(x) for x in having_leaves]
    all_conds = on_conds + where_conds + having_conds

    component1 = (bool(where_leaves) + bool(group_items) + bool(order_items) + has_limit
                  + max(table_units - 1, 0)
                  + (on_ops + where_ops + having_ops).count("or")
                  + sum(c.like for c in all_conds))
    component2 = sum(c.subqueries for c in all_conds) + set_ops

    aggregations = sum(_leading_aggregate(e) for e in select.expressions)
    aggregations += sum(c.negated for c in where_conds)                # quirk: not_op read as agg_id
    aggregations += sum(_leading_aggregate(g) for g in group_items)
    aggregations += sum(_leading_aggregate(o) + _second_operand_aggregate(o) for o in order_items)
    aggregations += sum(c.negated for c in having_conds) + len(having_ops)  # quirk: connectors count too
    others = (int(aggregations > 1) + int(len(select.expressions) > 1) + int(len(where_leaves) > 1)
              + int(len(group_items) > 1))
    return HardnessCounts(component1, component2, others)


def spider_hardness(sql: str | exp.Expression, schema: Mapping[str, Any] | None = None,
                    dialect: str = "sqlite") -> str:
    """Spider difficulty level (``easy``, ``medium``, ``hard`` or ``extra``) of a SQL query.

    ``schema`` is accepted for parity with Spider's ``eval_hardness(sql)``, whose parser needed the schema to turn
    column names into ids; the counts themselves do not depend on it, so it may be None.

    >>> spider_hardness("SELECT count(*) FROM singer")
    'easy'
    """
    del schema  # the counts are schema-independent
    return hardness_counts(sql, dialect).level


# -- the same rules on Spider's parsed ``sql`` dict (dev.json), used as the oracle --------------------------------
def _dict_has_agg(unit: Any) -> bool:
    # Spider's has_agg: unit[0] != 0.  For a cond unit unit[0] is not_op; for an 'and'/'or' string it is a letter.
    return unit[0] != 0


def hardness_counts_from_spider_sql(sql: Mapping[str, Any]) -> HardnessCounts:
    """The counts of ``eval_hardness`` from the parsed ``sql`` field of a Spider example (official parser output)."""
    where = sql["where"]
    having = sql["having"]
    from_conds = sql["from"]["conds"]
    ao = from_conds[1::2] + where[1::2] + having[1::2]
    cond_units = from_conds[::2] + where[::2] + having[::2]
    like_id = 9  # index of 'like' in WHERE_OPS
    component1 = (bool(where) + bool(sql["groupBy"]) + bool(sql["orderBy"]) + (sql["limit"] is not None)
                  + max(len(sql["from"]["table_units"]) - 1, 0)
                  + sum(1 for t in ao if t == "or") + sum(1 for c in cond_units if c[1] == like_id))
    component2 = sum(isinstance(c[3], dict) + isinstance(c[4], dict) for c in cond_units)
    component2 += sum(sql[k] is not None for k in ("intersect", "except", "union"))
    aggs = sum(_dict_has_agg(u) for u in sql["select"][1])
    aggs += sum(_dict_has_agg(u) for u in where[::2])
    aggs += sum(_dict_has_agg(u) for u in sql["groupBy"])
    if sql["orderBy"]:
        units = [u[1] for u in sql["orderBy"][1] if u[1]] + [u[2] for u in sql["orderBy"][1] if u[2]]
        aggs += sum(_dict_has_agg(u) for u in units)
    aggs += sum(_dict_has_agg(u) for u in having)
    others = (int(aggs > 1) + int(len(sql["select"][1]) > 1) + int(len(where) > 1) + int(len(sql["groupBy"]) > 1))
    return HardnessCounts(component1, component2, others)


def hardness_from_spider_sql(sql: Mapping[str, Any]) -> str:
    """Spider difficulty level from the parsed ``sql`` dict of a Spider example."""
    return hardness_counts_from_spider_sql(sql).level
