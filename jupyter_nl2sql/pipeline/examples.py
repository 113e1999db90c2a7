"""Few-shot examples: a store of (question, SQL) pairs and retrieval of the ones most like a new question.

Two sources feed the prompt:

* **taught examples** — pairs a person saved for *their* database with :meth:`Assistant.teach
  <jupyter_nl2sql.pipeline.assistant.Assistant.teach>` (checked and run once before saving).  :class:`TaughtStore` keeps
  them as JSON in the user cache directory, one file per database, keyed by the schema fingerprint and the URL
  without its password.  They take priority over the pool.
* **a pool** — a JSON list of ``{"question", "query" | "sql", "db_id"}`` pairs from *other* databases
  (:class:`ExamplePool`; the Spider benchmark passes Spider *train*).  Pool examples of the database being asked
  about are always excluded.

Retrieval is structure-aware (after DAIL-SQL's question masking): the words of a question that name a table or a
column of its database become ``<s>``, the values it mentions ``<v>``, numbers ``<n>``.  "How many singers are
from France?" and "How many pilots are older than 30?" then share ``how many <s> ... <v|n>``, whatever the
domain.  Masked questions are compared with BM25 over their words and word pairs.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import os
import re
import tempfile
import threading
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

from ..errors import ConfigError
from ..paths import examples_dir
from .values import normalize

#: Placeholders of masked questions.
SCHEMA, VALUE, NUMBER = "<s>", "<v>", "<n>"


@dataclass(frozen=True)
class StoredExample:
    """A (question, SQL) pair with where it came from."""

    id: str
    question: str
    sql: str
    source: str = "pool"
    """``"taught"`` or ``"pool"``."""
    db_id: str | None = None
    created: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return {k: v for k, v in asdict(self).items() if v is not None}


def example_id(question: str, sql: str) -> str:
    """A short stable id for a pair (8 hex digits)."""
    return hashlib.sha256(f"{question.strip()}\x00{sql.strip()}".encode()).hexdigest()[:8]


# ---------------------------------------------------------------------------------------------------------------
# Masking
# ---------------------------------------------------------------------------------------------------------------
def identifier_words(name: str) -> list[str]:
    """The words of an identifier: ``song_releaseYear`` → ``['song', 'release', 'year']``.

    >>> identifier_words("Song_releaseYear")
    ['song', 'release', 'year']
    """
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", str(name))
    return normalize(spaced).split()


def stem(word: str) -> str:
    """A word without its plural ending: ``puppies`` → ``puppy``, ``boxes`` → ``box``, ``class`` stays.

    >>> [stem(w) for w in ("puppies", "boxes", "teachers", "class")]
    ['puppy', 'box', 'teacher', 'class']
    """
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("es") and word[-3] in "sxz":
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


#: Words kept as they are even when a table or column is named after them: they carry the question's structure.
STRUCTURE_WORDS = frozenset("""
how many much what which who when where each every all any average avg total sum count number maximum minimum max
min most least highest lowest largest smallest more less than greater fewer before after between order sorted
descending ascending not no without never both either and or distinct different unique top first last only
""".split())


def schema_vocabulary(table_names: Iterable[str], column_names: Iterable[str]) -> frozenset[str]:
    """Stemmed words of the table and column names (structure words excluded)."""
    words: set[str] = set()
    for name in [*table_names, *column_names]:
        for w in identifier_words(name):
            if len(w) > 1 and w not in STRUCTURE_WORDS and not w.isdigit():
                words.add(stem(w))
    return frozenset(words)


def mask_question(question: str, vocabulary: Iterable[str] = (), values: Iterable[str] = ()) -> list[str]:
    """The question's words with schema words, values and numbers replaced by placeholders.

    >>> mask_question("How many singers are from France?", {"singer", "country"}, ["France"])
    ['how', 'many', '<s>', 'are', 'from', '<v>']
    >>> mask_question("Pilots older than 30", {"pilot", "age"})
    ['<s>', 'older', 'than', '<n>']
    """
    vocab = vocabulary if isinstance(vocabulary, (set, frozenset)) else set(vocabulary)
    words = normalize(question).split()
    tags: list[str | None] = [None] * len(words)
    for value in sorted({normalize(v) for v in values if v is not None}, key=len, reverse=True):
        vw = value.split()
        if not vw or (len(vw) == 1 and (len(vw[0]) < 2 or _is_number(vw[0]))):  # numbers: <n> below
            continue
        for i in range(len(words) - len(vw) + 1):
            if words[i:i + len(vw)] == vw and all(t is None for t in tags[i:i + len(vw)]):
                for j in range(i, i + len(vw)):
                    tags[j] = VALUE
    out: list[str] = []
    for word, tag in zip(words, tags):
        if tag is None:
            if _is_number(word):
                tag = NUMBER
            elif word not in STRUCTURE_WORDS and stem(word) in vocab:
                tag = SCHEMA
        token = tag or word
        if token in (SCHEMA, VALUE, NUMBER) and out and out[-1] == token:
            continue
        out.append(token)
    return out


def _is_number(word: str) -> bool:
    return bool(re.fullmatch(r"\d+(?:\.\d+)?", word))


def sql_literals(sql: str) -> list[str]:
    """String and number literals of a SQL text (single or double quoted strings, as Spider writes them)."""
    out = [a or b for a, b in re.findall(r"'((?:[^']|'')*)'|\"([^\"]*)\"", sql)]
    out += re.findall(r"(?<![\w.])\d+(?:\.\d+)?(?![\w.])", sql)
    return [s.replace("%", " ").strip() for s in out if s.replace("%", "").strip()]


def sql_identifiers(sql: str) -> list[str]:
    """Bare words of a SQL text that are not keywords (a fallback vocabulary when no schema is known)."""
    text = re.sub(r"'(?:[^']|'')*'|\"[^\"]*\"", " ", sql)
    return [w for w in re.findall(r"[A-Za-z_][A-Za-z0-9_]*", text) if w.upper() not in _SQL_KEYWORDS
            and not re.fullmatch(r"[Tt]\d+", w)]


_SQL_KEYWORDS = frozenset("""
SELECT FROM WHERE AND OR NOT IN AS ON JOIN LEFT RIGHT INNER OUTER GROUP BY ORDER HAVING LIMIT DESC ASC COUNT SUM
AVG MIN MAX DISTINCT UNION INTERSECT EXCEPT LIKE BETWEEN IS NULL EXISTS CASE WHEN THEN ELSE END ALL ANY OFFSET
CAST INTEGER TEXT REAL
""".split())


def terms(tokens: Sequence[str]) -> list[str]:
    """Words and adjacent word pairs of a masked question (the BM25 terms)."""
    return [*tokens, *(f"{a} {b}" for a, b in zip(tokens, tokens[1:]))]


def sql_shape(sql: str) -> str:
    """The SQL with literals replaced and whitespace collapsed, lower case (to drop duplicate pairs)."""
    text = re.sub(r"'(?:[^']|'')*'|\"[^\"]*\"", "'v'", sql)
    text = re.sub(r"\b\d+(?:\.\d+)?\b", "0", text)
    return " ".join(text.lower().split())


def tidy_sql(sql: str) -> str:
    """One line, single spaces, no trailing semicolon (Spider's gold has doubled spaces).

    >>> tidy_sql("SELECT a  FROM  t ;")
    'SELECT a FROM t'
    """
    return " ".join(sql.split()).rstrip(";").strip()


def single_quoted(sql: str) -> str:
    """Spider writes string literals in double quotes (SQLite reads them as strings when no column matches); the
    standard — and every other dialect — wants single quotes.

    >>> single_quoted("SELECT a FROM t WHERE b = \\"Bob\\" AND c = 'x'")
    "SELECT a FROM t WHERE b = 'Bob' AND c = 'x'"
    """
    out, i = [], 0
    for m in re.finditer(r"'(?:[^']|'')*'|\"([^\"]*)\"", sql):
        out.append(sql[i:m.start()])
        out.append(m.group(0) if m.group(1) is None else "'" + m.group(1).replace("'", "''") + "'")
        i = m.end()
    out.append(sql[i:])
    return "".join(out)


# ---------------------------------------------------------------------------------------------------------------
# BM25
# ---------------------------------------------------------------------------------------------------------------
class BM25:
    """Okapi BM25 over pre-tokenised documents (k1=1.2, b=0.75), with an inverted index."""

    def __init__(self, docs: Sequence[Sequence[str]], k1: float = 1.2, b: float = 0.75) -> None:
        self.k1, self.b = k1, b
        self.n = len(docs)
        self.lengths = [len(d) for d in docs]
        self.avg = (sum(self.lengths) / self.n) if self.n else 0.0
        self.postings: dict[str, list[tuple[int, int]]] = defaultdict(list)
        for i, doc in enumerate(docs):
            for term, tf in Counter(doc).items():
                self.postings[term].append((i, tf))
        self.idf = {t: math.log(1 + (self.n - len(p) + 0.5) / (len(p) + 0.5)) for t, p in self.postings.items()}

    def scores(self, query: Sequence[str]) -> dict[int, float]:
        """Document index → score, for the documents sharing a term with ``query``."""
        out: dict[int, float] = defaultdict(float)
        for term in set(query):
            idf = self.idf.get(term)
            if idf is None:
                continue
            for i, tf in self.postings[term]:
                norm = self.k1 * (1 - self.b + self.b * self.lengths[i] / (self.avg or 1))
                out[i] += idf * tf * (self.k1 + 1) / (tf + norm)
        return out


# ---------------------------------------------------------------------------------------------------------------
# The pool (other databases)
# ---------------------------------------------------------------------------------------------------------------
class ExamplePool:
    """Examples from other databases, searchable by masked question.

    ``path``: a JSON list of objects with ``question``, ``query`` (or ``sql``) and ``db_id``.  When a Spider-style
    ``tables.json`` lies next to it (or is given), each example's question is masked with its own database's table
    and column names; otherwise with the identifiers of its SQL.
    """

    def __init__(self, examples: Sequence[StoredExample], masked: Sequence[Sequence[str]]) -> None:
        self.examples = list(examples)
        self.masked = [list(m) for m in masked]
        self.index = BM25([terms(m) for m in self.masked])
        self.db_ids = frozenset(e.db_id for e in self.examples if e.db_id)

    @classmethod
    def from_records(cls, records: Iterable[dict[str, Any]],
                     vocabularies: dict[str, frozenset[str]] | None = None) -> ExamplePool:
        """A pool from ``{"question", "query"|"sql", "db_id"}`` records; ``vocabularies``: db_id → schema words."""
        examples, masked, seen = [], [], set()
        for rec in records:
            question = str(rec["question"]).strip()
            sql = single_quoted(tidy_sql(str(rec.get("query") or rec.get("sql") or "")))
            if not question or not sql:
                continue
            db_id = rec.get("db_id")
            key = (db_id, sql_shape(sql), normalize(question))
            if key in seen:
                continue
            seen.add(key)
            vocab = (vocabularies or {}).get(db_id) if db_id else None
            if vocab is None:
                vocab = schema_vocabulary([], sql_identifiers(sql))
            examples.append(StoredExample(example_id(question, sql), question, sql, "pool", db_id))
            masked.append(mask_question(question, vocab, sql_literals(sql)))
        return cls(examples, masked)

    @classmethod
    def load(cls, path: str | os.PathLike, tables: str | os.PathLike | None = None) -> ExamplePool:
        """Read a pool file (cached per path and modification time)."""
        path = Path(path).expanduser().resolve()
        tables_path = Path(tables) if tables else path.parent / "tables.json"
        key = (str(path), path.stat().st_mtime_ns, str(tables_path))
        with _POOL_LOCK:
            cached = _POOLS.get(key)
        if cached is not None:
            return cached
        records = json.loads(path.read_text(encoding="utf-8"))
        vocabularies = _spider_vocabularies(tables_path) if tables_path.exists() else None
        pool = cls.from_records(records, vocabularies)
        with _POOL_LOCK:
            _POOLS[key] = pool
        return pool

    def __len__(self) -> int:
        return len(self.examples)

    def search(self, masked: Sequence[str], k: int, *, exclude_db: Iterable[str] = (), skip: int = 0
               ) -> list[tuple[float, StoredExample]]:
        """The ``k`` best examples (after skipping the ``skip`` best), one per SQL shape, best first."""
        excluded = {d for d in exclude_db if d}
        ranked = sorted(self.index.scores(terms(masked)).items(), key=lambda kv: (-kv[1], kv[0]))
        out: list[tuple[float, StoredExample]] = []
        shapes: set[str] = set()
        for i, score in ranked:
            ex = self.examples[i]
            if ex.db_id in excluded:
                continue
            shape = sql_shape(ex.sql)
            if shape in shapes:
                continue
            shapes.add(shape)
            out.append((score, ex))
            if len(out) >= k + skip:
                break
        return out[skip:]


_POOLS: dict[tuple, ExamplePool] = {}
_POOL_LOCK = threading.Lock()


def _spider_vocabularies(tables_path: Path) -> dict[str, frozenset[str]]:
    """db_id → schema words from a Spider ``tables.json`` (original and natural-language names)."""
    out = {}
    for db in json.loads(tables_path.read_text(encoding="utf-8")):
        names = [*db.get("table_names_original", []), *db.get("table_names", [])]
        cols = [c for _, c in [*db.get("column_names_original", []), *db.get("column_names", [])] if c != "*"]
        out[db["db_id"]] = schema_vocabulary(names, cols)
    return out


# ---------------------------------------------------------------------------------------------------------------
# Taught examples (the user's own database)
# ---------------------------------------------------------------------------------------------------------------
class TaughtStore:
    """Examples people taught, one JSON file per database under ``directory`` (default:
    :func:`jupyter_nl2sql.paths.examples_dir`)."""

    def __init__(self, directory: str | os.PathLike | None = None) -> None:
        self.directory = Path(directory) if directory is not None else examples_dir()
        self._lock = threading.Lock()

    def path(self, fingerprint: str, url: str) -> Path:
        """The file of the database with this schema fingerprint at this (password-free) URL."""
        url_hash = hashlib.sha256(url.encode()).hexdigest()[:12]
        return self.directory / f"{fingerprint}-{url_hash}.json"

    def list(self, fingerprint: str, url: str) -> list[StoredExample]:
        """The taught examples of a database, oldest first."""
        path = self.path(fingerprint, url)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return []
        return [StoredExample(e["id"], e["question"], e["sql"], "taught", None, e.get("created"))
                for e in data.get("examples", []) if {"id", "question", "sql"} <= set(e)]

    def add(self, fingerprint: str, url: str, question: str, sql: str) -> StoredExample:
        """Save a pair (replacing an earlier pair with the same question) and return it."""
        ex = StoredExample(example_id(question, sql), question.strip(), tidy_sql(sql), "taught", None,
                           _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
        with self._lock:
            kept = [e for e in self.list(fingerprint, url)
                    if e.id != ex.id and normalize(e.question) != normalize(ex.question)]
            self._write(fingerprint, url, [*kept, ex])
        return ex

    def remove(self, fingerprint: str, url: str, example_id: str) -> bool:
        """Delete the example with this id (or id prefix); True if one was removed."""
        with self._lock:
            current = self.list(fingerprint, url)
            kept = [e for e in current if not (example_id and e.id.startswith(example_id))]
            if len(kept) == len(current):
                return False
            self._write(fingerprint, url, kept)
        return True

    def _write(self, fingerprint: str, url: str, examples: list[StoredExample]) -> None:
        path = self.path(fingerprint, url)
        path.parent.mkdir(parents=True, exist_ok=True)
        data = {"url": url, "schema_fingerprint": fingerprint,
                "examples": [{k: v for k, v in e.to_dict().items() if k not in ("source", "db_id")}
                             for e in examples]}
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".examples-", suffix=".json")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(data, fh, indent=1, ensure_ascii=False)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


class ExampleStore:
    """Where a question's examples come from: the taught ones (:attr:`taught`, a :class:`TaughtStore` under
    ``directory``) and a pool of other databases' examples (:meth:`pool`)."""

    def __init__(self, directory: str | os.PathLike | None = None) -> None:
        self.taught = TaughtStore(directory)

    @staticmethod
    def pool(path: str | os.PathLike | None) -> ExamplePool | None:
        """The pool in the file ``path`` (read once per path and modification time), or None without a path."""
        if not path:
            return None
        try:
            return ExamplePool.load(path)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"cannot read the example pool {path}: {exc}") from None


# ---------------------------------------------------------------------------------------------------------------
# Selection
# ---------------------------------------------------------------------------------------------------------------
def overlap(a: Sequence[str], b: Sequence[str]) -> float:
    """Dice overlap of the word and word-pair sets of two masked questions (0..1)."""
    ta, tb = set(terms(a)), set(terms(b))
    return 2 * len(ta & tb) / (len(ta) + len(tb)) if ta and tb else 0.0


def select_examples(masked: Sequence[str], k: int, *, taught: Sequence[StoredExample] = (),
                    taught_masked: Sequence[Sequence[str]] = (), pool: ExamplePool | None = None,
                    exclude_db: Iterable[str] = (), skip: int = 0) -> list[StoredExample]:
    """Up to ``k`` examples for a question, most similar last (nearest the question in the prompt).

    Taught examples come first (most similar of them, all of them when there are at most ``k``); the pool fills
    the remaining places.  ``skip`` passes over the best pool examples (another candidate's prompt).
    """
    if k <= 0:
        return []
    ranked_taught = sorted(zip(taught, taught_masked), key=lambda p: -overlap(masked, p[1]))
    chosen = [ex for ex, _ in ranked_taught[:k]]
    if pool is not None and len(chosen) < k:
        shapes = {sql_shape(e.sql) for e in chosen}
        for _, ex in pool.search(masked, k - len(chosen) + len(shapes), exclude_db=exclude_db, skip=skip):
            if sql_shape(ex.sql) not in shapes and len(chosen) < k:
                chosen.append(ex)
                shapes.add(sql_shape(ex.sql))
    return list(reversed(chosen))
