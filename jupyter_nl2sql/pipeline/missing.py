"""Questions that name a table the database does not have: said before any model is asked.

"How many unicorns are in the zoo table?" on a database without anything like a zoo table cannot be answered
from it; a model asked anyway writes a count from some other table.  :func:`missing_tables` finds the tables a
question names explicitly ("the zoo table", "the TV Channel table", "a table called zoo") and keeps those that are
unlike every table *and* column of the schema (same letters up to case, spacing and underscores, a plural, one
name inside the other, or a close spelling all count as alike), so a question that names the schema's things in
its own words is never refused.  It is deliberately narrow: only an explicit "... table" is read.

>>> missing_tables("How many unicorns are in the zoo table?", ["employees", "departments"], ["name"])
[('zoo', None)]
>>> missing_tables("List the names in the employee table", ["employees", "departments"], ["name"])
[]
>>> refusal(missing_tables("Rows of the departmnts table?", ["employees"], []), ["employees"])
"can't answer that from this database: it has no table departmnts; its tables: employees"
"""

from __future__ import annotations

import difflib
import re
from typing import Iterable, Sequence

from .namefix import squash

__all__ = ["missing_tables", "refusal"]

# Question text (English), not SQL: "the zoo table", "the `TV Channel` table", "a table called zoo".
_NAMED = re.compile(r"\b(?:the|a|an)\s+[\"'`]?((?:[\w-]+\s+){0,2}?[\w-]+)[\"'`]?\s+table\b", re.IGNORECASE)
_CALLED = re.compile(r"\btables?\s+(?:called|named)\s+[\"'`]?([\w-]+)", re.IGNORECASE)
#: Words before "table" that do not name one ("the same table", "the whole table").
_NOT_NAMES = frozenset("""same following whole main previous result results joined above below given first second
third last other another each every entire new temporary one lookup database data this that which what right wrong
correct relevant appropriate original single separate big large small full final""".split())
_FUNCTION_WORDS = frozenset("a an the of in on at by for from to with and or all any some its their".split())
_CLOSE = 0.75


def missing_tables(question: str, tables: Sequence[str], columns: Iterable[str] = ()) -> list[tuple[str, str | None]]:
    """The tables ``question`` names that are unlike every name in ``tables`` and ``columns``, each with the
    nearest table name (or None when none is close): ``[("zoo", None)]``; [] when it names none or only known ones."""
    names = [m.group(1) for m in _NAMED.finditer(question)] + [m.group(1) for m in _CALLED.finditer(question)]
    known = [squash(n) for n in [*tables, *columns] if squash(n)]
    out: list[tuple[str, str | None]] = []
    for phrase in dict.fromkeys(names):
        words = phrase.split()
        cut = max((i + 1 for i, w in enumerate(words) if w.lower() in _FUNCTION_WORDS), default=0)
        words = words[cut:]  # "the rows of a table": no name
        if not words or all(w.lower() in _NOT_NAMES for w in words) or words[-1].isdigit():
            continue
        name = " ".join(words)
        # "the TV Channel table": "channel", "tvchannel" and the whole phrase may each be the name
        spans = [squash("".join(words[i:])) for i in range(len(words))]
        if any(_alike(span, k) for span in spans if span for k in known):
            continue
        out.append((name, _nearest(name, tables)))
    return out


def refusal(missing: list[tuple[str, str | None]], tables: Sequence[str]) -> str:
    """One line saying what the database lacks, with a did-you-mean or the list of its tables."""
    parts = []
    for name, near in missing:
        parts.append(f"no table {name}" + (f" (did you mean {near}?)" if near else ""))
    shown = ", ".join(sorted(tables)[:12]) + (", ..." if len(tables) > 12 else "")
    return f"can't answer that from this database: it has {'; '.join(parts)}; its tables: {shown}"


def _alike(a: str, b: str) -> bool:
    if a == b or a.rstrip("s") == b.rstrip("s") or a.removesuffix("es") == b or b.removesuffix("es") == a:
        return True
    if min(len(a), len(b)) >= 3 and (a in b or b in a):
        return True
    return difflib.SequenceMatcher(None, a, b).ratio() >= _CLOSE


def _nearest(name: str, tables: Sequence[str]) -> str | None:
    by_key = {squash(t): t for t in tables}
    close = difflib.get_close_matches(squash(name), list(by_key), n=1, cutoff=0.6)
    return by_key[close[0]] if close else None
