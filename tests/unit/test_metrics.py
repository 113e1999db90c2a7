"""Prometheus metrics, the exporter and the slow-query log, on the demo database with a ScriptedBackend."""

from __future__ import annotations

import doctest
import json
import logging
import re
import urllib.error
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("prometheus_client")
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from jupyter_nl2sql.serving import metrics as metrics_module  # noqa: E402
from jupyter_nl2sql.pipeline.assistant import Assistant  # noqa: E402
from jupyter_nl2sql.errors import ConnectionFailed, QuestionError  # noqa: E402
from jupyter_nl2sql.serving.metrics import Metrics, SlowQueryLog, instrument, serve_metrics  # noqa: E402

GOOD = "```sql\nSELECT count(*) AS n FROM customers\n```"
ALERTS = Path(__file__).resolve().parents[2] / "docs" / "alerts.yml"


def value(m: Metrics, name: str, **labels) -> float | None:
    """A sample's value from the registry (None when absent)."""
    return m.registry.get_sample_value(name, labels or None)


@pytest.fixture()
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture()
def assistant() -> Assistant:
    return Assistant(generation_cache="memory", few_shot=0)


def test_doctests():
    result = doctest.testmod(metrics_module)
    assert result.attempted > 0 and result.failed == 0


def test_an_answer_is_recorded_per_stage_end_to_end_and_in_tokens(scripted, demo_sqlite_url, metrics, assistant):
    scripted(GOOD)
    handle = instrument(assistant, metrics)
    ans = assistant.ask("How many customers?", demo_sqlite_url)
    assert ans.ok
    for stage in ("schema", "prompt", "generate", "check", "execute", "fetch"):
        assert value(metrics, "nl2sql_stage_duration_seconds_count", stage=stage) == 1, stage
    assert value(metrics, "nl2sql_stage_duration_seconds_sum", stage="execute") == pytest.approx(
        ans.stats.seconds("execute"))
    assert value(metrics, "nl2sql_request_duration_seconds_count", call="ask", outcome="ok") == 1
    assert value(metrics, "nl2sql_request_duration_seconds_sum", call="ask", outcome="ok") == pytest.approx(
        ans.stats.total_seconds)
    assert value(metrics, "nl2sql_requests_total", call="ask", outcome="ok") == 1
    assert value(metrics, "nl2sql_tokens_total", direction="in") == ans.stats.tokens_in > 0
    assert value(metrics, "nl2sql_tokens_total", direction="out") == ans.stats.tokens_out > 0
    assert value(metrics, "nl2sql_model_info", model_id="scripted-test-backend", backend="test", device="cpu") == 1
    handle.close()


def test_cache_hits_and_misses_come_from_the_assistants_cache(scripted, demo_sqlite_url, metrics, assistant):
    scripted(GOOD)
    instrument(assistant, metrics)
    assistant.ask("How many customers?", demo_sqlite_url)
    assistant.ask("How many customers?", demo_sqlite_url)
    assert (assistant.cache.hits, assistant.cache.misses) == (1, 1)
    assert value(metrics, "nl2sql_generation_cache_hits_total", store="memory") == 1
    assert value(metrics, "nl2sql_generation_cache_misses_total", store="memory") == 1
    assert value(metrics, "nl2sql_generation_cache_hit_ratio", store="memory") == 0.5


def test_pool_gauges_and_process_figures(scripted, demo_sqlite_url, metrics, assistant):
    scripted(GOOD)
    instrument(assistant, metrics)
    assistant.ask("How many customers?", demo_sqlite_url)
    conn = assistant.connections.resolve(demo_sqlite_url)
    status = conn.pool_status()
    labels = {"connection": conn.display_url, "dialect": "sqlite"}
    assert value(metrics, "nl2sql_db_pool_size", **labels) == status["size"]
    assert value(metrics, "nl2sql_db_pool_checked_out", **labels) == 0
    assert value(metrics, "nl2sql_db_pool_overflow", **labels) == status["overflow"]
    assert value(metrics, "process_resident_memory_bytes") > 10_000_000
    assert value(metrics, "process_cpu_seconds_total") > 0
    assert value(metrics, "nl2sql_memory_limit_bytes") >= value(metrics, "process_resident_memory_bytes")


def test_raised_errors_are_counted_by_kind(scripted, metrics, assistant, tmp_path):
    scripted(GOOD)
    instrument(assistant, metrics)
    with pytest.raises(QuestionError):
        assistant.ask("   ", "demo")
    with pytest.raises(ConnectionFailed):
        assistant.ask("How many?", f"sqlite:///{tmp_path / 'missing.db'}")
    assert value(metrics, "nl2sql_errors_total", kind="QuestionError") == 1
    assert value(metrics, "nl2sql_errors_total", kind="ConnectionFailed") == 1
    assert value(metrics, "nl2sql_requests_total", call="ask", outcome="raised") == 2


def test_an_answer_with_an_error_is_counted(scripted, demo_sqlite_url, metrics, assistant):
    scripted("SELECT * FROM spaceships")
    instrument(assistant, metrics)
    ans = assistant.ask("List the orders", demo_sqlite_url)  # the model names a table there is none of
    assert not ans.ok
    assert ans.error_kind == "SQLCheckError"  # the pipeline records what failed (no table spaceships)
    assert value(metrics, "nl2sql_errors_total", kind="SQLCheckError") == 1
    assert value(metrics, "nl2sql_requests_total", call="ask", outcome="error") == 1


def test_run_sql_is_recorded_as_its_own_call(demo_sqlite_url, metrics, assistant):
    instrument(assistant, metrics)
    assistant.run_sql("SELECT 1 AS one", demo_sqlite_url)
    assert value(metrics, "nl2sql_requests_total", call="run_sql", outcome="ok") == 1


def test_close_stops_recording_and_unwraps(scripted, demo_sqlite_url, metrics, assistant):
    scripted(GOOD)
    handle = instrument(assistant, metrics)
    handle.close()
    assistant.ask("How many customers?", demo_sqlite_url)
    with pytest.raises(QuestionError):
        assistant.ask("", demo_sqlite_url)
    assert value(metrics, "nl2sql_requests_total", call="ask", outcome="ok") is None
    assert value(metrics, "nl2sql_errors_total", kind="QuestionError") is None
    assert "ask" not in vars(assistant) and assistant._listeners == []


def test_a_broken_metric_never_breaks_an_answer(scripted, demo_sqlite_url, metrics, assistant, monkeypatch, caplog):
    scripted(GOOD)
    instrument(assistant, metrics)
    monkeypatch.setattr(metrics, "observe", lambda answer: 1 / 0)
    assert assistant.ask("How many customers?", demo_sqlite_url).ok
    assert "could not record" in caplog.text


# -- exporter -----------------------------------------------------------------------------------------------------
def _get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.headers.get("Content-Type"), resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Content-Type"), exc.read().decode()


def test_exporter_serves_metrics_and_health(scripted, demo_sqlite_url, metrics, assistant):
    scripted(GOOD)
    instrument(assistant, metrics)
    assistant.ask("How many customers?", demo_sqlite_url)
    server = serve_metrics(0, metrics=metrics)
    try:
        assert server.url.startswith("http://127.0.0.1:")
        status, content_type, text = _get(server.url + "/metrics")
        assert status == 200 and content_type.startswith("text/plain")
        names = {f.name for f in text_string_to_metric_families(text)}
        assert {"nl2sql_stage_duration_seconds", "nl2sql_request_duration_seconds", "nl2sql_errors",
                "nl2sql_tokens", "nl2sql_generation_cache_hits", "nl2sql_db_pool_checked_out",
                "process_resident_memory_bytes", "process_cpu_seconds"} <= names
        status, _, text = _get(server.url + "/healthz")
        assert status == 200 and json.loads(text)["status"] == "ok"
        assert _get(server.url + "/nothing")[0] == 404
    finally:
        server.close()


@pytest.mark.parametrize("check, expected", [(lambda: True, 200), (lambda: None, 200), (lambda: False, 503),
                                             (lambda: "model server down", 503), (lambda: 1 / 0, 503)])
def test_health_check_decides_healthz(metrics, check, expected):
    server = serve_metrics(0, metrics=metrics, health=check)
    try:
        status, _, text = _get(server.url + "/healthz")
        assert status == expected
        if expected == 503:
            assert json.loads(text)["status"] == "unhealthy"
    finally:
        server.close()


# -- slow-query log -----------------------------------------------------------------------------------------------
def test_slow_queries_are_logged_with_the_plan(scripted, demo_sqlite_url, metrics, assistant, caplog):
    scripted("```sql\nSELECT name FROM customers WHERE name LIKE 'A%'\n```")
    handle = instrument(assistant, metrics, slow_seconds=0.0)
    caplog.set_level(logging.WARNING, logger="jupyter_nl2sql.slow")
    assistant.ask("Customers whose name starts with A?", demo_sqlite_url)
    handle.slow_log.flush()
    records = [r for r in caplog.records if r.name == "jupyter_nl2sql.slow"]
    assert len(records) == 1
    entry = records[0].slow_query
    assert entry["sql"].startswith("SELECT name FROM customers") and entry["question"]
    assert "SCAN" in entry["plan"] and "customers" in entry["plan"]  # SQLite's EXPLAIN QUERY PLAN
    assert "plan:\n" in records[0].getMessage() and entry["connection"].startswith("sqlite:///")
    assert value(metrics, "nl2sql_slow_queries_total") == 1
    handle.close()


def test_fast_queries_are_not_logged(scripted, demo_sqlite_url, metrics, assistant, caplog):
    scripted(GOOD)
    handle = instrument(assistant, metrics, slow_seconds=60.0)
    assistant.ask("How many customers?", demo_sqlite_url)
    handle.slow_log.flush()
    assert not [r for r in caplog.records if r.name == "jupyter_nl2sql.slow"]
    assert value(metrics, "nl2sql_slow_queries_total") == 0


def test_slow_threshold_from_the_environment(monkeypatch):
    monkeypatch.setenv("NL2SQL_SLOW_SECONDS", "2.5")
    log = SlowQueryLog()
    assert log.threshold == 2.5 and log.measure == "database"
    log.close()
    with pytest.raises(ValueError):
        SlowQueryLog(1.0, measure="wall")


# -- alert rules --------------------------------------------------------------------------------------------------
def test_alert_rules_use_metrics_that_exist(scripted, demo_sqlite_url, metrics, assistant):
    yaml = pytest.importorskip("yaml")
    rules = yaml.safe_load(ALERTS.read_text())
    alerts = {r["alert"]: r for g in rules["groups"] for r in g["rules"]}
    assert {"Nl2SqlSlowAnswersP95", "Nl2SqlHighErrorRate", "Nl2SqlHighMemory", "Nl2SqlConnectionFailures"} <= set(
        alerts)
    scripted(GOOD)
    instrument(assistant, metrics)
    assistant.ask("How many customers?", demo_sqlite_url)
    with pytest.raises(QuestionError):
        assistant.ask("", demo_sqlite_url)
    exported = set()
    for family in text_string_to_metric_families(metrics.exposition()[0].decode()):
        exported.update(s.name for s in family.samples)
    for name, rule in alerts.items():
        assert {"expr", "labels", "annotations"} <= set(rule), name
        used = set(re.findall(r"\b((?:nl2sql|process)_[a-z_]+)", rule["expr"]))
        assert used <= exported, (name, used - exported)
