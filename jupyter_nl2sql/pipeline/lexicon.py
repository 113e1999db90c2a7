"""What a database knows about, word by word: for telling a question about something it does not have.

:class:`SchemaLexicon` gathers the words of a schema — its table and column names (split at underscores and case
changes), their comments and the words of the sample rows — and, through WordNet
(:mod:`jupyter_nl2sql.pipeline.wordnet`), every noun sense of those words with its classes a few steps up.
:meth:`SchemaLexicon.knows` then says whether a word of a question could mean something of the database: the same
word up to plural and case, a close spelling or the same root, a part of a compound name (``countrylanguage``), a
word of a value the value index holds, or a WordNet sense that is one of the schema's (a synonym), a kind of one
(a ``puppy`` is a ``dog``) or a class of one (a ``car`` is a ``vehicle``), and a group is known by its members (a
``staff`` of staffers, who are ``employees``) — a sibling is not enough: a ``truck`` is no ``car``, though both are
motor vehicles.

It is deliberately generous, since a word it does not know gets a question refused: only a word that none of
these reaches is unknown.

>>> from jupyter_nl2sql.pipeline.schema import Column, Schema, Table
>>> shop = Schema("sqlite", [Table("employees", [Column("salary", "REAL")]), Table("dogs", [Column("name", "TEXT")])])
>>> lexicon = SchemaLexicon.build(shop, WordNet.default())
>>> [lexicon.knows(w) for w in ("employee", "salaries", "puppies", "unicorns")]
[True, True, True, False]
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any, Iterable

from .examples import identifier_words, stem
from .namefix import squash
from .synonyms import GENERIC_WORDS, MAX_HYPONYMS, same_root
from .values import STOPWORDS, normalize
from .wordnet import HYPERNYM, HYPONYM, INSTANCE_HYPERNYM, INSTANCE_HYPONYM, WordNet, WordNetCache

__all__ = ["SchemaLexicon", "LexiconCache", "THING_CATEGORIES"]

#: The WordNet noun categories of things a question may ask about that a database would keep rows of.
THING_CATEGORIES = frozenset("""animal artifact body food location object person plant substance communication
possession cognition""".split())

#: The categories of a class shared with a schema word that make a question word its sibling (a town and a city
#: are municipalities; a teacher and a professor educators): things and groups, not acts, times, states,
#: attributes or communications, classes so wide that the credit limit of a customer would be "like" a date.
SIBLING_CATEGORIES = THING_CATEGORIES | {"group"}

#: Steps up WordNet's classes from a sense of a schema word (``car`` → motor vehicle → … → vehicle).
SCHEMA_DEPTH = 4
#: Steps up from a sense of a question word (``puppy`` → dog; ``occasion`` → social event → event).
QUESTION_DEPTH = 2
#: Steps up from a schema word's sense to a class whose direct kinds a question word may be: its siblings (``city`` →
#: municipality, the class of ``town``) and cousins (``professor`` → academic → educator, the class of ``teacher``);
#: farther up, the kinds are too unlike.
SIBLING_DEPTH = 2
#: Spelling closeness (difflib ratio) at which a question word is taken for a schema word.
CLOSE = 0.8
#: Letters a question word shares at the start with a schema word to be taken for its root ("advises", advisor).
ROOT = 4
#: Senses of a question word compared, most frequent first (a chicken is no foolhardy contest).
QUESTION_SENSES = 4
#: Senses of a question word whose definitions are read (most frequent first).
GLOSS_SENSES = 2
#: Words of a definition that say nothing about the schema.
_PLAIN = STOPWORDS | GENERIC_WORDS | frozenset("""especially usually often something someone that which whose used
make made having being person""".split())
#: Words that end the head of a definition: what follows qualifies it.
_QUALIFIERS = frozenset("""of in on at by for from to with who whom whose which that where when as than into
under over about between through during like riding having being""".split())
#: Shortest compound name searched for a question word inside it (``countrylanguage`` holds "language").
MIN_PART = 4


@dataclass(frozen=True)
class SchemaLexicon:
    """The words of one schema and their WordNet senses (see the module docstring)."""

    stems: frozenset[str]
    """Stemmed words of the table and column names, comments and sample rows."""
    named: frozenset[str]
    """Stemmed words of the names and comments alone (those whose senses are read)."""
    names: tuple[str, ...]
    """Table and column names squashed (lower-case letters and digits only), at least :data:`MIN_PART` long."""
    own: frozenset[tuple[str, int]]
    """The noun senses of those words."""
    senses: frozenset[tuple[str, int]]
    """Those senses and their classes up to :data:`SCHEMA_DEPTH` steps (none above a broad class)."""
    near: frozenset[tuple[str, int]]
    """Those senses and their classes up to :data:`SIBLING_DEPTH` steps, broad ones left out: a question word one
    step below one of them is the schema's sibling or cousin (a town and a city are municipalities; a teacher is an
    educator, as a professor is)."""
    wordnet: WordNet | None = None
    categories: frozenset[str] = frozenset()
    """The WordNet categories (lexicographer files: "location", "time") of the most frequent noun sense of each word
    of the names, comments and sample rows ("Tokyo" in a headquarters column: a location)."""

    @classmethod
    def build(cls, schema: Any, wordnet: WordNet | None = None) -> SchemaLexicon:
        """The lexicon of ``schema`` (a :class:`~jupyter_nl2sql.pipeline.schema.Schema`); without ``wordnet`` it
        knows spellings only."""
        names = [name for t in schema.tables for name in [t.name, *(c.name for c in t.columns)]]
        words = [w for name in names for w in identifier_words(name)]
        words += [w[1:] for w in words if len(w) > MIN_PART and wordnet and wordnet.base_forms(w[1:], "n")
                  and not wordnet.base_forms(w, "n")]  # "lname", "fname": a letter before a word
        phrases = ["_".join(identifier_words(name)) for name in names if len(identifier_words(name)) > 1]
        words += [w for text in _comments(schema) for w in normalize(text).split()]
        content = {w for w in words if len(w) > 2 and w.isalpha()}
        samples = {w for text in _samples(schema) for w in normalize(text).split() if len(w) > 2 and w.isalpha()}
        own = ({sense for word in sorted(content) + phrases for sense in _noun_senses(wordnet, word)}
               if wordnet else set())  # no senses: nothing below is read from WordNet either
        senses = set().union(*(_classes(wordnet, sense, SCHEMA_DEPTH) for sense in own))
        near = {c for sense in own for c in _classes(wordnet, sense, SIBLING_DEPTH) if not _broad(wordnet, c)}
        squashed = tuple(dict.fromkeys(s for s in map(squash, names) if len(s) >= MIN_PART))
        named = frozenset(stem(w) for w in content)
        categories = frozenset(wordnet.synset(first[0]).category for w in sorted(content | samples)
                               if (first := _noun_senses(wordnet, w)[:1])) if wordnet else frozenset()
        return cls(named | {stem(w) for w in samples}, named, squashed, frozenset(own), frozenset(senses),
                   frozenset(near), wordnet, categories)

    def knows(self, word: str, values: Iterable[str] = (), *, strict: bool = False, siblings: bool = True) -> bool:
        """Whether ``word`` (or a phrase, words separated by spaces) could mean something this schema has;
        ``values``: the normalised words of the database's values (:meth:`ValueIndex.words`).  ``strict``: not
        through WordNet's top classes (the schema's "unit" of ``unit_price`` read as "whole, unit", a class of nearly
        every object) — for asking whether given columns are like a word, rather than whether a schema may hold it.
        ``siblings``: also through a class the word shares with a schema word (a coupon and a receipt are both
        documents) — off where the model has already shown it looked for the word itself (:mod:`~.invented`)."""
        if self.spelled(word, values):
            return True
        low = " ".join(normalize(word).split())
        if self.wordnet is None:
            return True  # no senses to compare: nothing is known to be missing
        # a sense of the word is one of the schema's or a class of one, or one of its classes is the schema's, or its
        # class, a thing or a group, is one of the schema's or a class of one (a teacher is an educator, as a
        # professor is), or
        # its definition uses a schema word (a town is "smaller than a city"; a mentor "a trusted guide and advisor")
        senses = _noun_senses(self.wordnet, low)[:QUESTION_SENSES]
        senses += _members(self.wordnet, senses)  # a staff is known where its staffers are: employees
        def alike(found: set[tuple[str, int]]) -> bool:
            return any(not strict or self.wordnet.synset(s).category != "Tops" for s in found)

        if any(sense in self.senses or alike(_classes(self.wordnet, sense, QUESTION_DEPTH, past_broad=True) & self.own)
               or siblings and alike({c for c in (_classes(self.wordnet, sense, 1) - {sense}) & self.near
                                      if self.wordnet.synset(c).category in SIBLING_CATEGORIES})
               for sense in senses):
            return True
        return any(stem(w) in self.named for sense in senses[:GLOSS_SENSES] for w in self._gloss_words(sense))

    def spelled(self, word: str, values: Iterable[str] = ()) -> bool:
        """Whether ``word`` (or a phrase) is spelled like something of this schema: the same word up to plural and
        case, a word of a value, a part of a compound name or a compound name inside it, a close spelling or the
        same root (what :meth:`knows` reads before any sense)."""
        low = " ".join(normalize(word).split())
        root = stem(low.replace(" ", ""))
        if not root or root in self.stems or low in self.stems:
            return True
        if {low, root, root + "s", root + "es"} & set(values):
            return True
        if len(root) >= MIN_PART and any(root in name or name in low.replace(" ", "") for name in self.names):
            return True
        return bool(difflib.get_close_matches(root, self.stems, n=1, cutoff=CLOSE)
                    or same_root(root, self.named, least=ROOT))

    def in_longer_name(self, word: str) -> bool:
        """Whether ``word`` is part of a longer table or column name ("home" of ``Hometown``, "order" of
        ``order_items``; not "order" of ``orders``), where the rest of the name may say in other words what follows
        it in a question."""
        root = stem(squash(word))
        return len(root) >= MIN_PART and any(root in name and len(name) > len(root) + 2 for name in self.names)

    def compound(self, words: list[str]) -> str | None:
        """The longest run of two or more of ``words``, ending with the last, that WordNet has as one noun ("fire
        station", "interest rate", "crew member"), written with spaces; None when there is none."""
        if self.wordnet is None:
            return None
        for i in range(len(words) - 1):
            if self.wordnet.base_forms("_".join(w.casefold() for w in words[i:]), "n"):
                return " ".join(w.casefold() for w in words[i:])
        return None

    def _gloss_words(self, sense: tuple[str, int]) -> list[str]:
        """The content words of the head of a sense's definition: what the thing is, up to the first word that
        says more of it ("a wise and trusted guide and advisor", not "a waiter | in a restaurant who has charge of
        wines"); its examples, after a ``;``, left out."""
        definition = self.wordnet.synset(sense).gloss.split(";")[0] if self.wordnet else ""
        words = normalize(definition).split()
        head = next((i for i, w in enumerate(words) if w in _QUALIFIERS and i > 0), len(words))
        return [w for w in words[:head] if len(w) > 3 and w not in _PLAIN]

    def is_noun(self, word: str) -> bool:
        """Whether WordNet has ``word`` mainly as a noun: as one, with at least as many senses as it has as an
        adjective or adverb ("common", "out" are not; False without WordNet)."""
        if self.wordnet is None:
            return False
        counts = {pos: len(self.wordnet.senses(b, pos)) for pos in ("n", "a", "r")
                  for b in self.wordnet.base_forms(word, pos)[:1]}
        return counts.get("n", 0) > 0 and counts["n"] >= max(counts.get("a", 0), counts.get("r", 0))

    def is_verb(self, word: str) -> bool:
        """Whether ``word`` reads as a verb here: an inflected form WordNet knows only as a verb ("filed", "sold"),
        or a verb with at least as many senses as the word has as a noun ("own", "hold"; not "report", "supply")
        (False without WordNet)."""
        if self.wordnet is None:
            return False
        verbs = self.wordnet.base_forms(word, "v")
        if not verbs:
            return False
        nouns = self.wordnet.base_forms(word, "n")
        return not nouns or len(self.wordnet.senses(verbs[0], "v")) >= len(self.wordnet.senses(nouns[0], "n"))

    def is_plain_verb(self, word: str) -> bool:
        """Whether ``word`` is a verb's plain form ("work", "come", "play"): after a plural noun it is the verb of
        "how many cashiers work…", though WordNet has it as a noun too (False without WordNet)."""
        return self.wordnet is not None and word in self.wordnet.base_forms(word, "v")

    def is_modifier_noun(self, word: str) -> bool:
        """Whether ``word`` can only be a singular noun ("loyalty", "warranty"; not "athletes", "overall", "home"),
        so that before another noun it says which kind of it is meant (False without WordNet)."""
        if self.wordnet is None or word.casefold() not in self.wordnet.base_forms(word.casefold(), "n"):
            return False
        return not any(self.wordnet.base_forms(word.casefold(), pos) for pos in ("a", "r"))

    def agents(self, verb: str, senses: int = 2) -> list[str]:
        """The people who do what ``verb`` says, as WordNet derives them from its most frequent ``senses`` ("drives":
        driver, motorist; "owns": possessor, owner); [] without WordNet."""
        if self.wordnet is None:
            return []
        found = []
        for base in self.wordnet.base_forms(verb.casefold(), "v")[:1]:
            for key in self.wordnet.senses(base, "v", senses):
                for target, word in self.wordnet.synset(key).related_words("+"):
                    noun = self.wordnet.synset(target) if target[0] == "n" else None
                    if noun is not None and noun.category == "person":
                        found.append(noun.words[word - 1] if 0 < word <= len(noun.words) else noun.words[0])
        if not found:
            return []
        # the verb's own noun first ("owner" before "possessor"); none that is a verb too ("the haves", "chair")
        stem_of_verb = base[:3]
        kept = sorted((w for w in found if w not in self.wordnet.base_forms(w, "v")),
                      key=lambda w: not w.startswith(stem_of_verb))
        return list(dict.fromkeys(kept))

    def is_thing(self, word: str) -> bool:
        """Whether ``word``'s most frequent noun sense is a thing one could keep rows of: a person, animal, plant,
        artifact, food, substance, place, object or body part ("unicorn", "spaceship"), not an act, a group, a
        possession or an idea ("purchase", "staff", "revenue"), which a schema may hold under other names or
        compute from its columns (False without WordNet)."""
        if self.wordnet is None:
            return False
        firsts = [s for base in _bases(self.wordnet, word) for s in self.wordnet.senses(base, "n", 1)]
        return any(self.wordnet.synset(first).category in THING_CATEGORIES for first in firsts)


class LexiconCache(WordNetCache[SchemaLexicon]):
    """One :class:`SchemaLexicon` per schema fingerprint (None when no WordNet data is installed)."""

    def __init__(self, wordnet: WordNet | None = None, size: int = 64) -> None:
        super().__init__(SchemaLexicon.build, wordnet, size)


def _comments(schema: Any) -> list[str]:
    """The comments of ``schema``'s tables and columns."""
    return [t.comment for t in schema.tables if t.comment] + [c.comment for t in schema.tables for c in t.columns
                                                              if c.comment]


def _samples(schema: Any) -> list[str]:
    """The short text values of ``schema``'s sample rows (values: their spellings count, not their senses)."""
    return [v for t in schema.tables for row in t.sample_rows for v in row if isinstance(v, str) and len(v) < 60]


def _members(wordnet: WordNet, senses: list[tuple[str, int]]) -> list[tuple[str, int]]:
    """The senses of the members of those of ``senses`` that are groups (WordNet's member meronyms: a staff's
    staffer, a crew's crewman, a faculty's professor), which a schema keeps rows of where a question names the
    group."""
    groups = [synset for synset in map(wordnet.synset, senses) if synset.category == "group"]
    return [member for group in groups for member in group.related("%m")]


def _noun_senses(wordnet: WordNet, word: str) -> list[tuple[str, int]]:
    """The noun senses of ``word``'s dictionary forms, the word as written and without a plural ending
    ("stations": station, not only the Stations of the Cross), most frequent first; a phrase has ``_`` or spaces
    between its words."""
    return list(dict.fromkeys(s for base in _bases(wordnet, word) for s in wordnet.senses(base, "n")))


def _bases(wordnet: WordNet, word: str) -> list[str]:
    """The noun dictionary forms of ``word`` as written and without a plural ending ("judges": judge, not only the
    book of Judges), one each."""
    return list(dict.fromkeys(b for form in (word, stem(word)) for b in wordnet.base_forms(form, "n")[:1]))


def _classes(wordnet: WordNet, sense: tuple[str, int], depth: int, past_broad: bool = False
             ) -> set[tuple[str, int]]:
    """``sense`` and its classes up to ``depth`` steps up; a broad class (more than
    :data:`~jupyter_nl2sql.pipeline.synonyms.MAX_HYPONYMS` kinds: "worker", "person") is the last step taken
    unless ``past_broad``."""
    found, frontier = {sense}, [sense]
    for _ in range(depth):
        above = []
        for key in frontier:
            for up in wordnet.synset(key).related(HYPERNYM, INSTANCE_HYPERNYM):
                if up not in found:
                    found.add(up)
                    if past_broad or not _broad(wordnet, up):
                        above.append(up)
        frontier = above
    return found


def _broad(wordnet: WordNet, sense: tuple[str, int]) -> bool:
    """Whether ``sense`` is a broad class: more than :data:`~jupyter_nl2sql.pipeline.synonyms.MAX_HYPONYMS` kinds."""
    return len(wordnet.synset(sense).related(HYPONYM, INSTANCE_HYPONYM)) > MAX_HYPONYMS
