"""Synonym-aware schema linking: the question's words that name a table or column in other words.

People who do not know a schema ask about "puppies" where the table is ``dogs``, "instructors" where it is
``teacher``, what someone "earns" where the column is ``salary``.  :class:`SchemaLinker` links such words through
WordNet (:mod:`jupyter_nl2sql.pipeline.wordnet`): a word of the question that names nothing in the schema is linked
to a table or column when one of its common senses is

- a sense of the name itself (a synonym: ``instructor`` and ``teacher`` share a sense),
- one step more specific or more general (a hyponym or hypernym: a ``puppy`` is a ``dog``; a ``gymnast`` is an
  ``athlete``, where the step up is not a broad class such as "person"),
- or a derivationally related form (``earn`` and ``earnings``, a sense of ``salary``; ``built`` and
  ``construction``);

and, where the database has comments, when it is a word of the column's or table's comment (or its synonym).
:func:`render_links` writes the links as one comment line that goes just before the question, beside the value
hints: ``-- "instructors" here means table teacher; "earn" means column employee.salary``.

The linking is conservative, because a wrong hint misleads more than a missing one helps: words that already match
a schema name (up to case, plural, underscores), stop words, words of the analysis ("average", "year"), very
general words (many senses: "make", "number", "head"), values the question mentions and quoted text are never
linked; a word that links equally well to two different tables or columns is left alone; at most
:data:`MAX_LINKS` links are written, and none whose table or column the question already names.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from .examples import STRUCTURE_WORDS, identifier_words, stem
from .values import ANALYSIS_WORDS, STOPWORDS, normalize
from .wordnet import DERIVED, HYPERNYM, HYPONYM, INSTANCE_HYPONYM, WordNet, WordNetCache

#: Most links written for one question.
MAX_LINKS = 3
#: A question word with more senses than this (all parts of speech) is too general to link ("make": 51).
MAX_SENSES = 12
#: A more general sense with more direct hyponyms than this is a broad class ("person": 400), not a synonym.
MAX_HYPONYMS = 50
#: Senses of a schema word considered (the most frequent ones, among those WordNet saw in tagged text).
SCHEMA_SENSES = 3
#: Senses of a question word considered.
QUESTION_SENSES = 2
#: Longest phrase of the question looked up (words).
MAX_PHRASE = 3
#: Words never linked besides the value index's stop words and analysis words: the vocabulary of tables
#: themselves and words that stand for any column.
GENERIC_WORDS = frozenset("""
row rows table tables column columns record records entry entries field fields database data information info
thing things item items one ones kind kinds type types sort sorts detail details other others id ids code codes
people person persons
""".split())

#: How a word relates to the name, best first (the first element of a link's rank).
RELATIONS = ("synonym", "comment", "narrower", "broader", "related")
_RANK = {name: i for i, name in enumerate(RELATIONS)}
_IGNORED_WORDS = STOPWORDS | ANALYSIS_WORDS | STRUCTURE_WORDS | GENERIC_WORDS
#: Words a phrase neither starts nor ends with (a phrase such as "postal code" may end with a generic noun).
FUNCTION_WORDS = STOPWORDS - {"name", "names", "number", "numbers", "count", "id", "ids", "value", "values"}


@dataclass(frozen=True)
class Target:
    """A table or a column the question may mean."""

    kind: str
    """``"table"`` or ``"column"``."""
    name: str
    """How the hint names it: the table's name, ``table.column`` for a column only one table has, else the
    column's name."""
    stems: frozenset[str]
    """The stemmed words of its name (the question already names it when it holds them all)."""
    table: str
    """The table, or the column's table ("" for a column name several tables have)."""


@dataclass(frozen=True)
class SynonymLink:
    """A question word (or phrase) that means a table or column of the schema."""

    words: str
    """The words of the question, normalised (lower case, punctuation as spaces)."""
    kind: str
    name: str
    relation: str
    """One of :data:`RELATIONS`."""
    table: str = ""
    """The table meant, or the column's table ("" for a column name several tables have)."""

    def render(self, first: bool = True) -> str:
        """``"instructors" here means table teacher`` (``here`` only for the first link of a line)."""
        return f'"{self.words}" {"here " if first else ""}means {self.kind} {self.name}'


def render_links(links: Sequence[SynonymLink]) -> str:
    """The prompt line for ``links`` (empty string when there are none).

    >>> render_links([SynonymLink("instructors", "table", "teacher", "synonym"),
    ...               SynonymLink("earn", "column", "employee.salary", "related")])
    '-- "instructors" here means table teacher; "earn" means column employee.salary'
    """
    if not links:
        return ""
    return "-- " + "; ".join(link.render(i == 0) for i, link in enumerate(links))


@dataclass
class SchemaLinker:
    """The senses of one schema's table and column names (and comments), searchable by a question's words."""

    wordnet: WordNet
    vocabulary: frozenset[str]
    """Stemmed words of every table and column name: a question word among them already names the schema."""
    _by_sense: dict[Any, list[tuple[tuple[int, int, int], int, str]]] = field(default_factory=dict)
    """Synset, or (synset, word) for a derived form, → (rank, target number, relation) for each name it leads
    to."""
    _targets: list[Target] = field(default_factory=list)

    @classmethod
    def build(cls, schema: Any, wordnet: WordNet) -> SchemaLinker:
        """The linker of ``schema`` (a :class:`~jupyter_nl2sql.pipeline.schema.Schema`: tables with columns and
        optional comments)."""
        column_tables: dict[str, list[str]] = {}
        for table in schema.tables:
            for col in table.columns:
                column_tables.setdefault(col.name.lower(), []).append(table.name)
        vocabulary = frozenset(stem(w) for t in schema.tables for name in [t.name, *(c.name for c in t.columns)]
                               for w in identifier_words(name))
        linker = cls(wordnet, vocabulary)
        seen: dict[tuple[str, str], int] = {}
        for table in schema.tables:
            entries = [(0, "table", table.name, table.name, table.comment, table.name)]
            for col in table.columns:
                only = len(column_tables[col.name.lower()]) == 1
                shown = f"{table.name}.{col.name}" if only else col.name
                entries.append((1, "column", shown, col.name, col.comment, table.name if only else ""))
            for kind_rank, kind, shown, identifier, comment, owner in entries:
                key = (kind, shown.lower())
                if key not in seen:
                    words = identifier_words(identifier)
                    seen[key] = len(linker._targets)
                    linker._targets.append(Target(kind, shown, frozenset(stem(w) for w in words
                                                                         if w not in ("id", "ids")), owner))
                words = identifier_words(identifier)
                # a key column (student_id) stands for its table: a word for "student" means the table
                key_column = kind == "column" and bool(words) and words[-1] in ("id", "ids")
                linker._add_name(seen[key], kind_rank, words, whole=not key_column)
                if comment:
                    linker._add_comment(seen[key], kind_rank, comment)
        return linker

    # -- building ---------------------------------------------------------------------------------------------------
    def _note(self, key: Any, rank: tuple[int, int, int], target: int, relation: str) -> None:
        entries = self._by_sense.setdefault(key, [])
        if not any(t == target and r <= rank for r, t, _ in entries):
            entries.append((rank, target, relation))

    def _add_name(self, target: int, kind_rank: int, words: list[str], whole: bool = True) -> None:
        """The senses of a name: the whole name as a WordNet phrase (``first_name``) without its id word, each
        pair of neighbouring words, and each word alone: a part, ranked after the whole, unless the other words
        are generic (``construction_year``: "construction" is the whole) — and a key column's name is only a
        part when not ``whole``."""
        content = [w for w in words if w not in ("id", "ids") and not w.isdigit()]
        core = [w for w in content if w not in _IGNORED_WORDS and len(w) > 2]
        terms: list[tuple[str, int]] = []
        if content:
            terms.append(("_".join(content), 0 if whole else 1))
        if len(content) > 2:
            terms += [("_".join(content[i:i + 2]), 1) for i in range(len(content) - 1)]
        if len(content) > 1:
            terms += [(w, 0 if whole and len(core) == 1 else 1) for w in core]
        for term, part in terms:
            for pos in ("n", "v"):
                for base in self.wordnet.base_forms(term, pos)[:1]:
                    for i, sense in enumerate(self.wordnet.senses(base, pos, SCHEMA_SENSES, tagged=True)):
                        self._add_sense(sense, target, part, kind_rank, main=i == 0 and part == 0)
                if pos == "n" and self.wordnet.base_forms(term, "n"):
                    break  # a noun is read as a noun ("record", "score"), a verb only when it is no noun

    def _add_sense(self, sense: tuple[str, int], target: int, part: int, kind_rank: int, main: bool) -> None:
        """A sense of a name, its kinds (hyponyms; not instances, which are values: "Baltimore" is no city
        column) and, for the main sense of a whole name only (``main``), its class (hypernym, unless broad) and
        its derived forms."""
        synset = self.wordnet.synset(sense)
        self._note(sense, (_RANK["synonym"], part, kind_rank), target, "synonym")
        for narrower in synset.related(HYPONYM):
            self._note(narrower, (_RANK["narrower"], part, kind_rank), target, "narrower")
        if not main:
            return
        for broader in synset.related(HYPERNYM):
            if len(self.wordnet.synset(broader).related(HYPONYM, INSTANCE_HYPONYM)) <= MAX_HYPONYMS:
                self._note(broader, (_RANK["broader"], part, kind_rank), target, "broader")
        for related, word in synset.related_words(DERIVED):  # a link between words: to the word it names
            lemma = self.wordnet.synset(related).words[word - 1] if word else ""
            self._note((related, lemma), (_RANK["related"], part, kind_rank), target, "related")

    def _add_comment(self, target: int, kind_rank: int, comment: str) -> None:
        """The content words of a comment, by their own first sense (a description names its column in its own
        words: ``-- yearly pay`` on ``sal``)."""
        words = [w for w in normalize(comment).split() if w not in _IGNORED_WORDS and len(w) > 2
                 and not w.isdigit()][:12]
        for word in words:
            for base in self.wordnet.base_forms(word, "n")[:1]:
                if self.wordnet.sense_count(base) <= MAX_SENSES:
                    for sense in self.wordnet.senses(base, "n", 1):
                        self._note(sense, (_RANK["comment"], 1, kind_rank), target, "comment")

    # -- linking ----------------------------------------------------------------------------------------------------
    def link(self, question: str, *, ignore: Iterable[str] = (), limit: int = MAX_LINKS) -> list[SynonymLink]:
        """The question's words that mean a table or column without naming it, best first (see the module
        docstring); ``ignore``: phrases of the question that are values (the value index's spans, quoted text)."""
        words = normalize(question).split()
        blocked = _covered(words, [*ignore, *_names(question)])
        stems = {stem(w) for w in words}
        found: list[tuple[tuple[int, int, int], int, int, str, int, str]] = []
        for n in range(min(MAX_PHRASE, len(words)), 0, -1):
            for start in range(len(words) - n + 1):
                toks = words[start:start + n]
                if any(blocked[start:start + n]) or not self._linkable(toks):
                    continue
                best = self._best(toks)
                if best is not None:
                    rank, target, relation = best
                    found.append((rank, -n, start, " ".join(toks), target, relation))
        found.sort()
        taken = [False] * len(words)
        used: set[int] = set()
        links: list[SynonymLink] = []
        for rank, neg_n, start, text, target, relation in found:
            end = start - neg_n
            info = self._targets[target]
            if (any(taken[start:end]) or target in used or (info.stems and info.stems <= stems)
                    or (-neg_n == 1 and same_root(text, info.stems))):
                continue
            taken[start:end] = [True] * (end - start)
            used.add(target)
            links.append(SynonymLink(text, info.kind, info.name, relation, info.table))
            if len(links) >= limit:
                break
        return links

    def _linkable(self, toks: list[str]) -> bool:
        """Whether a phrase may be linked: not a schema word, stop word, number or very general word."""
        edges = _IGNORED_WORDS if len(toks) == 1 else FUNCTION_WORDS  # "given name", "postal code" are phrases
        if toks[0] in edges or toks[-1] in edges or any(len(t) < 2 for t in toks):  # "doctor s" (doctor's)
            return False
        if all(stem(t) in self.vocabulary for t in toks) or stem("".join(toks)) in self.vocabulary:
            return False  # the schema's words, or one of them spaced ("home town" for hometown)
        if len(toks) == 1:
            word = toks[0]
            if len(word) < 3 or not word.isalpha() or self.wordnet.sense_count(word) > MAX_SENSES:
                return False
            if any(stem(base) in self.vocabulary for pos in ("n", "v") for base in self.wordnet.base_forms(word, pos)):
                return False  # the schema's word in another form ("flied", "children")
        return True

    def _best(self, toks: list[str]) -> tuple[tuple[int, int, int], int, str] | None:
        """The one table or column the phrase's senses lead to with the best rank; None when none does, or when
        two different ones tie."""
        forms = ["_".join(toks)] + (["".join(toks)] if len(toks) == 2 else [])
        options: list[tuple[tuple[int, int, int], int, str]] = []
        for form in forms:
            for pos in ("n", "v"):
                for base in self.wordnet.base_forms(form, pos)[:1]:
                    for sense in self.wordnet.senses(base, pos, QUESTION_SENSES, tagged=True):
                        options += self._by_sense.get(sense, ())
                        options += self._by_sense.get((sense, base), ())
        if not options:
            return None
        top = min(rank for rank, _, _ in options)
        winners = {(target, relation) for rank, target, relation in options if rank == top}
        if len({target for target, _ in winners}) != 1:
            return None
        target, relation = min(winners)
        return top, target, relation


def same_root(text: str, names: Iterable[str], least: int = 3) -> bool:
    """Whether a question word is a name's word in another form ("advises" and ``advisor``, "owns" and ``owner``,
    "placement" and ``date_order_placed``): the model links those itself.  They share at least ``least`` letters
    at the start, and six tenths of the shorter word.

    >>> same_root("advises", {"advisor"}), same_root("owns", {"owner"}), same_root("earn", {"salary"})
    (True, True, False)
    """
    for word in text.split():
        for name in names:
            shared = len(os.path.commonprefix([word, name]))
            if shared >= least and shared >= 0.6 * min(len(word), len(name)):
                return True
    return False


def _names(question: str) -> list[str]:
    """Capitalised words after the question's first word: names ("Baltimore", "English"), which are values.

    >>> _names("Pupils taught by Nancy Edwards in English?")
    ['Nancy', 'Edwards', 'English']
    """
    return [w for w in re.findall(r"[^\W\d_][\w'-]*", question)[1:] if w[0].isupper() and not w.isupper()]


def _covered(words: list[str], phrases: Iterable[str]) -> list[bool]:
    """Which of ``words`` belong to one of ``phrases`` (normalised like the question)."""
    blocked = [False] * len(words)
    for phrase in phrases:
        pw = normalize(phrase).split()
        for i in range(len(words) - len(pw) + 1) if pw else ():
            if words[i:i + len(pw)] == pw:
                blocked[i:i + len(pw)] = [True] * len(pw)
    return blocked


class LinkerCache(WordNetCache[SchemaLinker]):
    """One :class:`SchemaLinker` per schema fingerprint (built on first use; a few dozen kept)."""

    def __init__(self, wordnet: WordNet | None = None, size: int = 64) -> None:
        super().__init__(SchemaLinker.build, wordnet, size)
