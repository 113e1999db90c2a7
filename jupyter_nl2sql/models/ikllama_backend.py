"""The ik_llama.cpp backend: runs a GGUF file on the CPU through the prebuilt ``ik-llama-cpp-python`` wheel.

Why: ik_llama.cpp is a llama.cpp fork with its own CPU matrix kernels; with its weights repacked for those kernels
(lossless: the same 4-bit numbers, interleaved), it evaluates prompts and decodes tokens faster than the
``xllamacpp`` engine on the same 2 cores, from a wheel (no compiler).  The side-by-side figures are in
``benchmarks/engines/`` (``python -m benchmarks.engines``).

The repacking is done once per model file, by the wheel's own ``llama-quantize --repack`` (:func:`repacked_weights`):
its result is kept among the converted weights of the cache root and loaded as it is, which takes a fraction of
the time repacking at every load (``repack_tensors``) took, and decodes faster.  A model file under
:data:`REPACK_FILE_MIN_BYTES`, or one the tool cannot repack, is repacked in memory at each load instead.

The wheel is used through its C API (``llama.h`` over ctypes) only, in-process: no server, no port.  This module
keeps what :class:`~jupyter_nl2sql.models.llamacpp_backend.LlamaCppBackend` gives the pipeline:

* prompt reuse: the tokens in the context's cache are remembered, and a new prompt evaluates only from the first
  token that differs (so consecutive questions on one database reuse the schema);
* prefix states (:class:`~.llama_common.PrefixStates`): the question-independent head of a prompt is evaluated
  once and its KV cache written with ``llama_state_seq_save_file``, keyed by the model file's sha256, this engine's
  build and the exact head text; a later process reads it back instead of evaluating it (the file also carries the
  head's tokens, which must equal the head's tokens now, or it is evaluated again);
* greedy replies with each token's probability and its runner-up (for :class:`~.base.BranchPoint` s), stopped at
  an end token or at the end of a fenced SQL block;
* cancellation between prompt batches and between generated tokens, with progress after each batch;
* lookup decoding: each step evaluates the greedy token with a :class:`~.drafts.Drafter`'s guesses of the next
  ones and keeps the guesses the model agrees with (batched evaluation rounds differently from one token at a
  time, so a near-tie can now and then go the other way).

Settings (environment, read at load): the same as the xllamacpp engine's (``NL2SQL_LLAMA_N_CTX``,
``NL2SQL_LLAMA_THREADS``, ``NL2SQL_PREFIX_CACHE_MB``, ``NL2SQL_PREFIX_STATE_DIR``), ``NL2SQL_DRAFT_TOKENS`` and
``NL2SQL_REPACKED_COPY`` (0: no repacked copy, see :func:`keeps_repacked_copy`).

This module loads the engine's shared library at import time: import it only when a model is being loaded.
"""

from __future__ import annotations

import codecs
import ctypes
import os
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from ..errors import Cancelled, ModelError
from .base import Generation, Message, sql_block_end
from .device import brief_openmp_spin
from .drafts import check_settings, drafter_for
from .files import cache_dir, first_line, gguf_file_type, temp_sibling
from .llama_common import (MIN_PREFIX_CHARS, PROMPT_BATCH, PrefixStates, ProgressFn, Token, Warm, engine_settings,
                           env_int, generation_error, logger, reply, report, thread_count)
from .resolve import ResolvedModel, drop_joined, join_parts


@contextmanager
def _quiet_stdio() -> Iterator[None]:
    """Send the engine's own prints (it writes its memory plan to the process's stdout and stderr while loading)
    to /dev/null for the block; Python's streams are flushed first, so nothing of ours is lost."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (AttributeError, ValueError, OSError):
            pass
    try:
        saved = [os.dup(1), os.dup(2)]
    except OSError:  # no file descriptors to redirect (an embedded interpreter)
        yield
        return
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 1)
        os.dup2(null, 2)
        yield
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (null, *saved):
            os.close(fd)


with brief_openmp_spin(), _quiet_stdio():  # see there: keeps decoding fast when other processes compete for the
    from ik_llama_cpp import _ctypes_api as C  # cores

DIST = "ik-llama-cpp-python"
"""The wheel this backend runs on."""
BACKEND_NAME = "ik_llama.cpp"
"""This backend's name in the ``backend`` setting and in provenance."""

_LIB = C._lib


def _bind(name: str, argtypes: list[Any], restype: Any) -> Any:
    func = getattr(_LIB, name)
    func.argtypes, func.restype = argtypes, restype
    return func


_seq_rm = _bind("llama_kv_cache_seq_rm", [ctypes.c_void_p, C.llama_seq_id, C.llama_pos, C.llama_pos], ctypes.c_bool)
_state_save = _bind("llama_state_seq_save_file", [ctypes.c_void_p, ctypes.c_char_p, C.llama_seq_id,
                                                  ctypes.POINTER(C.llama_token), ctypes.c_size_t], ctypes.c_size_t)
_state_load = _bind("llama_state_seq_load_file", [ctypes.c_void_p, ctypes.c_char_p, C.llama_seq_id,
                                                  ctypes.POINTER(C.llama_token), ctypes.c_size_t,
                                                  ctypes.POINTER(ctypes.c_size_t)], ctypes.c_size_t)
_meta_str = _bind("llama_model_meta_val_str", [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_size_t],
                  ctypes.c_int32)
_n_ctx_train = _bind("llama_n_ctx_train", [ctypes.c_void_p], ctypes.c_int32)
_LOG_CALLBACK = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p)
_log_set = _bind("llama_log_set", [_LOG_CALLBACK, ctypes.c_void_p], None)
_LOG_ERROR = 2  # ggml_log_level: errors; the rest (tensor listings, timings) is not for the user


@_LOG_CALLBACK
def _on_log(level: int, text: bytes, _data: Any) -> None:
    if level == _LOG_ERROR and text:
        logger.warning("ik_llama.cpp: %s", text.decode("utf-8", errors="replace").strip())


_log_set(_on_log, None)


def engine_version() -> str:
    """The wheel's version (its ik_llama.cpp build): part of every state file's key."""
    try:
        return version(DIST)
    except PackageNotFoundError:  # pragma: no cover - a source checkout
        return "unknown"


REPACK_FILE_MIN_BYTES = 64 * 1024 * 1024
"""GGUF files smaller than this are repacked in memory at each load (it takes them well under a second) rather than
once into a file."""


def keeps_repacked_copy(resolved: ResolvedModel) -> bool:
    """Whether ``resolved`` is loaded from a repacked copy by default: a file of :data:`REPACK_FILE_MIN_BYTES` or
    more, unless ``NL2SQL_REPACKED_COPY=0`` (repack in memory at each load: slower loads, no second copy on disk)."""
    return bool(env_int("NL2SQL_REPACKED_COPY", 1, minimum=0)) and resolved.file_size >= REPACK_FILE_MIN_BYTES


def has_repacked_copy(resolved: ResolvedModel) -> bool:
    """Whether the repacked copy of ``resolved`` (:func:`repacked_path`) is in the cache already."""
    return bool(resolved.sha256) and repacked_path(resolved).is_file()


def loads_repacked_copy(resolved: ResolvedModel) -> bool:
    """Whether loading ``resolved`` (with the default ``repacked_file``) reads its repacked copy, already made, and
    nothing of the GGUF itself."""
    return keeps_repacked_copy(resolved) and has_repacked_copy(resolved)


def repacked_path(resolved: ResolvedModel) -> Path:
    """Where the repacked copy of ``resolved``'s weights for this engine build is kept (with the cache's other
    converted weights, under the ``models`` part of the cache root)."""
    ident = resolved.sha256 or ""
    return cache_dir() / "converted" / f"{ident[:16]}-ik-{engine_version()}-repacked.gguf"


def quantize_tool() -> Path | None:
    """The ``llama-quantize`` program the wheel ships (None when it does not)."""
    folder = Path(C.__file__).parent / "bin"
    for name in ("llama-quantize", "llama-quantize.exe"):
        if (folder / name).is_file() and os.access(folder / name, os.X_OK):
            return folder / name
    return None


def writes_on_load(resolved: ResolvedModel) -> bool:
    """Whether loading ``resolved`` (with the default ``repacked_file``) would first write its repacked copy."""
    return (bool(resolved.sha256) and keeps_repacked_copy(resolved)
            and not has_repacked_copy(resolved) and quantize_tool() is not None)


def repacked_weights(resolved: ResolvedModel, n_threads: int, progress: bool = True) -> Path | None:
    """The repacked copy of ``resolved``'s weights (:func:`repacked_path`), made on first use with the wheel's
    ``llama-quantize --repack`` (the tensors copied as they are, each interleaved for this engine's kernels);
    None, with the reason logged, when there is no sha256 to key it by, no tool, or the tool fails (the caller then
    repacks in memory).  The copy is written beside its final name and renamed into place when complete."""
    if not resolved.sha256:
        return None
    dest = repacked_path(resolved)
    if dest.is_file():
        return dest
    tool = quantize_tool()
    if tool is None:
        logger.info("%s ships no llama-quantize: the weights are repacked in memory at each load", DIST)
        return None
    report(f"Repacking {resolved.path.name} for {BACKEND_NAME}'s kernels (once, a few seconds; kept in {dest.parent})",
           progress)
    try:
        tmp = temp_sibling(dest)
    except OSError as exc:
        logger.warning("cannot write the repacked weights to %s (%s): repacking in memory", dest.parent, exc)
        return None
    try:
        done = subprocess.run([str(tool), "--repack", str(resolved.path), str(tmp), "COPY", str(n_threads)],
                              stdin=subprocess.DEVNULL, capture_output=True, text=True, errors="replace",
                              timeout=1800)
        if done.returncode == 0 and tmp.stat().st_size == 0:  # "nothing to do": no tensor has a repacked form
            logger.info("%s has no weights to repack for %s: it is loaded as it is", resolved.path.name,
                        BACKEND_NAME)
            return None
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
            logger.warning("repacking %s failed (exit status %s: %s): repacking in memory at each load",
                           resolved.path.name, done.returncode, tail[0])
            return None
        os.replace(tmp, dest)
    except (OSError, subprocess.SubprocessError) as exc:
        logger.warning("repacking %s failed (%s): repacking in memory at each load", resolved.path.name,
                       first_line(exc))
        return None
    finally:
        tmp.unlink(missing_ok=True)
    return dest


class _Batch:
    """One ``llama_batch`` of up to ``size`` tokens of sequence 0, allocated once and refilled."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.batch = C.llama_batch_init(size, 0, 1)

    def fill(self, tokens: list[int], start: int, logits_last: bool, logits_all: bool = False) -> Any:
        """The batch of ``tokens`` at positions ``start``…, with logits for the last token (``logits_last``) or for
        every token (``logits_all``)."""
        b = self.batch
        b.n_tokens = len(tokens)
        for i, tok in enumerate(tokens):
            b.token[i] = tok
            b.pos[i] = start + i
            b.n_seq_id[i] = 1
            b.seq_id[i][0] = 0
            b.logits[i] = 1 if logits_all else 0
        if tokens and logits_last:
            b.logits[len(tokens) - 1] = 1
        return b

    def close(self) -> None:
        if self.batch is not None:
            C.llama_batch_free(self.batch)
            self.batch = None


class IkLlamaBackend:
    """A GGUF model run by ik_llama.cpp; see :class:`jupyter_nl2sql.models.Backend`."""

    def __init__(self, model: Any, ctx: Any, resolved: ResolvedModel, *, n_ctx: int, n_threads: int, n_batch: int,
                 states: PrefixStates, template: str, loaded_from: str = "gguf-repacked") -> None:
        self._model = model
        self._ctx = ctx
        self._batch = _Batch(n_batch)
        self._n_vocab = int(C.llama_vocab_n_tokens(C.llama_model_get_vocab(model)))
        self._template = template
        self._compiled: Any = None
        self.model_id = resolved.model_id
        self.device = "cpu"
        self.n_ctx = n_ctx
        self.n_threads = n_threads
        self.states = states
        self.dtype = gguf_file_type(resolved.path.name)
        train = int(_n_ctx_train(model))
        self.provenance: dict[str, Any] = {
            **resolved.provenance(), "dtype": self.dtype, "device": "cpu", "backend": BACKEND_NAME,
            "loaded_from": loaded_from, "engine": f"{DIST} {engine_version()}", "n_ctx": n_ctx,
            "n_threads": n_threads, **({"n_ctx_train": train} if train > 0 else {}),
        }
        self._lock = threading.RLock()
        self._cached: list[int] = []  # the tokens whose KV entries sequence 0 holds, in order
        self._resident: str | None = None  # the prefix text the cache starts with, as far as we know
        self._piece = ctypes.create_string_buffer(256)
        self.drafter = drafter_for(self.tokenize, states.directory if states.enabled else None)

    @classmethod
    def load(cls, resolved: ResolvedModel, *, progress: bool = True, n_ctx: int | None = None,
             n_threads: int | None = None, state_dir: Path | None = None,
             n_batch: int = PROMPT_BATCH, repacked_file: bool | None = None) -> IkLlamaBackend:
        """Load ``resolved`` (a GGUF file), its weights repacked for this engine's kernels, with a context of
        ``n_ctx`` tokens, prompt batches of ``n_batch`` tokens and prefix states in ``state_dir`` (default:
        :func:`~.llama_common.prefix_state_dir`).  ``repacked_file``: load the repacked copy of the weights
        (:func:`repacked_weights`, made on first use) rather than repacking in memory; None:
        :func:`keeps_repacked_copy`."""
        t0 = time.perf_counter()
        check_settings()  # a bad setting is reported before 1 GB of weights is loaded
        if repacked_file is None:
            repacked_file = keeps_repacked_copy(resolved)
        had_copy = repacked_file and has_repacked_copy(resolved)
        if not had_copy:
            join_parts(resolved, progress=progress)  # the GGUF itself is read (or repacked) first
        weights = repacked_weights(resolved, thread_count(n_threads), progress) if repacked_file else None
        # a state holds the KV cache as the engine computed it: the two ways of loading keep theirs apart
        engine = f"ik-{engine_version()}" + ("-repacked" if weights is not None else "")
        n_threads, n_ctx, states = engine_settings(resolved, BACKEND_NAME, engine, n_threads, n_ctx, state_dir)
        report(f"Loading {resolved.model_id} with {BACKEND_NAME} from {(weights or resolved.path).name} "
               f"({n_threads} threads)", progress)
        C.llama_backend_init()
        model = _load_weights(weights, resolved.path)
        if weights is not None and not model:  # a damaged copy: made again on the next load
            logger.warning("%s did not load: repacking %s in memory; it is made again next time", weights,
                           resolved.path.name)
            weights.unlink(missing_ok=True)
            weights = None
            join_parts(resolved, progress=progress)
            model = _load_weights(None, resolved.path)
        if not model:
            raise ModelError(f"{BACKEND_NAME} could not load {resolved.path}: check the file, or use backend "
                             f"'llama.cpp' or 'transformers'")
        cparams = C.llama_context_default_params()
        cparams.n_ctx = n_ctx
        cparams.n_batch = n_batch
        cparams.n_ubatch = n_batch
        cparams.n_seq_max = 1
        cparams.n_threads = n_threads
        cparams.n_threads_batch = n_threads
        # the engine's own flash attention asserts on long prompts on CPUs without AVX-VNNI; it is off everywhere
        # so that every machine runs the same arithmetic
        cparams.flash_attn = False
        with _quiet_stdio():
            ctx = C.llama_init_from_model(model, cparams)
        if not ctx:
            C.llama_free_model(model)
            raise ModelError(f"out of memory making a context of {n_ctx} tokens for {resolved.model_id}: lower "
                             f"NL2SQL_LLAMA_N_CTX, or close other kernels")
        template = _meta(model, "tokenizer.chat_template")
        if not template:
            C.llama_free(ctx)
            C.llama_free_model(model)
            raise ModelError(f"model {resolved.model_id} has no chat template: use an instruct (chat) model")
        backend = cls(model, ctx, resolved, n_ctx=n_ctx, n_threads=n_threads, n_batch=n_batch, states=states,
                      template=template, loaded_from="repacked-file" if weights is not None else "gguf-repacked")
        if weights is not None and not had_copy and drop_joined(resolved):  # this load wrote the copy: one is enough
            report(f"Deleted the joined {resolved.path.name}: the repacked copy stands for it (joined again from "
                   f"the installed packages if another engine needs it)", progress)
        report(f"Loaded {resolved.model_id} ({BACKEND_NAME}, {backend.dtype}, context {n_ctx}) in "
               f"{time.perf_counter() - t0:.1f} s", progress)
        return backend

    def __repr__(self) -> str:
        return f"<IkLlamaBackend {self.model_id} ({self.dtype}, {self.n_threads} threads)>"

    def close(self) -> None:
        """Free the context, the weights and the batch (the backend cannot be used after)."""
        with self._lock:
            self._batch.close()
            if self._ctx:
                C.llama_free(self._ctx)
                self._ctx = None
            if self._model:
                C.llama_free_model(self._model)
                self._model = None

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # pragma: no cover - interpreter shutdown: the library may be gone already
            pass

    # -- text ------------------------------------------------------------------------------------------------
    def render_prompt(self, messages: list[Message]) -> str:
        """The prompt text after the GGUF's chat template (Jinja, as transformers renders it), ending where the
        assistant's reply begins."""
        if self._compiled is None:
            from jinja2.sandbox import ImmutableSandboxedEnvironment

            def raise_exception(message: str) -> None:
                raise ModelError(f"model {self.model_id} cannot format this chat: {message}")

            env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
            env.globals["raise_exception"] = raise_exception
            self._compiled = env.from_string(self._template)
        return self._compiled.render(messages=list(messages), add_generation_prompt=True)

    def tokenize(self, text: str) -> list[int]:
        """Token ids of ``text`` (special tokens such as ``<|im_start|>`` parsed, no BOS added)."""
        self._live()
        data = text.encode("utf-8")
        n = -C.llama_tokenize(self._model, data, len(data), None, 0, False, True)
        if n <= 0:
            return []
        buf = (C.llama_token * n)()
        got = C.llama_tokenize(self._model, data, len(data), buf, n, False, True)
        return list(buf[:got])

    def _bytes(self, token: int) -> bytes:
        n = C.llama_token_to_piece(self._model, token, self._piece, len(self._piece), 0, False)
        if n < 0:  # a piece longer than the buffer: the engine says how long
            self._piece = ctypes.create_string_buffer(-n)
            n = C.llama_token_to_piece(self._model, token, self._piece, len(self._piece), 0, False)
        return self._piece.raw[:n] if n > 0 else b""

    # -- the cache -------------------------------------------------------------------------------------------
    def _evaluate(self, tokens: list[int], cancel: threading.Event | None, progress: ProgressFn | None,
                  logits_last: bool) -> tuple[int, float]:
        """Bring the cache to ``tokens``: keep the longest common head of what it holds, evaluate the rest in
        batches.  With ``logits_last`` the last token is always evaluated (its logits start the reply).  Returns
        (tokens reused, seconds of evaluation)."""
        keep = 0
        limit = len(tokens) - 1 if logits_last else len(tokens)
        for a, b in zip(self._cached, tokens[:limit]):
            if a != b:
                break
            keep += 1
        if keep < len(self._cached):
            _seq_rm(self._ctx, 0, keep, -1)
            del self._cached[keep:]
        t0 = time.perf_counter()
        total = len(tokens)
        for start in range(keep, total, self._batch.size):
            if cancel is not None and cancel.is_set():
                raise Cancelled("cancelled")
            chunk = tokens[start:start + self._batch.size]
            last = start + len(chunk) >= total
            self._decode(self._batch.fill(chunk, start, logits_last and last), len(chunk))
            self._cached.extend(chunk)
            if progress is not None:
                progress(start + len(chunk), total)
        return keep, time.perf_counter() - t0

    def _decode(self, batch: Any, n: int) -> None:
        rc = C.llama_decode(self._ctx, batch)
        if rc != 0:
            # the batch did not go in (no room in the cache, or an engine failure): start clean next time
            _seq_rm(self._ctx, 0, 0, -1)
            self._cached.clear()
            self._resident = None
            text = "the context size was exceeded" if rc == 1 else f"llama_decode returned {rc} for {n} tokens"
            raise generation_error(text, self.n_ctx)

    # -- prefix states -------------------------------------------------------------------------------------------
    def warm(self, prefix: str, cancel: threading.Event | None = None,
             progress: ProgressFn | None = None) -> Warm:
        """As :meth:`.llamacpp_backend.LlamaCppBackend.warm`: ``prefix`` resident, restored (its file must hold
        the prefix's tokens) or evaluated and saved; :class:`~jupyter_nl2sql.errors.Cancelled` on ``cancel``."""
        with self._lock:
            return self._warm(prefix, cancel, progress)

    def _live(self) -> None:
        if not self._ctx:
            raise ModelError(f"the {BACKEND_NAME} engine of {self.model_id} was closed: load the model again")

    def _warm(self, prefix: str, cancel: threading.Event | None, progress: ProgressFn | None) -> Warm:
        self._live()
        if self._resident is not None and self._resident == prefix:
            return Warm("resident")
        if len(prefix) < MIN_PREFIX_CHARS:
            return Warm("none")
        t0 = time.perf_counter()
        tokens = self.tokenize(prefix)
        if len(tokens) >= self.n_ctx:
            raise generation_error("the context size was exceeded", self.n_ctx)
        key = self.states.key(prefix)
        if self.states.has(key) and self._restore(key, tokens):
            self.states.touch(key)
            self._resident = prefix
            return Warm("restored", len(tokens), time.perf_counter() - t0)
        if not self.states.enabled:
            return Warm("none")
        self._evaluate(tokens, cancel, progress, logits_last=False)
        self._resident = prefix
        self._save(key, tokens)
        return Warm("computed", len(tokens), time.perf_counter() - t0)

    def _restore(self, key: str, tokens: list[int]) -> bool:
        """Read the state ``key`` into sequence 0; False (and the file removed) when it does not hold ``tokens``."""
        _seq_rm(self._ctx, 0, 0, -1)
        self._cached.clear()
        self._resident = None
        buf = (C.llama_token * (len(tokens) + 1))()
        count = ctypes.c_size_t(0)
        read = _state_load(self._ctx, str(self.states.path(key)).encode("utf-8"), 0, buf, len(tokens) + 1,
                           ctypes.byref(count))
        if read and list(buf[:count.value]) == tokens:
            self._cached = list(tokens)
            return True
        logger.warning("prefix state %s did not restore; evaluating the prefix again", key)
        _seq_rm(self._ctx, 0, 0, -1)
        self.states.forget(key)
        return False

    def _save(self, key: str, tokens: list[int]) -> None:
        """Write sequence 0's state (``tokens`` and their KV entries) as ``key``, atomically, and keep the budget."""
        path = self.states.path(key)
        temp = path.with_name(f"{key}.{os.getpid()}.{threading.get_ident()}.tmp")
        buf = (C.llama_token * len(tokens))(*tokens)
        try:
            if not _state_save(self._ctx, str(temp).encode("utf-8"), 0, buf, len(tokens)):
                raise OSError("the engine wrote nothing")
            os.replace(temp, path)
        except OSError as exc:  # a full disk must not fail the question
            logger.warning("could not save the prefix state (%s)", first_line(exc))
            temp.unlink(missing_ok=True)
            return
        self.states.enforce_budget(keep=key)

    # -- generation ----------------------------------------------------------------------------------------
    def generate(self, messages: list[Message], max_new_tokens: int = 256,
                 cancel: threading.Event | None = None, prefix: str | None = None,
                 progress: ProgressFn | None = None, reply_start: str = "") -> Generation:
        """Greedy reply to ``messages``, as :meth:`.llamacpp_backend.LlamaCppBackend.generate` gives it (the same
        arguments, stops, branch points and cancellation)."""
        prompt = self.render_prompt(messages) + reply_start
        with self._lock:
            self._live()
            if cancel is not None and cancel.is_set():
                raise Cancelled("cancelled")
            t0 = time.perf_counter()
            warm = self._warm(prefix, cancel, progress) if prefix and prompt.startswith(prefix) else Warm("none")
            tokens = self.tokenize(prompt)
            if len(tokens) + 1 > self.n_ctx:
                raise generation_error("the context size was exceeded", self.n_ctx)
            if self._resident is not None and not prompt.startswith(self._resident):
                self._resident = None
            reused, prefill = self._evaluate(tokens, cancel, progress, logits_last=True)
            text, generated, decode, guessed = self._reply(len(tokens), max_new_tokens, cancel)
            seconds = time.perf_counter() - t0
        return reply(reply_start, text, generated, tokens_in=len(tokens), tokens_out=len(generated), reused=reused,
                     seconds=seconds, prefill=prefill, decode=decode, warm=warm, guessed=guessed)

    def _reply(self, pos: int, max_new_tokens: int, cancel: threading.Event | None
               ) -> tuple[str, list[Token], float, int]:
        """Greedy tokens from the logits of the last evaluated token (at position ``pos`` - 1): the text, each token
        as (text, probability, runner-up text, runner-up probability), the seconds taken, and how many of the tokens
        were guessed.

        With a :class:`~.drafts.Drafter`, each step evaluates the chosen token together with the drafter's guesses
        of the next ones, in one batch, and keeps the guesses up to the first that differs from the greedy choice
        at its position (the reply is the greedy one either way; only the number of steps changes)."""
        t0 = time.perf_counter()
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        parts: list[str] = []
        tokens: list[Token] = []
        guessed = 0
        drafter = self.drafter if self.drafter.enabled else None
        if drafter is not None:
            drafter.start(self._cached)

        def take(row: Any, token: int) -> bool:
            """Add ``token``, chosen under the logits ``row``, to the reply; True when the reply is complete."""
            tokens.append(self._token(row, token))
            parts.append(decoder.decode(self._bytes(token)))
            return sql_block_end("".join(parts)) is not None or len(tokens) >= max_new_tokens

        row = self._logits(-1)
        while True:
            best = int(row.argmax())
            if C.llama_token_is_eog(self._model, best) or take(row, best):
                break
            if cancel is not None and cancel.is_set():
                raise Cancelled("cancelled")
            if pos + 1 > self.n_ctx:
                break
            guesses: list[int] = []
            if drafter is not None:
                drafter.extend([best])
                guesses = drafter.propose(min(self.n_ctx - pos - 1, max_new_tokens - len(tokens) - 1,
                                              self._batch.size - 1))
            step = [best, *guesses]
            self._decode(self._batch.fill(step, pos, True, logits_all=bool(guesses)), len(step))
            self._cached.extend(step)
            pos += 1
            row = self._logits(0 if guesses else -1)
            kept, done = 0, False
            for guess in guesses:
                if int(row.argmax()) != guess:
                    break
                # the guess is the greedy token here: it is already evaluated, and its logits are the next row
                kept += 1
                pos += 1
                drafter.extend([guess])
                done = take(row, guess)
                row = self._logits(kept)
                if done:
                    break
            if guesses:
                drafter.record(len(guesses), kept)
                guessed += kept
            if done:
                break
            if len(self._cached) > pos:  # guesses the model did not make: out of the cache
                _seq_rm(self._ctx, 0, pos, -1)
                del self._cached[pos:]
        parts.append(decoder.decode(b"", final=True))
        text = "".join(parts)
        if drafter is not None:
            drafter.finish(text)
        return text, tokens, time.perf_counter() - t0, guessed

    def _logits(self, index: int) -> Any:
        """A copy of the logits of the batch's token ``index`` (-1: the last with logits)."""
        return np.ctypeslib.as_array(C.llama_get_logits_ith(self._ctx, index), shape=(self._n_vocab,)).copy()

    def _token(self, logits: Any, chosen: int) -> Token:
        """``chosen`` as (text, probability, runner-up text, runner-up probability) under ``logits``."""
        weights = np.exp(logits - float(logits.max()))
        total = float(weights.sum())
        probability = float(weights[chosen]) / total
        weights[chosen] = 0.0
        second = int(weights.argmax())
        return (self._bytes(chosen).decode("utf-8", errors="replace"), probability,
                self._bytes(second).decode("utf-8", errors="replace"), float(weights[second]) / total)


def _load_weights(repacked: Path | None, original: Path) -> Any:
    """``llama_model_load_from_file`` (memory-mapped) of the repacked copy as it is, else of the original file with
    its weights repacked in memory; NULL when the engine refuses the file."""
    mparams = C.llama_model_default_params()
    mparams.use_mmap = True
    mparams.repack_tensors = repacked is None
    with brief_openmp_spin(), _quiet_stdio():
        return C.llama_model_load_from_file(str(repacked or original).encode("utf-8"), mparams)


def _meta(model: Any, key: str) -> str:
    """The GGUF metadata value ``key`` as text ("" when absent)."""
    size = 1 << 16
    while True:
        buf = ctypes.create_string_buffer(size)
        n = _meta_str(model, key.encode("utf-8"), buf, size)
        if n < 0:
            return ""
        if n < size:
            return buf.raw[:n].decode("utf-8", errors="replace")
        size = n + 1
