"""The llama.cpp backend: runs a GGUF file as it is, on the CPU, through the prebuilt ``xllamacpp`` wheel.

Why llama.cpp: transformers de-quantises the Q4_K_M GGUF into bfloat16 tensors (gigabytes resident, a minute the
first time) and decodes a few tokens per second on a laptop CPU; llama.cpp memory-maps the file and runs the 4-bit
weights directly.  Why ``xllamacpp``: it installs from a wheel (no compiler, no build flags) and wraps llama.cpp's
own server engine in-process: prompt caching, streamed tokens with log-probabilities, prompt-progress reports and
per-slot state files.

Prefix states (what makes the cold path fast): the part of the prompt that is the same for every question on a
database — the system message, the schema and its sample rows — is evaluated once and its KV state written to
disk (:class:`PrefixStates`, keyed by the model file's sha256, the engine version and the exact prefix text, so
a changed schema never meets a stale state).  A later question on that database, in this process or a new one,
restores the state in milliseconds and evaluates only the question's own tokens.  Within a process the server's
slot keeps the last prompt, so consecutive questions on one database reuse it without touching the disk.

The engine listens on a loopback port for its state-file requests; every request must carry a random key made
for this process, so other local users cannot drive it.

Cancellation: ``generate(..., cancel=event)`` and :meth:`LlamaCppBackend.warm` check the event between prompt
batches (the server reports progress after each) and between generated tokens, and raise
:class:`~jupyter_nl2sql.errors.Cancelled`.

Settings (environment, read at load): ``NL2SQL_LLAMA_N_CTX`` (context window, default :data:`DEFAULT_N_CTX`),
``NL2SQL_LLAMA_THREADS`` (default: physical cores this process may use), ``NL2SQL_PREFIX_CACHE_MB`` (disk budget
of the prefix states, default :data:`DEFAULT_PREFIX_CACHE_MB`; 0 turns persistence off), ``NL2SQL_PREFIX_STATE_DIR``
(where they live, default ``prefix-states/`` under the cache root), ``NL2SQL_LLAMA_RAM_CACHE_MB`` (memory for
earlier prompts' states, default :data:`RAM_PROMPT_CACHE_MB`; the benchmarks set 0 to measure the cold path).

This module imports ``xllamacpp`` at import time: import it only when a model is being loaded.
"""

from __future__ import annotations

import json
import logging
import math
import os
import secrets
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from ..errors import Cancelled, ModelError
from .base import Generation, Message, sql_block_end
from .device import brief_openmp_spin
from .files import first_line, gguf_file_type
from .llama_common import (MIN_PREFIX_CHARS, PROMPT_BATCH, PrefixStates, ProgressFn, Token, Warm, engine_settings,
                           env_int, generation_error, reply, report)
from .resolve import ResolvedModel

with brief_openmp_spin():  # see there: keeps decoding fast when other processes compete for the cores
    import xllamacpp

logger = logging.getLogger("jupyter_nl2sql")

RAM_PROMPT_CACHE_MB = 256
"""Host memory llama.cpp may keep earlier prompts' states in, so switching back to a database asked a moment ago is
a copy, not a prefill."""


def engine_version() -> str:
    """The xllamacpp version (its llama.cpp build): part of every state file's key."""
    return str(getattr(xllamacpp, "__version__", None) or _dist_version("xllamacpp"))


def _dist_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:  # pragma: no cover - a source checkout of xllamacpp
        return "unknown"


class LlamaCppBackend:
    """A GGUF model run by llama.cpp; see :class:`jupyter_nl2sql.models.Backend`."""

    def __init__(self, server: Any, resolved: ResolvedModel, *, n_ctx: int, n_threads: int, api_key: str,
                 states: PrefixStates, meta: dict[str, Any]) -> None:
        self._server = server
        self._address = server.listening_address.rstrip("/")
        self._api_key = api_key
        self.model_id = resolved.model_id
        self.device = "cpu"
        self.n_ctx = n_ctx
        self.n_threads = n_threads
        self.states = states
        self.dtype = gguf_file_type(resolved.path.name)
        self.provenance: dict[str, Any] = {
            **resolved.provenance(), "dtype": self.dtype, "device": "cpu", "backend": "llama.cpp",
            "loaded_from": "gguf-mmap", "engine": f"xllamacpp {engine_version()}", "n_ctx": n_ctx,
            "n_threads": n_threads, **({"n_ctx_train": meta["n_ctx_train"]} if "n_ctx_train" in meta else {}),
        }
        self._lock = threading.RLock()
        self._resident: str | None = None  # the prefix text the slot's cache starts with, as far as we know

    @classmethod
    def load(cls, resolved: ResolvedModel, *, progress: bool = True, n_ctx: int | None = None,
             n_threads: int | None = None, state_dir: Path | None = None,
             n_batch: int = PROMPT_BATCH) -> LlamaCppBackend:
        """Memory-map ``resolved`` (a GGUF file) and start the engine with a context of ``n_ctx`` tokens, prompt
        batches of ``n_batch`` tokens and prefix states in ``state_dir`` (default: :func:`prefix_state_dir`)."""
        t0 = time.perf_counter()
        n_threads, n_ctx, states = engine_settings(resolved, "llama.cpp", f"xllamacpp-{engine_version()}", n_threads,
                                                   n_ctx, state_dir)
        report(f"Loading {resolved.model_id} with llama.cpp from {resolved.path.name} ({n_threads} threads)",
               progress)
        api_key = secrets.token_urlsafe(24)
        params = xllamacpp.CommonParams()
        params.model.path = str(resolved.path)
        params.n_ctx = n_ctx
        params.n_parallel = 1
        params.n_batch = n_batch
        params.n_ubatch = n_batch
        params.cpuparams.n_threads = n_threads
        params.cpuparams_batch.n_threads = n_threads
        params.warmup = False
        # The engine's "fit" step loads the model once more to size the context and GPU layers to the free memory;
        # both are set here, and on a CPU it only delays every start.
        params.fit_params = False
        params.verbosity = 0
        params.cache_ram_mib = env_int("NL2SQL_LLAMA_RAM_CACHE_MB", RAM_PROMPT_CACHE_MB, minimum=0)
        params.api_keys = [api_key]
        params.hostnames = ["127.0.0.1"]
        if states.enabled:
            params.slot_save_path = str(states.directory) + os.sep
        server = _start(params, resolved)
        meta = _model_meta(server, api_key)
        train_ctx = int(meta.get("n_ctx_train") or 0)
        if 0 < train_ctx < n_ctx:
            logger.warning("%s was trained on %d tokens of context; prompts longer than that may be answered badly",
                           resolved.model_id, train_ctx)
        backend = cls(server, resolved, n_ctx=n_ctx, n_threads=n_threads, api_key=api_key, states=states,
                      meta=meta)
        report(f"Loaded {resolved.model_id} (llama.cpp, {backend.dtype}, context {backend.n_ctx}) in "
               f"{time.perf_counter() - t0:.1f} s", progress)
        return backend

    def __repr__(self) -> str:
        return f"<LlamaCppBackend {self.model_id} ({self.dtype}, {self.n_threads} threads)>"


    # -- the engine's own endpoints (loopback, keyed) ----------------------------------------------------------
    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return _post(self._address, self._api_key, path, body)

    def render_prompt(self, messages: list[Message]) -> str:
        """The prompt text after the GGUF's chat template, ending where the assistant's reply begins."""
        try:
            return self._post("/apply-template", {"messages": list(messages)})["prompt"]
        except (KeyError, ModelError) as exc:
            raise ModelError(f"model {self.model_id} cannot format a chat ({first_line(exc)}): use an instruct "
                             f"(chat) model") from None

    def tokenize(self, text: str) -> list[int]:
        """Token ids of ``text`` (special tokens such as ``<|im_start|>`` parsed, no BOS added)."""
        return list(self._post("/tokenize", {"content": text, "add_special": False, "parse_special": True})["tokens"])

    # -- prefix states -------------------------------------------------------------------------------------------
    def warm(self, prefix: str, cancel: threading.Event | None = None,
             progress: ProgressFn | None = None) -> Warm:
        """Bring ``prefix`` (the question-independent head of a prompt) into the cache: already resident, restored
        from its state file, or evaluated now and saved for every later process.

        Raises :class:`~jupyter_nl2sql.errors.Cancelled` when ``cancel`` is set during the evaluation.
        """
        with self._lock:
            return self._warm(prefix, cancel, progress)

    def _warm(self, prefix: str, cancel: threading.Event | None, progress: ProgressFn | None) -> Warm:
        if self._resident is not None and self._resident == prefix:
            return Warm("resident")
        if len(prefix) < MIN_PREFIX_CHARS:
            return Warm("none")
        t0 = time.perf_counter()
        key = self.states.key(prefix)
        if self.states.has(key):
            try:
                done = self._post("/slots/0?action=restore", {"filename": f"{key}.bin"})
            except ModelError as exc:  # a truncated or foreign file: compute it again
                logger.warning("prefix state %s did not restore (%s); evaluating the prefix again", key, exc)
                self.states.forget(key)
            else:
                self.states.touch(key)
                self._resident = prefix
                return Warm("restored", int(done.get("n_restored", 0)), time.perf_counter() - t0)
        if not self.states.enabled:
            return Warm("none")
        timings = self._complete(prefix, 0, cancel, progress)[1]
        self._resident = prefix
        self._save(key)
        return Warm("computed", int(timings.get("prompt_n", 0)) + int(timings.get("cache_n", 0)),
                    time.perf_counter() - t0)

    def _save(self, key: str) -> None:
        """Write the slot's state as ``key`` (atomically: a temporary name, then renamed) and keep the budget."""
        temp = f"{key}.{os.getpid()}.{threading.get_ident()}.tmp"
        try:
            self._post("/slots/0?action=save", {"filename": temp})
            os.replace(self.states.directory / temp, self.states.path(key))
        except (ModelError, OSError) as exc:  # a full disk must not fail the question
            logger.warning("could not save the prefix state (%s)", first_line(exc))
            (self.states.directory / temp).unlink(missing_ok=True)
            return
        self.states.enforce_budget(keep=key)

    # -- generation ----------------------------------------------------------------------------------------
    def generate(self, messages: list[Message], max_new_tokens: int = 256,
                 cancel: threading.Event | None = None, prefix: str | None = None,
                 progress: ProgressFn | None = None, reply_start: str = "") -> Generation:
        """Greedy reply to ``messages``; stops at an end token or at the end of a fenced SQL block.

        ``prefix``: the prompt's question-independent head (see :meth:`warm`), brought in first when given.
        ``reply_start``: the reply's first characters, taken as written (a :class:`BranchPoint`'s other way); the
        returned text starts with them.  The reply's :class:`BranchPoint` s come with it.
        Raises :class:`~jupyter_nl2sql.errors.Cancelled` when ``cancel`` is set before the reply is complete.
        """
        prompt = self.render_prompt(messages) + reply_start
        with self._lock:
            if cancel is not None and cancel.is_set():
                raise Cancelled("cancelled")
            t0 = time.perf_counter()
            warm = self._warm(prefix, cancel, progress) if prefix and prompt.startswith(prefix) else Warm("none")
            done, timings, tokens = self._complete(prompt, max_new_tokens, cancel, progress)
            if self._resident is not None and not prompt.startswith(self._resident):
                self._resident = None
            seconds = time.perf_counter() - t0
        computed, reused = int(timings.get("prompt_n", 0)), int(timings.get("cache_n", 0))
        return reply(reply_start, done, tokens, tokens_in=computed + reused, tokens_out=int(timings.get("predicted_n", 0)),
                     reused=reused, seconds=seconds, prefill=float(timings.get("prompt_ms", 0.0)) / 1000,
                     decode=float(timings.get("predicted_ms", 0.0)) / 1000, warm=warm)

    def _complete(self, prompt: str, max_new_tokens: int, cancel: threading.Event | None,
                  progress: ProgressFn | None) -> tuple[str, dict[str, Any], list[Token]]:
        """Run one completion of ``prompt`` (``max_new_tokens`` = 0: only evaluate it); the text, the engine's
        timings and the generated tokens, each as (text, probability, runner-up text, runner-up probability)."""
        parts: list[str] = []
        tokens: list[Token] = []
        timings: dict[str, Any] = {}
        state = {"cancelled": False, "error": None}

        def on_chunk(chunk: Any) -> bool:
            if isinstance(chunk, (str, bytes)):
                chunk = json.loads(chunk)
            if "error" in chunk:
                state["error"] = chunk["error"]
                return True
            timings.update(chunk.get("timings") or {})
            step = chunk.get("prompt_progress")
            if step and progress is not None:
                total = int(step.get("total", 0))  # "processed" counts the reused tokens too
                progress(min(int(step.get("processed", 0)), total), total)
            for choice in chunk.get("choices") or ():
                if choice.get("text"):
                    parts.append(choice["text"])
                for tok in (choice.get("logprobs") or {}).get("content") or ():
                    tokens.append(_token(tok))
            if cancel is not None and cancel.is_set():
                state["cancelled"] = True
                return True
            return bool(parts) and sql_block_end("".join(parts)) is not None

        request = {"prompt": prompt, "n_predict": max_new_tokens, "temperature": 0.0, "top_k": 1,
                   "cache_prompt": True, "id_slot": 0, "stream": True, "timings_per_token": True,
                   "return_progress": True, "n_probs": 2 if max_new_tokens else 0}
        try:
            result = self._server.handle_completions(request, on_chunk)
        except Exception as exc:  # the engine reports bad requests (context overflow...) as exceptions
            raise _generation_error(exc, self.n_ctx) from None
        if isinstance(result, dict) and "error" in result:
            state["error"] = result["error"]
        if state["error"] is not None:
            raise _generation_error(state["error"], self.n_ctx)
        if state["cancelled"]:
            raise Cancelled("cancelled")
        return "".join(parts), timings, tokens


def _token(entry: dict[str, Any]) -> Token:
    """One generated token of the engine's stream (``n_probs`` = 2: the chosen token and the best other one)."""
    text = str(entry.get("token", ""))
    others = [t for t in entry.get("top_logprobs") or () if t.get("token") != text]
    alt = others[0] if others else None
    return (text, math.exp(float(entry["logprob"])), None if alt is None else str(alt["token"]),
            None if alt is None else math.exp(float(alt["logprob"])))


_ENGINES: list[Any] = []
"""Every engine started in this process, kept until it ends: destroying an engine joins its threads, which was seen
to hang for good when it raced with the engine's own start-up; an unused engine costs its memory-mapped weights."""


def _start(params: Any, resolved: ResolvedModel) -> Any:
    """The engine for ``params``, or a one-line ModelError."""
    try:
        with brief_openmp_spin():
            server = xllamacpp.Server(params)
        _ENGINES.append(server)
        return server
    except MemoryError:
        raise ModelError(f"out of memory loading {resolved.model_id}: close other kernels, lower "
                         f"NL2SQL_LLAMA_N_CTX, or use a smaller model (qwen2.5-coder-0.5b)") from None
    except Exception as exc:  # the engine reports a bad file as RuntimeError/ValueError
        raise ModelError(f"llama.cpp could not load {resolved.path} ({type(exc).__name__}: {first_line(exc)}): "
                         f"check the file, or use backend 'transformers'") from None


def _post(address: str, api_key: str, path: str, body: dict[str, Any], timeout: float = 120.0) -> dict[str, Any]:
    """POST ``body`` to the engine's loopback endpoint ``path``; its JSON answer, or a one-line ModelError."""
    request = urllib.request.Request(address + path, data=json.dumps(body).encode("utf-8"), method="POST",
                                     headers={"Content-Type": "application/json",
                                              "Authorization": f"Bearer {api_key}"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as reply:
            return json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode("utf-8", errors="replace")
        try:
            detail = json.loads(detail)["error"]["message"]
        except (ValueError, KeyError, TypeError):
            pass
        raise ModelError(f"llama.cpp {path.split('?')[0]} failed: {first_line(detail)}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise ModelError(f"llama.cpp engine did not answer on {path.split('?')[0]}: {first_line(exc)}") from None


def _model_meta(server: Any, api_key: str) -> dict[str, Any]:
    """The model's own facts from the engine (``n_ctx_train``...), or {}."""
    request = urllib.request.Request(server.listening_address.rstrip("/") + "/v1/models",
                                     headers={"Authorization": f"Bearer {api_key}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            data = json.loads(reply.read())
        return dict(data["data"][0].get("meta") or {})
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        return {}


def _generation_error(error: Any, n_ctx: int) -> ModelError:
    return generation_error(error.get("message", str(error)) if isinstance(error, dict) else str(error), n_ctx)
