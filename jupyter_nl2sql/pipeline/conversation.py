"""Follow-up questions: one conversation per connection.

Each question asked through :meth:`~jupyter_nl2sql.pipeline.assistant.Assistant.ask` becomes a :class:`Turn` of
its connection's :class:`Conversation` (the question, the SQL the pipeline kept, whether it passed).  A follow-up
("and only for 2024?", "split that by country", "top 10 instead") is asked as the next message of a chat
(:func:`~jupyter_nl2sql.pipeline.prompting.follow_up_messages`): the conversation's first prompt, the SQL kept for each
turn as the model's reply, each follow-up as a user message.  The schema part stays the same bytes, so its evaluated
prompt state is shared by every question on the database, and a follow-up's prompt continues the previous one, so the
engine evaluates only what it adds.  The first prompt keeps the layout it was asked in; the follow-up's message is
written in the current ``prompt_layout``.  A follow-up is asked with one prompt (``candidates`` applies to the
question that opens a conversation).  A follow-up's query runs without a ``LIMIT`` its question did not ask for when
the previous query had none, and keeps the conditions of the previous query that it dropped although the question did
not widen it (:mod:`~jupyter_nl2sql.pipeline.refinements`, ``drop_unasked_limit``, ``keep_conditions``).

Whether a question continues its connection's conversation is the caller's choice (``follow_up``):

- ``False``: a new conversation starts with this question (the Python API's default: predictable);
- ``True``: it must continue one; with no earlier question on the connection, :class:`QuestionError`;
- ``None``: it continues the conversation when there is one *and* the question reads as a follow-up
  (:func:`looks_like_follow_up`: "and only for 2024?", "split that by country", "top 10 instead"), else starts a new
  one (the magic and the panel; ``--new`` and the panel's *New conversation* button start over, ``--follow``
  insists).  A question that stands on its own is asked on its own: shown earlier, unrelated questions pull the
  model towards them.

>>> talks = Conversations()
>>> talks.context("db", None)
[]
>>> talks.add("db", Turn("How many orders per country?", "SELECT ...", True), new=True)
1
>>> [t.question for t in talks.context("db", None, "and by city?")]
['How many orders per country?']
>>> talks.context("db", False)
[]
>>> talks.context("db", None, "Which city has the most customers?")
[]
"""

from __future__ import annotations

import re
import threading
from collections import deque
from dataclasses import dataclass
from typing import Iterator, Literal

from ..errors import QuestionError

__all__ = ["Turn", "Conversation", "Conversations", "CONTEXT_TURNS", "CONTEXT_CHARS", "NO_EARLIER_QUESTION",
           "FollowUp", "thread_label", "looks_like_follow_up"]

#: Most earlier turns shown to the model with a follow-up (the newest ones).
CONTEXT_TURNS = 3
#: Most characters of earlier questions and SQL shown with a follow-up; older turns are left out first (the newest
#: turn is always shown, cut to this length if it alone is longer).
CONTEXT_CHARS = 3000
#: Turns kept per connection (the thread the history shows; the prompt shows at most :data:`CONTEXT_TURNS`).
KEPT_TURNS = 50

#: ``follow_up`` values: must continue (True), start over (False), continue when there is a conversation (None).
FollowUp = Literal[True, False, None]

NO_EARLIER_QUESTION = ("there is no earlier question on this connection to follow up: ask a question first "
                       "(or ask without follow-up)")


@dataclass(frozen=True)
class Turn:
    """One question of a conversation: the question, the SQL the pipeline kept (None when it wrote none, e.g. a
    refusal), whether that SQL passed its checks (and ran, unless generate-only), and ``messages``: what the turn
    put in the prompt (a conversation's first turn: its whole prompt, schema included; a follow-up: its one user
    message), so that a later follow-up's prompt continues this one's exactly."""

    question: str
    sql: str | None
    ok: bool
    messages: tuple[dict, ...] = ()

    def chars(self) -> int:
        """Length of what the prompt shows of this turn (its question and SQL)."""
        return len(self.question) + len(self.sql or "")

    def cut(self, max_chars: int) -> "Turn":
        """This turn with its SQL cut so that question and SQL fit ``max_chars``."""
        room = max(max_chars - len(self.question), 0)
        return Turn(self.question, (self.sql or "")[:room] or None, self.ok, self.messages)


# English question text (never SQL): how a follow-up opens, refers back, or stops short.
_OPENERS = re.compile(r"^(?:and|but|now|then|also|plus|same|only|just|instead|except|excluding|including|without|"
                      r"what about|how about|what if|sort(?:ed)?|order(?:ed)?|split|break|group(?:ed)?|top|bottom|"
                      r"limit|per|by|for|in|as|among|of those|of these|of them|which of|who of|how many of)\b")
_BACK = re.compile(r"\b(?:of (?:them|those|these)|instead|as well|the same|the previous|the last (?:one|query|answer)|"
                   r"(?:sort|split|show|do|break|group|order|filter|limit|restrict) (?:that|it|this|them|those))\b")
_EARLY_PRONOUNS = frozenset("them those these their that it this they".split())
_ENDS_SHORT = re.compile(r"\bthe (?:most|least|best|worst|highest|lowest|biggest|smallest|largest|first|last)\W*$")
_SHORT_WORDS = 4


def looks_like_follow_up(question: str) -> bool:
    """Whether ``question`` reads as a follow-up of the one before rather than a question of its own: it opens
    like one ("and ...", "only ...", "what about ...", "top 10 ..."), refers back ("of them", "instead",
    "split that"), has a pronoun among its first words ("what are their names?"), ends on a bare superlative
    ("which month was the best?"), or is a fragment of at most four words ("biggest first").

    >>> [looks_like_follow_up(q) for q in ("and only for 2024?", "split that by country", "top 10 instead",
    ...                                     "what are their names?", "biggest first", "which one was the best?")]
    [True, True, True, True, True, True]
    >>> [looks_like_follow_up(q) for q in ("How many customers are from Italy?",
    ...     "List the products in the Audio category with their prices.",
    ...     "What are the names of the products that cost more than 500?")]
    [False, False, False]
    """
    text = " ".join(question.lower().split())
    words = re.findall(r"[a-z0-9']+", text)
    if not words:
        return False
    if len(words) <= _SHORT_WORDS or _OPENERS.match(text) or _BACK.search(text) or _ENDS_SHORT.search(text):
        return True
    return any(w in _EARLY_PRONOUNS for w in words[1:4])


def thread_label(turn: int | None) -> str:
    """How the front ends mark a follow-up: ``"↳ follow-up (turn 2)"``; "" for a question that started a conversation
    (or SQL run by a person).

    >>> thread_label(2), thread_label(1)
    ('↳ follow-up (turn 2)', '')
    """
    return f"↳ follow-up (turn {turn})" if turn and turn > 1 else ""


class Conversation:
    """The turns of one connection's conversation, oldest first (at most :data:`KEPT_TURNS`)."""

    def __init__(self) -> None:
        self.turns: deque[Turn] = deque(maxlen=KEPT_TURNS)

    def __len__(self) -> int:
        return len(self.turns)

    def __iter__(self) -> Iterator[Turn]:
        return iter(self.turns)

    def context(self, max_turns: int = CONTEXT_TURNS, max_chars: int = CONTEXT_CHARS) -> list[Turn]:
        """The turns a follow-up is asked with, oldest first: the conversation's first turn (its prompt holds the
        schema the thread builds on) and the newest turns, at most ``max_turns`` in all and ``max_chars`` of
        questions and SQL; the newest always (its SQL cut to fit)."""
        if not self.turns:
            return []
        first, rest = self.turns[0], list(self.turns)[1:]
        shown: list[Turn] = []
        used = 0
        for turn in reversed(rest):
            if len(shown) >= max_turns - 1:
                break
            if shown and used + turn.chars() > max_chars:
                break
            if not shown and turn.chars() > max_chars:
                turn = turn.cut(max_chars)
            shown.append(turn)
            used += turn.chars()
        if used + first.chars() > max_chars:
            first = first.cut(max(max_chars - used, 0))
        return [first, *shown[::-1]]


class Conversations:
    """The conversation of each connection (by :attr:`~jupyter_nl2sql.connections.Connection.key`); thread-safe
    (the panel asks from a worker thread while the magic may ask from the kernel's)."""

    def __init__(self, max_turns: int = CONTEXT_TURNS, max_chars: int = CONTEXT_CHARS) -> None:
        self.max_turns = max_turns
        self.max_chars = max_chars
        self._talks: dict[str, Conversation] = {}
        self._lock = threading.Lock()

    def context(self, key: str, follow_up: FollowUp, question: str = "") -> list[Turn]:
        """The earlier turns ``question`` on ``key`` is asked with (see the module's ``follow_up``); raises
        :class:`QuestionError` for ``follow_up=True`` on a connection with no earlier question."""
        if follow_up is False or (follow_up is None and not looks_like_follow_up(question)):
            return []
        with self._lock:
            talk = self._talks.get(key)
            turns = talk.context(self.max_turns, self.max_chars) if talk else []
        if follow_up is True and not turns:
            raise QuestionError(NO_EARLIER_QUESTION)
        return turns

    def add(self, key: str, turn: Turn, *, new: bool) -> int:
        """Record ``turn`` on ``key``'s conversation (a new one when ``new``); returns its number in it (1: first)."""
        with self._lock:
            talk = self._talks.get(key)
            if new or talk is None:
                talk = self._talks[key] = Conversation()
            talk.turns.append(turn)
            return len(talk)

    def reset(self, key: str) -> bool:
        """Forget ``key``'s conversation (the next question starts a new one); True when there was one."""
        with self._lock:
            return self._talks.pop(key, None) is not None

    def turns(self, key: str) -> list[Turn]:
        """Every kept turn of ``key``'s conversation, oldest first."""
        with self._lock:
            talk = self._talks.get(key)
            return list(talk) if talk else []
