"""Draft tokens for lookup decoding: guesses of the next few tokens a reply will have, which the engine then checks
in one batch.

Why: on a CPU, decoding is bound by reading the weights once per step, so evaluating a batch of 2–4 tokens costs
little more than evaluating one.  When the guesses are right, several tokens come out of one step; when they are
wrong, the model's own greedy token still does (the engine keeps only the guessed tokens that equal its own choice
at each position), so the reply is the greedy one, up to rounding: a batch is evaluated with other rounding than
one token at a time, which can tip a near-tie.

The guesses come from n-grams (up to :data:`NMAX` tokens of context) of text the reply is likely to repeat: the
tail of the prompt (the question, the schema's names), the reply so far (weighted :data:`LIVE_WEIGHT`), and the
replies this engine wrote before (kept on disk beside the prefix states, so a new process starts with them).  A
token is guessed only when at least :data:`MIN_SHARE` of what followed that context before agrees on it, and a
step guesses fewer tokens, or none, while its first guesses have mostly been wrong (:meth:`Drafter.budget`).

Settings (environment, read at load): ``NL2SQL_DRAFT_TOKENS`` (tokens guessed a step, default
:data:`DEFAULT_DRAFT_TOKENS`; 0 turns lookup decoding off); ``NL2SQL_DRAFT_HISTORY=0`` keeps the replies in memory
only (nothing read or written; the benchmarks use it where questions asked in earlier runs would otherwise be
remembered).
"""

from __future__ import annotations

import json
import threading
from collections import Counter, defaultdict, deque
from pathlib import Path
from typing import Callable, Iterable, Sequence

from .files import atomic_output
from .llama_common import env_int

#: Longest n-gram context used (tokens).
NMAX = 3
#: The share of earlier continuations of a context that must agree on a token before it is guessed.
MIN_SHARE = 0.7
#: How much more the current prompt's tail and reply count than the replies before.
LIVE_WEIGHT = 5
#: Prompt tokens (from its end) the live n-grams are taken from.
PROMPT_TAIL = 400
#: Replies remembered (in memory and in the history file), most recent kept.
HISTORY = 400
#: Tokens guessed a step unless ``NL2SQL_DRAFT_TOKENS`` says otherwise.
DEFAULT_DRAFT_TOKENS = 3
#: How often a step's first guess must have been right (a running average) to guess all the tokens a step allows
#: (None), 2 or 1: a batch costs more than one token (``scripts/batch_cost.py`` measures how much), so guesses that
#: rarely hit lose time.
FIRST_HIT_FOR: tuple[tuple[float, int | None], ...] = ((0.6, None), (0.4, 2), (0.25, 1))
#: Below those, one step in this many still guesses (one token), so that a better run of guesses is noticed.
PROBE_EVERY = 8
#: Weight of the latest step in the running average of first-guess hits.
HIT_WEIGHT = 0.1
HISTORY_FILE = "replies.jsonl"

Table = defaultdict[tuple[int, ...], Counter]


def _table() -> Table:
    return defaultdict(Counter)


def _count(table: Table, tokens: Sequence[int], start: int = 0, weight: int = 1) -> None:
    """Add the n-grams of ``tokens`` that end at positions ``start`` and after to ``table``."""
    for i in range(max(start, 1), len(tokens)):
        for n in range(1, min(NMAX, i) + 1):
            table[tuple(tokens[i - n:i])][tokens[i]] += weight


def _uncount(table: Table, tokens: Sequence[int]) -> None:
    for i in range(1, len(tokens)):
        for n in range(1, min(NMAX, i) + 1):
            key = tuple(tokens[i - n:i])
            counter = table.get(key)
            if counter is not None:
                counter[tokens[i]] -= 1
                if counter[tokens[i]] <= 0:
                    del counter[tokens[i]]
                if not counter:
                    del table[key]


class Drafter:
    """N-gram guesses of a reply's next tokens; one per engine, its history shared by the replies it writes.

    ``tokenize`` turns a remembered reply's text back into tokens (the history file keeps text, one JSON string a
    line, so it does not depend on a tokenizer's ids).  ``history_file`` None: nothing is read or written."""

    def __init__(self, tokenize: Callable[[str], list[int]], history_file: Path | None, *,
                 max_tokens: int = DEFAULT_DRAFT_TOKENS) -> None:
        self.max_tokens = max_tokens
        self._tokenize = tokenize
        self._file = history_file
        self._lock = threading.Lock()
        self._replies: deque[tuple[str, list[int]]] = deque()  # (text, its tokens), oldest first
        self._history: Table = _table()
        self._loaded = False
        # the reply being written: its prompt's tail and its tokens so far
        self._live: Table = _table()
        self._tokens: list[int] = []
        self.proposed = 0
        self.accepted = 0
        self.first_hits = 0.5  # running average: was a step's first guess right?
        self._quiet_steps = 0

    @property
    def enabled(self) -> bool:
        """False when no tokens are guessed (``max_tokens`` 0)."""
        return self.max_tokens > 0

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        if self._file is None:
            return
        try:
            lines = self._file.read_text(encoding="utf-8").splitlines()[-HISTORY:]
        except (OSError, UnicodeDecodeError):
            return
        for line in lines:
            try:
                text = json.loads(line)
            except ValueError:
                continue
            if isinstance(text, str) and text:
                self._remember(text)

    def _remember(self, text: str) -> None:
        tokens = self._tokenize(text)
        self._replies.append((text, tokens))
        _count(self._history, tokens)
        while len(self._replies) > HISTORY:
            _uncount(self._history, self._replies.popleft()[1])

    def start(self, prompt: Sequence[int]) -> None:
        """Begin a reply to ``prompt`` (token ids): its tail's n-grams count as live ones."""
        with self._lock:
            self._load()
        self._live = _table()
        self._tokens = list(prompt[-PROMPT_TAIL:])
        _count(self._live, self._tokens, weight=LIVE_WEIGHT)

    def extend(self, tokens: Iterable[int]) -> None:
        """The reply went on with ``tokens``."""
        start = len(self._tokens)
        self._tokens.extend(tokens)
        _count(self._live, self._tokens, start=start, weight=LIVE_WEIGHT)

    def budget(self) -> int:
        """Tokens to guess at this step: as many as :data:`FIRST_HIT_FOR` allows for the running share of right
        first guesses (at most ``max_tokens``), else 0 except one probing token every :data:`PROBE_EVERY` steps."""
        for share, tokens in FIRST_HIT_FOR:
            if self.first_hits >= share:
                return self.max_tokens if tokens is None else min(tokens, self.max_tokens)
        self._quiet_steps += 1
        if self._quiet_steps >= PROBE_EVERY:
            self._quiet_steps = 0
            return min(1, self.max_tokens)
        return 0

    def record(self, guessed: int, kept: int) -> None:
        """A step evaluated ``guessed`` guesses and the model agreed with the first ``kept`` of them."""
        self.accepted += kept
        if guessed:
            self.first_hits += HIT_WEIGHT * ((1.0 if kept else 0.0) - self.first_hits)

    def propose(self, limit: int | None = None) -> list[int]:
        """Up to :meth:`budget` (and ``limit``) guessed tokens to follow the reply so far; [] when none is sure."""
        count = self.budget()
        if limit is not None:
            count = min(count, limit)
        context = self._tokens[-NMAX:]
        out: list[int] = []
        while len(out) < count:
            guess = self._guess(context)
            if guess is None:
                break
            out.append(guess)
            context = (context + [guess])[-NMAX:]
        self.proposed += len(out)
        return out

    def _guess(self, context: list[int]) -> int | None:
        for n in range(min(NMAX, len(context)), 0, -1):
            key = tuple(context[-n:])
            live, old = self._live.get(key), self._history.get(key)
            if not live and not old:
                continue
            votes = Counter(old) if old else Counter()
            if live:
                votes.update(live)
            token, top = votes.most_common(1)[0]
            return token if top >= MIN_SHARE * sum(votes.values()) else None
        return None

    def finish(self, text: str) -> None:
        """The reply is complete: remember its ``text`` for later replies (and in the history file)."""
        text = text.strip()
        if not text:
            return
        with self._lock:
            self._remember(text)
            if self._file is None:
                return
            try:
                with atomic_output(self._file) as temp:
                    temp.write_text("".join(json.dumps(t) + "\n" for t, _ in self._replies), encoding="utf-8")
            except OSError:  # a read-only or full cache must not fail the question
                pass


def drafter_for(tokenize: Callable[[str], list[int]], folder: Path | None) -> Drafter:
    """The :class:`Drafter` an engine uses: its history in ``folder`` (None, or ``NL2SQL_DRAFT_HISTORY=0``: in
    memory only), ``NL2SQL_DRAFT_TOKENS`` guesses a step."""
    keep = folder is not None and keeps_history()
    return Drafter(tokenize, folder / HISTORY_FILE if keep else None, max_tokens=draft_tokens())


def keeps_history() -> bool:
    """``NL2SQL_DRAFT_HISTORY``: whether the replies are remembered on disk (default yes)."""
    return bool(env_int("NL2SQL_DRAFT_HISTORY", 1, minimum=0))


def check_settings() -> None:
    """Raise :class:`~jupyter_nl2sql.errors.ConfigError` for a bad ``NL2SQL_DRAFT_TOKENS`` or
    ``NL2SQL_DRAFT_HISTORY`` (an engine calls it before loading its weights)."""
    draft_tokens()
    keeps_history()


def draft_tokens() -> int:
    """Tokens to guess a step: ``NL2SQL_DRAFT_TOKENS`` or :data:`DEFAULT_DRAFT_TOKENS`."""
    return env_int("NL2SQL_DRAFT_TOKENS", DEFAULT_DRAFT_TOKENS, minimum=0)
