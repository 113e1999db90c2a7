"""The top rows of each group, when the question asks for them.

"The 2 biggest spenders in each country", "for each year, the top 3 products by revenue", "the highest paid
employee in every department": a small model writes the ranking right but keeps the top rows of the whole result
(``ORDER BY spend DESC LIMIT 2``: two customers in all, not two a country) or none (``ORDER BY salary DESC``: every
employee).  :func:`asked_group` reads the group from the question's English ("in each country", "for every
department", "per year"); :func:`top_per_group` finds the query's columns for that group (a column, an output name
or the columns of a table of that name), and, when the query ranks with ``ORDER BY`` and either keeps ``LIMIT n``
rows or the question asks for the most of something, ranks within each group instead, on the syntax tree
(sqlglot): ``ROW_NUMBER() OVER (PARTITION BY <group> ORDER BY <the query's order>)`` in a subquery, keeping the first
``n`` of each group (1 for a plain superlative), under the query's own column names.  The pipeline runs the new
query and says so.

>>> asked_group("The 2 biggest spenders in each country: name and spend")
'country'
>>> print(top_per_group("SELECT c.country, c.name, SUM(o.total) AS spend FROM customers AS c JOIN orders AS o "
...                     "ON o.customer_id = c.customer_id GROUP BY c.country, c.name ORDER BY spend DESC LIMIT 2",
...                     "The 2 biggest spenders in each country", "sqlite")[0])  # doctest: +NORMALIZE_WHITESPACE
SELECT country, name, spend FROM (SELECT c.country, c.name, SUM(o.total) AS spend, ROW_NUMBER() OVER (PARTITION
BY c.country ORDER BY SUM(o.total) DESC) AS group_rank FROM customers AS c JOIN orders AS o ON o.customer_id =
c.customer_id GROUP BY c.country, c.name) AS ranked WHERE group_rank <= 2 ORDER BY country, group_rank
"""

from __future__ import annotations

import re

from sqlglot import exp

from .examples import identifier_words
from .namefix import squash
from .sqltree import parse_or_none

__all__ = ["asked_group", "top_per_group"]

# English in the question, not SQL: "in each country", "for every department", "within each year", "per genre".
_GROUP = re.compile(r"\b(?:(?:in|for|within|of|from)\s+(?:each|every)|per)\s+([a-z][a-z_-]*)", re.IGNORECASE)
# "the most", "highest", "top 3", "best-selling", "single largest", "biggest": a ranking asked for.
_SUPERLATIVE = re.compile(r"\b(?:top|most|least|fewest|best|worst|highest|lowest|largest|smallest|biggest|"
                          r"greatest|longest|shortest|cheapest|oldest|youngest|newest|latest|earliest)\b",
                          re.IGNORECASE)
_COUNT = re.compile(r"\b(?:top|the)\s+(\d+|two|three|four|five|ten)\b", re.IGNORECASE)
_NUMBERS = {"two": 2, "three": 3, "four": 4, "five": 5, "ten": 10}
#: Name of the rank column the rewritten query adds (not among the outputs).
RANK = "group_rank"


def asked_group(question: str) -> str | None:
    """The thing the question ranks within ("country" of "... in each country"), or None when it names none."""
    found = _GROUP.search(question)
    return found.group(1).lower() if found else None


def top_per_group(sql: str, question: str, dialect: str) -> tuple[str, str] | None:
    """``sql`` keeping its top rows within each group that ``question`` names, and the group as written in the
    query; None when the question names no group or asks for no ranking, when the query does not rank (no
    ``ORDER BY``) or already ranks within the group, or when its columns for the group cannot be told."""
    group = asked_group(question)
    if group is None or not _SUPERLATIVE.search(question):
        return None
    tree = parse_or_none(sql, dialect)
    order = tree.args.get("order") if isinstance(tree, exp.Select) else None
    if not isinstance(tree, exp.Select) or order is None or tree.find(exp.Window) is not None \
            or tree.args.get("distinct") or any(isinstance(p.unalias(), exp.Star) for p in tree.expressions):
        return None
    keep = _kept(tree, question)
    if keep is None:
        return None
    keys = list((tree.args.get("group") or exp.Group()).expressions)
    partition = _group_columns(tree, group, keys or [p.unalias() for p in tree.expressions])
    if not partition or (keys and len(partition) >= len(keys)):
        return None  # the group is not in the query, or it is the whole grouping: one row a group already
    names = _output_names(tree)
    if names is None:
        return None
    aliases = {p.alias.lower(): p.unalias() for p in tree.expressions if p.alias}
    ranking = [_expanded(o.copy(), aliases, tree.expressions) for o in order.expressions]
    window = exp.Window(this=exp.RowNumber(), partition_by=[p.copy() for p in partition],
                        order=exp.Order(expressions=ranking))
    inner = tree.copy()
    inner.set("order", None)
    inner.set("limit", None)
    inner.set("expressions", [_named(p, n) for p, n in zip(inner.expressions, names)]
              + [exp.alias_(window, RANK)])
    outer_order = [exp.column(names[i]) for i, p in enumerate(tree.expressions)
                   if any(p.unalias() == q for q in partition)] + [exp.column(RANK)]
    outer = (exp.select(*(exp.column(exp.to_identifier(n, quoted=not n.isidentifier())) for n in names))
             .from_(exp.alias_(exp.Subquery(this=inner), "ranked", table=True))
             .where(exp.LTE(this=exp.column(RANK), expression=exp.Literal.number(keep)))
             .order_by(*outer_order))
    return outer.sql(dialect=dialect), ", ".join(p.sql(dialect=dialect) for p in partition)


def _kept(tree: exp.Select, question: str) -> int | None:
    """How many rows of each group to keep: the query's LIMIT, else the number the question asks for ("top 3",
    "the 2 biggest"), else 1; None for a LIMIT that is not a plain number or has an OFFSET."""
    limit = tree.args.get("limit")
    if limit is not None:
        value = limit.expression
        if tree.args.get("offset") is not None or not (isinstance(value, exp.Literal) and value.is_int):
            return None
        return int(value.this)
    asked = _COUNT.search(question)
    if asked is None:
        return 1
    word = asked.group(1).lower()
    return int(word) if word.isdigit() else _NUMBERS[word]


def _group_columns(tree: exp.Select, group: str, candidates: list[exp.Expr]) -> list[exp.Expr]:
    """The query expressions among ``candidates`` (its GROUP BY keys, else its outputs) that stand for ``group``,
    the first kind of match that finds any: a column or output named like it (``country``, ``year``), the columns of
    a table named like it (``employee``: the columns of ``employees``), then the same with one word of the name
    (``media`` for ``media_type_name``, ``dept`` for "department")."""
    outputs = {p.unalias(): p.alias for p in tree.expressions if p.alias}
    tables = {t.alias_or_name.lower(): t.name for t in tree.find_all(exp.Table)}
    for alike in (_same, _one_word):
        named = [c for c in candidates if alike(group, outputs.get(c) or (c.name if isinstance(c, exp.Column) else ""))]
        if named:
            return named[:1]
        owned = [c for c in candidates if isinstance(c, exp.Column) and c.table
                 and alike(group, tables.get(c.table.lower(), ""))]
        if owned:
            return owned
    return []


def _same(group: str, name: str) -> bool:
    """The name is the group's word, up to case, punctuation and a plural."""
    return bool(_stems(group) & _stems(name))


def _one_word(group: str, name: str) -> bool:
    """A word of the name is the group's word, or an abbreviation of it: four letters or more, the same first three,
    the rest in order (``dept`` for department, ``cust`` for customer)."""
    want = _stems(group)
    return any(_stems(word) & want or _abbreviates(word, group) for word in identifier_words(name))


def _abbreviates(short: str, word: str) -> bool:
    """``short`` is ``word`` shortened: at least four letters, its first three, then letters of it in order."""
    if len(short) < 4 or len(short) >= len(word) or short[:3] != word[:3]:
        return False
    rest = iter(word[3:])
    return all(letter in rest for letter in short[3:])


def _stems(word: str) -> set[str]:
    """A name squashed, with and without a plural ending (``employees``: employees, employee)."""
    key = squash(word)
    if not key:
        return set()
    return {key, key[:-1] if key.endswith("s") else key, key[:-3] + "y" if key.endswith("ies") else key}


def _output_names(tree: exp.Select) -> list[str] | None:
    """The names of the query's outputs (its alias, else the column's name, else its text), None when two are the
    same (the outer query could not tell them apart)."""
    names = [p.alias or (p.name if isinstance(p, exp.Column) else p.sql()) for p in tree.expressions]
    if len({n.lower() for n in names}) != len(names) or RANK in {n.lower() for n in names}:
        return None
    return names


def _named(projection: exp.Expr, name: str) -> exp.Expr:
    """``projection`` under ``name`` (a column keeps its own name; an unnamed expression gets its text)."""
    if projection.alias or isinstance(projection, exp.Column):
        return projection
    return exp.alias_(projection, exp.to_identifier(name, quoted=True))


def _expanded(ordered: exp.Expr, aliases: dict[str, exp.Expr], outputs: list[exp.Expr]) -> exp.Expr:
    """An ORDER BY key with the output names and positions it uses (``ORDER BY spend``, ``ORDER BY 3``) replaced by
    what they compute (a window sees neither)."""
    key = ordered.this if isinstance(ordered, exp.Ordered) else ordered
    if isinstance(key, exp.Literal) and key.is_int and 1 <= int(key.this) <= len(outputs):
        key.replace(outputs[int(key.this) - 1].unalias().copy())
        return ordered

    def swap(node: exp.Expr) -> exp.Expr:
        if isinstance(node, exp.Column) and not node.table and node.name.lower() in aliases:
            return aliases[node.name.lower()].copy()
        return node
    return ordered.transform(swap)
