"""The model layer: resolution, offline assembly, device/dtype choice, loading and generation plumbing.

Everything but the ``model``-marked test runs on tiny random-weight models and fake package parts, in seconds.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from jupyter_nl2sql.errors import ConfigError, ModelError
from jupyter_nl2sql.models import (
    DEFAULT_MODEL,
    KNOWN_MODELS,
    Backend,
    Generation,
    clear_backends,
    files,
    get_backend,
    lookup_known,
    resolve,
    resolve_model,
)
from jupyter_nl2sql.models.base import sql_block_end
from jupyter_nl2sql.models.device import Hardware, choose_device_dtype, normalize_dtype
from jupyter_nl2sql.models.known import KnownModel

MESSAGES = [{"role": "system", "content": "Answer with SQL."}, {"role": "user", "content": "How many users?"}]


# -- fixtures ------------------------------------------------------------------------------------------------------
@pytest.fixture(autouse=True)
def _fresh_registry():
    """Every test starts and ends with no loaded backend."""
    clear_backends()
    yield
    clear_backends()


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    """An empty model cache and Hugging Face cache, with the Hub unreachable."""
    import huggingface_hub.constants

    root = tmp_path / "nl2sql-cache"
    monkeypatch.setenv("NL2SQL_CACHE_DIR", str(root))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setattr(resolve, "hub_reachable", lambda timeout=3.0: False)
    return root


def _write_parts(directory: Path, chunks: list[bytes]) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, chunk in enumerate(chunks, 1):
        path = directory / f"part{i:02d}.bin"
        path.write_bytes(chunk)
        paths.append(path)
    return paths


@pytest.fixture
def fake_known(cache, offline_packages) -> KnownModel:
    """A known model (``test-org/fake``, alias ``fake-coder``) carried by three fake installed 'packages'."""
    return offline_packages("fake", os.urandom(2123), aliases=("fake-coder",))


def _hf_cache_file(hf_cache: Path, repo_id: str, filename: str, data: bytes, *, revision: str = "a" * 40) -> Path:
    """Lay out one file of ``repo_id`` the way huggingface_hub caches it (blob + snapshot symlink + ref)."""
    repo = hf_cache / ("models--" + repo_id.replace("/", "--"))
    blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
    blob.parent.mkdir(parents=True, exist_ok=True)
    blob.write_bytes(data)
    link = repo / "snapshots" / revision / filename
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(blob)
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(revision)
    return link


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    """A random-weight Qwen2 model in Hugging Face format (real Qwen tokenizer when cached, else byte-level)."""
    from jupyter_nl2sql.models.testing import make_tiny_random_model

    return make_tiny_random_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture
def tiny_gguf(tmp_path) -> Path:
    """A random-weight Qwen2 model as a float32 GGUF file."""
    from jupyter_nl2sql.models.testing import make_tiny_random_gguf

    return make_tiny_random_gguf(tmp_path / "models" / "tiny-random-weight.gguf")


def _one_line(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert "\n" not in text and text
    return text


# -- package surface -----------------------------------------------------------------------------------------------
def test_import_is_lazy():
    code = ("import sys, jupyter_nl2sql.models\n"
            "print(sorted(m for m in ('torch', 'transformers', 'huggingface_hub', 'gguf') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.stdout.strip() == "[]"


def test_known_models_and_aliases():
    assert DEFAULT_MODEL in KNOWN_MODELS
    assert lookup_known("qwen2.5-coder-0.5b").hub_id == "Qwen/Qwen2.5-Coder-0.5B-Instruct"
    assert lookup_known("QWEN/qwen2.5-coder-1.5b-instruct-gguf").hub_id == DEFAULT_MODEL
    assert lookup_known("someone/other") is None
    for known in KNOWN_MODELS.values():
        assert len(known.sha256) == 64 and known.gguf_file.endswith(".gguf") and len(known.part_modules) == known.parts


@pytest.mark.parametrize("known", list(KNOWN_MODELS.values()), ids=lambda k: k.hub_id)
def test_installed_offline_parts_add_up(known):
    parts, missing = resolve.offline_part_paths(known)
    if missing:
        pytest.skip(f"offline packages for {known.hub_id} not installed")
    assert sum(p.stat().st_size for p in parts) == known.size


# -- assembly ------------------------------------------------------------------------------------------------------
def test_assemble_joins_parts_and_stamps(tmp_path, monkeypatch):
    chunks = [b"a" * 10, b"b" * 20, b"c" * 5]
    blob = b"".join(chunks)
    dest = tmp_path / "out" / "m.gguf"
    files.assemble_parts(_write_parts(tmp_path / "p", chunks), dest, len(blob), hashlib.sha256(blob).hexdigest())
    assert dest.read_bytes() == blob
    assert files.read_stamp(dest) == hashlib.sha256(blob).hexdigest()
    assert sorted(p.name for p in dest.parent.iterdir()) == ["m.gguf", "m.gguf.sha256"]
    # a verified file is reused without hashing it again
    monkeypatch.setattr(files, "sha256_file", lambda *a, **k: pytest.fail("re-hashed a stamped file"))
    files.assemble_parts([], dest, len(blob), hashlib.sha256(blob).hexdigest())


def test_assemble_sha_mismatch_deletes_only_its_temp_file(tmp_path):
    parts = _write_parts(tmp_path / "p", [b"x" * 100])
    out = tmp_path / "out"
    out.mkdir()
    (out / "other-model.gguf").write_bytes(b"keep me")
    dest = out / "m.gguf"
    with pytest.raises(ModelError) as exc:
        files.assemble_parts(parts, dest, 100, "0" * 64)
    assert str(dest) in _one_line(exc)
    assert sorted(p.name for p in out.iterdir()) == ["other-model.gguf"]
    assert parts[0].read_bytes() == b"x" * 100


def test_assemble_parts_size_mismatch(tmp_path):
    with pytest.raises(ModelError) as exc:
        files.assemble_parts(_write_parts(tmp_path / "p", [b"x" * 10]), tmp_path / "m.gguf", 11, "0" * 64)
    assert "10 bytes, expected 11" in _one_line(exc)


def test_truncated_assembled_file_is_detected_and_rejoined(tmp_path, caplog):
    blob = os.urandom(4096)
    sha = hashlib.sha256(blob).hexdigest()
    parts = _write_parts(tmp_path / "p", [blob[:2000], blob[2000:]])
    dest = tmp_path / "m.gguf"
    files.assemble_parts(parts, dest, len(blob), sha)
    with open(dest, "r+b") as fh:  # truncate after the stamp was written
        fh.truncate(1000)
    # within the file system's time granularity, as a copy cut short would be (on a busy machine the truncation can
    # land a tick later, when the stamp is already distrusted by its age)
    stamp_ns = files.stamp_path(dest).stat().st_mtime_ns
    os.utime(dest, ns=(stamp_ns, stamp_ns))
    assert files.read_stamp(dest) == sha  # the stamp alone would trust it: the size check must not
    files.assemble_parts(parts, dest, len(blob), sha)
    assert dest.read_bytes() == blob
    assert "truncated" in caplog.text


def test_corrupted_same_size_file_without_stamp_is_rejoined(tmp_path):
    blob = os.urandom(4096)
    sha = hashlib.sha256(blob).hexdigest()
    dest = tmp_path / "m.gguf"
    dest.write_bytes(b"\0" * len(blob))
    files.assemble_parts(_write_parts(tmp_path / "p", [blob]), dest, len(blob), sha)
    assert dest.read_bytes() == blob


# -- resolution ----------------------------------------------------------------------------------------------------
def test_resolve_known_from_offline_packages(fake_known, cache):
    resolved = resolve_model("fake-coder", progress=False)
    assert (resolved.source, resolved.model_id, resolved.sha256) == ("offline-packages", fake_known.hub_id,
                                                                     fake_known.sha256)
    assert resolved.path == cache / "gguf" / "fake.gguf" and resolved.path.is_file()
    assert hashlib.sha256(resolved.path.read_bytes()).hexdigest() == fake_known.sha256


def test_a_model_of_offline_packages_is_joined_when_needed(fake_known, cache):
    """``join=False`` finds the model without writing it; :func:`join_parts` joins it, and :func:`drop_joined`
    deletes the joined file, which a later resolve joins again.  Files the user passed are never deleted."""
    lazy = resolve_model("fake-coder", progress=False, join=False)
    assert lazy.source == "offline-packages" and not lazy.path.exists() and not (cache / "gguf").exists()
    assert lazy.is_gguf and lazy.file_size == fake_known.size and len(lazy.parts) == 3
    with pytest.raises(ModelError, match="not joined yet"):
        resolve.join_parts(lazy, progress=False, fetch=False)
    resolve.join_parts(lazy, progress=False)
    assert hashlib.sha256(lazy.path.read_bytes()).hexdigest() == fake_known.sha256
    assert files.read_stamp(lazy.path) == fake_known.sha256
    assert resolve.drop_joined(lazy) and not lazy.path.exists() and not files.stamp_path(lazy.path).exists()
    assert not resolve.drop_joined(lazy)  # nothing left to delete
    again = resolve_model("fake-coder", progress=False)
    assert again == lazy and again.path.is_file()
    passed = resolve.ResolvedModel(str(again.path), "gguf-file", again.path, sha256=again.sha256)  # the user's own
    assert not resolve.drop_joined(passed) and passed.path.is_file()


def test_resolve_prefers_hf_cache_gguf_over_packages(fake_known, cache, tmp_path):
    parts, _ = resolve.offline_part_paths(fake_known)
    blob = b"".join(p.read_bytes() for p in parts)
    _hf_cache_file(tmp_path / "hf-cache", fake_known.gguf_repo, fake_known.gguf_file, blob)
    resolved = resolve_model(fake_known.hub_id, progress=False)
    assert resolved.source == "hf-cache" and resolved.sha256 == fake_known.sha256
    assert not (cache / "gguf").exists()


def test_resolve_prefers_hf_cache_snapshot_first(fake_known, tmp_path):
    _hf_cache_file(tmp_path / "hf-cache", fake_known.hub_id, "config.json", b"{}", revision="b" * 40)
    _hf_cache_file(tmp_path / "hf-cache", fake_known.hub_id, "model.safetensors", b"w", revision="b" * 40)
    resolved = resolve_model(fake_known.hub_id, progress=False)
    assert (resolved.source, resolved.revision) == ("hf-cache", "b" * 40)
    assert resolved.path.is_dir()


def test_resolve_known_downloads_when_hub_reachable(fake_known, tmp_path, monkeypatch):
    import huggingface_hub

    for name in fake_known.part_modules:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(resolve, "hub_reachable", lambda timeout=3.0: True)
    parts = list((tmp_path / "site-packages" / "fake").glob("part*.bin"))
    downloaded = tmp_path / "dl" / "fake.gguf"
    downloaded.parent.mkdir()
    downloaded.write_bytes(b"".join(p.read_bytes() for p in sorted(parts)))
    calls = []
    monkeypatch.setattr(huggingface_hub, "hf_hub_download",
                        lambda repo, name, **kw: calls.append((repo, name)) or str(downloaded))
    resolved = resolve_model(fake_known.hub_id, progress=False)
    assert resolved.source == "hub" and calls == [(fake_known.gguf_repo, fake_known.gguf_file)]


def test_corrupted_offline_part_names_file_and_fix(fake_known, cache, tmp_path):
    part = tmp_path / "site-packages" / "fake" / "part02.bin"
    part.write_bytes(b"\0" * part.stat().st_size)  # same size, wrong bytes
    with pytest.raises(ModelError) as exc:
        resolve_model(fake_known.hub_id, progress=False)
    text = _one_line(exc)
    assert str(cache / "gguf" / "fake.gguf") in text and "pip install --force-reinstall 'jupyter-nl2sql[fake]'" in text
    assert list((cache / "gguf").iterdir()) == []


def test_known_model_unavailable_says_both_ways(fake_known, monkeypatch):
    for name in fake_known.part_modules:
        monkeypatch.delitem(sys.modules, name)
    with pytest.raises(ModelError) as exc:
        resolve_model(fake_known.hub_id, progress=False)
    text = _one_line(exc)
    assert "pip install 'jupyter-nl2sql[fake]'" in text and "internet" in text and fake_known.hub_id in text


def test_incomplete_offline_packages(fake_known, monkeypatch):
    monkeypatch.delitem(sys.modules, fake_known.part_modules[1])
    with pytest.raises(ModelError) as exc:
        resolve_model(fake_known.hub_id, progress=False)
    assert fake_known.part_modules[1] in _one_line(exc) and "pip install" in str(exc.value)


def test_unknown_hub_id_offline_names_the_id(cache):
    with pytest.raises(ModelError) as exc:
        resolve_model("nobody-xyz/does-not-exist-model", progress=False)
    assert "nobody-xyz/does-not-exist-model" in _one_line(exc)


def test_unknown_hub_id_from_hf_cache(cache, tmp_path):
    _hf_cache_file(tmp_path / "hf-cache", "org/some-model", "config.json", b"{}")
    _hf_cache_file(tmp_path / "hf-cache", "org/some-model", "model.safetensors", b"w")
    assert resolve_model("org/some-model", progress=False).source == "hf-cache"


@pytest.mark.parametrize("name", ["not a model id!", "./missing-model.gguf", "/nope/model", "~/x.gguf"])
def test_bad_names_raise_one_line(cache, name):
    with pytest.raises(ModelError) as exc:
        resolve_model(name, progress=False)
    _one_line(exc)


def test_resolve_local_paths(cache, tmp_path, tiny_gguf, tiny_dir):
    by_file = resolve_model(str(tiny_gguf), progress=False)
    assert by_file.source == "gguf-file"
    assert by_file.sha256 == hashlib.sha256(tiny_gguf.read_bytes()).hexdigest()
    assert resolve_model(tiny_gguf.parent, progress=False).path == tiny_gguf  # a folder with one .gguf
    by_dir = resolve_model(str(tiny_dir), progress=False)
    assert (by_dir.source, by_dir.path, by_dir.sha256) == ("local-dir", tiny_dir, None)
    (tiny_gguf.parent / "second.gguf").write_bytes(tiny_gguf.read_bytes())
    with pytest.raises(ModelError, match="2 .gguf files"):
        resolve_model(tiny_gguf.parent, progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="neither"):
        resolve_model(tmp_path / "empty", progress=False)


def test_user_gguf_hash_is_remembered(cache, tiny_gguf, monkeypatch):
    first = resolve_model(tiny_gguf, progress=False).sha256
    monkeypatch.setattr(files, "sha256_file", lambda *a, **k: pytest.fail("hashed twice"))
    assert resolve_model(tiny_gguf, progress=False).sha256 == first


def test_corrupted_gguf_file(cache, tmp_path, tiny_gguf):
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(os.urandom(5000))
    with pytest.raises(ModelError) as exc:
        get_backend(str(junk), device="cpu", progress=False)
    assert _one_line(exc).startswith(f"not a valid GGUF file: {junk}")
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(tiny_gguf.read_bytes()[: tiny_gguf.stat().st_size // 2])
    with pytest.raises(ModelError, match="truncated"):
        resolve_model(cut, progress=False)
    damaged = tmp_path / "damaged.gguf"
    damaged.write_bytes(b"GGUF" + b"\xff" * 64)
    with pytest.raises(ModelError, match="not a valid GGUF file"):
        resolve_model(damaged, progress=False)


# -- device and dtype ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("hw, device, dtype, expected", [
    (Hardware(cpu_bf16=True), None, None, ("cpu", "bfloat16")),
    (Hardware(cpu_bf16=False), "auto", "auto", ("cpu", "float32")),
    (Hardware(cuda_devices=1, cuda_bf16=True), None, None, ("cuda:0", "bfloat16")),
    (Hardware(cuda_devices=1, cuda_bf16=False), None, None, ("cuda:0", "float16")),
    (Hardware(cuda_devices=2, cuda_bf16=True), "cuda:1", "fp32", ("cuda:1", "float32")),
    (Hardware(cuda_devices=1), "cpu", None, ("cpu", "float32")),
    (Hardware(cuda_devices=1), "GPU", "half", ("cuda:0", "float16")),
    (Hardware(mps=True), None, None, ("mps", "float16")),
    (Hardware(cpu_bf16=True), "cpu", "torch.float32", ("cpu", "float32")),
])
def test_choose_device_dtype(hw, device, dtype, expected):
    assert choose_device_dtype(device, dtype, hw) == expected


@pytest.mark.parametrize("hw, device, dtype, message", [
    (Hardware(), "cuda", None, "CUDA is not available"),
    (Hardware(cuda_devices=2), "cuda:2", None, "only 2 GPU"),
    (Hardware(), "tpu", None, "unknown device"),
    (Hardware(), "cuda:x", None, "bad device"),
    (Hardware(), "mps", None, "MPS is not available"),
    (Hardware(), None, "int3", "unknown dtype"),
    (Hardware(cuda_devices=1, cuda_bf16=False), "cuda", "bf16", "use float16"),
])
def test_bad_device_or_dtype(hw, device, dtype, message):
    with pytest.raises(ConfigError, match=message):
        choose_device_dtype(device, dtype, hw)


def test_get_backend_validates_settings_before_loading(cache):
    with pytest.raises(ConfigError):
        get_backend("nobody/none", device="tpu", progress=False)
    with pytest.raises(ConfigError):
        get_backend("nobody/none", dtype="float8", progress=False)
    assert normalize_dtype("BF16") == "bfloat16"


# -- generation plumbing on random weights -------------------------------------------------------------------------
def test_sql_block_end():
    text = "Sure:\n```sql\nSELECT 1;\n```\ntrailing"
    assert text[: sql_block_end(text)].endswith("SELECT 1;\n```")
    assert sql_block_end("```sql\nSELECT 1;") is None
    assert sql_block_end("```") is None
    assert sql_block_end("SELECT 1;") is None


def test_sql_block_stopping_criterion():
    import torch

    from jupyter_nl2sql.models.testing import byte_level_tokenizer
    from jupyter_nl2sql.models.transformers_backend import SqlBlockStop

    tok = byte_level_tokenizer()
    prompt = tok("```sql\nSELECT 0;\n```\nquestion")["input_ids"]  # a fence in the prompt must not count

    def stops(reply: str) -> bool:
        ids = torch.tensor([prompt + tok(reply)["input_ids"]])
        return bool(SqlBlockStop(tok, len(prompt))(ids, None)[0])

    assert stops("```sql\nSELECT 1;\n```")
    assert not stops("```sql\nSELECT 1;\n")


def test_tiny_model_load_and_generate(cache, tiny_dir):
    backend, seconds = get_backend(str(tiny_dir), device="cpu", dtype="float32", progress=False)
    assert isinstance(backend, Backend) and isinstance(seconds, float)
    again, no_load = get_backend(str(tiny_dir), device="cpu", dtype="float32", progress=False)
    assert again is backend and no_load is None
    assert (backend.device, backend.dtype, backend.model_id) == ("cpu", "float32", str(tiny_dir))
    assert {"model_id", "source", "path", "sha256", "revision", "dtype", "device"} <= set(backend.provenance)
    prompt = backend.render_prompt(MESSAGES)
    assert "How many users?" in prompt and prompt.rstrip().endswith("assistant")
    gen = backend.generate(MESSAGES, max_new_tokens=6)
    assert isinstance(gen, Generation) and isinstance(gen.text, str)
    assert gen.tokens_in == len(backend.tokenizer(prompt, add_special_tokens=False)["input_ids"])
    assert 1 <= gen.tokens_out <= 6 and gen.seconds > 0


def test_greedy_generation_is_deterministic(cache, tiny_dir):
    backend, _ = get_backend(str(tiny_dir), device="cpu", dtype="float32", progress=False)
    first, second = backend.generate(MESSAGES, 5), backend.generate(MESSAGES, 5)
    assert (first.text, first.tokens_out) == (second.text, second.tokens_out)


def test_reply_score_is_the_mean_token_log_probability(cache, tiny_dir):
    """The score recorded during generation equals the log-probabilities of the reply's tokens recomputed from one
    forward pass over prompt + reply; a batch scores each row like a batch of one."""
    import torch

    backend, _ = get_backend(str(tiny_dir), device="cpu", dtype="float32", progress=False)
    gen = backend.generate(MESSAGES, 6)
    tok = backend.tokenizer
    prompt = tok(backend.render_prompt(MESSAGES), add_special_tokens=False)["input_ids"]
    with torch.inference_mode():
        # greedy's reply is the argmax chain: rebuild it token by token from the same forward passes
        ids = list(prompt)
        expected = []
        for _ in range(gen.tokens_out):
            logsm = torch.log_softmax(backend.model(torch.tensor([ids])).logits[0, -1].float(), dim=-1)
            expected.append(float(logsm.max()))
            ids.append(int(logsm.argmax()))
    assert gen.logprob is not None and gen.logprob < 0
    assert gen.logprob == pytest.approx(sum(expected) / len(expected), abs=1e-4)
    other = [MESSAGES[0], {"role": "user", "content": "Count the orders, please, grouped by customer"}]
    batch = backend.generate_batch([MESSAGES, other], 6)
    assert batch[0].logprob == pytest.approx(gen.logprob, abs=1e-3)
    assert batch[1].logprob == pytest.approx(backend.generate(other, 6).logprob, abs=1e-3)


def test_gguf_load_writes_converted_cache_and_reuses_it(cache, tiny_gguf):
    from jupyter_nl2sql.models.transformers_backend import CONVERTED_MARKER, converted_dir

    first, seconds = get_backend(str(tiny_gguf), device="cpu", dtype="float32", progress=False)
    sha = hashlib.sha256(tiny_gguf.read_bytes()).hexdigest()
    assert first.provenance["loaded_from"] == "gguf" and first.provenance["sha256"] == sha
    conv = converted_dir(sha, "float32")
    assert (conv / CONVERTED_MARKER).is_file() and (conv / "model.safetensors").is_file()
    assert conv.name == f"{sha[:16]}-float32"
    text = first.generate(MESSAGES, 6).text
    clear_backends()
    second, _ = get_backend(str(tiny_gguf), device="cpu", dtype="float32", progress=False)
    assert second is not first
    assert second.provenance["loaded_from"] == "converted-cache" and second.provenance["sha256"] == sha
    assert second.provenance["source"] == "gguf-file" and second.generate(MESSAGES, 6).text == text


def test_damaged_converted_cache_is_rebuilt(cache, tiny_gguf, caplog):
    from jupyter_nl2sql.models.transformers_backend import converted_dir

    get_backend(str(tiny_gguf), device="cpu", dtype="float32", progress=False)
    conv = converted_dir(hashlib.sha256(tiny_gguf.read_bytes()).hexdigest(), "float32")
    (conv / "model.safetensors").write_bytes(b"garbage")
    clear_backends()
    backend, _ = get_backend(str(tiny_gguf), device="cpu", dtype="float32", progress=False)
    assert backend.provenance["loaded_from"] == "gguf" and "unusable" in caplog.text
    assert (conv / "model.safetensors").stat().st_size > 100


def test_concurrent_get_backend_loads_once(cache, tiny_dir, monkeypatch):
    from jupyter_nl2sql.models.transformers_backend import TransformersBackend

    loads = []
    real_load = TransformersBackend.load.__func__

    def counting_load(cls, *args, **kwargs):
        loads.append(args[0].path)
        return real_load(cls, *args, **kwargs)

    monkeypatch.setattr(TransformersBackend, "load", classmethod(counting_load))
    results: list = []
    threads = [threading.Thread(target=lambda: results.append(
        get_backend(str(tiny_dir), device="cpu", dtype="float32", progress=False))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(loads) == 1 and len({id(b) for b, _ in results}) == 1
    assert sorted(s is None for _, s in results) == [False, True, True, True]


# -- the real model ------------------------------------------------------------------------------------------------
@pytest.mark.model
def test_default_model_writes_sql():
    known = KNOWN_MODELS[DEFAULT_MODEL]
    if resolve.offline_part_paths(known)[1] and resolve.hf_cached_snapshot(DEFAULT_MODEL) is None:
        pytest.skip(f"default model not installed: {known.pip_hint}")
    backend, _ = get_backend()
    gen = backend.generate([
        {"role": "system", "content": "You write SQLite queries. Answer with one SQL query in a ```sql block."},
        {"role": "user", "content": "Table users(id INTEGER, name TEXT). How many users are there?"},
    ], max_new_tokens=64)
    assert "SELECT" in gen.text.upper() and gen.tokens_out > 0
    assert backend.provenance["sha256"] in (known.sha256, None)


# -- deferred loading ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("how", [{"backend": "llama.cpp"}, {"backend": "transformers", "device": "cpu",
                                                             "dtype": "float32"}])
def test_a_deferred_backend_is_known_by_the_identity_the_loaded_one_reports(cache, tiny_gguf, how):
    """The reply cache keys on the model's identity: an unloaded model must have the loaded one's (tiny random
    weights: plumbing only)."""
    from jupyter_nl2sql.caches.generation import model_identity
    from jupyter_nl2sql.models import DeferredBackend, defer_backend, llama_cpp_available, loaded_backends

    if how["backend"] == "llama.cpp" and not llama_cpp_available():
        pytest.skip("the llama.cpp engine (xllamacpp) is not installed")
    deferred = defer_backend(str(tiny_gguf), progress=False, **how)
    assert isinstance(deferred, DeferredBackend) and loaded_backends() == []  # identified, nothing started
    loaded, seconds = deferred.load(progress=False)
    assert seconds is not None and loaded_backends() == [loaded]
    assert model_identity(deferred.provenance) == model_identity(loaded.provenance)
    assert (deferred.model_id, deferred.device, deferred.dtype) == (loaded.model_id, loaded.device, loaded.dtype)
    assert defer_backend(str(tiny_gguf), progress=False, **how) is None  # loaded: get_backend returns it at once


def test_model_servers_are_not_deferred():
    from jupyter_nl2sql.models import defer_backend

    assert defer_backend("openai+http://127.0.0.1:9/v1#m") is None
