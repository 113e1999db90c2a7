"""What a follow-up's query keeps of the previous one, and what it must not add.

A follow-up usually refines the query before it ("now just the cancelled ones", "highest paid first", "only those that
ended at station 50"), and a small model, rewriting that query, often drops one of its conditions (the answer then
counts every year, not 2024) or appends ``ORDER BY ... LIMIT 1`` that nobody asked for (one row of seven is shown,
and nothing says the others were cut).  Two checks, both on the SQL's syntax tree (sqlglot) and on English cues in
the question:

- :func:`kept_conditions`: a ``WHERE``/``HAVING`` condition of the previous query on tables the new query still reads,
  whose columns the new query no longer constrains at all and whose values it does not compare another column with
  ("and how many started there?" moves the station from the end column to the start one), is added back, unless
  the follow-up reads as widening
  the question (:func:`widens`: "for all years", "both categories", "without the filter") or stands on its own
  (see :func:`~jupyter_nl2sql.pipeline.conversation.looks_like_follow_up`; the caller decides);
- :func:`unasked_limit`: the new query's outermost ``LIMIT`` is left out when the previous query had none and the
  follow-up does not ask for a number of rows (:func:`asks_for_a_limit`: "top 10", "just the top 3", "which one is
  the lowest?", "the 5 biggest").

The pipeline runs the changed query and says what changed.

>>> asks_for_a_limit("sorted by revenue, highest first"), asks_for_a_limit("which city has the most?")
(False, True)
>>> unasked_limit("SELECT name FROM t ORDER BY n DESC LIMIT 1", "SELECT name FROM t", "highest first", "sqlite")
'SELECT name FROM t ORDER BY n DESC'
>>> kept_conditions("SELECT COUNT(*) FROM o WHERE status = 'x'", "SELECT COUNT(*) FROM o AS a WHERE a.y = 2024",
...                 "now just the x ones", "sqlite", {"o": {"status": "TEXT", "y": "INT"}})
("SELECT COUNT(*) FROM o WHERE status = 'x' AND o.y = 2024", ['a.y = 2024'])
"""

from __future__ import annotations

import re
from typing import Mapping

from sqlglot import exp

from .sqltree import parse_or_none

__all__ = ["asks_for_a_limit", "outer_limit", "unasked_limit", "kept_conditions", "widens"]

_NUMBER = "|".join(r"\d+ one two three four five six seven eight nine ten eleven twelve fifteen twenty fifty "
                   "hundred dozen couple few handful".split())
_SUPERLATIVE = "|".join("most least best worst top bottom highest lowest biggest smallest largest greatest fewest "
                        "cheapest dearest priciest latest earliest oldest newest youngest longest shortest heaviest "
                        "lightest fastest slowest richest poorest busiest".split())
# English question text (never SQL).  A superlative that says how to sort ("highest first", "from most to least",
# "by latest") does not ask for a number of rows; one that picks ("which one is the lowest?", "the most") does.
_SORTING = re.compile(rf"\b(?:from|to|by)\s+(?:the\s+)?(?:{_SUPERLATIVE})\b|"
                      rf"\b(?:{_SUPERLATIVE})\s+(?:\w+\s+)?(?:first|last|to|on top|at the top)\b")
_PICKS = re.compile(rf"\b(?:{_SUPERLATIVE}|first|last)\b|\b(?:which|what|who)\s+one\b|"
                    r"\bthe one\b|\bsingle\b|\blimit\b")
# "top 10", "the first 5", "just 3", "10 biggest", "5 rows": a count of rows (not "more than 3", "in 2024")
_COUNT = re.compile(rf"\b(?:top|bottom|first|last|just|only|the|show|give|list|limit)\s+(?:me\s+)?(?:the\s+)?"
                    rf"(?:{_NUMBER})\b(?!\s*(?:%|percent))|"
                    rf"\b(?:{_NUMBER})\s+(?:rows|results|records|entries|ones|{_SUPERLATIVE})\b")


def asks_for_a_limit(question: str) -> bool:
    """Whether ``question`` asks for a number of rows or for the one row that is the most/least of something.

    >>> [asks_for_a_limit(q) for q in ("top 10 instead", "just the top 3", "which one is the lowest?",
    ...                                 "show the 5 biggest", "what is the most expensive product?")]
    [True, True, True, True, True]
    >>> [asks_for_a_limit(q) for q in ("biggest first", "most recent first", "from highest to lowest",
    ...      "list them with their salaries", "only customers with more than 3 orders", "and in 2024?")]
    [False, False, False, False, False, False]
    """
    text = " ".join(question.lower().split())
    if _COUNT.search(text):
        return True
    return bool(_PICKS.search(_SORTING.sub(" ", text)))


def outer_limit(sql: str, dialect: str) -> exp.Expr | None:
    """The ``LIMIT`` of ``sql``'s outermost query (a SELECT, or a UNION's own), or None (none, or SQL sqlglot
    cannot read)."""
    tree = parse_or_none(sql, dialect)
    return tree.args.get("limit") if isinstance(tree, (exp.Select, exp.SetOperation)) else None


def unasked_limit(sql: str, previous_sql: str | None, question: str, dialect: str) -> str | None:
    """``sql`` without its outermost ``LIMIT`` when the follow-up ``question`` did not ask for one and the previous
    query (``previous_sql``) had none; None when the limit stays (or there is none, or no previous query)."""
    if not previous_sql or asks_for_a_limit(question):
        return None
    tree = parse_or_none(sql, dialect)
    if not isinstance(tree, (exp.Select, exp.SetOperation)) or tree.args.get("limit") is None \
            or tree.args.get("offset") is not None or outer_limit(previous_sql, dialect) is not None:
        return None
    tree.set("limit", None)
    return tree.sql(dialect=dialect)


# "for all years", "both categories", "without the filter", "in any city", "overall", "everyone": the follow-up
# asks for more than the previous question, so its dropped conditions were dropped on purpose
_WIDENS = re.compile(r"\b(?:all|any|every|everyone|everything|both|either|overall|regardless|without|irrespective|"
                     r"whole|entire|ignore|ignoring|remove|drop|no longer|not just|not only|as well|too|also|"
                     r"instead of|in general|altogether)\b")


def widens(question: str) -> bool:
    """Whether the follow-up ``question`` asks for more than the question before (so a condition it drops stays
    dropped).

    >>> [widens(q) for q in ("now for all years", "both categories, cheapest first", "and from Canada too?")]
    [True, True, True]
    >>> [widens(q) for q in ("now just the cancelled ones", "highest paid first", "split that by month")]
    [False, False, False]
    """
    return bool(_WIDENS.search(" ".join(question.lower().split())))


def kept_conditions(sql: str, previous_sql: str | None, question: str, dialect: str,
                    schema: Mapping[str, Mapping[str, str]]) -> tuple[str, list[str]] | None:
    """``sql`` with the conditions of ``previous_sql`` that it dropped added back (see the module), and those
    conditions as the previous query wrote them; None when nothing is added (nothing dropped, a widening follow-up,
    SQL this cannot follow: a UNION, a subquery in FROM or in the condition, a table read twice)."""
    if not previous_sql or widens(question):
        return None
    new, old = parse_or_none(sql, dialect), parse_or_none(previous_sql, dialect)
    if not isinstance(new, exp.Select) or not isinstance(old, exp.Select):
        return None
    columns = {t.lower(): {c.lower() for c in cols} for t, cols in schema.items()}
    new_tables = _tables(new)
    old_sources, new_sources = _sources(_tables(old)), _sources(new_tables)
    if old_sources is None or new_sources is None:
        return None
    by_table: dict[str, list[str]] = {}  # table -> its aliases in the new query, as written there
    for source in new_tables:
        by_table.setdefault(source.name.lower(), []).append(source.alias_or_name)
    constrained, values = set(), set()
    for cond in _conjuncts(new, "where") + _conjuncts(new, "having"):
        constrained |= _resolved(cond, new_sources, columns) or set()
        values |= _literals(cond)
    same_groups = _groups(old, old_sources, columns) == _groups(new, new_sources, columns)
    added: list[str] = []
    for clause in ("where", "having"):
        for cond in _conjuncts(old, clause):
            if cond.find(exp.Subquery, exp.Select) is not None:
                continue
            used = _resolved(cond, old_sources, columns)
            if used is None or any(len(by_table.get(t, ())) != 1 for t, _ in used) or used & constrained:
                continue
            if clause == "having" and (not same_groups or new.args.get("having") is not None):
                continue
            if clause == "where" and not used:
                continue
            compared = _literals(cond)
            if compared and compared <= values:  # its value moved to another column ("started there")
                continue
            moved = cond.copy()
            for col in moved.find_all(exp.Column):
                table = _table_of(col, old_sources, columns)
                col.set("table", exp.to_identifier(by_table[table][0]))
            getattr(new, clause)(moved, append=True, copy=False)
            added.append(cond.sql(dialect=dialect))
    return (new.sql(dialect=dialect), added) if added else None


def _tables(select: exp.Select) -> list[exp.Table] | None:
    """The top-level FROM and JOIN tables of ``select``; None when one of them is not a table (a subquery)."""
    out = []
    for node in [select.args.get("from_") or select.args.get("from"), *(select.args.get("joins") or [])]:
        if node is None:
            continue
        if not isinstance(node.this, exp.Table):
            return None
        out.append(node.this)
    return out


def _sources(tables: list[exp.Table] | None) -> dict[str, str] | None:
    """``tables`` (see :func:`_tables`) by alias (or name), both lower case; None without any (or with a derived
    table)."""
    return {t.alias_or_name.lower(): t.name.lower() for t in tables} or None if tables else None


def _table_of(col: exp.Column, sources: Mapping[str, str], columns: Mapping[str, set[str]]) -> str | None:
    """The table (lower case) ``col`` belongs to among ``sources``: its qualifier's, or the one table that has it."""
    if col.table:
        return sources.get(col.table.lower())
    owners = {t for t in sources.values() if col.name.lower() in columns.get(t, ())}
    return owners.pop() if len(owners) == 1 else None


def _resolved(cond: exp.Expr, sources: Mapping[str, str],
              columns: Mapping[str, set[str]]) -> set[tuple[str, str]] | None:
    """The (table, column) pairs ``cond`` reads; None when one of them cannot be placed."""
    out = set()
    for col in cond.find_all(exp.Column):
        table = _table_of(col, sources, columns)
        if table is None:
            return None
        out.add((table, col.name.lower()))
    return out


def _literals(cond: exp.Expr) -> set[str]:
    """The literal values ``cond`` compares with (strings as written, numbers as numbers)."""
    return {lit.this if lit.is_string else str(float(lit.this)) for lit in cond.find_all(exp.Literal)
            if lit.is_string or lit.is_number}


def _conjuncts(select: exp.Select, clause: str) -> list[exp.Expr]:
    node = select.args.get(clause)
    return list(node.this.flatten()) if node is not None and isinstance(node.this, exp.And) else (
        [node.this] if node is not None else [])


def _groups(select: exp.Select, sources: Mapping[str, str],
            columns: Mapping[str, set[str]]) -> frozenset[tuple[str, str]] | None:
    group = select.args.get("group")
    if group is None:
        return frozenset()
    found = set()
    for item in group.expressions:
        placed = _resolved(item, sources, columns)
        if placed is None:
            return None
        found |= placed
    return frozenset(found)
