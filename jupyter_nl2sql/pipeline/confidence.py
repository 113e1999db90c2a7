"""How sure an answer is, and where to look for another one.

Greedy decoding writes one query; the model's token probabilities say where it hesitated ("``COUNT(*)`` or
``COUNT(DISTINCT``?", "``T2.name`` or ``T1.name``?").  :func:`hesitations` picks those places inside the SQL, most
doubtful first; the pipeline continues the reply from each with the runner-up token (the prompt is not evaluated
again: the engine keeps it), runs every query it gets, and keeps the result most of them share
(:func:`jupyter_nl2sql.pipeline.assistant.vote`).  :class:`Confidence` is what the user sees of it: whether the
model hesitated at all, and how many of the queries agree.

>>> from jupyter_nl2sql.models.base import BranchPoint
>>> points = (BranchPoint("", "```", "SELECT", 0.6, 0.3),
...           BranchPoint("```sql\\nSELECT", " name", " *", 0.55, 0.4),
...           BranchPoint("```sql\\nSELECT name FROM t", "\\n", " ", 0.5, 0.4))
>>> [p.alternative for p in hesitations(points, 0.7)]  # not the fence, not a different space
[' *']
>>> str(Confidence.of_votes(2, 3, lowest=0.55))
'2 of 3 candidate queries agree'
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Sequence

from sqlglot import exp

from ..models.base import FENCE, BranchPoint
from .sqltree import parse_or_none

__all__ = ["Confidence", "hesitations", "join_doubt", "LEVELS"]

#: Confidence levels, from surest.
LEVELS = ("high", "medium", "low")


@dataclass(frozen=True)
class Confidence:
    """How sure an answer is: ``level`` (one of :data:`LEVELS`), how many of the candidate queries written for it
    agree on its result (``agree`` of ``of``; 1 of 1 when the model never hesitated), the probability of the least
    sure token of its SQL (``lowest``, None when the backend cannot tell) and the SQL of the best other result
    (``runner_up``, None without one)."""

    level: str
    agree: int = 1
    of: int = 1
    lowest: float | None = None
    runner_up: str | None = None
    places: tuple[float, ...] = ()
    """The probability of the chosen token at each place another candidate was written from, in their order."""
    reason: str = ""
    """Why the level is lower than the votes say ("" when it is not): what the user is told instead."""

    @classmethod
    def of_votes(cls, agree: int, of: int, *, lowest: float | None = None, runner_up: str | None = None,
                 places: tuple[float, ...] = ()) -> Confidence:
        """The confidence of a result that ``agree`` of ``of`` candidate queries share: high when all do, low when
        at most half do (or none ran), else medium."""
        level = "high" if agree == of and of > 0 else "low" if 2 * agree <= of else "medium"
        return cls(level, agree, of, lowest, runner_up, places)

    def lowered(self, reason: str) -> Confidence:
        """This confidence at the lowest level, saying ``reason`` instead of the votes.

        >>> str(Confidence("high").lowered("the repair dropped the value 'cancelled'"))
        "the repair dropped the value 'cancelled'"
        """
        return dataclasses.replace(self, level=LEVELS[-1], reason=reason)

    def capped(self, level: str, reason: str) -> Confidence:
        """This confidence at ``level`` at most, saying ``reason`` when that lowers it (unchanged otherwise).

        >>> str(Confidence("high").capped("medium", "the query found nothing"))
        'the query found nothing'
        >>> Confidence("low").capped("medium", "the query found nothing").level
        'low'
        """
        if LEVELS.index(self.level) >= LEVELS.index(level):
            return self
        return dataclasses.replace(self, level=level, reason=reason)

    @property
    def hesitated(self) -> bool:
        """True when the model wrote other candidates because it hesitated (or was asked for several)."""
        return self.of > 1

    def __str__(self) -> str:
        if self.reason:
            return self.reason
        if not self.hesitated:
            return {"high": "the model did not hesitate", "medium": "the model hesitated (no other candidate was "
                    "written)"}.get(self.level, "the model's query failed")
        return f"{self.agree} of {self.of} candidate queries agree"

    def to_dict(self) -> dict:
        """JSON-ready fields."""
        return {"level": self.level, "agree": self.agree, "of": self.of, "lowest": self.lowest,
                "runner_up": self.runner_up, "places": list(self.places), "reason": self.reason}


def hesitations(points: Sequence[BranchPoint], unsure_below: float) -> list[BranchPoint]:
    """The places in a reply's SQL where the chosen token's probability was below ``unsure_below`` and the
    runner-up says something else (not only other spacing or case), least sure first.  Places before the SQL
    begins (a fence or a "Here is" preamble) do not count."""
    found = [p for p in points if p.p_chosen < unsure_below and _in_sql(p.reply_before)
             and p.alternative.strip().lower() != p.chosen.strip().lower() and FENCE not in p.alternative
             and FENCE not in p.chosen]
    return sorted(found, key=lambda p: p.p_chosen)


def lowest_in_sql(points: Sequence[BranchPoint]) -> float | None:
    """The least probability of a token inside the SQL among ``points`` (None when there is none: every token
    was at least :data:`~jupyter_nl2sql.models.base.BRANCH_FLOOR` sure)."""
    inside = [p.p_chosen for p in points if _in_sql(p.reply_before)]
    return min(inside) if inside else None


def _in_sql(reply_before: str) -> bool:
    """Whether a reply that reads ``reply_before`` so far is inside its SQL: past an opening fence's line, or
    begun without a fence."""
    if FENCE not in reply_before:
        return bool(reply_before.strip())
    opened = reply_before.find(FENCE)
    return "\n" in reply_before[opened:] and reply_before.count(FENCE) == 1


def join_doubt(sql: str, dialect: str) -> str:
    """Why a query that joins tables is not sure ("" when it joins none, or does not parse): the model picks the
    join keys and which table each column comes from, and on stored runs of Spider *train* questions its answers
    with a join were wrong far more often than the rest, however little it hesitated (README, "Confidence"), so
    such an answer is medium at most.

    >>> join_doubt("SELECT a.x FROM a JOIN b ON a.id = b.id", "sqlite")
    'the query joins 2 tables: check that the join is the one the question means'
    >>> join_doubt("SELECT x FROM a", "sqlite")
    ''
    """
    tree = parse_or_none(sql, dialect)
    if tree is None:
        return ""
    joins = sum(1 for _ in tree.find_all(exp.Join))
    return f"the query joins {joins + 1} tables: check that the join is the one the question means" if joins else ""
