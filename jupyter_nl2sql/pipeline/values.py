"""Value retrieval: which database values does a question mention, and how does the database spell them?

Small models write ``WHERE country = 'france'`` when the column holds ``'France'``, or ``'USA'`` when it holds
``'United States'``; the query then runs and returns nothing.  :class:`ValueIndex` reads, once per database, the
distinct short text values of every text column; :meth:`ValueIndex.match` finds the question's word n-grams among
them (exactly after normalisation — case folded, accents stripped, punctuation collapsed — or fuzzily with
:class:`difflib.SequenceMatcher`), and :func:`render_matches` writes them for the prompt as
``-- singer.Country = 'France'``.

Only the standard library is used.  Candidate values for the fuzzy comparison come from a character-trigram
index, so a question costs milliseconds even over tens of thousands of values.
"""

from __future__ import annotations

import difflib
import re
import threading
import time
import unicodedata
from collections import defaultdict
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any, Iterable

import sqlalchemy as sa

from .execution import statement_timeout

#: Values longer than this (characters) are not indexed: long text is rarely a filter value.
MAX_VALUE_CHARS = 60
#: Distinct values read per column (most frequent first).
MAX_VALUES_PER_COLUMN = 5000
#: Values indexed per database, all columns together.
MAX_VALUES_TOTAL = 100_000
#: Seconds spent reading values before the index is declared partial.
BUILD_SECONDS = 10.0
#: Words that never start or end a matched n-gram on their own (they would match everything).
STOPWORDS = frozenset("""
a an the of in on at to for from by with and or not no is are was were be been has have had do does did
what which who whom whose when where how many much all any each every list show give find tell
their there these those this that it its as than more most less least also both either neither per
name names number numbers count id ids value values
""".split())

#: Words of the question's analysis rather than its data (date parts, aggregates, order): never matched fuzzily on
#: their own, so "per month" is not taken for a track called 'Moth' (an exact spelling still matches).
ANALYSIS_WORDS = frozenset("""
year years yearly month months monthly week weeks weekly day days daily quarter quarters hour hours minute minutes
date dates time times total totals sum average averages mean median maximum minimum highest lowest largest smallest
biggest longest shortest top bottom first last order sorted ascending descending between before after since
until during older newer oldest newest most least percent percentage share ratio rank running
""".split())

_YEAR = re.compile(r"(?:1[89]|20)\d\d")

_TEXT_TYPES = ("CHAR", "TEXT", "CLOB", "STRING", "VARCHAR", "NAME", "ENUM", "CITEXT", "UUID")
_NON_TEXT_TYPES = ("INT", "REAL", "FLOA", "DOUB", "NUMERIC", "DECIMAL", "BOOL", "DATE", "TIME", "BLOB", "BYTEA",
                   "BINARY", "JSON", "ARRAY", "SERIAL", "MONEY", "INTERVAL")


def normalize(text: str) -> str:
    """Case-folded, accents stripped, every run of non-alphanumerics one space.

    >>> normalize("  Zürich-Nord  (CH) ")
    'zurich nord ch'
    """
    decomposed = unicodedata.normalize("NFKD", str(text))
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(re.findall(r"[^\W_]+", stripped.casefold()))


_DASHES = dict.fromkeys(map(ord, "\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe58\ufe63\uff0d"), "-")
_QUOTES = dict.fromkeys(map(ord, "\u2018\u2019\u201a\u201b\u2032\u00b4\u0060"), "'")


def fold(text: str) -> str:
    """Case-folded, accents stripped, dash and quote look-alikes made ASCII, spacing collapsed; punctuation and
    signs are kept (unlike :func:`normalize`), so ``'-16'`` and ``'16'`` stay apart.

    >>> fold(" Zürich–Nord ")
    'zurich-nord'
    """
    decomposed = unicodedata.normalize("NFKD", str(text).translate(_DASHES).translate(_QUOTES))
    return " ".join("".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold().split())


def _is_text_column(type_name: str) -> bool:
    upper = (type_name or "").upper()
    if any(t in upper for t in _TEXT_TYPES):
        return True
    return not any(t in upper for t in _NON_TEXT_TYPES)  # untyped (SQLite) columns may hold text


@dataclass(frozen=True)
class ValueMatch:
    """A database value the question seems to mention."""

    table: str
    column: str
    value: str
    """The value as the database spells it."""
    span: str
    """The words of the question it matched (normalised)."""
    score: float
    """1.0 for an exact match after normalisation, else the difflib ratio."""

    def render(self, dialect: str = "sqlite") -> str:
        """``table.column = 'Value'``."""
        return f"{self.table}.{self.column} = {_literal(self.value)}"


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


@dataclass
class ValueIndex:
    """The distinct short text values of a database's text columns, searchable by question n-grams."""

    values: list[tuple[str, str, str, str]] = field(default_factory=list)
    """(table, column, value, normalised value)."""
    partial: bool = False
    """True when a limit (values per column, total, time) stopped the scan early."""
    build_seconds: float = 0.0
    _by_norm: dict[str, list[int]] = field(default_factory=dict, repr=False)
    _grams: dict[str, list[int]] = field(default_factory=dict, repr=False)
    _norms: list[str] = field(default_factory=list, repr=False)
    _columns: dict[tuple[str, str], list[str]] = field(default_factory=dict, repr=False)
    _year_columns: frozenset[tuple[str, str]] = field(default_factory=frozenset, repr=False)
    """The columns whose values are mostly years (where a year's number is a value)."""
    _words: frozenset[str] | None = field(default=None, repr=False)

    # -- building ---------------------------------------------------------------------------------------------
    @classmethod
    def from_values(cls, rows: Iterable[tuple[str, str, str]]) -> ValueIndex:
        """An index over ``(table, column, value)`` triples (tests, or values read elsewhere)."""
        index = cls()
        for table, column, value in rows:
            index._add(table, column, value)
        index._finish()
        return index

    @classmethod
    def build(cls, connection: Any, schema: Any, *, max_per_column: int = MAX_VALUES_PER_COLUMN,
              max_total: int = MAX_VALUES_TOTAL, seconds: float = BUILD_SECONDS,
              cancel: threading.Event | None = None) -> ValueIndex:
        """Read the values of ``schema``'s text columns through ``connection`` (a
        :class:`~jupyter_nl2sql.connections.Connection`), most frequent first.

        The reads run under ``seconds`` and ``cancel`` like a query (a statement still running at the deadline is
        interrupted); what was read by then is kept and the index is marked partial.
        """
        index = cls()
        t0 = time.perf_counter()
        try:
            with connection.connect() as conn, statement_timeout(conn, seconds, cancel):
                for table in schema.tables:
                    for col in table.columns:
                        if not _is_text_column(col.type):
                            continue
                        if (len(index.values) >= max_total or time.perf_counter() - t0 > seconds
                                or (cancel is not None and cancel.is_set())):
                            index.partial = True
                            break
                        got = _read_column(conn, table, col.name, max_per_column)
                        if got is None or len(got) >= max_per_column:  # failed or interrupted, or capped
                            index.partial = True
                        for value in got or ():
                            index._add(table.name, col.name, value)
        except sa.exc.SQLAlchemyError:
            index.partial = True
        index._finish()
        index.build_seconds = time.perf_counter() - t0
        return index

    def _add(self, table: str, column: str, value: Any) -> None:
        if not isinstance(value, str):
            return
        text = value.strip()
        if not text or len(text) > MAX_VALUE_CHARS:
            return
        norm = normalize(text)
        if not norm:
            return
        self._columns.setdefault((table, column), []).append(text)
        self.values.append((table, column, text, norm))

    def _finish(self) -> None:
        by_norm: dict[str, list[int]] = defaultdict(list)
        grams: dict[str, list[int]] = defaultdict(list)
        norms: list[str] = []
        for i, (_, _, _, norm) in enumerate(self.values):
            if not by_norm.get(norm):
                norms.append(norm)
            by_norm[norm].append(i)
        for j, norm in enumerate(norms):
            for g in _trigrams(norm):
                grams[g].append(j)
        self._by_norm, self._grams, self._norms = dict(by_norm), dict(grams), norms
        self._words = None
        self._year_columns = frozenset(key for key, values in self._columns.items()
                                       if sum(bool(_YEAR.fullmatch(v)) for v in values) * 2 >= len(values))

    # -- reading ----------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.values)

    def words(self) -> frozenset[str]:
        """Every word of the indexed values, normalised (``'Allows Pets'`` gives ``allows`` and ``pets``)."""
        if self._words is None:
            self._words = frozenset(word for norm in self._norms for word in norm.split())
        return self._words

    def column_values(self, table: str, column: str, k: int) -> list[str]:
        """Up to ``k`` values of ``table.column`` (most frequent first when built from a database)."""
        return self._columns.get((table, column), [])[:k]

    def spelling(self, table: str, column: str, text: str) -> str | None:
        """How ``table.column`` spells ``text`` when they differ only in case, accents, dash or quote characters and
        spacing (``'QF'`` → ``'qf'``, ``'1-6'`` → ``'1–6'``, ``'-16'`` → ``'−16'``): the one indexed value of the
        column with the same :func:`fold` form, else None (no such value, several, or ``text`` itself is one)."""
        values = self._columns.get((table, column), [])
        if text in values:
            return None
        key = fold(text)
        found = {v for v in values if fold(v) == key}
        return next(iter(found)) if len(found) == 1 else None

    def has_column(self, table: str, column: str) -> bool:
        """Whether the column's values were indexed (it is a text column with short values)."""
        return (table, column) in self._columns

    def match(self, question: str, *, limit: int = 8, threshold: float = 0.82, max_ngram: int = 6,
              ignore_words: Iterable[str] = ()) -> list[ValueMatch]:
        """The values the question mentions, best first: longest exact matches, then fuzzy ones.

        An n-gram matches a value when their normalised forms are equal, or (n-grams of 4+ characters that are
        not numbers, nor a single word of :data:`ANALYSIS_WORDS`) when they begin with the same character and
        difflib's ratio reaches ``threshold`` (one wrong letter in a six-letter word: 0.83).  Matches may not overlap in the question; one
        span may match the same spelling in several columns (each is listed, up to three).  A single word in
        ``ignore_words`` (normalised; the schema's table and column words), or its singular, is taken to name the
        schema, not a value ("Which driver..." is not about the surname 'Driver').  A number that reads as a year
        matches only in a column whose values are mostly years ("issued in 2010" is not about postal code '2010').
        """
        ignore = {normalize(w) for w in ignore_words}
        if not self.values:
            return []
        words = normalize(question).split()
        spans: list[tuple[float, int, int, int, str, list[int]]] = []  # (-score, -len, start, end, gram, idxs)
        for n in range(min(max_ngram, len(words)), 0, -1):
            for start in range(len(words) - n + 1):
                toks = words[start:start + n]
                if toks[0] in STOPWORDS or toks[-1] in STOPWORDS:
                    continue
                gram = " ".join(toks)
                if n == 1 and ignore and (gram in ignore or _singular(gram) in ignore):
                    continue
                if len(gram) < 2 or (n == 1 and len(gram) < 3 and not gram.isdigit()):
                    continue
                exact = self._by_norm.get(gram)
                if exact and _YEAR.fullmatch(gram):  # "in 2010" names a year, not postal code '2010'
                    exact = [i for i in exact if self.values[i][:2] in self._year_columns]
                if exact:
                    spans.append((-1.0, -n, start, start + n, gram, exact))
                    continue
                if len(gram) < 4 or gram.replace(" ", "").isdigit() or (n == 1 and gram in ANALYSIS_WORDS):
                    continue
                best = self._fuzzy(gram, threshold)
                if best is not None:
                    score, norm = best
                    spans.append((-score, -n, start, start + n, gram, self._by_norm[norm]))
        spans.sort()
        taken = [False] * len(words)
        out: list[ValueMatch] = []
        for neg_score, _, start, end, gram, idxs in spans:
            if any(taken[start:end]):
                continue
            for k in range(start, end):
                taken[k] = True
            for i in idxs[:3]:
                table, column, value, _ = self.values[i]
                out.append(ValueMatch(table, column, value, gram, -neg_score))
            if len(out) >= limit:
                break
        return out[:limit]

    def _fuzzy(self, gram: str, threshold: float) -> tuple[float, str] | None:
        counts: dict[int, int] = defaultdict(int)
        gram_grams = _trigrams(gram)
        for g in gram_grams:
            for j in self._grams.get(g, ()):
                counts[j] += 1
        if not counts:
            return None
        need = max(1, int(0.5 * len(gram_grams)))
        shortlist = sorted((c, j) for j, c in counts.items() if c >= need)[-30:]
        best: tuple[float, str] | None = None
        matcher = difflib.SequenceMatcher(autojunk=False)
        matcher.set_seq2(gram)
        for _, j in shortlist:
            norm = self._norms[j]
            if (norm[0] != gram[0] or abs(len(norm) - len(gram)) > max(2, len(gram) // 4)
                    or norm.replace(" ", "").isdigit()):
                continue
            matcher.set_seq1(norm)
            if matcher.real_quick_ratio() < threshold or matcher.quick_ratio() < threshold:
                continue
            ratio = matcher.ratio()
            if ratio >= threshold and (best is None or ratio > best[0]):
                best = (ratio, norm)
        return best


def _singular(word: str) -> str:
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


def _trigrams(text: str) -> set[str]:
    padded = f" {text} "
    return {padded[i:i + 3] for i in range(len(padded) - 2)}


def _read_column(conn: sa.Connection, table: Any, column: str, limit: int) -> list[Any] | None:
    """The column's distinct values, most frequent first; None when the read failed or was interrupted."""
    col = sa.column(column)
    src = sa.table(table.name, col, schema=getattr(table, "schema", None))
    stmt = (sa.select(col).select_from(src).where(col.is_not(None)).group_by(col)
            .order_by(sa.func.count().desc()).limit(limit))
    fence = conn.begin_nested() if conn.dialect.name == "postgresql" else nullcontext()
    try:
        with fence:
            return [r[0] for r in conn.execute(stmt).fetchall()]
    except sa.exc.SQLAlchemyError:
        return None


def render_matches(matches: Iterable[ValueMatch], dialect: str = "sqlite") -> str:
    """The prompt lines for ``matches`` (empty string when there are none)."""
    lines = [f"-- {m.render(dialect)}" for m in matches]
    if not lines:
        return ""
    return "Values in the database that the question mentions (use these exact spellings):\n" + "\n".join(lines)


class ValueIndexCache:
    """One :class:`ValueIndex` per (connection, schema fingerprint), built on first use."""

    def __init__(self) -> None:
        self._indexes: dict[tuple[str, str], ValueIndex] = {}
        self._lock = threading.Lock()

    def get(self, connection: Any, schema: Any) -> ValueIndex:
        """The index of ``connection`` for ``schema`` (built now if needed)."""
        key = (connection.key, schema.fingerprint)
        with self._lock:
            cached = self._indexes.get(key)
        if cached is not None:
            return cached
        index = ValueIndex.build(connection, schema)
        with self._lock:
            self._indexes[key] = index
        return index

    def clear(self) -> None:
        """Forget every index (after the data changed)."""
        with self._lock:
            self._indexes.clear()
