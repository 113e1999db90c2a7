"""Round what the question asks to be rounded.

"What percentage of orders were cancelled? Round to 1 decimal." A small model writes the share right and leaves
``33.33333333333333`` unrounded more often than not; the user asked for ``33.3``.  :func:`asked_decimals` reads the
number of decimals from the question's English ("rounded to 2 decimals", "1 decimal place", "to the nearest whole
number"); :func:`rounded_as_asked` wraps each column of the query's outermost ``SELECT`` that computes a fraction
(a division, an average, a cast to a floating type) and is not rounded yet in ``ROUND(..., n)``, on the syntax tree
(sqlglot), keeping its name.  The pipeline runs the rounded query and says so.

>>> asked_decimals("What percentage of orders were cancelled? Round to 1 decimal."), asked_decimals("How many?")
(1, None)
>>> rounded_as_asked("SELECT name, AVG(price) AS avg_price, COUNT(*) FROM t GROUP BY name", 2, "sqlite")
('SELECT name, ROUND(AVG(price), 2) AS avg_price, COUNT(*) FROM t GROUP BY name', ['avg_price'])
>>> rounded_as_asked("SELECT ROUND(AVG(price), 2) FROM t", 2, "sqlite") is None
True
"""

from __future__ import annotations

import re

from sqlglot import exp

from .sqltree import parse_or_none

__all__ = ["asked_decimals", "rounded_as_asked"]

_NUMBERS = {"no": 0, "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4}
# English in the question, not SQL: "rounded to 2 decimals", "1 decimal place", "two decimal digits", "(1 dp)"
_DECIMALS = re.compile(r"\b(\d|no|zero|one|two|three|four)\s+(?:decimals?|decimal\s+(?:places?|digits?)|dp)\b",
                       re.IGNORECASE)
_WHOLE = re.compile(r"\bround(?:ed|ing)?\s+(?:\w+\s+)?to\s+(?:the\s+nearest\s+)?(?:whole\s+number|integer)",
                    re.IGNORECASE)
#: Types whose values are fractions: a cast to one of them says the column is not a whole number.
_FRACTIONAL_TYPES = {exp.DataType.Type.FLOAT, exp.DataType.Type.DOUBLE, exp.DataType.Type.DECIMAL}


def asked_decimals(question: str) -> int | None:
    """How many decimals the question asks its numbers to be rounded to, or None when it does not say."""
    found = _DECIMALS.search(question)
    if found:
        word = found.group(1).lower()
        return int(word) if word.isdigit() else _NUMBERS[word]
    return 0 if _WHOLE.search(question) else None


def rounded_as_asked(sql: str, decimals: int, dialect: str) -> tuple[str, list[str]] | None:
    """``sql`` with each fractional column of its outermost ``SELECT`` rounded to ``decimals`` and the names of
    those columns (``"column 2"`` for one without a name), or None when there is none to round (or the SQL does
    not parse as one ``SELECT``)."""
    tree = parse_or_none(sql, dialect)
    if not isinstance(tree, exp.Select):
        return None
    rounded: list[str] = []
    projections = []
    for position, projection in enumerate(tree.expressions, 1):
        value = projection.unalias()
        if not _fractional(value):
            projections.append(projection)
            continue
        name = projection.alias or f"column {position}"
        number = exp.cast(value.copy(), "DECIMAL") if dialect in ("postgres", "postgresql") else value.copy()
        new = exp.Round(this=number, decimals=exp.Literal.number(decimals))
        projections.append(exp.alias_(new, projection.alias) if projection.alias else new)
        rounded.append(name)
    if not rounded:
        return None
    tree.set("expressions", projections)
    return tree.sql(dialect=dialect), rounded


def _fractional(value: exp.Expr) -> bool:
    """Whether a projection computes a fraction that is not rounded yet: a division, an average or a cast to a
    floating type anywhere in it, and no ROUND (or other rounding) around it."""
    if isinstance(value, (exp.Floor, exp.Ceil, exp.Star, exp.Count, exp.Column, exp.Literal)):
        return False
    if value.find(exp.Round) is not None:  # the projection itself or a part of it
        return False
    if value.find(exp.Div, exp.Avg) is not None:
        return True
    return any(cast.to.this in _FRACTIONAL_TYPES for cast in value.find_all(exp.Cast))
