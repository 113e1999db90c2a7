"""100 concurrent users through the model service on Ray Serve, against a pooled PostgreSQL — a real model.

The service (``python -m jupyter_nl2sql serve``: Ray Serve, dynamic batching, the transformers backend) runs the
real Qwen2.5-Coder-0.5B-Instruct (``$NL2SQL_LOAD_MODEL`` to change it) on 127.0.0.1.  Simulated users are threads
sharing one :class:`~jupyter_nl2sql.pipeline.assistant.Assistant` (one pool of PostgreSQL connections, as a team service
would) and asking the demo questions below.  Phases, all in the same run:

1. **alone**: each question asked on its own, one after the other, generation cache off: the reference answers and
   the one-at-a-time cost;
2. **100 users, cache on** (the shared Redis generation cache): each user asks a question, then a question that
   others have asked (new and repeated questions mixed);
3. **100 users, cache off**: every request reaches the model service, which batches them (and computes identical
   prompts in a batch once);
4. **distinct questions at once, cache off**: pure batching, no repeated prompt.

Asserted: zero errors; every answer the same query (up to spacing and case, :func:`_query`) with the same DataFrame
as the question's answer when asked alone (bfloat16 on a CPU: a batch's shape changes the last bits of the logits,
and where the model's top two tokens are a formatting choice a few bits apart, `` ,`` or ``,``, ``count`` or
``COUNT``, a batch may write the other one; the query stays the same); the
connection pool never beyond its size plus overflow; the service really batched.  Measured and written to
``tests/load/artifacts/load-report.json`` (and printed with ``-s``): throughput, P50/P95/P99 per phase, cache hit
rates, the batching ratios against one at a time.  Bounded: 8 questions, 100 users, a timeout on every wait.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

pytestmark = [pytest.mark.load, pytest.mark.model, pytest.mark.postgres]

MODEL = os.environ.get("NL2SQL_LOAD_MODEL", "qwen2.5-coder-0.5b")
USERS = 100
MAX_BATCH = 100
QUESTIONS = [
    "How many customers are there?",
    "How many orders have the status 'cancelled'?",
    "List the names of all products in the 'Audio' category.",
    "How many customers are there in each country?",
    "What is the name and unit price of the most expensive product?",
    "How many employees are there?",
    "List the names of all departments.",
    "What is the total quantity of all order items?",
]
START_TIMEOUT_S = 900  # Ray, the Serve proxy, the replica, and in a fresh cache the model's conversion
ASK_TIMEOUT_S = 900
REPORT = Path(__file__).with_name("artifacts") / "load-report.json"


# -- the service ----------------------------------------------------------------------------------------------------
def _free_port() -> int:
    from loopback_servers import free_port

    return free_port()


@pytest.fixture(scope="module")
def service() -> Iterator[dict[str, Any]]:
    """``python -m jupyter_nl2sql serve`` on a free loopback port; yields its model setting and base URL."""
    pytest.importorskip("ray.serve", reason='Ray Serve is not installed (pip install "ray[serve]")')
    port = _free_port()
    log = REPORT.with_name("service.log")
    log.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "jupyter_nl2sql", "serve", "--model", MODEL, "--port", str(port),
           "--max-batch-size", str(MAX_BATCH), "--batch-wait", "1.0"]
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}
    with open(log, "w", encoding="utf-8") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    t0 = time.perf_counter()
    setting = None
    try:
        while time.perf_counter() - t0 < START_TIMEOUT_S:
            text = log.read_text(encoding="utf-8", errors="replace")
            ready = [line for line in text.splitlines() if "set the model to " in line]
            if ready:
                setting = ready[-1].split("set the model to ", 1)[1].strip()
                break
            if proc.poll() is not None:
                pytest.fail(f"the model service exited ({proc.returncode}); its log:\n{text[-3000:]}")
            time.sleep(1)
        else:
            pytest.fail(f"the model service was not ready within {START_TIMEOUT_S} s; see {log}")
        base = setting.split("#", 1)[0].replace("openai+", "", 1).removesuffix("/v1")
        yield {"setting": setting.replace("/v1#", "/v1?timeout=900#", 1), "base": base,
               "start_s": time.perf_counter() - t0}
    finally:
        proc.send_signal(signal.SIGINT)  # serve.shutdown() and ray.shutdown() in the service
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        ray = shutil.which("ray")
        if ray:
            subprocess.run([ray, "stop", "--force"], capture_output=True, timeout=60)


def _get(url: str) -> dict:
    import urllib.request

    with urllib.request.urlopen(url, timeout=30) as resp:
        return json.load(resp)


# -- users ----------------------------------------------------------------------------------------------------------
class PoolWatch:
    """Samples the PostgreSQL pool every few milliseconds while active: the most connections ever checked out."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.max_checked_out = 0
        self.max_overflow = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            status = self.conn.pool_status()
            self.max_checked_out = max(self.max_checked_out, status.get("checkedout", 0))
            self.max_overflow = max(self.max_overflow, status.get("overflow", 0))
            time.sleep(0.002)

    def __enter__(self) -> PoolWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join(5)

    @property
    def limit(self) -> int:
        pool = self.conn.engine.pool
        return pool.size() + pool._max_overflow


def _assistant(setting: str, cache: Any) -> Any:
    from jupyter_nl2sql.pipeline.assistant import Assistant
    from jupyter_nl2sql.connections import ConnectionManager

    return Assistant(setting, connections=ConnectionManager(), generation_cache=cache)


def _summary(latencies: list[float], wall: float, n: int) -> dict[str, float]:
    import numpy as np

    p50, p95, p99 = np.percentile(latencies, [50, 95, 99])
    return {"answers": n, "wall_s": round(wall, 3), "throughput_qps": round(n / wall, 4), "p50_s": round(p50, 3),
            "p95_s": round(p95, 3), "p99_s": round(p99, 3), "max_s": round(max(latencies), 3)}


def _crowd(assistant: Any, url: str, plans: list[list[str]]) -> tuple[list[tuple[str, Any, float]], float]:
    """Every plan (a user's questions, asked in turn) in its own thread, all released at once."""
    start = threading.Barrier(len(plans))

    def user(questions: list[str]) -> list[tuple[str, Any, float]]:
        start.wait(60)
        done = []
        for q in questions:
            t = time.perf_counter()
            answer = assistant.ask(q, url)
            done.append((q, answer, time.perf_counter() - t))
        return done

    t0 = time.perf_counter()
    with ThreadPoolExecutor(len(plans), thread_name_prefix="user") as pool:
        futures = [pool.submit(user, plan) for plan in plans]
        results = [item for f in futures for item in f.result(timeout=ASK_TIMEOUT_S)]
    return results, time.perf_counter() - t0


def _frame_key(answer: Any) -> Any:
    df = answer.dataframe
    return None if df is None else (tuple(df.columns), tuple(map(tuple, df.astype(str).itertuples(index=False))))


def _query(answer: Any) -> str | None:
    """The answer's SQL as sqlglot writes it back: spacing and keyword case no longer count."""
    import sqlglot

    return None if answer.sql is None else sqlglot.parse_one(answer.sql, read="postgres").sql("postgres")


def _check_same(results: list[tuple[str, Any, float]], reference: dict[str, Any]) -> None:
    errors = [(q, a.error) for q, a, _ in results if a.error]
    assert not errors, f"{len(errors)} errors, e.g. {errors[:3]}"
    different = [(q, a) for q, a, _ in results
                 if _query(a) != _query(reference[q]) or _frame_key(a) != _frame_key(reference[q])]
    shown = [f"{q!r}: alone {reference[q].sql!r}, here {a.sql!r}"
             f"{'' if a.messages == reference[q].messages else ' (from another prompt)'}"
             for q, a in dict(different).items()]
    assert not different, f"{len(different)} answers differ from the same question asked alone: {shown[:3]}"


# -- the phases -----------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def report(service: dict) -> Iterator[dict]:
    data: dict[str, Any] = {
        "model": MODEL, "users": USERS, "questions": len(QUESTIONS), "max_batch_size": MAX_BATCH,
        "service_start_s": round(service["start_s"], 1), "machine": platform.machine(),
        "cpus": os.cpu_count(), "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": "python -m pytest tests/load -s", "phases": {}}
    yield data
    data["service_stats"] = _get(service["base"] + "/stats")
    REPORT.write_text(json.dumps(data, indent=1), encoding="utf-8")
    print("\n" + json.dumps(data, indent=1))


@pytest.fixture(scope="module")
def alone(service: dict, demo_pg_url: str, report: dict) -> dict[str, Any]:
    """Each question asked alone, one after the other, generation cache off: the reference answers."""
    assistant = _assistant(service["setting"], False)
    reference, seconds = {}, []
    for q in QUESTIONS:
        t = time.perf_counter()
        answer = assistant.ask(q, demo_pg_url)
        seconds.append(time.perf_counter() - t)
        assert answer.error is None, f"{q}: {answer.error}"
        assert answer.dataframe is not None and len(answer.dataframe) > 0, q
        reference[q] = answer
    report["phases"]["alone"] = {**_summary(seconds, sum(seconds), len(QUESTIONS)), "one_at_a_time": True}
    return {"answers": reference, "seconds": seconds}


def _phase(name: str, report: dict, assistant: Any, url: str, plans: list[list[str]], alone: dict,
           extra: Callable[[], dict] | None = None) -> dict:
    conn = assistant.connections.resolve(url)
    with PoolWatch(conn) as watch:
        results, wall = _crowd(assistant, url, plans)
    _check_same(results, alone["answers"])
    assert watch.max_checked_out <= watch.limit, (watch.max_checked_out, watch.limit)
    assert conn.pool_status()["checkedout"] == 0
    hits = sum(bool(a.stats.cache_hit) for _, a, _ in results)
    phase = {**_summary([s for _, _, s in results], wall, len(results)), "users": len(plans),
             "cache_hits": hits, "cache_hit_rate": round(hits / len(results), 3),
             "pool_max_checked_out": watch.max_checked_out, "pool_limit": watch.limit,
             **(extra() if extra else {})}
    report["phases"][name] = phase
    return phase


def test_hundred_users_with_the_shared_cache(service, demo_pg_url, redis_url, alone, report):
    """Each user asks one question, then one others asked: zero errors, the answers asked alone, pool in bounds."""
    namespace = f"load-{uuid.uuid4().hex[:8]}"  # a fresh namespace: every question is new at first
    assistant = _assistant(service["setting"], f"{redis_url}#share=1&namespace={namespace}")  # share: no sha256
    n = len(QUESTIONS)
    plans = [[QUESTIONS[i % n], QUESTIONS[(3 * i + 1) % n]] for i in range(USERS)]
    before = _get(service["base"] + "/stats")["requests"]
    phase = _phase("users_cache_on", report, assistant, demo_pg_url, plans, alone,
                   lambda: {"redis_lookups": {"hits": assistant.cache.hits, "misses": assistant.cache.misses,
                                             "hit_rate": round(assistant.cache.hit_rate or 0, 3)}})
    phase["model_requests"] = _get(service["base"] + "/stats")["requests"] - before
    # concurrent identical questions wait for one generation, later ones hit Redis: one model request per question
    assert phase["model_requests"] == n
    assert phase["cache_hits"] == 2 * USERS - n


def test_hundred_users_without_cache_are_batched(service, demo_pg_url, alone, report):
    """Cache off: all 100 requests reach the service, which batches them; then the distinct questions at once."""
    stats0 = _get(service["base"] + "/stats")
    assistant = _assistant(service["setting"], False)
    n = len(QUESTIONS)
    phase = _phase("users_cache_off", report, assistant, demo_pg_url, [[QUESTIONS[i % n]] for i in range(USERS)],
                   alone)
    stats1 = _get(service["base"] + "/stats")
    assert stats1["requests"] - stats0["requests"] == USERS
    batches = stats1["batches"] - stats0["batches"]
    assert batches < USERS / 4, f"{batches} batches for {USERS} concurrent requests: the service did not batch"
    one_at_a_time_qps = report["phases"]["alone"]["throughput_qps"]
    phase["model_batches"] = batches
    phase["throughput_vs_one_at_a_time"] = round(phase["throughput_qps"] / one_at_a_time_qps, 2)

    distinct = _phase("distinct_at_once", report, assistant, demo_pg_url, [[q] for q in QUESTIONS], alone)
    distinct["speedup_vs_one_at_a_time"] = round(sum(alone["seconds"]) / distinct["wall_s"], 2)
    assert phase["throughput_vs_one_at_a_time"] > 1
