"""The generation cache: modes, the on-disk store that survives a restart, what enters the key, cancellation.

Stand-in backends only (no model): what they reply is prepared, the point is what gets remembered where.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

import pytest

from jupyter_nl2sql.pipeline.assistant import Assistant
from jupyter_nl2sql.caches import make_generation_cache
from jupyter_nl2sql.caches.generation import (GenerationCache, cache_key, default_generation_dir, model_identity,
                                              persistent_identity)
from jupyter_nl2sql.connections import ConnectionManager
from jupyter_nl2sql.errors import Cancelled, ConfigError
from jupyter_nl2sql.models.testing import ScriptedBackend

QUESTION = "How many customers are there?"


@dataclass(kw_only=True)
class HashedBackend(ScriptedBackend):
    """A stand-in that reports a content identity (like a GGUF with its sha256), so it may be cached on disk."""

    sha256: str = "ab" * 32
    backend: str = "llama.cpp"

    @property
    def provenance(self) -> dict:
        return {**super().provenance, "sha256": self.sha256, "backend": self.backend, "path": "/x.gguf"}


class CancellableBackend(HashedBackend):
    """Raises Cancelled when the event it is given is set (what the real backends do between tokens)."""

    def generate(self, messages, max_new_tokens=256, cancel=None):
        if cancel is not None and cancel.is_set():
            raise Cancelled("cancelled")
        return super().generate(messages, max_new_tokens)


def _assistant(backend, monkeypatch, **kwargs) -> Assistant:
    monkeypatch.setattr(Assistant, "backend", lambda self: (backend, None))
    return Assistant(connections=ConnectionManager(), repair_rounds=0, **kwargs)


# -- modes ----------------------------------------------------------------------------------------------------
def test_modes_from_setting_and_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("NL2SQL_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("NL2SQL_GENERATION_CACHE", raising=False)
    default = make_generation_cache(True)
    assert default.directory == tmp_path / "generations" == default_generation_dir()
    assert make_generation_cache(False) is None and make_generation_cache("off") is None
    assert make_generation_cache("memory").directory is None
    assert make_generation_cache(True, tmp_path / "own").directory == tmp_path / "own"
    monkeypatch.setenv("NL2SQL_GENERATION_CACHE", "memory")
    assert make_generation_cache(True).directory is None
    assert make_generation_cache("disk").directory == tmp_path / "generations"  # explicit setting wins
    monkeypatch.setenv("NL2SQL_GENERATION_CACHE", "off")
    assert make_generation_cache(True) is None
    monkeypatch.setenv("NL2SQL_GENERATION_CACHE", "sometimes")
    with pytest.raises(ConfigError, match="off, memory or disk"):
        make_generation_cache(True)


def test_identity_ignores_paths_and_threads():
    a = model_identity({"model_id": "m", "sha256": "s", "backend": "llama.cpp", "dtype": "q4_k_m", "device": "cpu",
                        "path": "/a.gguf", "n_threads": 2, "llama_cpp": "0.3"})
    b = model_identity({"model_id": "m", "sha256": "s", "backend": "llama.cpp", "dtype": "q4_k_m", "device": "cpu",
                        "path": "/b.gguf", "n_threads": 8})
    assert a == b and persistent_identity(a)
    assert not persistent_identity(model_identity({"model_id": "./my-folder", "backend": "transformers"}))
    other = dict(a, backend="transformers", dtype="bfloat16")
    assert cache_key(a, [], {}) != cache_key(other, [], {})
    assert model_identity({"device": "cuda:1"})["device"] == "cuda"


# -- the disk store -------------------------------------------------------------------------------------------
def test_reply_survives_a_restart(monkeypatch, tmp_path, demo_sqlite_url):
    monkeypatch.setenv("NL2SQL_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("NL2SQL_GENERATION_CACHE", raising=False)
    first_backend = HashedBackend(replies=["```sql\nSELECT count(*) FROM customers\n```"])
    first = _assistant(first_backend, monkeypatch).ask(QUESTION, demo_sqlite_url)
    assert not first.stats.cache_hit and len(first_backend.calls) == 1
    assert list((tmp_path / "generations").glob("*/*.json"))
    # "restart": a new Assistant with an empty memory; a backend that would answer differently is never asked
    later_backend = HashedBackend(replies=["```sql\nSELECT 1\n```"])
    later = _assistant(later_backend, monkeypatch).ask(QUESTION, demo_sqlite_url)
    assert later.stats.cache_hit and later_backend.calls == [] and later.sql == first.sql
    # another backend or dtype of the same file is another identity
    other = HashedBackend(replies=["```sql\nSELECT 2\n```"], backend="transformers")
    assert not _assistant(other, monkeypatch).ask(QUESTION, demo_sqlite_url).stats.cache_hit


def test_models_without_content_identity_stay_in_memory(monkeypatch, tmp_path, demo_sqlite_url):
    backend = ScriptedBackend(replies=["```sql\nSELECT count(*) FROM customers\n```"])  # no sha256 / revision
    a = _assistant(backend, monkeypatch, cache_dir=str(tmp_path / "gen"))
    a.ask(QUESTION, demo_sqlite_url)
    assert a.ask(QUESTION, demo_sqlite_url).stats.cache_hit and len(backend.calls) == 1
    assert not (tmp_path / "gen").exists()


def test_unwritable_store_only_warns(tmp_path, caplog):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    c = GenerationCache(directory=blocker / "gen")
    with caplog.at_level(logging.WARNING, logger="jupyter_nl2sql"):
        c.put("k" * 64, {"text": "x"})
    assert "cannot write" in caplog.text and c.directory is None
    assert c.get("k" * 64) == {"text": "x"}


def test_prune_keeps_the_newest(tmp_path):
    import os

    c = GenerationCache(directory=tmp_path, max_disk_items=3)
    for i in range(5):
        key = f"{i:02d}" + "0" * 62
        c.put(key, {"i": i})
        path = tmp_path / key[:2] / f"{key}.json"
        os.utime(path, (1000 + i, 1000 + i))
    assert c.prune() == 2
    assert sorted(p.stem[:2] for p in tmp_path.glob("*/*.json")) == ["02", "03", "04"]


# -- cancellation ---------------------------------------------------------------------------------------------
def test_cancel_reaches_the_backend_and_is_never_cached(monkeypatch, tmp_path, demo_sqlite_url):
    backend = CancellableBackend(replies=["```sql\nSELECT count(*) FROM customers\n```"])
    a = _assistant(backend, monkeypatch, cache_dir=str(tmp_path / "gen"))
    stop = threading.Event()
    stop.set()
    with pytest.raises(Cancelled):
        a.ask(QUESTION, demo_sqlite_url, cancel=stop)
    assert a.cache.hits == 0 and not (tmp_path / "gen").exists()
    answer = a.ask(QUESTION, demo_sqlite_url, cancel=threading.Event())
    assert not answer.stats.cache_hit and answer.error is None


def test_backends_without_cancel_parameter_still_work(monkeypatch, demo_sqlite_url):
    class OldBackend(ScriptedBackend):
        def generate(self, messages, max_new_tokens=256):  # no cancel, no **kwargs
            return super().generate(messages, max_new_tokens)

    backend = OldBackend(replies=["```sql\nSELECT count(*) FROM customers\n```"])
    answer = _assistant(backend, monkeypatch, generation_cache=False).ask(QUESTION, demo_sqlite_url,
                                                                          cancel=threading.Event())
    assert answer.error is None and len(backend.calls) == 1


def test_transformers_cancel_criterion():
    torch = pytest.importorskip("torch")
    from jupyter_nl2sql.models.transformers_backend import CancelStop

    event = threading.Event()
    stop = CancelStop(event)
    ids = torch.zeros((2, 3), dtype=torch.long)
    assert stop(ids, None).tolist() == [False, False]
    event.set()
    assert stop(ids, None).tolist() == [True, True]


def test_transformers_generate_raises_cancelled(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    from jupyter_nl2sql.models.registry import clear_backends, get_backend
    from jupyter_nl2sql.models.testing import make_tiny_random_model

    monkeypatch.setenv("NL2SQL_CACHE_DIR", str(tmp_path / "cache"))
    path = make_tiny_random_model(tmp_path / "tiny", tokenizer="bytes")
    clear_backends()
    try:
        backend, _ = get_backend(str(path), device="cpu", dtype="float32", progress=False)
        msgs = [{"role": "user", "content": "SELECT"}]
        stop = threading.Event()
        stop.set()
        with pytest.raises(Cancelled):
            backend.generate(msgs, max_new_tokens=4, cancel=stop)

        calls = []

        class Later:
            def is_set(self) -> bool:
                calls.append(1)
                return len(calls) > 2

        with pytest.raises(Cancelled):
            backend.generate(msgs, max_new_tokens=50, cancel=Later())
        assert 2 < len(calls) < 50
        assert backend.generate(msgs, max_new_tokens=4).tokens_out > 0
    finally:
        clear_backends()



# -- concurrent identical prompts: one generation --------------------------------------------------------------
def test_concurrent_identical_questions_generate_once(monkeypatch, demo_sqlite_url):
    """Eight callers ask the same new question at once: one generation, seven waiters served from the cache."""
    from concurrent.futures import ThreadPoolExecutor

    from jupyter_nl2sql.models.testing import GatedBackend

    backend = GatedBackend()
    assistant = _assistant(backend, monkeypatch, generation_cache="memory")
    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(assistant.ask, QUESTION, demo_sqlite_url) for _ in range(8)]
        assert backend.entered.wait(10)
        backend.gate.set()
        answers = [f.result(timeout=30) for f in futures]
    assert len(backend.calls) == 1
    assert [a.error for a in answers] == [None] * 8
    assert sorted(a.stats.cache_hit for a in answers) == [False] + [True] * 7
    assert len({tuple(a.dataframe.itertuples()) for a in answers}) == 1
    assert len(assistant._in_flight) == 0


def test_a_failed_generation_lets_the_waiters_generate(monkeypatch, demo_sqlite_url):
    from jupyter_nl2sql.caches.generation import InFlight

    flights = InFlight()
    assert flights.claim("k") is True
    waiter: list[bool] = []
    t = threading.Thread(target=lambda: waiter.append(flights.claim("k")))
    t.start()
    t.join(0.2)
    assert t.is_alive()  # waits while the first caller generates
    flights.release("k")  # ... which failed: nothing in the cache
    t.join(5)
    assert waiter == [False] and len(flights) == 0
    assert flights.claim("k") is True  # the waiter, finding no reply, may claim it itself
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):
        flights.claim("k", cancel)
    flights.release("k")
