"""What a question asks for that its query visibly does not do: a reason to say "medium", not a correction.

Two asks a data scientist makes often and a small model drops silently (the analyst suite's failures): a year the
question names ("Which month of 2023 had the most cancelled orders?", "net revenue of 2024") that no literal of the
query holds, so the query reads every year; and a running total ("cumulative", "running count", "moving average")
that the query computes with no window function nor subquery, so it shows per-period values under a cumulative
name.  Both read only the question and the query's syntax tree (sqlglot).

>>> unmet_asks("Which month of 2023 had the most orders?", "SELECT strftime('%Y-%m', d) AS m FROM o GROUP BY m",
...            "sqlite")
'the question names 2023; the query never uses it'
>>> unmet_asks("orders per month with a running total", "SELECT m, COUNT(*) AS n, COUNT(*) AS total FROM o GROUP BY m",
...            "sqlite")
'the question asks for a running total; the query computes none (no window function or subquery)'
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


def unmet_asks(question: str, sql: str, dialect: str) -> str:
    """Why the query may not answer ``question`` ("" when nothing it asks for is visibly missing, or the SQL does
    not parse): a year named but held by no literal nor name of the query, or a running total computed by no window
    function or subquery."""
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
    return ""
