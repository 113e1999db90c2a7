"""What the model looked for that the database does not have: a check of another kind than reading the wording.

The rules of :mod:`~.missing` read the question alone; on wording they were not fitted to, many questions about
things a database lacks still reach the model.  The model then often says itself what it looked for: asked "How
severe is each allergy?" on a database with no severity, it writes ``SELECT T2.Severity FROM Has_Allergy …``, a
name no table or column has.  When such an invented name spells a word of the question (``Severity`` and
"severe") that the schema knows nothing like (:meth:`~.lexicon.SchemaLexicon.knows`: no name, comment, sample or
indexed value spelled like it, nor a close WordNet sense of one — a class it merely shares with a schema word does
not count here, since the model has shown it looked for the word itself), the question asks for something the
database does not keep: the answer says so and runs nothing, instead of asking the model to repair a query that would
then read something else.

A name the model only misspelled or put in the wrong table is no invention: :func:`invented_names` keeps only names
that no table or column of the schema has, and a name that ``fix_names`` mended never gets here.
"""

from __future__ import annotations

from typing import Iterable, Mapping, Sequence

from sqlglot import exp

from .examples import STRUCTURE_WORDS, identifier_words, stem
from .lexicon import SchemaLexicon
from .missing import Missing, cannot_answer
from .synonyms import same_root
from .values import normalize
from .sqlcheck import may_be_string
from .sqltree import parse_or_none

#: Words of an invented name that say how, not what (``total_cost``, ``num_votes``, ``max_speed``): never the
#: thing looked for.
_HOW = frozenset({"id", "ids", "num", "number", "count", "total", "sum", "avg", "average", "max", "min", "maximum",
                  "minimum", "name", "names", "type", "code", "date", "year", "value", "amount", "per", "of", "is",
                  "has", "the", "and", "to", "in", "at", "by", "for", "first", "last", "new", "old"})
#: Letters a name's word and a question word must share at the start to be one word in two forms
#: ("severity" and "severe").
_ROOT = 5


def invented_names(sql: str, schema: Mapping[str, Iterable[str]], dialect: str) -> list[str]:
    """The table and column names of ``sql`` that no table or column of ``schema`` (table -> column names) has,
    nor an alias or CTE of the query, in query order, each once; [] when the SQL does not parse.

    >>> invented_names("SELECT a.Severity, b.name AS n FROM pets a JOIN vets b ON a.id = b.id ORDER BY n",
    ...                {"pets": ["id", "name"], "vets": ["id", "name"]}, "sqlite")
    ['Severity']

    A CTE's column list names columns of the query's own; in SQLite, an unqualified double-quoted word no column has
    is a string (``WHERE name = "Smith"``), not a name.
    """
    tree = parse_or_none(sql, dialect)
    if tree is None:
        return []
    known = {str(t).lower() for t in schema} | {str(c).lower() for cols in schema.values() for c in cols}
    known |= {a.alias.lower() for a in tree.find_all(exp.Alias)}
    known |= {c.alias.lower() for c in tree.find_all(exp.CTE)}
    known |= {t.alias.lower() for t in tree.find_all(exp.Table) if t.alias}
    known |= {s.alias.lower() for s in tree.find_all(exp.Subquery) if s.alias}
    known |= {c.name.lower() for alias in tree.find_all(exp.TableAlias) for c in alias.columns}  # WITH m(month, n)
    out: list[str] = []
    for node in tree.find_all(exp.Column, exp.Table):
        if isinstance(node, exp.Column) and (isinstance(node.this, exp.Star) or may_be_string(node, dialect)):
            continue
        name = node.name
        if name and name.lower() not in known and name not in out:
            out.append(name)
    return out


def looked_for(question: str, names: Iterable[str], lexicon: SchemaLexicon,
               values: Iterable[str] = ()) -> list[Missing]:
    """What ``question`` asks for that an invented name spells and ``lexicon`` knows nothing like: for each name, the
    question's words it spells (the same word, plural or another form of it), when one of them is unknown, as a
    :class:`~.missing.Missing` naming those words and the invented name (``Missing("commute time", "commute_time",
    table=False)``); [] when none.

    >>> from jupyter_nl2sql.pipeline.schema import Column, Schema, Table
    >>> from jupyter_nl2sql.pipeline.lexicon import LexiconCache
    >>> lexicon = LexiconCache().get(Schema("sqlite", [Table("Has_Allergy", [Column("StuID", "INTEGER"),
    ...                                                                      Column("Allergy", "TEXT")])]))
    >>> [m.name for m in looked_for("How severe is each allergy?", ["Severity"], lexicon)]
    ['severe']
    >>> looked_for("How severe is each allergy?", ["allergy_name"], lexicon)
    []
    """
    if lexicon.wordnet is None:
        return []  # no senses to compare a paraphrase with: nothing is refused
    values = frozenset(values)
    words = [w for w in dict.fromkeys(normalize(question).split()) if w.isalpha() and len(w) > 2
             and w not in STRUCTURE_WORDS and w not in _HOW]
    out: list[Missing] = []
    for name in names:
        parts = [stem(p) for p in identifier_words(name) if p not in _HOW and len(p) > 2]
        spelled = [w for w in words if any(stem(w) == p or same_root(stem(w), {p}, least=_ROOT) for p in parts)]
        # the model's own look-up is the evidence here: a word is known only by its spelling or a close sense (not a
        # class it shares with a schema word, nor WordNet's top classes), unlike the refusals before the model
        if spelled and not all(lexicon.knows(w, values, strict=True, siblings=False) for w in spelled):
            asked = " ".join(spelled)
            if asked not in {m.name for m in out}:
                out.append(Missing(asked, name, table=False))
    return out


def said_missing(missing: list[Missing], tables: Sequence[str]) -> str:
    """The refusal for what the model looked for: what the question asks for and the name the model tried.

    >>> said_missing([Missing("severe", "Severity", table=False)], ["Allergy_Type", "Has_Allergy"])
    "can't answer that from this database: it has nothing like severe (the model looked for Severity); its tables: \
Allergy_Type, Has_Allergy"
    """
    return cannot_answer("; ".join(f"nothing like {m.name} (the model looked for {m.near})" for m in missing), tables)
