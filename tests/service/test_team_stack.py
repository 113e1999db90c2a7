"""The team-serving pieces together, on loopback: two "kernels" (Assistants) ask through one model server (HTTP
backend), share replies through one Redis, report to one Prometheus exporter, and are awaited concurrently.

The model server is the stdlib stand-in of loopback_servers.py (prepared replies: plumbing, no claims about what a
real model writes); Redis, the exporter and the database (the bundled demo, SQLite) are the real ones.
"""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
import uuid

import pytest

pytest.importorskip("prometheus_client")
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from jupyter_nl2sql.pipeline.aio import ask_async  # noqa: E402
from jupyter_nl2sql.pipeline.assistant import Assistant  # noqa: E402
from jupyter_nl2sql.errors import ModelError  # noqa: E402
from jupyter_nl2sql.serving.metrics import Metrics, instrument, serve_metrics  # noqa: E402
from jupyter_nl2sql.models import registry  # noqa: E402
from jupyter_nl2sql.models.http_backend import OpenAICompatibleBackend  # noqa: E402
from jupyter_nl2sql.caches.redis_store import RedisGenerationCache  # noqa: E402

QUESTIONS = ["How many customers?", "Count the customers", "Number of customers?", "How many clients are there?",
             "Total customers"]


def http_backends(monkeypatch) -> dict:
    """Make ``Assistant.backend`` build the HTTP backend from ``model`` as the registry patch does (one per setting)."""
    loaded: dict[str, OpenAICompatibleBackend] = {}

    def backend(self):
        if self.model not in loaded:
            loaded[self.model] = OpenAICompatibleBackend.from_setting(self.model)
            return loaded[self.model], 0.0
        return loaded[self.model], None

    monkeypatch.setattr(Assistant, "backend", backend)
    return loaded


def scrape(url: str) -> dict[tuple[str, tuple], float]:
    with urllib.request.urlopen(url + "/metrics", timeout=5) as resp:
        text = resp.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def total(samples: dict, name: str, **labels) -> float:
    return sum(v for (n, lab), v in samples.items()
               if n == name and all(dict(lab).get(k) == w for k, w in labels.items()))


def healthz(url: str) -> int:
    try:
        with urllib.request.urlopen(url + "/healthz", timeout=5) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_two_kernels_share_the_model_server_the_cache_and_the_metrics(model_server, redis_url, monkeypatch,
                                                                      demo_sqlite_url):
    model_server.default = {"reply": "Sure.\n```sql\nSELECT count(*) AS n FROM customers\n```\nIt counts rows."}
    loaded = http_backends(monkeypatch)
    setting = model_server.setting(model=None, retries=0)  # the model name comes from GET /v1/models
    namespace = f"test:{uuid.uuid4().hex[:8]}"
    kernels = [Assistant(model=setting, few_shot=0) for _ in range(2)]
    metrics = Metrics()
    for k in kernels:
        k.cache = RedisGenerationCache(redis_url, namespace=namespace, share_unversioned=True)
        instrument(k, metrics)

    def health():
        backend = loaded.get(setting)
        if backend is None:
            return True
        try:
            backend.list_models()
        except ModelError as exc:
            return f"model server: {exc}"
        return kernels[0].cache.ping() or "redis does not answer"

    exporter = serve_metrics(0, metrics=metrics, health=health)
    try:
        # kernel 0 asks five different questions: five model calls
        for q in QUESTIONS:
            answer = kernels[0].ask(q, demo_sqlite_url)
            assert answer.ok and answer.dataframe["n"].tolist() == [60]
            assert answer.provenance["backend"] == "openai-http" and answer.provenance["base_url"] == model_server.url
        assert len(model_server.chat_requests()) == 5

        # then 20 concurrent questions over both kernels: all from the shared cache, no model call
        async def burst():
            return await asyncio.gather(*(ask_async(kernels[i % 2], QUESTIONS[i % 5], demo_sqlite_url)
                                          for i in range(20)))

        answers = asyncio.run(burst())
        assert all(a.ok and a.stats.cache_hit for a in answers)
        assert len(model_server.chat_requests()) == 5

        samples = scrape(exporter.url)
        assert total(samples, "nl2sql_requests_total", call="ask", outcome="ok") == 25
        assert total(samples, "nl2sql_generation_cache_hits_total", store="redis") == 20
        assert total(samples, "nl2sql_generation_cache_misses_total", store="redis") == 5
        assert total(samples, "nl2sql_stage_duration_seconds_count", stage="generate") == 25
        assert total(samples, "nl2sql_tokens_total", direction="in") > 0
        assert total(samples, "nl2sql_model_info", backend="openai-http", device="remote") == 1
        assert total(samples, "nl2sql_db_pool_size") > 0
        assert healthz(exporter.url) == 200

        # the model server goes away: a new question fails in one line, is counted, and health says so
        model_server.stop()
        with pytest.raises(ModelError) as info:
            kernels[1].ask("Which city has the most customers?", demo_sqlite_url)
        assert "cannot reach the model server" in str(info.value) and "\n" not in str(info.value)
        assert total(scrape(exporter.url), "nl2sql_errors_total", kind="ModelError") == 1
        assert healthz(exporter.url) == 503
        # questions already answered still are, from the cache
        assert kernels[1].ask(QUESTIONS[0], demo_sqlite_url).stats.cache_hit
    finally:
        exporter.close()
        kernels[0].cache.purge()


def test_the_healthz_report_is_json(model_server):
    exporter = serve_metrics(0, metrics=Metrics())
    try:
        with urllib.request.urlopen(exporter.url + "/healthz", timeout=5) as resp:
            report = json.loads(resp.read())
        assert report["status"] == "ok" and report["uptime_seconds"] >= 0 and report["version"]
    finally:
        exporter.close()


def test_the_registry_selects_the_http_backend(model_server):
    backend, load_seconds = registry.get_backend(model_server.setting())
    assert isinstance(backend, OpenAICompatibleBackend) and load_seconds is not None
    assert registry.get_backend(model_server.setting()) == (backend, None)
