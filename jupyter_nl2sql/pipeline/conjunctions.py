"""Conditions that can never hold together: one column equal to two values on the same row.

"Which countries speak both English and French?": a small model writes ``WHERE language = 'English' AND language =
'French'``, which no row satisfies, so the answer is an empty table (or a count of 0) that looks like a fact.
:func:`contradictions` finds such pairs in a ``WHERE`` (the checker refuses them); :func:`intersected` writes what
was meant when the query lists plain columns: the same query once per value, ``INTERSECT``-ed (the rows that have
both).  With an aggregate or a ``LIMIT`` the intersection would be of their results, not of the rows, so those are left
to the model's repair round, which is told what is wrong.  All on the syntax tree (sqlglot).

>>> contradictions("SELECT name FROM c JOIN l ON l.code = c.code WHERE l.lang = 'en' AND l.lang = 'fr'", "sqlite")
["l.lang = 'en' AND l.lang = 'fr'"]
>>> print(intersected("SELECT name FROM c JOIN l ON l.code = c.code WHERE l.lang = 'en' AND l.lang = 'fr'", "sqlite"))
SELECT name FROM c JOIN l ON l.code = c.code WHERE l.lang = 'en' INTERSECT SELECT name FROM c JOIN l ON l.code = c.code WHERE l.lang = 'fr'
"""

from __future__ import annotations

from sqlglot import exp

from .sqltree import parse_or_none

__all__ = ["contradictions", "intersected"]


def contradictions(sql: str | exp.Expr, dialect: str) -> list[str]:
    """The pairs ``col = a AND col = b`` (``a`` and ``b`` different literals) of the queries' ``WHERE`` clauses, as
    text."""
    tree = parse_or_none(sql, dialect)
    if tree is None:
        return []
    return [f"{first.sql(dialect=dialect)} AND {second.sql(dialect=dialect)}"
            for where in tree.find_all(exp.Where) for first, second in _pairs(where)]


def intersected(sql: str, dialect: str) -> str | None:
    """``sql`` (one ``SELECT`` of plain columns whose ``WHERE`` has one contradictory pair) as the same query once
    per value, intersected; None for anything else."""
    tree = parse_or_none(sql, dialect)
    if not isinstance(tree, exp.Select) or tree.args.get("where") is None:
        return None
    pairs = _pairs(tree.args["where"])
    if len(pairs) != 1 or any(tree.args.get(k) for k in ("group", "having", "limit", "order")) \
            or tree.find(exp.AggFunc, exp.Window) is not None or len(list(tree.find_all(exp.Where))) != 1:
        return None
    first, second = pairs[0]
    halves = []
    for drop in (second, first):
        half = tree.copy()
        target = next(node for node in half.args["where"].find_all(exp.EQ) if node == drop)
        target.replace(exp.true())
        halves.append(_simplified(half))
    return exp.intersect(*halves, distinct=True).sql(dialect=dialect)


def _simplified(select: exp.Select) -> exp.Select:
    """``select`` with the ``TRUE`` put in place of a dropped condition taken out of its ``AND`` chain."""
    where = select.args["where"]
    kept = [c for c in _conjuncts(where.this) if not isinstance(c, exp.Boolean)]
    select.set("where", exp.Where(this=exp.and_(*kept)) if kept else None)
    return select


def _conjuncts(condition: exp.Expr) -> list[exp.Expr]:
    """The terms of a top-level ``AND`` chain (parentheses looked through)."""
    condition = condition.unnest()
    if isinstance(condition, exp.And):
        return _conjuncts(condition.this) + _conjuncts(condition.expression)
    return [condition]


def _pairs(where: exp.Where) -> list[tuple[exp.EQ, exp.EQ]]:
    """(first, second) for each term ``col = b`` of the ``AND`` chain whose column an earlier term set to another
    literal ``a``."""
    seen: dict[str, exp.EQ] = {}
    pairs = []
    for term in _conjuncts(where.this):
        if not (isinstance(term, exp.EQ) and isinstance(term.this, exp.Column)
                and isinstance(term.expression, exp.Literal)):
            continue
        key = term.this.sql().casefold()
        first = seen.setdefault(key, term)
        if first is not term and first.expression != term.expression:
            pairs.append((first, term))
    return pairs
