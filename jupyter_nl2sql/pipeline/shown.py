"""Whether a query shows the attribute its question asks for: "What is the weight of each product?" answered with
``SELECT unit_price FROM products`` runs, finds rows, and is wrong; nothing in it is like a weight.

:func:`unshown_attributes` reads the attributes the question asks for (:func:`~.missing.asked_attributes`: "the
weight of each product", not one under an aggregate or a count) and the names the query's result is made of (each output
column's alias and the columns it reads), and keeps the attributes none of those names is like — spelled alike or a
WordNet relative below WordNet's top classes (:meth:`~.lexicon.SchemaLexicon.knows` with ``strict``).  The
pipeline then says so instead of calling the answer sure.
"""

from __future__ import annotations

from sqlglot import exp

from .examples import STRUCTURE_WORDS, identifier_words, stem
from .lexicon import SchemaLexicon
from .missing import asked_attributes
from .values import ANALYSIS_WORDS, normalize
from .schema import Column, Schema, Table
from .sqltree import parse_or_none

__all__ = ["shown_names", "unread_tables", "unshown_attributes"]


def shown_names(sql: str, dialect: str) -> list[str] | None:
    """The names the outermost SELECT's result is made of: each column's alias and the columns it reads; None when
    it cannot tell (``SELECT *``, a set operation, SQL that does not parse)."""
    tree = parse_or_none(sql, dialect)
    if not isinstance(tree, exp.Select) or any(isinstance(e, exp.Star) or (isinstance(e, exp.Column)
                                                                           and isinstance(e.this, exp.Star))
                                               for e in tree.expressions):
        return None
    names: list[str] = []
    for item in tree.expressions:
        if item.alias:
            names.append(item.alias)
        names += [c.name for c in item.find_all(exp.Column) if c.name]
    return list(dict.fromkeys(names))


def unshown_attributes(question: str, sql: str, dialect: str, lexicon: SchemaLexicon) -> list[str]:
    """The attributes ``question`` asks for that nothing the query shows is like (see the module docstring); [] when
    it asks for none, or the result's names cannot be read."""
    asked = asked_attributes(question, lexicon)
    if not asked:
        return []
    names = shown_names(sql, dialect)
    if not names:
        return []
    result = SchemaLexicon.build(Schema(dialect, [Table("result", [Column(n, "") for n in names])]),
                                 lexicon.wordnet)
    return [a for a in asked if not result.knows(a, strict=True)]


def unread_tables(question: str, sql: str, dialect: str, tables: list[str]) -> list[str]:
    """The tables whose one-word name the question says (up to a plural: "the swimmers" for ``swimmer``) that the
    query does not read ("How many different countries are all the swimmers from?" answered from ``stadium``), not a
    word of the analysis ("in descending order" says no ``orders``); [] when the SQL does not parse."""
    tree = parse_or_none(sql, dialect)
    if tree is None:
        return []
    read = {t.name.casefold() for t in tree.find_all(exp.Table)}
    said = {stem(w) for w in normalize(question).split()}
    return [t for t in tables if t.casefold() not in read and len(words := identifier_words(t)) == 1
            and len(words[0]) > 2 and stem(words[0]) in said and stem(words[0]) not in _ANALYSIS]


#: Words that in a question speak of the analysis more often than of a table of that name ("in descending order",
#: "each year", "the total"): a table named so is not taken as said.
_ANALYSIS = STRUCTURE_WORDS | ANALYSIS_WORDS | {stem(w) for w in STRUCTURE_WORDS | ANALYSIS_WORDS}
