"""What a repair round dropped that the question asked for.

When the model's first query fails and its repair runs, the repaired query may answer another question: the
failing part is gone, and with it sometimes a condition or an aggregate the question asked for ("orders that were
cancelled" answered for all orders, an average become a list).  :func:`dropped_asks` compares the two queries on
their syntax trees (sqlglot): a literal of the first query that the question spells out word for word and the
repaired query no longer has (nor any literal holding it), and an aggregate the question names ("average", "total",
"how many", "highest", "lowest") that the first query computed and the repaired one does not.  The Assistant says
so in a warning and marks the answer low-confidence: replayed on stored Spider predictions, most such answers were
wrong, but not all, so they are shown, not refused.

>>> dropped_asks("How many orders were cancelled?", "SELECT COUNT(*) FROM orders WHERE state = 'cancelled'",
...              "SELECT COUNT(*) FROM orders", "sqlite")
["the value 'cancelled'"]
>>> dropped_asks("Average price per category", "SELECT category, AVG(price) FROM p GROUP BY category",
...              "SELECT category, price FROM p", "sqlite")
['the average (AVG)']
>>> dropped_asks("How many orders were cancelled?", "SELECT COUNT(*) FROM order WHERE status = 'cancelled'",
...              "SELECT COUNT(*) FROM orders WHERE status = 'cancelled'", "sqlite")
[]
"""

from __future__ import annotations

import re

from sqlglot import exp

from .sqltree import parse_or_none

__all__ = ["dropped_asks", "literals"]

#: Aggregates and the words of a question that ask for them.
_ASKED_BY: tuple[tuple[type[exp.Expr], str, tuple[str, ...]], ...] = (
    (exp.Avg, "the average (AVG)", ("average", "mean")),
    (exp.Sum, "the total (SUM)", ("total", "sum")),
    (exp.Count, "the count (COUNT)", ("how many", "number of", "count")),
    (exp.Max, "the maximum (MAX)", ("maximum", "highest", "largest", "most")),
    (exp.Min, "the minimum (MIN)", ("minimum", "lowest", "smallest", "least")),
)
_WORD = re.compile(r"[^\W_]+")


def dropped_asks(question: str, first: str, repaired: str, dialect: str) -> list[str]:
    """What the ``first`` query had that ``question`` asks for and the ``repaired`` query lacks, each said as a
    phrase ("the value 'cancelled'", "the average (AVG)"); [] when nothing was dropped or either query does not
    parse."""
    before, after = parse_or_none(first, dialect), parse_or_none(repaired, dialect)
    if before is None or after is None:
        return []
    asked = question.casefold()
    words = set(_WORD.findall(asked))
    kept = literals(after)
    out = [f"the value '{value}'" for value in sorted(literals(before) - kept)
           if _WORD.findall(value) and set(_WORD.findall(value)) <= words
           and not any(value in other or other in value for other in kept)]
    out += [said for kind, said, cues in _ASKED_BY
            if before.find(kind) is not None and after.find(kind) is None
            and any(re.search(rf"\b{cue}\b", asked) for cue in cues)]
    return out


def literals(tree: exp.Expr) -> set[str]:
    """The string and number literals of ``tree``, lower case."""
    return {str(lit.this).strip().casefold() for lit in tree.find_all(exp.Literal) if str(lit.this).strip()}
