"""What a question asks about that neither the schema nor the model's query has anything close to.

The refusals before the model (:mod:`~.missing`) read a question's subject against the whole schema generously: a
word is known when any table or column is a WordNet sibling or class of it, so "How many gates does each airport
have?" passes on a database of airports and routes.  The model's query is a second witness.  When the subject is
unlike every name of the schema read strictly (spelling, plural, a close sense; no shared class), and the tables and
columns the query reads are not like it even read generously, the model answered something else (a count of
routes): the answer says what is missing and runs nothing.  A question that names the schema's things in words of
its own still passes, as long as the query reads something like them ("teachers" answered from ``professor``).

>>> from jupyter_nl2sql.pipeline.schema import Column, Schema, Table
>>> shop = Schema("sqlite", [Table("airports", [Column("name", "TEXT"), Column("city", "TEXT")]),
...                          Table("routes", [Column("src", "TEXT"), Column("dst", "TEXT")])])
>>> [t.name for t in read_schema("SELECT a.name, COUNT(*) FROM airports a JOIN routes r ON r.src = a.name "
...                               "GROUP BY a.name", shop, "sqlite").tables]
['airports', 'routes']
"""

from __future__ import annotations

from typing import Iterable

from sqlglot import exp

from .lexicon import SchemaLexicon
from .missing import Missing, cannot_answer, missing_things
from .schema import Schema, Table
from .sqltree import parse_or_none

__all__ = ["read_schema", "ungrounded", "said_ungrounded"]


def read_schema(sql: str, schema: Schema, dialect: str) -> Schema | None:
    """The part of ``schema`` that ``sql`` reads: each table it names, with the columns it names (a table read
    whole, ``COUNT(*)``, keeps none but its name); None when the SQL does not parse or reads no table of it."""
    tree = parse_or_none(sql, dialect)
    if tree is None:
        return None
    named = {t.name.casefold() for t in tree.find_all(exp.Table)}
    columns = {c.name.casefold() for c in tree.find_all(exp.Column) if c.name}
    columns |= {i.name.casefold() for join in tree.find_all(exp.Join) for i in join.args.get("using") or []}
    tables = [Table(t.name, [c for c in t.columns if c.name.casefold() in columns], comment=t.comment)
              for t in schema.tables if t.name.casefold() in named]
    return Schema(schema.dialect, tables) if tables else None


def ungrounded(question: str, sql: str, schema: Schema, dialect: str, lexicon: SchemaLexicon,
               values: Iterable[str] = ()) -> list[Missing]:
    """The question's subjects (:func:`~.missing.missing_things`) that ``lexicon`` (``schema``'s) knows nothing
    close to and that the tables and columns ``sql`` (in sqlglot's ``dialect``) reads are not like either; [] when
    there are none, or the SQL does not parse."""
    if lexicon.wordnet is None:
        return []
    values = frozenset(values)
    unknown = missing_things(question, lexicon, values, strict=True)
    if not unknown:
        return []
    read = read_schema(sql, schema, dialect)
    if read is None:
        return []
    near = SchemaLexicon.build(read, lexicon.wordnet)
    return [m for m in unknown if not any(near.knows(word) for word in [m.name, *m.name.split()])]


def said_ungrounded(missing: list[Missing], read: Schema | None, tables: list[str]) -> str:
    """The refusal: what the question asks about, and what the query read instead.

    >>> said_ungrounded([Missing("gates", None, table=False)], Schema("sqlite", [Table("airports", [])]),
    ...                 ["airports", "routes"])
    "can't answer that from this database: it has nothing like gates (the query read airports); its tables: \
airports, routes"
    """
    instead = ", ".join(t.name for t in read.tables) if read is not None else ""
    what = "; ".join(f"nothing like {m.name}" for m in missing)
    return cannot_answer(f"{what} (the query read {instead})" if instead else what, tables)
