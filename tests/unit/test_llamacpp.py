"""The llama.cpp backend: which backend ``auto`` picks, and the real llama.cpp code on a tiny random GGUF.

Selection tests run without llama-cpp-python (its presence is monkeypatched); the plumbing tests load a 2-layer
random-weight GGUF through llama.cpp (gibberish replies by design) and skip when llama_cpp is not installed.
The real 1.5B model runs only under the ``model`` marker.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from jupyter_nl2sql.errors import Cancelled, ConfigError, ModelError
from jupyter_nl2sql.models import registry
from jupyter_nl2sql.models.registry import choose_backend, get_backend, normalize_backend
from jupyter_nl2sql.models.resolve import ResolvedModel

MESSAGES = [{"role": "system", "content": "You write SQLite."},
            {"role": "user", "content": "Database schema:\nCREATE TABLE users (id INTEGER, name TEXT);\n\n"
                                        "Question: how many users?"}]


@pytest.fixture()
def gguf_model(tmp_path) -> ResolvedModel:
    path = tmp_path / "m.gguf"
    path.write_bytes(b"GGUF")
    return ResolvedModel(str(path), "gguf-file", path, sha256="0" * 64)


@pytest.fixture()
def hf_model(tmp_path) -> ResolvedModel:
    (tmp_path / "hf").mkdir()
    return ResolvedModel("org/m", "local-dir", tmp_path / "hf")


# -- selection (no llama.cpp needed) ------------------------------------------------------------------------------
NOT_INSTALLED = "llama-cpp-python is not installed: run pip install 'jupyter-nl2sql[llama]'"


@pytest.mark.parametrize("installed", [True, False])
def test_auto_picks_llamacpp_only_for_gguf_on_cpu_when_installed(monkeypatch, gguf_model, hf_model, installed):
    monkeypatch.setattr(registry, "llama_cpp_problem", lambda: None if installed else NOT_INSTALLED)
    expected = "llama.cpp" if installed else "transformers"
    assert choose_backend(None, gguf_model, "cpu", None) == expected
    assert choose_backend("auto", gguf_model, "cpu", "auto") == expected
    assert choose_backend("auto", gguf_model, "cuda:0", None) == "transformers"
    assert choose_backend("auto", gguf_model, "cpu", "bfloat16") == "transformers"  # a dtype asks for transformers
    assert choose_backend("auto", hf_model, "cpu", None) == "transformers"
    assert choose_backend("transformers", gguf_model, "cpu", None) == "transformers"


def test_explicit_llamacpp_says_what_is_wrong(monkeypatch, gguf_model, hf_model):
    monkeypatch.setattr(registry, "llama_cpp_problem", lambda: NOT_INSTALLED)
    with pytest.raises(ModelError, match=r"pip install 'jupyter-nl2sql\[llama\]'"):
        choose_backend("llama.cpp", gguf_model, "cpu", None)
    monkeypatch.setattr(registry, "llama_cpp_problem", lambda: None)
    assert choose_backend("llamacpp", gguf_model, "cpu", None) == "llama.cpp"
    with pytest.raises(ModelError, match="needs a .gguf model"):
        choose_backend("llama.cpp", hf_model, "cpu", None)
    with pytest.raises(ConfigError, match="runs on the CPU"):
        choose_backend("llama.cpp", gguf_model, "cuda:0", None)


def test_backend_names():
    assert normalize_backend(None) == normalize_backend("") == normalize_backend(" AUTO ") == "auto"
    assert normalize_backend("llama_cpp") == normalize_backend("GGUF") == "llama.cpp"
    assert normalize_backend("hf") == "transformers"
    with pytest.raises(ConfigError, match="unknown backend 'onnx'"):
        normalize_backend("onnx")


def test_llama_cpp_problem_when_not_installed(monkeypatch):
    import importlib.util

    registry.llama_cpp_problem.cache_clear()
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    try:
        assert registry.llama_cpp_problem() == NOT_INSTALLED and registry.llama_cpp_available() is False
    finally:
        registry.llama_cpp_problem.cache_clear()


def test_build_for_missing_instructions_is_not_auto_selected(monkeypatch, gguf_model, caplog):
    """A wheel built with AVX-512 on a CPU without it would crash the kernel at the first token: auto avoids it."""
    problem = registry.missing_cpu_features("CPU : AVX2 = 1 | AVX512 = 1 | AVX512_VNNI = 1 | AMX_INT8 = 0 |",
                                            {"avx", "avx2", "fma"})
    assert problem == ["AVX512", "AVX512_VNNI"]
    assert registry.missing_cpu_features("CPU : AVX512 = 1 |", set()) == []  # flags unknown: trust the build
    monkeypatch.setattr(registry, "llama_cpp_problem", lambda: "this llama-cpp-python build uses AVX512, which ...")
    assert choose_backend(None, gguf_model, "cpu", None) == "transformers"
    assert "using transformers instead of llama.cpp" in caplog.text
    with pytest.raises(ModelError, match="build uses AVX512"):
        choose_backend("llama.cpp", gguf_model, "cpu", None)


def test_get_backend_without_llama_falls_back_to_transformers(monkeypatch, gguf_model):
    """``auto`` with llama_cpp missing loads through transformers (no llama import attempted)."""
    monkeypatch.setattr(registry, "llama_cpp_problem", lambda: NOT_INSTALLED)
    monkeypatch.setattr(registry, "resolve_model", lambda model, progress=True: gguf_model)
    monkeypatch.setattr(registry, "choose_device_dtype", lambda device, dtype: ("cpu", "float32"))
    loaded = []

    class FakeTransformers:
        @classmethod
        def load(cls, resolved, device, dtype, progress=True):
            loaded.append((resolved, device, dtype))
            return "transformers-backend"

    import jupyter_nl2sql.models.transformers_backend as tb

    monkeypatch.setattr(tb, "TransformersBackend", FakeTransformers)
    registry.clear_backends()
    try:
        backend, seconds = get_backend("some.gguf", progress=False)
        assert backend == "transformers-backend" and seconds is not None and loaded[0][1:] == ("cpu", "float32")
    finally:
        registry.clear_backends()


def test_assistant_passes_backend_setting(monkeypatch):
    from jupyter_nl2sql.pipeline.assistant import Assistant
    from jupyter_nl2sql.models import registry as reg

    seen = {}
    monkeypatch.setattr(reg, "get_backend", lambda model, device=None, dtype=None, progress=True, backend=None:
                        seen.update(backend=backend) or ("b", None))
    import jupyter_nl2sql.models as models

    monkeypatch.setattr(models, "get_backend", reg.get_backend)
    Assistant(backend="llama.cpp", generation_cache=False).backend()
    assert seen == {"backend": "llama.cpp"}


# -- the real llama.cpp code on a tiny random GGUF ----------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory):
    pytest.importorskip("llama_cpp")
    from jupyter_nl2sql.models.llamacpp_backend import LlamaCppBackend
    from jupyter_nl2sql.models.resolve import resolve_path
    from jupyter_nl2sql.models.testing import make_tiny_random_gguf

    path = make_tiny_random_gguf(tmp_path_factory.mktemp("tiny-llama") / "tiny.gguf")
    return LlamaCppBackend.load(resolve_path(path, progress=False), progress=False, n_threads=1)


def test_tiny_gguf_loads_and_generates(tiny_llama):
    b = tiny_llama
    assert b.provenance["backend"] == "llama.cpp" and b.provenance["sha256"] and b.dtype == "f32"
    assert b.device == "cpu" and b.n_ctx == 4096  # capped at the model's trained context
    prompt = b.render_prompt(MESSAGES)
    assert prompt.startswith("<|im_start|>system\nYou write SQLite.<|im_end|>\n")
    assert prompt.endswith("<|im_start|>assistant\n")
    gen = b.generate(MESSAGES, max_new_tokens=6)
    assert gen.tokens_in == len(b.tokenize(prompt)) and 0 < gen.tokens_out <= 6 and gen.seconds > 0
    assert isinstance(gen.text, str)


def test_chat_template_matches_transformers(tiny_llama):
    """llama.cpp renders the GGUF's template exactly as transformers renders the same template."""
    from jupyter_nl2sql.models.testing import byte_level_tokenizer

    tok = byte_level_tokenizer()
    expected = tok.apply_chat_template(MESSAGES, tokenize=False, add_generation_prompt=True)
    assert tiny_llama.render_prompt(MESSAGES) == expected


def test_greedy_is_deterministic_and_prefix_is_reused(tiny_llama):
    b = tiny_llama
    first = b.generate(MESSAGES, max_new_tokens=8)
    again = b.generate(MESSAGES, max_new_tokens=8)
    assert again.text == first.text and again.tokens_out == first.tokens_out
    assert again.tokens_reused == again.tokens_in - 1  # only the last prompt token is evaluated again
    other = [MESSAGES[0], {"role": "user", "content": MESSAGES[1]["content"].replace("how many", "list all")}]
    gen = b.generate(other, max_new_tokens=8)
    shared = MESSAGES[1]["content"].index("how many")
    assert shared // 4 < gen.tokens_reused < gen.tokens_in  # the schema part came from the cache
    back = b.generate(MESSAGES, max_new_tokens=8)
    assert back.text == first.text  # reuse never changes the answer


def test_reply_score_is_the_mean_token_log_probability(tiny_llama, monkeypatch):
    """The score read from llama.cpp's last-row logits during generation equals the log-probabilities of the same
    tokens recomputed by a second context that keeps the logits of every position (``logits_all``)."""
    import numpy as np
    from llama_cpp import Llama

    b = tiny_llama
    seen: list[tuple[int, float]] = []
    real = b._logprob
    monkeypatch.setattr(b, "_logprob", lambda token: seen.append((token, real(token))) or seen[-1][1])
    gen = b.generate(MESSAGES, max_new_tokens=8)
    assert seen and gen.logprob == pytest.approx(sum(v for _, v in seen) / len(seen))
    assert all(v <= 0 for _, v in seen)
    prompt = b.tokenize(b.render_prompt(MESSAGES))
    check = Llama(b.provenance["path"], n_ctx=512, n_threads=1, logits_all=True, verbose=False)
    try:
        check.eval(prompt + [t for t, _ in seen[:-1]])
        logits = np.array(check.scores[len(prompt) - 1:len(prompt) - 1 + len(seen)], dtype=np.float64)
    finally:
        check.close()
    top = logits.max(axis=1, keepdims=True)
    logsm = logits - top - np.log(np.exp(logits - top).sum(axis=1, keepdims=True))
    expected = [logsm[i, t] for i, (t, _) in enumerate(seen)]
    assert [v for _, v in seen] == pytest.approx(expected, abs=1e-3)


class _CancelAfter:
    """An Event-like flag that turns on after ``n`` checks (cancels mid-generation, deterministically)."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.checks = 0

    def is_set(self) -> bool:
        self.checks += 1
        return self.checks > self.n


def test_cancel_before_and_during_generation(tiny_llama):
    b = tiny_llama
    reference = b.generate(MESSAGES, max_new_tokens=10)
    stop = threading.Event()
    stop.set()
    with pytest.raises(Cancelled, match="cancelled"):
        b.generate(MESSAGES, max_new_tokens=10, cancel=stop)
    flag = _CancelAfter(3)
    with pytest.raises(Cancelled):
        b.generate(MESSAGES, max_new_tokens=10, cancel=flag)
    assert flag.checks == 4
    assert b.generate(MESSAGES, max_new_tokens=10).text == reference.text  # the cache is still consistent
    assert b.generate(MESSAGES, max_new_tokens=10, cancel=threading.Event()).text == reference.text


def test_cancel_during_prompt_evaluation(tiny_llama, monkeypatch):
    from jupyter_nl2sql.models import llamacpp_backend

    monkeypatch.setattr(llamacpp_backend, "PROMPT_CHUNK", 8)
    long = [MESSAGES[0], {"role": "user", "content": "SELECT name FROM users; " * 40}]
    flag = _CancelAfter(2)  # the first check is before the prompt; then every 8 prompt tokens
    with pytest.raises(Cancelled):
        tiny_llama.generate(long, max_new_tokens=4, cancel=flag)
    reference = tiny_llama.generate(long, max_new_tokens=4)
    tiny_llama.llm.reset()
    assert tiny_llama.generate(long, max_new_tokens=4).text == reference.text


def test_prompt_longer_than_context_is_one_line_error(tiny_llama):
    huge = [{"role": "user", "content": "x " * 9000}]
    with pytest.raises(ModelError, match="more than the model's context of 4096"):
        tiny_llama.generate(huge)


def test_get_backend_auto_uses_llamacpp_for_gguf_on_cpu(tmp_path, monkeypatch):
    pytest.importorskip("llama_cpp")
    from jupyter_nl2sql.models.testing import make_tiny_random_gguf

    monkeypatch.setenv("NL2SQL_CACHE_DIR", str(tmp_path / "cache"))
    path = make_tiny_random_gguf(tmp_path / "tiny.gguf")
    registry.clear_backends()
    try:
        backend, seconds = get_backend(str(path), device="cpu", progress=False)
        assert backend.provenance["backend"] == "llama.cpp" and seconds is not None
        assert get_backend(str(path), device="cpu", progress=False) == (backend, None)
        hf, _ = get_backend(str(path), device="cpu", dtype="float32", backend="transformers", progress=False)
        assert hf.provenance["backend"] == "transformers" and hf is not backend
    finally:
        registry.clear_backends()


def test_assistant_end_to_end_through_llamacpp(tmp_path, monkeypatch, demo_sqlite_url):
    """The pipeline on the tiny GGUF: provenance says llama.cpp, stats count tokens (the SQL is gibberish)."""
    pytest.importorskip("llama_cpp")
    from jupyter_nl2sql.pipeline.assistant import Assistant
    from jupyter_nl2sql.connections import ConnectionManager
    from jupyter_nl2sql.models.testing import make_tiny_random_gguf

    monkeypatch.setenv("NL2SQL_CACHE_DIR", str(tmp_path / "cache"))
    path = make_tiny_random_gguf(tmp_path / "tiny.gguf")
    registry.clear_backends()
    try:
        a = Assistant(str(path), device="cpu", backend="llama.cpp", connections=ConnectionManager(),
                      generation_cache="memory", max_new_tokens=8, repair_rounds=0)
        ans = a.ask("How many customers are there?", demo_sqlite_url, generate_only=True)
        assert ans.provenance["backend"] == "llama.cpp"
        assert ans.stats.tokens_in > 50 and 0 < ans.stats.tokens_out <= 8
        a.connections.close_all()
    finally:
        registry.clear_backends()


# -- the real model ---------------------------------------------------------------------------------------------
@pytest.mark.model
def test_default_model_through_llamacpp_reuses_the_schema():
    pytest.importorskip("llama_cpp")
    from jupyter_nl2sql.models import DEFAULT_MODEL, lookup_known, resolve

    known = lookup_known(DEFAULT_MODEL)
    if resolve.offline_part_paths(known)[1]:
        pytest.skip(f"the default model is not installed ({known.pip_hint})")
    backend, _ = get_backend(backend="llama.cpp", device="cpu", progress=False)
    assert backend.provenance["backend"] == "llama.cpp" and backend.dtype == "q4_k_m"
    schema = ("Database schema (SQLite):\n\nCREATE TABLE singer (singer_id INTEGER PRIMARY KEY, name TEXT, "
              "country TEXT, age INTEGER);\n\n")
    ask = [{"role": "system", "content": "Reply with the SQL in a single ```sql code block."},
           {"role": "user", "content": schema + "Question: How many singers are there?"}]
    first = backend.generate(ask)
    assert "count(" in first.text.lower() and first.text.rstrip().endswith("```")
    ask2 = [ask[0], {"role": "user", "content": schema + "Question: What is the average age of singers?"}]
    second = backend.generate(ask2)
    assert "avg(" in second.text.lower()
    assert second.tokens_reused >= len(backend.tokenize(backend.render_prompt([ask[0]]))) + 20


def test_openmp_spin_is_short_only_while_loading(monkeypatch):
    """Busy machines: the OpenMP runtimes of llama.cpp and torch are loaded with a short spin; nothing lingers."""
    import os

    from jupyter_nl2sql.models.device import brief_openmp_spin

    monkeypatch.delenv("GOMP_SPINCOUNT", raising=False)
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    with brief_openmp_spin():
        assert os.environ["GOMP_SPINCOUNT"] == "1000"
    assert "GOMP_SPINCOUNT" not in os.environ
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")  # the user's choice wins
    with brief_openmp_spin():
        assert "GOMP_SPINCOUNT" not in os.environ
    assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE"
