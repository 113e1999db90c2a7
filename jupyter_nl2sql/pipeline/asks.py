"""What a question asks for that its query visibly does not do: a reason to say "medium", not a correction.

Asks a data scientist makes often and a small model drops silently.  From the analyst suite's failures: a year the
question names ("Which month of 2023 had the most cancelled orders?", "net revenue of 2024") that no literal of the
query holds, so the query reads every year; a running total ("cumulative", "running count", "moving average") that
the query computes with no window function nor subquery, so it shows per-period values under a cumulative name.
From Spider train's: a figure "for each" or "in every" something that the query computes once over all rows (no
``GROUP BY``; "per" is left alone: "average miles per gallon" asks for one figure); rows that have "both" of two
values, which the query finds with ``IN`` or ``OR`` (either value), neither intersecting nor counting them; "never"
or "always" (zip codes whose dew point "never reached 70") read by a query that only filters rows one by one.  All
read only the question and the query's syntax tree (sqlglot).

>>> unmet_asks("Which month of 2023 had the most orders?", "SELECT strftime('%Y-%m', d) AS m FROM o GROUP BY m",
...            "sqlite")
'the question names 2023; the query never uses it'
>>> unmet_asks("orders per month with a running total", "SELECT m, COUNT(*) AS n, COUNT(*) AS total FROM o GROUP BY m",
...            "sqlite")
'the question asks for a running total; the query computes none (no window function or subquery)'
>>> unmet_asks("For each round, how many votes are there?", "SELECT COUNT(*) FROM votes", "sqlite")
'the question asks for a figure per round; the query computes one over all rows (no GROUP BY)'
>>> unmet_asks("Studios that worked with both Meyer and Hill", "SELECT studio FROM film WHERE director IN ('Meyer', "
...            "'Hill')", "sqlite")
'the question asks for both; the query accepts either of two values (IN or OR)'
>>> unmet_asks("orders in 2023 per month", "SELECT m, COUNT(*) FROM o WHERE d LIKE '2023%' GROUP BY m", "sqlite")
''
"""

from __future__ import annotations

import re

from sqlglot import exp

from .drift import literals
from .sqltree import parse_or_none

__all__ = ["unmet_asks"]

#: A year the question names: four digits from 1800 to 2099 standing alone ("in 2023", "Q4 2022"; not "1990s").
_YEAR = re.compile(r"(?<![\w.])(1[89]\d\d|20\d\d)(?![\w.])")
#: Words that ask for a total carried from row to row.
_RUNNING = re.compile(r"\b(running (total|count|sum|average)|cumulative|moving average|rolling (sum|average|total))\b")
#: "both" of two things, the rows that have each ("studios that worked with both Meyer and Hill").
#: A figure asked for each member of a group ("for each round", "in every department"); not "per", a rate's word.
_EACH = re.compile(r"\b(?:for|in|within)\s+(?:each|every)\s+([a-z][a-z_-]*)", re.IGNORECASE)
_BOTH = re.compile(r"\bboth\b", re.IGNORECASE)
#: A condition on every row of a group, not on each row alone ("never reached 70", "always below 70").
_EVERY_ROW = re.compile(r"\b(never|always)\b", re.IGNORECASE)


def unmet_asks(question: str, sql: str, dialect: str) -> str:
    """Why the query may not answer ``question`` ("" when nothing it asks for is visibly missing, or the SQL does
    not parse): a year named but held by no literal nor name of the query, a running total computed by no window
    function or subquery, a figure per group computed over all rows, "both" of two values where either would do, or
    "never"/"always" checked row by row."""
    tree = parse_or_none(sql, dialect)
    if tree is None:
        return ""
    held = literals(tree) | {i.name for i in tree.find_all(exp.Identifier)}  # a year in a column's name: "2011 %"
    years = [y for y in dict.fromkeys(_YEAR.findall(question)) if not any(y in value for value in held)]
    if years:
        return f"the question names {', '.join(years)}; the query never uses {'it' if len(years) == 1 else 'them'}"
    if (_RUNNING.search(question.casefold()) and tree.find(exp.Window) is None
            and sum(1 for _ in tree.find_all(exp.Select)) < 2):
        return "the question asks for a running total; the query computes none (no window function or subquery)"
    return _ungrouped(question, tree) or _either(question, tree) or _row_by_row(question, tree)


def _ungrouped(question: str, tree: exp.Expr) -> str:
    """The group a question asks a figure for ("for each round", "in every year") when the query's outermost
    ``SELECT`` aggregates over all its rows: no ``GROUP BY``, no window; "" otherwise."""
    group = _EACH.search(question)
    if group is None or not isinstance(tree, exp.Select) or tree.args.get("group") is not None \
            or tree.find(exp.Window) is not None:
        return ""
    if not any(agg.parent_select is tree for column in tree.expressions for agg in column.find_all(exp.AggFunc)):
        return ""
    return (f"the question asks for a figure per {group.group(1).lower()}; the query computes one over all rows "
            "(no GROUP BY)")


def _either(question: str, tree: exp.Expr) -> str:
    """A "both" question whose query accepts either of two values of a column (``IN`` a list, or ``x = a OR x =
    b``), with no ``INTERSECT`` nor ``HAVING`` to keep the rows that have both; "" otherwise."""
    if not _BOTH.search(question) or tree.find(exp.Intersect, exp.Having) is not None:
        return ""
    listed = any(len(found.expressions) >= 2 for found in tree.find_all(exp.In))
    ored = any(_same_column(found.left, found.right) for found in tree.find_all(exp.Or))
    return "the question asks for both; the query accepts either of two values (IN or OR)" if listed or ored else ""


def _row_by_row(question: str, tree: exp.Expr) -> str:
    """A "never" or "always" question whose query has nothing that reads a group of rows as a whole: no ``EXCEPT``,
    ``NOT IN``, ``NOT EXISTS``, ``IS NULL`` (an outer join's missing rows), ``HAVING``, nor an aggregate; ""
    otherwise."""
    found = _EVERY_ROW.search(question)
    if found is None or tree.find(exp.Except, exp.Having, exp.AggFunc, exp.Is, exp.Exists) is not None \
            or any(isinstance(n.this, exp.In) for n in tree.find_all(exp.Not)):
        return ""
    return (f"the question says {found.group(1).lower()}; the query only filters rows one by one (no NOT IN, "
            "EXCEPT, NOT EXISTS or HAVING)")


def _same_column(left: exp.Expr, right: exp.Expr) -> bool:
    """Both sides of an ``OR`` compare one column to a value with ``=``."""
    sides = [side.unnest() for side in (left, right)]
    if not all(isinstance(side, exp.EQ) and isinstance(side.left, exp.Column) for side in sides):
        return False
    return sides[0].left.sql().casefold() == sides[1].left.sql().casefold()
