"""Prometheus metrics and a slow-query log for an :class:`~jupyter_nl2sql.pipeline.assistant.Assistant` that serves a team.

>>> from jupyter_nl2sql.pipeline.assistant import Assistant
>>> from jupyter_nl2sql.serving.metrics import instrument, serve_metrics
>>> assistant = Assistant()                               # doctest: +SKIP
>>> handle = instrument(assistant, slow_seconds=2.0)      # doctest: +SKIP
>>> server = serve_metrics(9464)  # http://127.0.0.1:9464/metrics   # doctest: +SKIP

What is measured (every name starts with ``nl2sql_``; see ``docs/operations.md`` for how to read them):

- ``stage_duration_seconds{stage}``: each pipeline stage of every answer (``Answer.stats.stages``: schema, values,
  examples, prompt, load, generate, check, execute, fetch...);
- ``request_duration_seconds{call,outcome}``: end to end (``Answer.stats.total_seconds``), ``call`` = ask|run_sql,
  ``outcome`` = ok|error (an answer whose SQL failed after repair);
- ``requests_total{call,outcome}`` (outcome ok|error|raised) and ``errors_total{kind}`` (the
  :class:`~jupyter_nl2sql.errors.Nl2SqlError` subclass: ConnectionFailed, ModelError, Cancelled, QuestionError...;
  for answers that came back with an error: ``Answer.error_kind``, the class of the error the pipeline recorded);
- ``tokens_total{direction}`` (in|out) and ``generation_tokens_per_second``;
- ``generation_cache_hits_total`` / ``generation_cache_misses_total`` / ``generation_cache_hit_ratio`` (read from
  ``assistant.cache`` at scrape time);
- ``db_pool_size`` / ``db_pool_checked_out`` / ``db_pool_checked_in`` / ``db_pool_overflow`` per connection
  (:meth:`~jupyter_nl2sql.connections.Connection.pool_status`, password-free URL as label);
- ``slow_queries_total``, ``model_info{model_id,backend,device}``, ``memory_limit_bytes`` (the cgroup limit, else
  the machine's memory) next to the standard ``process_resident_memory_bytes`` and ``process_cpu_seconds_total``.

Errors that ``ask`` raises reach the metrics through ``assistant.on_error`` where the Assistant has it; otherwise
:func:`instrument` wraps the instance's ``ask`` and ``run_sql`` (and unwraps them on ``close``).

Slow-query log: answers slower than a threshold (database time by default) are logged on the
``jupyter_nl2sql.slow`` logger, with the database's plan (:func:`jupyter_nl2sql.pipeline.execution.explain`) fetched in a
background thread so the user's call is not delayed.

Needs ``prometheus_client`` (``pip install 'jupyter-nl2sql[serve]'``).
"""

from __future__ import annotations

import functools
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

try:
    from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
    from prometheus_client.exposition import choose_encoder
except ImportError as _exc:  # pragma: no cover - exercised only without the extra
    raise ImportError("jupyter_nl2sql.serving.metrics needs prometheus_client: pip install 'jupyter-nl2sql[serve]'"
                      ) from _exc

from ..version import __version__
from ..errors import Nl2SqlError, first_line

logger = logging.getLogger("jupyter_nl2sql")
slow_logger = logging.getLogger("jupyter_nl2sql.slow")

SLOW_SECONDS_ENV = "NL2SQL_SLOW_SECONDS"
DEFAULT_SLOW_SECONDS = 5.0
#: Seconds buckets from a cache hit (milliseconds) to a cold model load on a CPU (minutes).
SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0)
TOKENS_PER_SECOND_BUCKETS = (1, 2, 5, 10, 20, 35, 50, 75, 100, 200, 500, 1000)


class Metrics:
    """The metric families, in their own :class:`~prometheus_client.CollectorRegistry` (``registry``).

    One ``Metrics`` can serve several assistants (:func:`instrument` each); cache and pool figures are summed over
    them at scrape time.  ``process``: also export the standard ``process_*`` metrics (RSS, CPU) of this process.
    """

    def __init__(self, registry: CollectorRegistry | None = None, *, process: bool = True) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.stage_seconds = Histogram("nl2sql_stage_duration_seconds", "Time spent in each pipeline stage",
                                       ["stage"], buckets=SECONDS_BUCKETS, registry=r)
        self.request_seconds = Histogram("nl2sql_request_duration_seconds",
                                         "End-to-end time of answers (ask: question to DataFrame)",
                                         ["call", "outcome"], buckets=SECONDS_BUCKETS, registry=r)
        self.requests = Counter("nl2sql_requests", "Calls by outcome (ok, error: SQL failed after repair, raised)",
                                ["call", "outcome"], registry=r)
        self.errors = Counter("nl2sql_errors", "Errors by kind (Nl2SqlError subclass)", ["kind"], registry=r)
        self.tokens = Counter("nl2sql_tokens", "Model tokens (in: prompt, out: generated)", ["direction"],
                              registry=r)
        self.tokens_per_second = Histogram("nl2sql_generation_tokens_per_second",
                                           "Generated tokens per second of generation (cache misses)",
                                           buckets=TOKENS_PER_SECOND_BUCKETS, registry=r)
        self.slow_queries = Counter("nl2sql_slow_queries", "Answers over the slow-query threshold", registry=r)
        self._lock = threading.Lock()
        self._assistants: list[Any] = []
        self._models: dict[tuple[str, str, str], float] = {}
        self.started = time.time()
        r.register(_LiveCollector(self))
        if process:
            ProcessCollector(registry=r)

    # -- recording -------------------------------------------------------------------------------------------
    def observe(self, answer: Any) -> None:
        """Record one :class:`~jupyter_nl2sql.pipeline.assistant.Answer`."""
        stats = answer.stats
        call = "ask" if answer.question is not None else "run_sql"
        outcome = "ok" if answer.error is None else "error"
        for name, stage in stats.stages.items():
            self.stage_seconds.labels(stage=name).observe(max(stage.seconds, 0.0))
        self.request_seconds.labels(call=call, outcome=outcome).observe(max(stats.total_seconds, 0.0))
        self.requests.labels(call=call, outcome=outcome).inc()
        if answer.error is not None:
            self.errors.labels(kind=answer.error_kind or "AnswerError").inc()
        if stats.tokens_in:
            self.tokens.labels(direction="in").inc(stats.tokens_in)
        if stats.tokens_out:
            self.tokens.labels(direction="out").inc(stats.tokens_out)
        tps = stats.tokens_per_second
        if tps and not stats.cache_hit:
            self.tokens_per_second.observe(tps)
        prov = answer.provenance or {}
        if prov.get("model_id"):
            key = (str(prov.get("model_id")), str(prov.get("backend") or prov.get("source") or ""),
                   str(prov.get("device") or ""))
            with self._lock:
                self._models[key] = time.time()

    def observe_error(self, exc: BaseException, call: str = "ask") -> None:
        """Record an exception that ``ask`` / ``run_sql`` raised."""
        self.requests.labels(call=call, outcome="raised").inc()
        self.errors.labels(kind=error_kind(exc)).inc()

    # -- assistants ------------------------------------------------------------------------------------------
    def _add(self, assistant: Any) -> None:
        with self._lock:
            if assistant not in self._assistants:
                self._assistants.append(assistant)

    def _remove(self, assistant: Any) -> None:
        with self._lock:
            if assistant in self._assistants:
                self._assistants.remove(assistant)

    def assistants(self) -> list[Any]:
        with self._lock:
            return list(self._assistants)

    def models(self) -> list[tuple[str, str, str]]:
        with self._lock:
            return list(self._models)

    def exposition(self, accept: str = "") -> tuple[bytes, str]:
        """The metrics as the Prometheus text format (or OpenMetrics when ``accept`` asks for it)."""
        encoder, content_type = choose_encoder(accept)
        return encoder(self.registry), content_type


def error_kind(exc: BaseException) -> str:
    """The label for an error: the most specific :class:`Nl2SqlError` class (``Other`` for anything else).

    >>> from jupyter_nl2sql.errors import WriteRefused
    >>> error_kind(WriteRefused("no")), error_kind(KeyError("x"))
    ('WriteRefused', 'Other')
    """
    return type(exc).__name__ if isinstance(exc, Nl2SqlError) else "Other"


class _LiveCollector:
    """Figures read at scrape time: generation caches, connection pools, models seen, the memory limit."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def describe(self) -> list:
        return []  # no fixed names to check (they are unique to this collector)

    def collect(self) -> Iterable[Any]:
        assistants = self.metrics.assistants()
        hits = CounterMetricFamily("nl2sql_generation_cache_hits", "Generation cache hits", labels=["store"])
        misses = CounterMetricFamily("nl2sql_generation_cache_misses", "Generation cache misses", labels=["store"])
        ratio = GaugeMetricFamily("nl2sql_generation_cache_hit_ratio", "Hits over lookups since the cache started",
                                  labels=["store"])
        per_store: dict[str, list[int]] = {}
        seen_caches: set[int] = set()
        for a in assistants:
            cache = getattr(a, "cache", None)
            if cache is None or id(cache) in seen_caches:
                continue
            seen_caches.add(id(cache))
            counts = per_store.setdefault(_store_name(cache), [0, 0])
            counts[0] += int(getattr(cache, "hits", 0) or 0)
            counts[1] += int(getattr(cache, "misses", 0) or 0)
        for store, (h, m) in sorted(per_store.items()):
            hits.add_metric([store], h)
            misses.add_metric([store], m)
            if h + m:
                ratio.add_metric([store], h / (h + m))
        yield hits
        yield misses
        yield ratio

        gauges = {key: GaugeMetricFamily(f"nl2sql_db_pool_{name}", doc, labels=["connection", "dialect"])
                  for key, name, doc in (("size", "size", "Connections the pool keeps"),
                                         ("checkedout", "checked_out", "Connections in use"),
                                         ("checkedin", "checked_in", "Idle connections in the pool"),
                                         ("overflow", "overflow", ("Connections beyond the pool size "
                                                                   "(negative: room left before the size)")))}
        seen_conns: set[int] = set()
        for a in assistants:
            manager = getattr(a, "connections", None)
            for conn in (manager.connections() if manager is not None else []):
                if id(conn) in seen_conns:
                    continue
                seen_conns.add(id(conn))
                try:
                    status = conn.pool_status()
                except Exception:  # noqa: BLE001 - a disposed engine must not break the scrape
                    continue
                for key, family in gauges.items():
                    family.add_metric([conn.display_url, conn.dialect], status.get(key, 0))
        yield from gauges.values()

        info = GaugeMetricFamily("nl2sql_model_info", "Models that answered (1 per model)",
                                 labels=["model_id", "backend", "device"])
        for model_id, backend, device in self.metrics.models():
            info.add_metric([model_id, backend, device], 1)
        yield info
        build = GaugeMetricFamily("nl2sql_build_info", "jupyter-nl2sql version", labels=["version"])
        build.add_metric([__version__], 1)
        yield build
        limit = memory_limit_bytes()
        if limit:
            yield GaugeMetricFamily("nl2sql_memory_limit_bytes", "Memory this process may use (cgroup limit, else "
                                    "the machine's memory)", value=limit)
        yield GaugeMetricFamily("nl2sql_start_time_seconds", "When the metrics started (Unix time)",
                                value=self.metrics.started)


def _store_name(cache: Any) -> str:
    name = type(cache).__name__
    if name == "GenerationCache":
        return "disk" if getattr(cache, "directory", None) else "memory"
    if name == "RedisGenerationCache":
        return "redis"
    return name


def memory_limit_bytes() -> int | None:
    """The memory this process may use: the cgroup limit (v2, then v1) when lower than the machine's memory."""
    try:
        import psutil

        total = int(psutil.virtual_memory().total)
    except Exception:  # noqa: BLE001
        total = 0
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(path, encoding="ascii") as fh:
                text = fh.read().strip()
        except OSError:
            continue
        if text.isdigit() and (not total or int(text) < total):
            return int(text)
    return total or None


# -- slow-query log ------------------------------------------------------------------------------------------------
class SlowQueryLog:
    """Log answers slower than ``threshold`` seconds on ``jupyter_nl2sql.slow``, with the database's plan.

    ``measure``: ``"database"`` (execute + fetch stages, the default: what a plan can explain) or ``"total"``
    (end to end).  ``explain``: fetch the plan with :func:`jupyter_nl2sql.pipeline.execution.explain` (``analyze``: EXPLAIN
    ANALYZE on PostgreSQL, which runs the query again).  Plans are fetched on a background thread; ``flush()`` waits
    for them.  Each record carries the entry as ``record.slow_query`` (a dict) for structured log handlers.
    """

    def __init__(self, threshold: float | None = None, *, measure: str = "database", explain: bool = True,
                 analyze: bool = False, explain_timeout: float = 10.0, metrics: Metrics | None = None) -> None:
        if threshold is None:
            threshold = float(os.environ.get(SLOW_SECONDS_ENV, "") or DEFAULT_SLOW_SECONDS)
        if measure not in ("database", "total"):
            raise ValueError(f"measure must be 'database' or 'total', not {measure!r}")
        self.threshold = float(threshold)
        self.measure = measure
        self.explain = explain
        self.analyze = analyze
        self.explain_timeout = explain_timeout
        self.metrics = metrics
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nl2sql-slowlog")
        self._pending: list[Future] = []
        self._lock = threading.Lock()

    def seconds(self, answer: Any) -> float:
        """The time this log compares with the threshold."""
        stats = answer.stats
        if self.measure == "total":
            return stats.total_seconds
        return stats.seconds("execute") + stats.seconds("fetch")

    def consider(self, answer: Any, connections: Any = None) -> bool:
        """Log ``answer`` if it is slow (plan fetched in the background); return whether it was."""
        seconds = self.seconds(answer)
        if seconds < self.threshold or (self.measure == "database" and not answer.executed):
            return False
        if self.metrics is not None:
            self.metrics.slow_queries.inc()
        conn = _find_connection(connections, (answer.provenance or {}).get("connection"))
        future = self._executor.submit(self._log, answer, seconds, conn)
        with self._lock:
            self._pending = [f for f in self._pending if not f.done()] + [future]
        return True

    def _log(self, answer: Any, seconds: float, conn: Any) -> None:
        plan = None
        if self.explain and conn is not None and answer.sql and answer.executed:
            from ..pipeline.execution import explain

            try:
                plan = explain(conn, answer.sql, analyze=self.analyze, timeout=self.explain_timeout)
            except Exception as exc:  # noqa: BLE001 - a plan is a bonus, never an error
                plan = f"(no plan: {first_line(exc)})"
        stats = answer.stats
        entry = {
            "seconds": round(seconds, 4), "measure": self.measure, "threshold": self.threshold,
            "total_seconds": round(stats.total_seconds, 4),
            "stages": {k: round(v.seconds, 4) for k, v in stats.stages.items()},
            "connection": (answer.provenance or {}).get("connection"), "question": answer.question,
            "sql": answer.sql, "rows": answer.rowcount, "truncated": answer.truncated, "error": answer.error,
            "plan": plan,
        }
        lines = [f"slow {self.measure} time {seconds:.2f} s (threshold {self.threshold:g} s, total "
                 f"{stats.total_seconds:.2f} s) on {entry['connection']}"]
        if answer.question:
            lines.append(f"question: {answer.question}")
        lines.append(f"sql: {answer.sql}")
        lines.append("stages: " + json.dumps(entry["stages"]))
        if plan is not None:
            lines.append("plan:\n" + plan)
        slow_logger.warning("\n".join(lines), extra={"slow_query": entry})

    def flush(self, timeout: float = 30.0) -> None:
        """Wait until the entries queued so far are logged."""
        with self._lock:
            pending = list(self._pending)
        for future in pending:
            future.result(timeout)

    def close(self) -> None:
        self._executor.shutdown(wait=True)


def _find_connection(manager: Any, display_url: str | None) -> Any:
    if manager is None or not display_url:
        return None
    for conn in manager.connections():
        if conn.display_url == display_url:
            return conn
    return None


# -- wiring --------------------------------------------------------------------------------------------------------
_default: Metrics | None = None
_default_lock = threading.Lock()


def default_metrics() -> Metrics:
    """The process-wide :class:`Metrics` that :func:`instrument` and :func:`serve_metrics` use by default."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Metrics()
        return _default


class Instrumentation:
    """What :func:`instrument` set up; ``close()`` undoes it."""

    def __init__(self, assistant: Any, metrics: Metrics, slow_log: SlowQueryLog | None) -> None:
        self.assistant = assistant
        self.metrics = metrics
        self.slow_log = slow_log
        self._undo: list[Callable[[], Any]] = []

    def _on_answer(self, answer: Any) -> None:
        try:
            self.metrics.observe(answer)
            if self.slow_log is not None:
                self.slow_log.consider(answer, getattr(self.assistant, "connections", None))
        except Exception:  # noqa: BLE001 - metrics must never break an answer
            logger.exception("metrics: could not record an answer")

    def _on_error(self, exc: BaseException, call: str = "ask") -> None:
        try:
            self.metrics.observe_error(exc, call)
        except Exception:  # noqa: BLE001
            logger.exception("metrics: could not record an error")

    def close(self) -> None:
        """Unsubscribe, unwrap, and stop the slow-query log's thread."""
        while self._undo:
            self._undo.pop()()
        self.metrics._remove(self.assistant)
        if self.slow_log is not None:
            self.slow_log.close()


def instrument(assistant: Any, metrics: Metrics | None = None, *, slow_seconds: float | None = None,
               slow_measure: str = "database", explain: bool = True, analyze: bool = False) -> Instrumentation:
    """Record every answer of ``assistant`` in ``metrics`` (default: :func:`default_metrics`).

    ``slow_seconds``: threshold of the slow-query log (None: ``$NL2SQL_SLOW_SECONDS``, else no slow-query log;
    0 logs everything).  Returns an :class:`Instrumentation` whose ``close()`` stops recording.
    """
    metrics = metrics if metrics is not None else default_metrics()
    if slow_seconds is None and os.environ.get(SLOW_SECONDS_ENV, "").strip():
        slow_seconds = float(os.environ[SLOW_SECONDS_ENV])
    slow_log = (SlowQueryLog(slow_seconds, measure=slow_measure, explain=explain, analyze=analyze, metrics=metrics)
                if slow_seconds is not None else None)
    handle = Instrumentation(assistant, metrics, slow_log)
    metrics._add(assistant)
    handle._undo.append(assistant.on_answer(handle._on_answer))
    on_error = getattr(assistant, "on_error", None)
    if callable(on_error):
        handle._undo.append(on_error(handle._on_error))
    else:
        for name in ("ask", "run_sql"):
            handle._undo.append(_wrap_errors(assistant, name, handle._on_error))
    return handle


def _wrap_errors(assistant: Any, name: str, record: Callable[[BaseException, str], None]) -> Callable[[], None]:
    """Shadow ``assistant.<name>`` with a wrapper that records what it raises; return the undo function."""
    original = getattr(assistant, name)

    @functools.wraps(original)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return original(*args, **kwargs)
        except BaseException as exc:
            record(exc, name)
            raise

    setattr(assistant, name, wrapper)

    def undo() -> None:
        if assistant.__dict__.get(name) is wrapper:
            delattr(assistant, name)

    return undo


# -- exporter ------------------------------------------------------------------------------------------------------
class MetricsServer(ThreadingHTTPServer):
    """``/metrics`` (Prometheus) and ``/healthz`` on a loopback port, served from a daemon thread."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], metrics: Metrics, health: Callable[[], Any] | None) -> None:
        super().__init__(address, _MetricsHandler)
        self.metrics = metrics
        self.health = health
        self.thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True,
                                       name="nl2sql-metrics")

    @property
    def port(self) -> int:
        return self.server_address[1]

    @property
    def url(self) -> str:
        host = self.server_address[0]
        return f"http://{'[' + host + ']' if ':' in host else host}:{self.port}"

    def close(self) -> None:
        """Stop serving and free the port."""
        self.shutdown()
        self.server_close()
        self.thread.join(5)


class _MetricsHandler(BaseHTTPRequestHandler):
    server: MetricsServer

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("metrics exporter: " + format, *args)

    def _reply(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path in ("/metrics", "/metrics/"):
            body, content_type = self.server.metrics.exposition(self.headers.get("Accept", ""))
            self._reply(200, body, content_type)
        elif path in ("/healthz", "/health"):
            status, report = 200, {"status": "ok"}
            if self.server.health is not None:
                try:
                    result = self.server.health()
                except Exception as exc:  # noqa: BLE001 - a failed check is the answer
                    result = f"{type(exc).__name__}: {first_line(exc)}"
                if result is not True and result is not None:
                    status, report = 503, {"status": "unhealthy", "reason": str(result) if result else "check failed"}
            report["uptime_seconds"] = round(time.time() - self.server.metrics.started, 1)
            report["version"] = __version__
            self._reply(status, (json.dumps(report) + "\n").encode(), "application/json")
        else:
            self._reply(404, b"not found: try /metrics or /healthz\n", "text/plain; charset=utf-8")

    do_HEAD = do_GET


def serve_metrics(port: int, host: str = "127.0.0.1", *, metrics: Metrics | None = None,
                  health: Callable[[], Any] | None = None) -> MetricsServer:
    """Serve ``/metrics`` and ``/healthz`` on ``host:port`` (port 0: any free port; see ``.port``).

    ``health``: a check for ``/healthz``; returning True or None means healthy, anything else (False, a reason) or
    raising means 503.  The default host is loopback: put a reverse proxy or the Prometheus agent beside it rather
    than exposing it.
    """
    server = MetricsServer((host, port), metrics if metrics is not None else default_metrics(), health)
    server.thread.start()
    return server
