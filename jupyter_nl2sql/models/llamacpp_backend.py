"""The llama.cpp backend (``llama-cpp-python``): runs a GGUF file as it is, on the CPU.

Why it exists: transformers de-quantises the Q4_K_M GGUF into bfloat16 tensors (3 GB resident, 50 s the first
time) and decodes at a few tokens per second on a laptop CPU; llama.cpp memory-maps the 1.1 GB file (load ≈ 1 s)
and runs the 4-bit weights directly, several times faster.

Prefix reuse: the model's KV cache is kept between calls.  The pipeline's prompt puts the system message and the
schema first and what depends on the question last (few-shot examples, value hints, the question), so a second
question on the same database evaluates only the tokens after the longest common prefix, not the schema again; a
repair round re-uses the whole first exchange.  ``Generation.tokens_reused`` says how many prompt tokens came from
the cache.

Memory (1.5B Q4_K_M, measured): the GGUF is memory-mapped (~1.1 GB of file-backed pages, shared with the page
cache and reclaimable); llama.cpp repacks the matrices it can into an interleaved layout for its AVX-512 kernels
(~600 MB of anonymous memory); the rest of the process — KV cache (~230 MB at the default context), compute
buffers, Python, SQLAlchemy, pandas — is ~360-440 MB.

Cancellation: ``generate(..., cancel=event)`` checks the event between prompt chunks (:data:`PROMPT_CHUNK`
tokens) and between generated tokens, and raises :class:`~jupyter_nl2sql.errors.Cancelled`.

Settings (environment, read at load): ``NL2SQL_LLAMA_N_CTX`` (context window, default :data:`DEFAULT_N_CTX`,
capped by the model's own), ``NL2SQL_LLAMA_THREADS`` (default: physical cores this process may use).

This module imports ``llama_cpp`` at import time: import it only when a model is being loaded.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from typing import Any

from ..errors import Cancelled, ConfigError, ModelError
from .base import Generation, Message, sql_block_end
from .device import brief_openmp_spin
from .files import first_line
from .resolve import ResolvedModel

with brief_openmp_spin():  # see there: keeps decoding fast when other processes compete for the cores
    import llama_cpp
import numpy as np  # noqa: E402  (llama_cpp's own dependency)
from llama_cpp import Llama  # noqa: E402
from llama_cpp.llama_chat_format import Jinja2ChatFormatter  # noqa: E402

logger = logging.getLogger("jupyter_nl2sql")

DEFAULT_N_CTX = 8192
"""Context window (prompt + reply tokens).  The KV cache costs ~28 KB per token for the 1.5B model (230 MB at
8192); the pipeline's schema cap (``max_schema_chars`` = 12,000) stays well inside it."""
PROMPT_CHUNK = 512
"""Prompt tokens evaluated between two checks of the cancel event (= the batch size: smaller chunks cost prompt
throughput, 15-35 % at 128 on a 2-core machine)."""
END_TOKENS = ("<|im_end|>", "<|endoftext|>", "<|end_of_text|>", "<|eot_id|>")
#: ``general.file_type`` of a GGUF (llama.cpp's ``LLAMA_FTYPE_*``) → the dtype name shown in stats/provenance.
FILE_TYPES = {0: "f32", 1: "f16", 2: "q4_0", 3: "q4_1", 7: "q8_0", 8: "q5_0", 9: "q5_1", 10: "q2_k", 11: "q3_k_s",
              12: "q3_k_m", 13: "q3_k_l", 14: "q4_k_s", 15: "q4_k_m", 16: "q5_k_s", 17: "q5_k_m", 18: "q6_k",
              32: "bf16"}


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


def _env_int(name: str, default: int) -> int:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    if not text.isdigit() or int(text) < 1:
        raise ConfigError(f"{name} must be a whole number ≥ 1, not {text!r}")
    return int(text)


class LlamaCppBackend:
    """A GGUF model run by llama.cpp; see :class:`jupyter_nl2sql.models.Backend`."""

    def __init__(self, llm: Llama, resolved: ResolvedModel, *, n_threads: int, loaded_from: str = "gguf-mmap"
                 ) -> None:
        self.llm = llm
        self.model_id = resolved.model_id
        self.device = "cpu"
        self.n_ctx = llm.n_ctx()
        self.n_threads = n_threads
        metadata = llm.metadata or {}
        try:
            self.dtype = FILE_TYPES.get(int(metadata.get("general.file_type", -1)), "gguf")
        except ValueError:
            self.dtype = "gguf"
        template = metadata.get("tokenizer.chat_template")
        self._eos = self._end_tokens()
        self._formatter = None if not template else Jinja2ChatFormatter(
            template, eos_token=self._piece(llm.token_eos()), bos_token=self._piece(llm.token_bos()))
        self.provenance: dict[str, Any] = {
            **resolved.provenance(), "dtype": self.dtype, "device": "cpu", "backend": "llama.cpp",
            "loaded_from": loaded_from, "llama_cpp": llama_cpp.__version__, "n_ctx": self.n_ctx,
            "n_threads": n_threads,
        }
        self._lock = threading.Lock()

    @classmethod
    def load(cls, resolved: ResolvedModel, *, progress: bool = True, n_ctx: int | None = None,
             n_threads: int | None = None) -> LlamaCppBackend:
        """Memory-map ``resolved`` (a GGUF file) and create a context of ``n_ctx`` tokens."""
        if not resolved.is_gguf:
            raise ModelError(f"the llama.cpp backend needs a .gguf file; {resolved.path} is a Hugging Face folder: "
                             f"use backend 'transformers' (or 'auto')")
        t0 = time.perf_counter()
        n_threads = n_threads or _env_int("NL2SQL_LLAMA_THREADS", physical_cores())
        want_ctx = n_ctx or _env_int("NL2SQL_LLAMA_N_CTX", DEFAULT_N_CTX)
        _report(f"Loading {resolved.model_id} with llama.cpp from {resolved.path.name} ({n_threads} threads)",
                progress)
        try:
            llm = Llama(str(resolved.path), n_ctx=want_ctx, n_batch=512, n_threads=n_threads,
                        n_threads_batch=n_threads, use_mmap=True, verbose=False)
        except MemoryError:
            raise ModelError(f"out of memory loading {resolved.model_id}: close other kernels, lower "
                             f"NL2SQL_LLAMA_N_CTX, or use a smaller model (qwen2.5-coder-0.5b)") from None
        except Exception as exc:  # llama.cpp reports every load failure as ValueError("Failed to load ...")
            raise ModelError(f"llama.cpp could not load {resolved.path} ({type(exc).__name__}: {first_line(exc)}): "
                             f"check the file, or use backend 'transformers'") from None
        train_ctx = llm._model.n_ctx_train() if getattr(llm, "_model", None) is not None else want_ctx
        if train_ctx and want_ctx > train_ctx:  # never run past the model's trained window: reload smaller
            llm.close()
            llm = Llama(str(resolved.path), n_ctx=train_ctx, n_batch=512, n_threads=n_threads,
                        n_threads_batch=n_threads, use_mmap=True, verbose=False)
        backend = cls(llm, resolved, n_threads=n_threads)
        _report(f"Loaded {resolved.model_id} (llama.cpp, {backend.dtype}, context {backend.n_ctx}) in "
                f"{time.perf_counter() - t0:.1f} s", progress)
        return backend

    def __repr__(self) -> str:
        return f"<LlamaCppBackend {self.model_id} ({self.dtype}, {self.n_threads} threads)>"

    # -- tokens --------------------------------------------------------------------------------------------
    def _piece(self, token: int) -> str:
        if token < 0:
            return ""
        return self.llm.detokenize([token], special=True).decode("utf-8", errors="ignore")

    def _end_tokens(self) -> frozenset[int]:
        """Every token that ends a reply: the vocabulary's end-of-generation tokens and the usual chat ends."""
        ids = {t for t in (self.llm.token_eos(),) if t >= 0}
        vocab = None
        model = getattr(self.llm, "_model", None)
        if model is not None and hasattr(llama_cpp, "llama_vocab_is_eog"):
            vocab = llama_cpp.llama_model_get_vocab(model.model)
        for text in END_TOKENS:
            toks = self.llm.tokenize(text.encode(), add_bos=False, special=True)
            if len(toks) == 1:
                ids.add(toks[0])
        if vocab is not None:
            ids = {t for t in ids if llama_cpp.llama_vocab_is_eog(vocab, t)} | {self.llm.token_eos()}
        return frozenset(t for t in ids if t >= 0)

    def render_prompt(self, messages: list[Message]) -> str:
        """The prompt text after the GGUF's chat template, ending where the assistant's reply begins."""
        if self._formatter is None:
            raise ModelError(f"model {self.model_id} has no chat template: use an instruct (chat) model")
        return self._formatter(messages=list(messages)).prompt

    def tokenize(self, text: str) -> list[int]:
        """Token ids of ``text`` (special tokens such as ``<|im_start|>`` parsed, no BOS added: the chat template
        writes whatever the model needs)."""
        return self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)

    # -- generation ----------------------------------------------------------------------------------------
    def _prefill(self, tokens: list[int], cancel: Any) -> int:
        """Bring the KV cache to ``tokens``: keep the longest common prefix with what it holds, evaluate the rest
        in chunks (checking ``cancel`` between them).  Returns the number of tokens reused."""
        llm = self.llm
        cached = llm.input_ids[:llm.n_tokens]
        keep = 0
        for a, b in zip(cached, tokens):
            if a != b:
                break
            keep += 1
        keep = min(keep, len(tokens) - 1)  # the last prompt token is always evaluated: its logits start the reply
        if keep > 0 and llm._ctx.kv_cache_seq_rm(-1, keep, -1) is False:
            keep = 0  # a model whose cache cannot be cut (recurrent): start over
        if keep == 0:
            llm.reset()
        llm.n_tokens = keep
        rest = tokens[keep:]
        for i in range(0, len(rest), PROMPT_CHUNK):
            if cancel is not None and cancel.is_set():
                llm.n_tokens = keep + i  # what has been evaluated stays usable for the next call
                raise Cancelled("cancelled")
            llm.eval(rest[i:i + PROMPT_CHUNK])
        return keep

    def generate(self, messages: list[Message], max_new_tokens: int = 256,
                 cancel: threading.Event | None = None) -> Generation:
        """Greedy reply to ``messages``; stops at an end token or at the end of a fenced SQL block.

        Raises :class:`~jupyter_nl2sql.errors.Cancelled` when ``cancel`` is set before the reply is complete.
        """
        tokens = self.tokenize(self.render_prompt(messages))
        n_in = len(tokens)
        if n_in + 1 > self.n_ctx:
            raise ModelError(f"the prompt has {n_in} tokens, more than the model's context of {self.n_ctx}: "
                             f"lower max_schema_chars (fewer tables shown) or raise NL2SQL_LLAMA_N_CTX")
        budget = max(1, min(max_new_tokens, self.n_ctx - n_in))
        out: list[int] = []
        logprobs: list[float] = []
        text = ""
        with self._lock:
            t0 = time.perf_counter()
            if cancel is not None and cancel.is_set():
                raise Cancelled("cancelled")
            reused = self._prefill(tokens, cancel)
            try:
                # the prompt is fully evaluated, so generate() samples at once (no re-evaluation)
                for token in self.llm.generate(tokens, temp=0.0, top_k=1, top_p=1.0, min_p=0.0,
                                               repeat_penalty=1.0, reset=True):
                    logprobs.append(self._logprob(token))
                    if token in self._eos:
                        break
                    out.append(token)
                    text = self.llm.detokenize(out).decode("utf-8", errors="ignore")
                    if sql_block_end(text) is not None or len(out) >= budget:
                        break
                    if cancel is not None and cancel.is_set():
                        raise Cancelled("cancelled")
            except Cancelled:
                raise
            except Exception as exc:  # llama_decode failures (out of KV space...) as one line
                self.llm.reset()
                raise ModelError(f"llama.cpp generation failed ({type(exc).__name__}: {first_line(exc)})") from None
            seconds = time.perf_counter() - t0
        end = sql_block_end(text)
        return Generation(text[:end] if end is not None else text, n_in, len(out), seconds, tokens_reused=reused,
                          logprob=sum(logprobs) / len(logprobs) if logprobs else None)

    def _logprob(self, token: int) -> float:
        """Log-probability of ``token`` under the logits it was just sampled from (the context's last output row:
        llama.cpp keeps it until the next evaluation, so no ``logits_all`` is needed)."""
        logits = np.ctypeslib.as_array(self.llm._ctx.get_logits(), shape=(self.llm.n_vocab(),))
        top = float(logits.max())
        return float(logits[token]) - top - math.log(float(np.exp(logits - top).sum()))


def _report(message: str, progress: bool) -> None:
    """Log ``message``; with ``progress`` and no logging configured for our logger, also print it to stderr."""
    logger.info(message)
    if progress and not logger.hasHandlers():
        import sys

        print(message, file=sys.stderr)
