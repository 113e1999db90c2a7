"""What every model backend offers the pipeline: :class:`Backend` and its result, :class:`Generation`."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Protocol, TypedDict, runtime_checkable


class Message(TypedDict):
    """One chat message: ``{"role": "system" | "user" | "assistant", "content": str}``."""

    role: str
    content: str


FENCE = "```"


def sql_block_end(text: str) -> int | None:
    r"""Index just past the closing fence of the first fenced code block in ``text``, or None while none is closed.

    The opening fence counts only with its line (``` or ```sql and a newline), so a reply that has just begun a
    block is not cut short.

    >>> sql_block_end("Here:\n```sql\nSELECT 1;\n```\nMore text")
    26
    >>> sql_block_end("```sql\nSELECT 1;") is None
    True
    """
    start = text.find(FENCE)
    if start < 0:
        return None
    body = text.find("\n", start + len(FENCE))
    if body < 0:
        return None
    close = text.find(FENCE, body)
    return None if close < 0 else close + len(FENCE)


@dataclass(frozen=True)
class BranchPoint:
    """A place in a reply where the model hesitated: the reply up to there, the token it chose and its runner-up,
    each with its probability.  Continuing the reply from ``reply_before + alternative`` gives the answer the
    model would have written had it taken the other way there."""

    reply_before: str
    chosen: str
    alternative: str
    p_chosen: float
    p_alternative: float

    def to_list(self) -> list:
        """The point as JSON-ready values (for the generation cache)."""
        return [self.reply_before, self.chosen, self.alternative, self.p_chosen, self.p_alternative]


#: A generated token whose probability is below this is kept as a :class:`BranchPoint` of its reply.
BRANCH_FLOOR = 0.98


def branch_points(tokens: list[tuple[str, float, str | None, float | None]]) -> tuple[BranchPoint, ...]:
    """The :class:`BranchPoint` s of a reply given token by token as ``(text, probability, runner-up text,
    runner-up probability)``: the tokens below :data:`BRANCH_FLOOR` that had a runner-up.

    >>> [p.alternative for p in branch_points([("SELECT", 0.99, "select", 0.01), (" name", 0.6, " *", 0.3)])]
    [' *']
    """
    points, before = [], []
    for text, p, alt, p_alt in tokens:
        if p < BRANCH_FLOOR and alt is not None and alt != text:
            points.append(BranchPoint("".join(before), text, alt, p, float(p_alt or 0.0)))
        before.append(text)
    return tuple(points)


@dataclass(frozen=True)
class Generation:
    """The model's reply to one prompt, with its cost."""

    text: str
    """The generated text (special tokens removed; ends at the closing ``` of a SQL block when there is one)."""
    tokens_in: int
    """Prompt length in tokens."""
    tokens_out: int
    """Generated tokens."""
    seconds: float
    """Wall time of the generation."""
    tokens_reused: int = 0
    """Prompt tokens not evaluated again because the backend kept them from the previous call (llama.cpp's prefix
    reuse); 0 when the whole prompt was evaluated."""
    logprob: float | None = None
    """The model's score of its reply: the mean log-probability of the generated tokens (the closer to 0, the surer
    the model was); None when the backend cannot tell (an HTTP server, assisted decoding)."""
    prefill_seconds: float | None = None
    """Time spent evaluating the prompt tokens that were not reused (None when the backend cannot tell)."""
    decode_seconds: float | None = None
    """Time spent generating the reply's tokens (None when the backend cannot tell)."""
    prefix_source: str | None = None
    """How the prompt's question-independent head got into the cache: ``"resident"``, ``"restored"`` (from its
    state file), ``"computed"`` or ``"none"``; None when the backend keeps no prefix states."""
    prefix_seconds: float = 0.0
    """Time spent bringing that head in (restoring or evaluating it)."""
    tokens_guessed: int = 0
    """Generated tokens that came out of lookup decoding's guesses (the model agreed with them, so their step also
    gave the next token); 0 without lookup decoding."""
    branch_points: tuple[BranchPoint, ...] = ()
    """Where the model hesitated (see :class:`BranchPoint`), in reply order, ``reply_start`` included in each
    ``reply_before``; empty when the backend cannot tell or the model never did."""

    @property
    def tokens_per_second(self) -> float | None:
        """Generated tokens per second (None when nothing was generated)."""
        return self.tokens_out / self.seconds if self.tokens_out and self.seconds > 0 else None

    @property
    def tokens_computed(self) -> int:
        """Prompt tokens evaluated by this call (not reused from a cache)."""
        return self.tokens_in - self.tokens_reused


@runtime_checkable
class Backend(Protocol):
    """A loaded model that turns chat messages into text.

    Attributes: ``model_id`` (as the user named it), ``device`` (``"cpu"``, ``"cuda:0"``...), ``dtype``
    (``"bfloat16"``...), ``provenance`` (model_id, source, path, sha256 or revision, dtype, device...).
    """

    model_id: str
    device: str
    dtype: str
    provenance: dict[str, Any]

    def generate(self, messages: list[Message], max_new_tokens: int = 256,
                 cancel: threading.Event | None = None) -> Generation:
        """Greedy completion of ``messages`` (chat template applied inside).

        ``cancel``: when set during the call, generation stops between tokens and
        :class:`~jupyter_nl2sql.errors.Cancelled` is raised.  (Callers pass it only to backends whose ``generate``
        accepts it: see :func:`accepts_cancel`.)
        """
        ...

    def render_prompt(self, messages: list[Message]) -> str:
        """The exact text the model sees for ``messages``."""
        ...


def accepts_cancel(generate: Any) -> bool:
    """Whether a backend's ``generate`` takes a ``cancel`` keyword (test doubles and older backends may not).

    >>> accepts_cancel(lambda messages, max_new_tokens=256, cancel=None: None)
    True
    >>> accepts_cancel(lambda messages, max_new_tokens=256: None)
    False
    """
    return accepts_keyword(generate, "cancel")


def accepts_keyword(function: Any, name: str) -> bool:
    """Whether ``function`` takes the keyword ``name`` (or any keyword).

    >>> accepts_keyword(lambda messages, prefix=None: None, "prefix"), accepts_keyword(print, "prefix")
    (True, False)
    """
    import inspect

    try:
        params = inspect.signature(function).parameters
    except (TypeError, ValueError):
        return False
    return name in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
