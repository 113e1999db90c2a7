"""The one pipeline: question → schema → prompt → model → checked SQL → DataFrame, with stats.

Every front end (the magics, the widget, the command line, the benchmarks) calls :meth:`Assistant.ask` or
:meth:`Assistant.run_sql`, so a fix or a speed-up lands everywhere at once.
"""

from __future__ import annotations

import datetime as _dt
import html
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import pandas as pd

from . import __version__
from .cache import GenerationCache, cache_key
from .connections import Connection, ConnectionManager, manager as default_manager
from .errors import ConfigError, ExecutionError, QuestionError, SQLCheckError, WriteRefused
from .execution import execute
from .prompting import build_messages, extract_sql, repair_messages
from .schema import Schema, SchemaCache, link_tables, render_schema
from .sqlcheck import check_sql
from .stats import Stats

#: Longest question accepted (characters).
MAX_QUESTION_CHARS = 4000

ProgressCallback = Callable[[str, Mapping[str, Any]], None]


@dataclass
class Answer:
    """The outcome of one question (or one SQL statement run through :meth:`Assistant.run_sql`)."""

    question: str | None
    sql: str | None
    dataframe: pd.DataFrame | None = None
    stats: Stats = field(default_factory=Stats)
    warnings: list[str] = field(default_factory=list)
    provenance: dict[str, Any] = field(default_factory=dict)
    candidates: list[str] = field(default_factory=list)
    error: str | None = None
    truncated: bool = False
    rowcount: int | None = None
    executed: bool = False
    messages: list[dict] | None = None
    prompt: str | None = None

    @property
    def ok(self) -> bool:
        """True when the SQL passed its checks (and ran, unless generate-only)."""
        return self.error is None

    def _repr_html_(self) -> str:
        parts = []
        if self.sql:
            parts.append(f"<pre class='nl2sql-sql'><code>{html.escape(self.sql)}</code></pre>")
        if self.error:
            parts.append(f"<div class='nl2sql-error' style='color:#b00'>{html.escape(self.error)}</div>")
        if self.dataframe is not None:
            parts.append(self.dataframe.to_html(max_rows=50, index=False))
        for w in self.warnings:
            parts.append(f"<div class='nl2sql-warning' style='color:#a60'>⚠ {html.escape(w)}</div>")
        parts.append(self.stats._repr_html_())
        return "\n".join(parts)

    def __str__(self) -> str:
        parts = []
        if self.sql:
            parts.append(self.sql)
        if self.error:
            parts.append(f"error: {self.error}")
        if self.dataframe is not None:
            parts.append(self.dataframe.to_string(max_rows=50, index=False))
        parts.extend(f"warning: {w}" for w in self.warnings)
        parts.append(str(self.stats))
        return "\n\n".join(parts)

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(str(self))


class Assistant:
    """Answers questions about databases with a local model.

    Parameters mirror the ``%config Nl2SqlMagics`` traits: ``model`` (Hub id, local directory or ``.gguf``;
    None for the default), ``device`` / ``dtype`` (None: automatic), ``row_cap`` (most rows fetched),
    ``timeout`` (statement timeout in seconds), ``repair_rounds`` (model retries after a failed check or
    execution), ``sample_rows`` (rows per table shown to the model), ``max_new_tokens``, ``max_schema_chars``
    (above it, only the tables the question needs are shown), ``generation_cache`` (remember replies).
    """

    def __init__(self, model: str | None = None, *, device: str | None = None, dtype: str | None = None,
                 connections: ConnectionManager | None = None, row_cap: int = 1000, timeout: float | None = 30.0,
                 repair_rounds: int = 1, sample_rows: int = 3, max_new_tokens: int = 256,
                 max_schema_chars: int = 12_000, generation_cache: bool = True,
                 cache_dir: str | None = None) -> None:
        self.model = model
        self.device = device
        self.dtype = dtype
        self.connections = connections or default_manager
        self.schemas = SchemaCache()
        self.row_cap = _positive_int("row_cap", row_cap)
        self.timeout = timeout
        self.repair_rounds = _non_negative_int("repair_rounds", repair_rounds)
        self.sample_rows = _non_negative_int("sample_rows", sample_rows)
        self.max_new_tokens = _positive_int("max_new_tokens", max_new_tokens)
        self.max_schema_chars = _positive_int("max_schema_chars", max_schema_chars)
        self.cache = GenerationCache(directory=cache_dir) if generation_cache else None
        self.history: deque[Answer] = deque(maxlen=200)
        self._listeners: list[Callable[[Answer], None]] = []
        self._lock = threading.Lock()

    # -- model ------------------------------------------------------------------------------------------------
    def backend(self) -> tuple[Any, float | None]:
        """The loaded model backend (loading it on first use) and the seconds this call spent loading it."""
        from .models import get_backend

        return get_backend(self.model, device=self.device, dtype=self.dtype)

    # -- public API -------------------------------------------------------------------------------------------
    def ask(self, question: str, connection: Any = None, *, namespace: Mapping[str, Any] | None = None,
            generate_only: bool = False, allow_writes: bool = False, row_cap: int | None = None,
            refresh_schema: bool = False, cancel: threading.Event | None = None,
            on_progress: ProgressCallback | None = None) -> Answer:
        """Answer ``question`` on ``connection`` (URL, alias, Engine, or None for the current connection).

        Raises :class:`~jupyter_nl2sql.errors.Nl2SqlError` for what the user must fix (empty question, bad
        connection, missing model).  Problems with the SQL the model wrote come back as ``Answer.error``.
        """
        question = _clean_question(question)
        progress = on_progress or (lambda stage, info: None)
        stats = Stats().start()
        conn = self.connections.resolve(connection, namespace)
        progress("schema", {})
        with stats.stage("schema"):
            schema = self.schemas.get(conn, sample_rows=self.sample_rows, refresh=refresh_schema)
        if not schema.tables:
            raise QuestionError(f"{conn.display_url} has no tables to ask about")
        with stats.stage("prompt"):
            tables = link_tables(schema, question, max_chars=self.max_schema_chars, sample_rows=self.sample_rows)
            schema_text = render_schema(schema, tables, sample_rows=self.sample_rows)
            messages = build_messages(question, schema_text, conn.dialect)
        answer = Answer(question=question, sql=None, stats=stats, messages=messages)
        if len(tables) < len(schema.tables):
            answer.warnings.append(f"schema too large for the prompt: showed the model {len(tables)} of "
                                   f"{len(schema.tables)} tables ({', '.join(tables)})")
        progress("load", {})
        t0 = time.perf_counter()
        backend, load_seconds = self.backend()
        if load_seconds is not None:
            stats.model_load_seconds = load_seconds
            stats.record("load", time.perf_counter() - t0)
        stats.device = f"{backend.device} {backend.dtype}"
        answer.prompt = backend.render_prompt(messages)
        answer.provenance = self._provenance(backend, schema, conn)
        self._solve(answer, backend, conn, schema, messages, generate_only=generate_only,
                    allow_writes=allow_writes, row_cap=row_cap or self.row_cap, cancel=cancel, progress=progress)
        return self._finish(answer)

    def run_sql(self, sql: str, connection: Any = None, *, namespace: Mapping[str, Any] | None = None,
                allow_writes: bool = False, row_cap: int | None = None,
                cancel: threading.Event | None = None) -> Answer:
        """Check and run SQL written by a person (or edited in the widget) under the same safety layers.

        Unlike :meth:`ask`, a failed check or execution raises (the person can fix their SQL).
        """
        stats = Stats().start()
        conn = self.connections.resolve(connection, namespace)
        with stats.stage("schema"):
            schema = self.schemas.get(conn, sample_rows=self.sample_rows)
        answer = Answer(question=None, sql=sql, stats=stats,
                        provenance={"connection": conn.display_url, "schema_fingerprint": schema.fingerprint})
        with stats.stage("check"):
            checked = check_sql(sql, dialect=conn.sqlglot_dialect, schema=schema.mapping(),
                                allow_writes=allow_writes)
        answer.sql = checked.sql
        answer.warnings.extend(checked.warnings)
        self._execute(answer, conn, checked.sql, allow_writes=checked.is_write, row_cap=row_cap or self.row_cap,
                      cancel=cancel, stream=checked.kind != "explain")
        if checked.is_write:
            self.schemas.get(conn, sample_rows=self.sample_rows, refresh=True)
        return self._finish(answer)

    def on_answer(self, callback: Callable[[Answer], None]) -> Callable[[], None]:
        """Call ``callback(answer)`` after every answer (the widget uses it to share the history).

        Returns a function that unsubscribes the callback.
        """
        self._listeners.append(callback)
        return lambda: self._listeners.remove(callback) if callback in self._listeners else None

    # -- stages -----------------------------------------------------------------------------------------------
    def _solve(self, answer: Answer, backend: Any, conn: Connection, schema: Schema, messages: list[dict], *,
               generate_only: bool, allow_writes: bool, row_cap: int, cancel: threading.Event | None,
               progress: ProgressCallback) -> None:
        """Generate, check, execute; on a failed check or execution, feed the error back (bounded rounds)."""
        for round_no in range(self.repair_rounds + 1):
            progress("generate", {"round": round_no})
            sql = self._generate(answer, backend, messages)
            answer.sql = sql
            answer.candidates.append(sql)
            try:
                with answer.stats.stage("check"):
                    checked = check_sql(sql, dialect=conn.sqlglot_dialect, schema=schema.mapping(),
                                        allow_writes=allow_writes)
                answer.sql = checked.sql
                answer.warnings.extend(checked.warnings)
                if checked.is_write:
                    answer.warnings.append("this statement changes the database (writes were allowed for this call)")
                if generate_only:
                    answer.error = None
                    return
                progress("execute", {})
                self._execute(answer, conn, checked.sql, allow_writes=checked.is_write, row_cap=row_cap,
                              cancel=cancel, stream=checked.kind != "explain")
                answer.error = None
                return
            except WriteRefused as exc:
                answer.error = str(exc)
                return
            except (SQLCheckError, ExecutionError) as exc:
                answer.error = str(exc)
                if cancel is not None and cancel.is_set():
                    return
                if round_no < self.repair_rounds:
                    answer.warnings.append(f"first SQL failed ({exc}); asked the model to repair it")
                    messages = repair_messages(messages, sql, str(exc))

    def _generate(self, answer: Answer, backend: Any, messages: list[dict]) -> str:
        key = cache_key(backend.provenance, messages, {"greedy": True, "max_new_tokens": self.max_new_tokens})
        cached = self.cache.get(key) if self.cache is not None else None
        with answer.stats.stage("generate"):
            if cached is not None:
                answer.stats.cache_hit = True
                text = cached["text"]
            else:
                gen = backend.generate(messages, max_new_tokens=self.max_new_tokens)
                answer.stats.add_generation(gen.tokens_in, gen.tokens_out, gen.seconds)
                text = gen.text
                if self.cache is not None:
                    self.cache.put(key, {"text": text, "tokens_in": gen.tokens_in, "tokens_out": gen.tokens_out})
        return extract_sql(text)

    def _execute(self, answer: Answer, conn: Connection, sql: str, *, allow_writes: bool, row_cap: int,
                 cancel: threading.Event | None, stream: bool = True) -> None:
        with answer.stats.stage("execute"):
            result = execute(conn, sql, row_cap=row_cap, timeout=self.timeout, allow_writes=allow_writes,
                             cancel=cancel, stream=stream and not allow_writes)
        answer.stats.stages["execute"].seconds -= result.fetch_seconds
        answer.stats.record("fetch", result.fetch_seconds)
        answer.dataframe = result.dataframe
        answer.rowcount = result.rowcount
        answer.truncated = result.truncated
        answer.executed = True
        if result.truncated:
            answer.warnings.append(f"result truncated to the first {row_cap} rows (row cap); "
                                   "raise it with --limit or narrow the question")

    # -- helpers ----------------------------------------------------------------------------------------------
    def _provenance(self, backend: Any, schema: Schema, conn: Connection) -> dict[str, Any]:
        return {**backend.provenance, "schema_fingerprint": schema.fingerprint, "connection": conn.display_url,
                "decoding": {"strategy": "greedy", "max_new_tokens": self.max_new_tokens},
                "jupyter_nl2sql": __version__,
                "time": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}

    def _finish(self, answer: Answer) -> Answer:
        answer.stats.finish()
        self.history.append(answer)
        for callback in list(self._listeners):
            callback(answer)
        return answer


def _clean_question(question: Any) -> str:
    if not isinstance(question, str) or not question.strip():
        raise QuestionError("the question is empty: write what you want to know, e.g. "
                            "'How many customers are there?'")
    question = question.strip()
    if len(question) > MAX_QUESTION_CHARS:
        raise QuestionError(f"the question is {len(question)} characters long; keep it under "
                            f"{MAX_QUESTION_CHARS}")
    return question


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name} must be a whole number ≥ 1, not {value!r}")
    return value


def _non_negative_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"{name} must be a whole number ≥ 0, not {value!r}")
    return value


_default: Assistant | None = None
_default_lock = threading.Lock()


def get_assistant() -> Assistant:
    """The process-wide assistant shared by the magic and the widget."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Assistant()
        return _default
