"""Running totals over groups: a window's aggregate must read the group's aggregate, not one of its rows.

"Revenue by month with a running total": a small model writes ``SELECT month, SUM(amount), SUM(amount) OVER (ORDER
BY month) FROM payments GROUP BY month``.  The window runs after the grouping, where ``amount`` is no longer one
value: PostgreSQL and DuckDB refuse the query, and SQLite answers with one arbitrary row's amount per month, a
silent wrong total.  What was meant is the running sum of the months' sums, ``SUM(SUM(amount)) OVER (...)``.

:func:`ungrouped_windows` finds such windows in a grouped query (the checker refuses them); :func:`nest_windows`
writes the aggregate inside for ``SUM``, ``MIN`` and ``MAX``, where the meaning is plain (a running total, a running
minimum or maximum).  All on the syntax tree (sqlglot).

>>> ungrouped_windows("SELECT m, SUM(a) OVER (ORDER BY m) FROM t GROUP BY m", "sqlite")
['SUM(a) OVER (ORDER BY m)']
>>> nest_windows("SELECT m, SUM(a) OVER (ORDER BY m) FROM t GROUP BY m", "sqlite")
'SELECT m, SUM(SUM(a)) OVER (ORDER BY m) FROM t GROUP BY m'
"""

from __future__ import annotations

from sqlglot import exp

from .sqltree import parse_or_none

__all__ = ["ungrouped_windows", "nest_windows"]

#: Window aggregates whose group-level meaning is the same aggregate of the groups' aggregates.
_NESTABLE = (exp.Sum, exp.Min, exp.Max)


def ungrouped_windows(sql: str | exp.Expr, dialect: str) -> list[str]:
    """The window aggregates of a grouped ``SELECT`` that read a column neither grouped nor aggregated."""
    return [window.sql(dialect=dialect) for window, _ in _found(sql, dialect)]


def nest_windows(sql: str, dialect: str) -> str | None:
    """``sql`` with each :func:`ungrouped_windows` ``SUM``, ``MIN`` or ``MAX`` reading the same aggregate of its
    groups, or None when there is none of those (or another kind is among them)."""
    tree = parse_or_none(sql, dialect)
    found = _found(tree, dialect) if tree is not None else []
    if not found or any(not isinstance(window.this, _NESTABLE) for window, _ in found):
        return None
    for window, _ in found:
        inner = window.this
        inner.set("this", type(inner)(this=inner.this))
    return tree.sql(dialect=dialect)


def _found(sql: str | exp.Expr, dialect: str) -> list[tuple[exp.Window, exp.Select]]:
    """(window, its SELECT) for each window aggregate over an ungrouped, unaggregated column."""
    tree = parse_or_none(sql, dialect)
    if tree is None:
        return []
    out = []
    for select in tree.find_all(exp.Select):
        group = select.args.get("group")
        if group is None:
            continue
        keys = {key.sql(dialect=dialect).casefold() for key in group.expressions}
        aliases = {p.alias.casefold() for p in select.expressions if p.alias}
        for projection in select.expressions:
            for window in projection.find_all(exp.Window):
                if not isinstance(window.this, exp.AggFunc) or window.parent_select is not select:
                    continue
                columns = [c for c in window.this.find_all(exp.Column)
                           if c.find_ancestor(exp.AggFunc) is window.this]
                if any(c.sql(dialect=dialect).casefold() not in keys and c.name.casefold() not in keys | aliases
                       for c in columns):
                    out.append((window, select))
    return out
