"""What the two llama.cpp engines (:mod:`.llamacpp_backend`, :mod:`.ikllama_backend`) share: the prefix-state files
on disk, the settings read from the environment, the thread count, the generated-token record and the one-line
errors.  Imports no engine."""

from __future__ import annotations

import hashlib
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..errors import ConfigError, ModelError
from .base import Generation, branch_points, sql_block_end
from .files import cache_dir, first_line
from .resolve import ResolvedModel

logger = logging.getLogger("jupyter_nl2sql")

DEFAULT_N_CTX = 8192
"""Context window (prompt + reply tokens).  The KV cache costs ~28 KB per token for the 1.5B model; the
pipeline's schema cap (``max_schema_chars``) stays well inside it."""
PROMPT_BATCH = 512
"""Prompt tokens evaluated per step; the cancel event and progress are checked between steps (smaller batches cost
prompt throughput on a CPU)."""
DEFAULT_PREFIX_CACHE_MB = 2048
"""Disk budget of the prefix states (a state of the 1.5B model is ~28 KB per prompt token: ~25 MB for a schema of
900 tokens); the least recently used are removed past it."""
MIN_PREFIX_CHARS = 200
"""Shorter prefixes are not worth a state file."""

ProgressFn = Callable[[int, int], None]
"""``progress(tokens_done, tokens_total)`` while a prompt is evaluated."""


#: A generated token: its text, probability, and the runner-up's text and probability (None when not reported).
Token = tuple[str, float, "str | None", "float | None"]


def physical_cores() -> int:
    """Physical cores this process may run on (hyper-threads add nothing to matrix arithmetic)."""
    try:
        allowed = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        allowed = os.cpu_count() or 1
    try:
        import psutil

        physical = psutil.cpu_count(logical=False) or allowed
    except Exception:  # pragma: no cover - psutil is a dependency; be safe anyway
        physical = allowed
    return max(1, min(allowed, physical))


def env_int(name: str, default: int, minimum: int = 1) -> int:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    if not text.isdigit() or int(text) < minimum:
        raise ConfigError(f"{name} must be a whole number ≥ {minimum}, not {text!r}")
    return int(text)


@dataclass(frozen=True)
class Warm:
    """How a prompt prefix came to be in the model's cache before a question."""

    source: str
    """``"resident"`` (already there), ``"restored"`` (read from its state file), ``"computed"`` (evaluated now, and
    saved when persistence is on) or ``"none"`` (no prefix: too short, or persistence off and not resident)."""
    tokens: int = 0
    """Tokens of the prefix (0 when unknown)."""
    seconds: float = 0.0
    """Time spent bringing it in."""


class PrefixStates:
    """The prefix-state files of one model and engine build: ``<dir>/<sha256 of the prefix text>.bin``, used least
    recently first out when they pass ``budget_bytes``."""

    def __init__(self, directory: Path, budget_bytes: int) -> None:
        self.directory = directory
        self.budget_bytes = budget_bytes

    @staticmethod
    def key(prefix: str) -> str:
        """The file stem for ``prefix`` (the exact text: another schema or sample row is another key)."""
        return hashlib.sha256(prefix.encode("utf-8")).hexdigest()[:40]

    @property
    def enabled(self) -> bool:
        """False when the budget is 0 (persistence off)."""
        return self.budget_bytes > 0

    def path(self, key: str) -> Path:
        """Where the state for ``key`` lives."""
        return self.directory / f"{key}.bin"

    def has(self, key: str) -> bool:
        """Whether a state file for ``key`` exists."""
        return self.enabled and self.path(key).is_file()

    def touch(self, key: str) -> None:
        """Mark ``key`` as just used (the LRU order is the files' modification times)."""
        try:
            os.utime(self.path(key))
        except OSError:
            pass

    def forget(self, key: str) -> None:
        """Remove the state for ``key`` (it failed to restore)."""
        self.path(key).unlink(missing_ok=True)

    def files(self) -> list[Path]:
        """The state files, least recently used first."""
        if not self.directory.is_dir():
            return []
        found = []
        for p in self.directory.glob("*.bin"):
            try:
                found.append((p.stat().st_mtime, p))
            except OSError:
                continue
        return [p for _, p in sorted(found)]

    def total_bytes(self) -> int:
        """Bytes the state files take."""
        return sum(p.stat().st_size for p in self.files() if p.exists())

    def enforce_budget(self, keep: str | None = None) -> list[Path]:
        """Remove the least recently used files until the rest fit the budget (never ``keep``); the removed."""
        files = self.files()
        sizes = {p: p.stat().st_size for p in files if p.exists()}
        total = sum(sizes.values())
        removed = []
        for p in files:
            if total <= self.budget_bytes:
                break
            if keep is not None and p.stem == keep:
                continue
            p.unlink(missing_ok=True)
            total -= sizes.get(p, 0)
            removed.append(p)
        return removed


def prefix_state_dir(resolved: ResolvedModel, engine: str) -> Path:
    """The folder of ``resolved``'s prefix states under the cache root: one per model file and ``engine`` build
    (``"xllamacpp-<version>"``...: another build's states are never read)."""
    ident = resolved.sha256 or hashlib.sha256(f"{resolved.path}:{_file_stamp(resolved.path)}".encode()).hexdigest()
    root = Path(os.environ["NL2SQL_PREFIX_STATE_DIR"]) if os.environ.get("NL2SQL_PREFIX_STATE_DIR") else (
        cache_dir() / "prefix-states")
    return root / f"{ident[:16]}-{engine}"


def _file_stamp(path: Path) -> str:
    try:
        st = path.stat()
        return f"{st.st_size}:{st.st_mtime_ns}"
    except OSError:
        return "missing"


def thread_count(n_threads: int | None = None) -> int:
    """The threads an engine runs with: ``n_threads`` when given, else ``NL2SQL_LLAMA_THREADS``, else the physical
    cores."""
    return n_threads or env_int("NL2SQL_LLAMA_THREADS", physical_cores())


def engine_settings(resolved: ResolvedModel, backend: str, engine: str, n_threads: int | None, n_ctx: int | None,
                    state_dir: Path | None) -> tuple[int, int, PrefixStates]:
    """What an engine loading ``resolved`` runs with: threads and context (given, else from the environment) and
    its prefix states (``state_dir``, else :func:`prefix_state_dir` for ``engine``; the folder made when
    persistence is on).  A Hugging Face folder is refused in one line naming ``backend``."""
    if not resolved.is_gguf:
        raise ModelError(f"the {backend} backend needs a .gguf file; {resolved.path} is a Hugging Face folder: use "
                         f"backend 'transformers' (or 'auto')")
    n_threads = thread_count(n_threads)
    n_ctx = n_ctx or env_int("NL2SQL_LLAMA_N_CTX", DEFAULT_N_CTX)
    budget = env_int("NL2SQL_PREFIX_CACHE_MB", DEFAULT_PREFIX_CACHE_MB, minimum=0) * 1024 * 1024
    states = PrefixStates(state_dir or prefix_state_dir(resolved, engine), budget)
    if states.enabled:
        states.directory.mkdir(parents=True, exist_ok=True)
    return n_threads, n_ctx, states


def reply(reply_start: str, text: str, generated: list[Token], *, tokens_in: int, tokens_out: int, reused: int,
          seconds: float, prefill: float, decode: float, warm: Warm, guessed: int = 0) -> Generation:
    """The :class:`~.base.Generation` of a greedy reply that began with ``reply_start`` and went on with ``text``
    (its tokens ``generated``): cut after its SQL block, scored by its tokens' mean log-probability, with the places
    the model hesitated."""
    done = reply_start + text
    end = sql_block_end(done)
    logprobs = [math.log(max(p, 1e-300)) for _, p, _, _ in generated]
    return Generation(done[:end] if end is not None else done, tokens_in, tokens_out, seconds, tokens_reused=reused,
                      logprob=sum(logprobs) / len(logprobs) if logprobs else None,
                      branch_points=branch_points([(reply_start, 1.0, None, None), *generated]),
                      prefill_seconds=prefill, decode_seconds=decode, prefix_source=warm.source,
                      prefix_seconds=warm.seconds, tokens_guessed=guessed)


def generation_error(text: str, n_ctx: int) -> ModelError:
    """The one-line error for an engine's failure ``text`` (a prompt over the context gets its remedy)."""
    if "context" in text.lower() and ("exceed" in text.lower() or "size" in text.lower()):
        return ModelError(f"the prompt is longer than the model's context of {n_ctx} tokens: lower "
                          f"max_schema_chars (fewer tables shown) or raise NL2SQL_LLAMA_N_CTX")
    return ModelError(f"llama.cpp generation failed: {first_line(text)}")


def report(message: str, progress: bool) -> None:
    """Log ``message``; with ``progress`` and no logging configured for our logger, also print it to stderr."""
    logger.info(message)
    if progress and not logger.hasHandlers():
        import sys

        print(message, file=sys.stderr)
