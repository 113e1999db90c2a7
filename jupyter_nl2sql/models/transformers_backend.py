"""The Hugging Face transformers backend: loads a Hugging Face folder or a GGUF file, generates greedily.

Fast start: transformers reads a GGUF by de-quantising every tensor (about 50 s for the 1.5B model on a CPU).
After the first such load the converted model and tokenizer are saved as safetensors under
``cache_dir()/converted/<sha256[:16]>-<dtype>/`` (written to a temporary folder, a ``COMPLETE`` marker written
last, then renamed into place); later loads memory-map that folder in seconds.  Provenance still names the GGUF
and its sha256, plus ``loaded_from`` (``gguf``, ``converted-cache`` or ``hf-dir``).

This module imports torch and transformers at import time: import it only when a model is being loaded.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable

from ..errors import Cancelled, ModelError
from .base import Generation, Message, branch_points, sql_block_end
from .device import brief_openmp_spin
from .files import cache_dir, first_line, temp_sibling
from .resolve import ResolvedModel

with brief_openmp_spin():  # see there: keeps generation fast when other processes compete for the cores
    import torch
import transformers  # noqa: E402
from transformers import (AutoModelForCausalLM, AutoTokenizer, GenerationConfig, LogitsProcessor,  # noqa: E402
                          LogitsProcessorList, StoppingCriteria, StoppingCriteriaList)

logger = logging.getLogger("jupyter_nl2sql")

CONVERTED_MARKER = "COMPLETE"
CONVERTED_FORMAT = 1
END_TOKENS = ("<|im_end|>", "<|endoftext|>", "<|end_of_text|>", "<|eot_id|>")


# -- progress and messages -----------------------------------------------------------------------------------------
def report(message: str, progress: bool) -> None:
    """Log ``message``; with ``progress`` and no logging configured for our logger, also print it to stderr."""
    logger.info(message)
    if progress and not logger.hasHandlers():
        from tqdm.auto import tqdm

        tqdm.write(message, file=sys.stderr)


@contextmanager
def transformers_progress(enabled: bool) -> Iterator[None]:
    """Show or hide transformers' own progress bars for the duration of a load."""
    hf_logging = transformers.utils.logging
    was_disabled = hf_logging.is_progress_bar_enabled() is False
    (hf_logging.enable_progress_bar if enabled else hf_logging.disable_progress_bar)()
    try:
        yield
    finally:
        (hf_logging.disable_progress_bar if was_disabled else hf_logging.enable_progress_bar)()


# -- the converted-model cache -------------------------------------------------------------------------------------
def converted_dir(sha256: str, dtype: str) -> Path:
    """Where the safetensors conversion of the GGUF with this sha256, in this dtype, lives."""
    return cache_dir() / "converted" / f"{sha256[:16]}-{dtype}"


def is_converted(path: Path) -> bool:
    """Whether ``path`` holds a complete conversion (its marker is written last)."""
    return (path / CONVERTED_MARKER).is_file()


@contextmanager
def detached_gguf_quantizer(model: Any) -> Iterator[bool]:
    """Let ``save_pretrained`` write a model that was loaded from a GGUF; yield whether that is possible.

    transformers marks every GGUF-loaded model as quantized and refuses to save it, although without a GGUF
    matmul kernel (the CPU case) every weight has been de-quantized into ordinary tensors.  When that is so, the
    quantizer and the config's ``quantization_config`` are set aside while saving (so the saved folder loads as a
    plain model) and put back afterwards.  Weights still packed in GGUF blocks cannot be saved: yield False.
    """
    quantizer = getattr(model, "hf_quantizer", None)
    if getattr(quantizer, "packed_modules", None) or any(p.dtype == torch.uint8 for p in model.parameters()):
        yield False
        return
    config = model.config
    quant_config = config.__dict__.pop("quantization_config", None)
    model.hf_quantizer = None
    try:
        yield True
    finally:
        model.hf_quantizer = quantizer
        if quant_config is not None:
            config.quantization_config = quant_config


def save_converted(model: Any, tokenizer: Any, dest: Path, resolved: ResolvedModel, dtype: str) -> bool:
    """Save model and tokenizer as safetensors into ``dest``, atomically; return whether it worked.

    A failure (disk full, read-only cache) is only a warning: the next start is slow again, nothing breaks.
    """
    tmp: Path | None = None
    try:
        with detached_gguf_quantizer(model) as plain:
            if not plain:
                logger.info("not caching %s: its weights stay packed in GGUF blocks", resolved.path)
                return False
            tmp = temp_sibling(dest, directory=True)
            model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        marker = {"format": CONVERTED_FORMAT, "gguf_sha256": resolved.sha256, "gguf_path": str(resolved.path),
                  "model_id": resolved.model_id, "dtype": dtype, "transformers": transformers.__version__}
        (tmp / CONVERTED_MARKER).write_text(json.dumps(marker, indent=1), encoding="utf-8")
        try:
            tmp.rename(dest)
        except OSError:
            if not is_converted(dest):  # not a concurrent writer that got there first
                raise
        return True
    except (OSError, ValueError, RuntimeError) as exc:
        logger.warning("could not save the converted model to %s (%s): the next start will convert again",
                       dest, exc)
        return False
    finally:
        if tmp is not None and tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


class _DropMessages(logging.Filter):
    """A logging filter that drops records whose message starts with one of ``prefixes``."""

    def __init__(self, *prefixes: str) -> None:
        super().__init__()
        self.prefixes = prefixes

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self.prefixes)


@contextmanager
def quiet_gguf_warnings() -> Iterator[None]:
    """Hide transformers' advice about packed GGUF weights, which does not apply when it de-quantizes anyway."""
    target = logging.getLogger("transformers.quantizers.quantizer_gguf")
    drop = _DropMessages("Loading a GGUF checkpoint with its weights packed")
    target.addFilter(drop)
    try:
        yield
    finally:
        target.removeFilter(drop)


# -- loading -------------------------------------------------------------------------------------------------------
def load_hf_dir(path: Path, dtype: str, **kwargs: Any) -> tuple[Any, Any]:
    """Model and tokenizer from a Hugging Face folder (or, with ``gguf_file=``, from a GGUF in it)."""
    tokenizer = AutoTokenizer.from_pretrained(str(path), **kwargs)
    model = AutoModelForCausalLM.from_pretrained(str(path), dtype=getattr(torch, dtype), **kwargs)
    return model, tokenizer


def load_gguf(resolved: ResolvedModel, dtype: str, progress: bool) -> tuple[Any, Any, str]:
    """Model and tokenizer of a GGUF: from the converted cache when there, else de-quantised and cached."""
    assert resolved.sha256 is not None, "a GGUF source always carries its sha256"
    conv = converted_dir(resolved.sha256, dtype)
    if is_converted(conv):
        report(f"Loading {resolved.model_id} ({dtype}) from the converted cache {conv}", progress)
        try:
            return (*load_hf_dir(conv, dtype), "converted-cache")
        except Exception as exc:  # damaged cache: convert again
            logger.warning("converted cache %s is unusable (%s): converting again", conv, exc)
            shutil.rmtree(conv, ignore_errors=True)
    report(f"Loading {resolved.model_id} from {resolved.path.name}: de-quantising to {dtype} (about a minute "
           f"on a CPU, once: the result is cached for fast starts)", progress)
    with quiet_gguf_warnings():
        model, tokenizer = load_hf_dir(resolved.path.parent, dtype, gguf_file=resolved.path.name)
    report(f"Saving the converted model to {conv} for fast starts", progress)
    save_converted(model, tokenizer, conv, resolved, dtype)
    return model, tokenizer, "gguf"


def load_model(resolved: ResolvedModel, dtype: str, progress: bool) -> tuple[Any, Any, str]:
    """``(model, tokenizer, loaded_from)``; any failure becomes a one-line :class:`ModelError`."""
    try:
        with transformers_progress(progress):
            if resolved.is_gguf:
                return load_gguf(resolved, dtype, progress)
            report(f"Loading {resolved.model_id} ({dtype}) from {resolved.path}", progress)
            return (*load_hf_dir(resolved.path, dtype), "hf-dir")
    except ModelError:
        raise
    except MemoryError:
        raise ModelError(f"out of memory loading {resolved.model_id} in {dtype}: close other kernels, or use a "
                         f"smaller model (qwen2.5-coder-0.5b)") from None
    except Exception as exc:
        what = "not a valid GGUF file" if resolved.source == "gguf-file" else "could not load model"
        raise ModelError(f"{what}: {resolved.path} ({type(exc).__name__}: {first_line(exc)})") from None


# -- generation ----------------------------------------------------------------------------------------------------
class SqlBlockStop(StoppingCriteria):
    """Stop once the generated text has closed a fenced code block (```sql ... ```)."""

    def __init__(self, tokenizer: Any, prompt_tokens: int) -> None:
        self.tokenizer = tokenizer
        self.prompt_tokens = prompt_tokens

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor | None, **kwargs: Any) -> torch.Tensor:
        done = [sql_block_end(self.tokenizer.decode(row[self.prompt_tokens:], skip_special_tokens=True)) is not None
                for row in input_ids]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)


class GreedyScore(LogitsProcessor):
    """Leaves the scores alone and records, step by step and per row, the log-probability of the token greedy
    decoding takes (the most likely one): the reply's score without ``output_scores`` keeping every step's logits."""

    def __init__(self) -> None:
        self.steps: list[torch.Tensor] = []
        self.runner_up: list[tuple[torch.Tensor, torch.Tensor]] = []

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        top = torch.log_softmax(scores.float(), dim=-1).topk(2, dim=-1)
        self.steps.append(top.values[:, 0].cpu())
        self.runner_up.append((top.values[:, 1].cpu(), top.indices[:, 1].cpu()))
        return scores

    def mean(self, row: int, n_tokens: int) -> float | None:
        """Mean log-probability of the first ``n_tokens`` tokens of ``row`` (None when nothing was recorded)."""
        steps = self.steps[:n_tokens]
        return float(torch.stack(steps)[:, row].mean()) if steps else None

    def tokens(self, row: int, ids: list[int], decode: Callable[[list[int]], str]) -> list[tuple]:
        """``row``'s generated tokens ``ids`` as (text, probability, runner-up text, runner-up probability)."""
        return [(decode([tok]), math.exp(float(self.steps[i][row])), decode([int(self.runner_up[i][1][row])]),
                 math.exp(float(self.runner_up[i][0][row]))) for i, tok in enumerate(ids[:len(self.steps)])]


class CancelStop(StoppingCriteria):
    """Stop as soon as ``event`` is set (checked after every generated token)."""

    def __init__(self, event: threading.Event) -> None:
        self.event = event

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor | None, **kwargs: Any) -> torch.Tensor:
        return torch.full((input_ids.shape[0],), self.event.is_set(), dtype=torch.bool, device=input_ids.device)


def end_token_ids(model: Any, tokenizer: Any) -> list[int]:
    """Every token id that ends a reply: the model's and tokenizer's EOS plus the usual chat end tokens."""
    ids: set[int] = set()
    configured = model.generation_config.eos_token_id
    ids.update(configured if isinstance(configured, list) else [configured] if configured is not None else [])
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    vocab = tokenizer.get_vocab()
    ids.update(vocab[t] for t in END_TOKENS if t in vocab)
    return sorted(ids)


class TransformersBackend:
    """A causal language model run by transformers; see :class:`jupyter_nl2sql.models.Backend`."""

    def __init__(self, model: Any, tokenizer: Any, resolved: ResolvedModel, device: str, dtype: str,
                 loaded_from: str) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.model_id = resolved.model_id
        self.device = device
        self.dtype = dtype
        self.provenance: dict[str, Any] = {
            **resolved.provenance(), "dtype": dtype, "device": device, "backend": "transformers",
            "loaded_from": loaded_from, "transformers": transformers.__version__, "torch": torch.__version__,
        }
        self._eos = end_token_ids(model, tokenizer)
        self._pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self._eos[0]
        self._lock = threading.Lock()
        self.decoding_options: dict[str, Any] = {}
        """Extra ``GenerationConfig`` settings that keep decoding greedy, e.g. ``{"prompt_lookup_num_tokens": 10}``
        (prompt-lookup decoding: drafts copied from the prompt, verified in one forward pass; same output)."""

    @classmethod
    def load(cls, resolved: ResolvedModel, device: str, dtype: str, *, progress: bool = True
             ) -> TransformersBackend:
        """Load ``resolved`` onto ``device`` in ``dtype``."""
        t0 = time.perf_counter()
        model, tokenizer, loaded_from = load_model(resolved, dtype, progress)
        model.to(device)
        model.eval()
        backend = cls(model, tokenizer, resolved, device, dtype, loaded_from)
        report(f"Loaded {resolved.model_id} on {device} ({dtype}) in {time.perf_counter() - t0:.1f} s", progress)
        return backend

    def __repr__(self) -> str:
        return f"<TransformersBackend {self.model_id} on {self.device} ({self.dtype})>"

    def render_prompt(self, messages: list[Message]) -> str:
        """The prompt text after the chat template, ending where the assistant's reply begins."""
        if not getattr(self.tokenizer, "chat_template", None):
            raise ModelError(f"model {self.model_id} has no chat template: use an instruct (chat) model")
        return self.tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)

    def generate(self, messages: list[Message], max_new_tokens: int = 256,
                 cancel: threading.Event | None = None, reply_start: str = "") -> Generation:
        """Greedy reply to ``messages``; stops at EOS or at the end of a fenced SQL block.

        ``reply_start``: the reply's first characters, taken as written (a :class:`~.base.BranchPoint`'s other
        way); the returned text starts with them.
        Raises :class:`~jupyter_nl2sql.errors.Cancelled` when ``cancel`` is set before the reply is complete (it is
        checked after every token; the prompt's own forward pass is not interrupted).
        """
        return self.generate_batch([messages], max_new_tokens, cancel, reply_start=reply_start)[0]

    def generate_batch(self, conversations: list[list[Message]], max_new_tokens: int = 256,
                       cancel: threading.Event | None = None, *, reply_start: str = "") -> list[Generation]:
        """Greedy replies to several conversations in one batched ``generate`` (what a model server does with
        concurrent requests); one :class:`Generation` per conversation, in order.

        Identical prompts are computed once.  Prompts of different lengths are padded on the left and masked; a
        reply ends at EOS or at the close of its SQL block while the others go on.  A batch of one is exactly
        :meth:`generate` (no padding).  ``seconds`` of each result is the batch's wall time.
        """
        prompts = [self.render_prompt(m) + reply_start for m in conversations]
        unique = list(dict.fromkeys(prompts))
        tokenizer = self.tokenizer
        with self._lock, torch.inference_mode():
            if cancel is not None and cancel.is_set():
                raise Cancelled("cancelled")
            saved = tokenizer.padding_side, tokenizer.pad_token
            tokenizer.padding_side = "left"
            if tokenizer.pad_token is None:
                tokenizer.pad_token = tokenizer.convert_ids_to_tokens(self._pad)
            try:
                encoded = tokenizer(unique, return_tensors="pt", padding=True,
                                    add_special_tokens=False).to(self.device)
            finally:
                tokenizer.padding_side, tokenizer.pad_token = saved
            width = int(encoded["input_ids"].shape[1])
            config = GenerationConfig(do_sample=False, max_new_tokens=max_new_tokens, eos_token_id=self._eos,
                                      pad_token_id=self._pad, **self.decoding_options)
            stops: list[StoppingCriteria] = [SqlBlockStop(tokenizer, width)]
            if cancel is not None:
                stops.append(CancelStop(cancel))
            # the score is greedy's own pick; assisted decoding (prompt lookup) checks several tokens per step
            score = None if config.do_sample or self.decoding_options.get("prompt_lookup_num_tokens") \
                else GreedyScore()
            t0 = time.perf_counter()
            out = self.model.generate(**encoded, generation_config=config,
                                      stopping_criteria=StoppingCriteriaList(stops),
                                      logits_processor=LogitsProcessorList([score] if score else []))
            seconds = time.perf_counter() - t0
        if cancel is not None and cancel.is_set():
            raise Cancelled("cancelled")
        replies: dict[str, Generation] = {}
        for row, prompt in enumerate(unique):
            n_in = int(encoded["attention_mask"][row].sum())
            new_tokens = out[row, width:].tolist()
            if len(unique) > 1:  # a row that finished early is filled with padding up to the longest reply
                while new_tokens and new_tokens[-1] == self._pad:
                    new_tokens.pop()
            text = reply_start + tokenizer.decode(new_tokens, skip_special_tokens=True)
            end = sql_block_end(text)
            tokens = score.tokens(row, new_tokens, tokenizer.decode) if score and len(unique) == 1 else []
            replies[prompt] = Generation(text[:end] if end is not None else text, n_in, len(new_tokens), seconds,
                                         logprob=score.mean(row, len(new_tokens)) if score else None,
                                         branch_points=branch_points([(reply_start, 1.0, None, None), *tokens]))
        return [replies[p] for p in prompts]
