"""The one pipeline: question → schema → prompt → model → checked SQL → DataFrame, with stats.

Every front end (the magics, the widget, the command line, the benchmarks) calls :meth:`Assistant.ask` or
:meth:`Assistant.run_sql`, so a fix or a speed-up lands everywhere at once.
"""

from __future__ import annotations

import datetime as _dt
import html
import math
import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import pandas as pd

from .. import __version__
from ..caches.generation import InFlight, cache_key, make_generation_cache, model_identity, persistent_identity
from ..connections import Connection, ConnectionManager, manager as default_manager
from ..errors import ConfigError, ExecutionError, QuestionError, SQLCheckError, WriteRefused
from .examples import (ExamplePool, StoredExample, TaughtStore, mask_question, schema_vocabulary, select_examples,
                       sql_literals)
from .execution import execute
from ..caches.redis_store import cached_execute
from .prompting import LAYOUTS, Example, build_messages, empty_result_messages, extract_sql, repair_messages
from .schema import Schema, SchemaCache, fit_schema
from .namefix import fix_names, fix_values
from .sqlcheck import CheckedSQL, check_sql
from .stats import Stats
from .values import ValueIndexCache, ValueMatch, render_matches

#: Longest question accepted (characters).
MAX_QUESTION_CHARS = 4000

ProgressCallback = Callable[[str, Mapping[str, Any]], None]


def _reports_errors(method: Callable[..., Any]) -> Callable[..., Any]:
    """Tell the :meth:`Assistant.on_error` listeners what ``method`` raised (then raise it)."""
    import functools

    @functools.wraps(method)
    def wrapper(self: Assistant, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except BaseException as exc:
            for callback in list(self.__dict__.get("_error_listeners", ())):
                callback(exc, method.__name__)
            raise

    return wrapper


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
    score: float | None = None
    """The model's score of the reply that wrote ``sql``: its mean token log-probability (None when the backend
    cannot tell); breaks ties between candidates."""

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
    (above it, only the tables the question needs are shown), ``generation_cache`` (remember replies: True for
    ``$NL2SQL_GENERATION_CACHE``, default disk; "memory"; "off"), ``cache_dir`` (where the disk store lives),
    ``backend`` ("auto", "transformers" or "llama.cpp").

    Accuracy options (each measured with the others on and off, on Spider train questions, see
    ``benchmarks/results/ablation-train/README.md``):
    ``column_values`` (a few distinct values shown next to each text column; 0: none), ``schema_linking`` (for
    schemas over ``max_schema_chars``: the linked tables and their join paths in full, the others as one line;
    False: always everything), ``value_retrieval`` (tell the model how the database spells the values the
    question mentions), ``few_shot`` (worked examples shown: the ones taught for this database first, then the
    most similar of ``example_pool``, a JSON file of ``{"question", "query", "db_id"}``; no pool by default:
    examples about other databases cost 5 points on Spider), ``repair_empty`` (one
    more round when a query returns no rows although the question names values), ``candidates`` (write that many
    queries from varied prompts, run them and keep the result most of them agree on, a tie going to the reply the
    model scored highest (``Answer.score``); the variants are the next-best
    examples, or without examples a values listing in place of sample rows and then the other prompt layout, so at
    most 3), ``fix_names`` (when the
    checker refuses a name that matches exactly one name of the schema up to case, spaces and punctuation, a
    column sits on the wrong alias of a join, or a column is on a table the query does not join but the foreign
    keys lead to, correct it without asking the model again), ``fix_values`` (when a query finds nothing, use the
    column's own spelling of a string it compares with, where exactly one value of that column is the same up to
    case, accents, dashes and spacing: ``'QF'`` → ``'qf'``; no model call), ``examples_dir`` (where
    taught examples are kept; default: the user cache directory), ``result_cache`` (opt-in: a Redis URL,
    ``redis://host:6379/0#ttl=60``, where results of read-only queries are kept for the TTL and shared; the key is
    the connection, the schema fingerprint, the row cap and the SQL; off by default because data can change),
    ``schema_cache`` (a Redis URL, ``redis://host:6379/0#ttl=600``, where introspected schemas are shared, so other
    kernels and restarts skip introspection; None: this process only), ``prompt_layout`` (``"sql"``: the prompt is
    a SQL script, schema and sample rows then ``-- Question:``, the layout Qwen2.5-Coder was evaluated with;
    ``"chat"``: a system message with the task and labelled sections).
    """

    def __init__(self, model: str | None = None, *, device: str | None = None, dtype: str | None = None,
                 connections: ConnectionManager | None = None, row_cap: int = 1000, timeout: float | None = 30.0,
                 repair_rounds: int = 1, sample_rows: int = 3, max_new_tokens: int = 256,
                 max_schema_chars: int = 12_000, generation_cache: bool | str = True,
                 cache_dir: str | None = None, backend: str | None = None, column_values: int = 0,
                 schema_linking: bool = True, value_retrieval: bool = True, few_shot: int = 3,
                 example_pool: str | None = None, repair_empty: bool = True, candidates: int = 1,
                 examples_dir: str | None = None, result_cache: str | None = None,
                 schema_cache: str | None = None, fix_names: bool = True, prompt_layout: str = "sql",
                 fix_values: bool = True) -> None:
        self.model = model
        self.device = device
        self.dtype = dtype
        self.connections = connections or default_manager
        self.schemas = SchemaCache(timeout=timeout)  # introspection under the statement timeout
        if schema_cache:  # introspected schemas shared through Redis for a TTL
            from ..caches.redis_store import RedisSchemaCache

            self.schemas.shared = RedisSchemaCache.from_setting(schema_cache)
        self.row_cap = _positive_int("row_cap", row_cap)
        self.timeout = timeout
        self.repair_rounds = _non_negative_int("repair_rounds", repair_rounds)
        self.sample_rows = _non_negative_int("sample_rows", sample_rows)
        self.max_new_tokens = _positive_int("max_new_tokens", max_new_tokens)
        self.max_schema_chars = _positive_int("max_schema_chars", max_schema_chars)
        self.backend_name = backend  # "auto" | "transformers" | "llama.cpp" (models.registry.choose_backend)
        self.cache = make_generation_cache(generation_cache, cache_dir)
        self._in_flight = InFlight()
        self.column_values = _non_negative_int("column_values", column_values)
        self.schema_linking = bool(schema_linking)
        self.value_retrieval = bool(value_retrieval)
        self.few_shot = _non_negative_int("few_shot", few_shot)
        self.example_pool = example_pool
        self.repair_empty = bool(repair_empty)
        self.candidates = _positive_int("candidates", candidates)
        self.fix_names = bool(fix_names)
        self.fix_values = bool(fix_values)
        if prompt_layout not in LAYOUTS:
            raise ConfigError(f"prompt_layout must be one of {', '.join(LAYOUTS)}, not {prompt_layout!r}")
        self.prompt_layout = prompt_layout
        self.value_indexes = ValueIndexCache()
        self.taught = TaughtStore(examples_dir)
        self.result_cache = None
        if result_cache:  # opt-in: results of read-only queries shared through Redis for a TTL
            from ..caches.redis_store import ResultCache

            self.result_cache = ResultCache.from_setting(result_cache)
        self._pool: tuple[str, ExamplePool] | None = None
        self.history: deque[Answer] = deque(maxlen=200)
        self._listeners: list[Callable[[Answer], None]] = []
        self._lock = threading.Lock()

    # -- model ------------------------------------------------------------------------------------------------
    def backend(self) -> tuple[Any, float | None]:
        """The loaded model backend (loading it on first use) and the seconds this call spent loading it."""
        from ..models import get_backend

        return get_backend(self.model, device=self.device, dtype=self.dtype, backend=self.backend_name)

    # -- public API -------------------------------------------------------------------------------------------
    @_reports_errors
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
        ctx = self._context(question, conn, schema, stats, progress)
        messages = ctx.messages[0]
        answer = Answer(question=question, sql=None, stats=stats, messages=messages)
        tables = ctx.tables
        if len(tables) < len(schema.tables):
            answer.warnings.append(f"schema too large for the prompt: showed the model {len(tables)} of "
                                   f"{len(schema.tables)} tables in full ({', '.join(tables)})")
        if ctx.schema_chars > self.max_schema_chars:
            answer.warnings.append(f"the schema shown to the model is {ctx.schema_chars:,} characters, over "
                                   f"max_schema_chars={self.max_schema_chars:,}: raise max_schema_chars, lower "
                                   "sample_rows, or ask about fewer tables")
        progress("load", {})
        t0 = time.perf_counter()
        backend, load_seconds = self.backend()
        if load_seconds is not None:
            stats.model_load_seconds = load_seconds
            stats.record("load", time.perf_counter() - t0)
        stats.device = f"{backend.device} {backend.dtype}"
        answer.prompt = backend.render_prompt(messages)
        answer.provenance = self._provenance(backend, schema, conn)
        answer.provenance["context"] = {"examples": [e.id for e in ctx.examples],
                                        "values": [m.render() for m in ctx.matches]}
        self._solve(answer, backend, conn, schema, ctx, generate_only=generate_only,
                    allow_writes=allow_writes, row_cap=row_cap or self.row_cap, cancel=cancel, progress=progress)
        return self._finish(answer)

    @_reports_errors
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
                      cancel=cancel, fingerprint=schema.fingerprint, stream=checked.kind != "explain")
        if checked.is_write:
            self.schemas.get(conn, sample_rows=self.sample_rows, refresh=True)
        return self._finish(answer)

    def teach(self, question: str, sql: str, connection: Any = None, *,
              namespace: Mapping[str, Any] | None = None) -> StoredExample:
        """Save a worked example for ``connection``'s database: later questions like ``question`` are shown it.

        The SQL is checked (read-only policy; tables and columns exist) and run once, read-only, before it is
        saved; a problem raises :class:`~jupyter_nl2sql.errors.Nl2SqlError` with a one-line message.  Examples are
        kept per database (schema fingerprint and password-free URL) in the user cache directory; teaching the
        same question again replaces its SQL.
        """
        question = _clean_question(question)
        if not isinstance(sql, str) or not sql.strip():
            raise QuestionError("the example's SQL is empty: give the query that answers the question")
        conn = self.connections.resolve(connection, namespace)
        schema = self.schemas.get(conn, sample_rows=self.sample_rows)
        checked = check_sql(sql, dialect=conn.sqlglot_dialect, schema=schema.mapping(), allow_writes=False)
        if checked.kind == "explain":
            raise QuestionError("teach a query, not an EXPLAIN")
        execute(conn, checked.sql, row_cap=1, timeout=self.timeout, allow_writes=False)
        return self.taught.add(schema.fingerprint, conn.display_url, question, checked.sql)

    def examples(self, connection: Any = None, *, namespace: Mapping[str, Any] | None = None
                 ) -> list[StoredExample]:
        """The examples taught for ``connection``'s database, oldest first."""
        conn = self.connections.resolve(connection, namespace)
        schema = self.schemas.get(conn, sample_rows=self.sample_rows)
        return self.taught.list(schema.fingerprint, conn.display_url)

    def forget(self, example_id: str, connection: Any = None, *,
               namespace: Mapping[str, Any] | None = None) -> bool:
        """Remove a taught example by its id (or a prefix of it); True when one was removed."""
        conn = self.connections.resolve(connection, namespace)
        schema = self.schemas.get(conn, sample_rows=self.sample_rows)
        return self.taught.remove(schema.fingerprint, conn.display_url, str(example_id).strip())

    def on_answer(self, callback: Callable[[Answer], None]) -> Callable[[], None]:
        """Call ``callback(answer)`` after every answer (the widget uses it to share the history).

        Returns a function that unsubscribes the callback.
        """
        self._listeners.append(callback)
        return lambda: self._listeners.remove(callback) if callback in self._listeners else None

    def on_error(self, callback: Callable[[BaseException, str], None]) -> Callable[[], None]:
        """Call ``callback(exc, call)`` when :meth:`ask` or :meth:`run_sql` (``call``) raises (the metrics use it).

        Returns a function that unsubscribes the callback.
        """
        listeners = self.__dict__.setdefault("_error_listeners", [])
        listeners.append(callback)
        return lambda: listeners.remove(callback) if callback in listeners else None

    async def ask_async(self, question: str, connection: Any = None, **kwargs: Any) -> Answer:
        """``await``-able :meth:`ask`: the pipeline runs in a thread pool, the event loop stays free; cancelling the
        awaiting task cancels the call (see :mod:`jupyter_nl2sql.pipeline.aio`)."""
        from .aio import ask_async

        return await ask_async(self, question, connection, **kwargs)

    # -- stages -----------------------------------------------------------------------------------------------
    def _solve(self, answer: Answer, backend: Any, conn: Connection, schema: Schema, ctx: _Context, *,
               generate_only: bool, allow_writes: bool, row_cap: int, cancel: threading.Event | None,
               progress: ProgressCallback) -> None:
        """One attempt (:meth:`_attempt`); with ``candidates`` > 1, one attempt per prompt variant, keeping the
        result most of them agree on (ties: the model's score, then the earlier prompt)."""
        variants = ctx.messages[:1] if generate_only else ctx.messages[:self.candidates]
        if len(variants) <= 1:
            self._attempt(answer, backend, conn, schema, ctx, answer.messages or variants[0],
                          generate_only=generate_only, allow_writes=allow_writes, row_cap=row_cap, cancel=cancel,
                          progress=progress)
            return
        tries: list[Answer] = []
        for i, messages in enumerate(variants):
            if tries and cancel is not None and cancel.is_set():
                break
            progress("candidate", {"candidate": i, "of": len(variants)})
            attempt = Answer(question=answer.question, sql=None, stats=answer.stats, messages=messages)
            self._attempt(attempt, backend, conn, schema, ctx, messages, generate_only=False,
                          allow_writes=allow_writes, row_cap=row_cap, cancel=cancel, progress=progress)
            tries.append(attempt)
        best, votes, by_score = vote(tries)
        answer.sql, answer.dataframe, answer.error = best.sql, best.dataframe, best.error
        answer.score = best.score
        answer.rowcount, answer.truncated, answer.executed = best.rowcount, best.truncated, best.executed
        answer.messages = best.messages
        answer.warnings.extend(best.warnings)
        answer.candidates = [sql for t in tries for sql in t.candidates]
        if len(tries) > 1:
            tie = "; a tie, decided by the model's score" if by_score else ""
            answer.warnings.append(f"wrote {len(tries)} candidate queries; {votes} of them agree on this result{tie}")

    def _attempt(self, answer: Answer, backend: Any, conn: Connection, schema: Schema, ctx: _Context,
                 messages: list[dict], *, generate_only: bool, allow_writes: bool, row_cap: int,
                 cancel: threading.Event | None, progress: ProgressCallback) -> None:
        """Generate, check, execute; on a failed check or execution, feed the error back (bounded rounds); on an
        empty result although the question names database values, one more round with their spellings."""
        for round_no in range(self.repair_rounds + 1):
            progress("generate", {"round": round_no})
            sql = self._generate(answer, backend, messages, cancel)
            answer.sql = sql
            answer.candidates.append(sql)
            try:
                checked = self._check(answer, sql, conn, schema, allow_writes=allow_writes)
                answer.sql = checked.sql
                answer.warnings.extend(checked.warnings)
                if checked.is_write:
                    answer.warnings.append("this statement changes the database (writes were allowed for this call)")
                if generate_only:
                    answer.error = None
                    return
                progress("execute", {})
                self._execute(answer, conn, checked.sql, allow_writes=checked.is_write, row_cap=row_cap,
                              cancel=cancel, fingerprint=schema.fingerprint, stream=checked.kind != "explain")
                answer.error = None
                if (not checked.is_write and checked.kind != "explain" and _found_nothing(answer.dataframe)
                        and not (cancel is not None and cancel.is_set())):
                    if self.fix_values and self._respell(answer, conn, schema, checked.sql, row_cap=row_cap,
                                                         cancel=cancel):
                        return
                    if self.repair_empty and ctx.hints:
                        self._repair_empty(answer, backend, conn, schema, messages, checked.sql, ctx.hints,
                                           row_cap=row_cap, cancel=cancel, progress=progress)
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
                    # without the examples: names copied from another database's example are a common cause
                    base = ctx.plain if ctx.plain is not None and round_no == 0 else messages
                    messages = repair_messages(base, sql, str(exc) + _owners_hint(str(exc), schema))

    def _repair_empty(self, answer: Answer, backend: Any, conn: Connection, schema: Schema, messages: list[dict],
                      sql: str, hints: str, *, row_cap: int, cancel: threading.Event | None,
                      progress: ProgressCallback) -> None:
        """The query ran but found nothing although the question names values: ask once more with the values'
        spellings; keep the new query only if it checks, runs and returns rows."""
        progress("generate", {"round": "empty result"})
        new_sql = self._generate(answer, backend, empty_result_messages(messages, sql, hints), cancel)
        answer.candidates.append(new_sql)
        self._instead(answer, new_sql, conn, schema, row_cap=row_cap, cancel=cancel,
                      note="the first query returned no rows; the model rewrote it with the database's spelling of "
                           "the values the question mentions")

    def _respell(self, answer: Answer, conn: Connection, schema: Schema, sql: str, *, row_cap: int,
                 cancel: threading.Event | None) -> bool:
        """The query found nothing: compare its string literals with the column's own values and, where exactly
        one is the same up to case, accents, dashes and spacing, use it (no model call); True when that finds rows."""
        with answer.stats.stage("values"):
            index = self.value_indexes.get(conn, schema)
            fixed = fix_values(sql, schema.mapping(), index.spelling, conn.sqlglot_dialect)
        if not fixed.changed:
            return False
        return self._instead(answer, fixed.sql, conn, schema, row_cap=row_cap, cancel=cancel,
                             note="the query found nothing; used the database's spelling of its values: "
                                  + "; ".join(fixed.changes))

    def _instead(self, answer: Answer, sql: str, conn: Connection, schema: Schema, *, row_cap: int,
                 cancel: threading.Event | None, note: str) -> bool:
        """Check and run ``sql`` in place of a query that found nothing; keep it (with ``note`` among the answer's
        warnings) only if it returns rows.  True when kept."""
        trial = Answer(question=answer.question, sql=None, stats=answer.stats)
        try:
            checked = self._check(trial, sql, conn, schema, allow_writes=False)
            if checked.kind == "explain":
                return False
            self._execute(trial, conn, checked.sql, allow_writes=False, row_cap=row_cap, cancel=cancel,
                          fingerprint=schema.fingerprint)
        except (SQLCheckError, ExecutionError, WriteRefused):
            return False
        if _found_nothing(trial.dataframe):
            return False
        answer.sql, answer.dataframe = checked.sql, trial.dataframe
        answer.rowcount, answer.truncated = trial.rowcount, trial.truncated
        answer.warnings.extend(checked.warnings + trial.warnings + [note])
        return True

    def _check(self, answer: Answer, sql: str, conn: Connection, schema: Schema, *,
               allow_writes: bool) -> CheckedSQL:
        """:func:`check_sql`; when it refuses a name and ``fix_names`` finds the one the model meant, the corrected
        SQL (with a warning saying what changed).  A correction that still fails the check raises the first error,
        which is what the model's repair round is told."""
        with answer.stats.stage("check"):
            mapping = schema.mapping()
            try:
                return check_sql(sql, dialect=conn.sqlglot_dialect, schema=mapping, allow_writes=allow_writes)
            except SQLCheckError as first:
                fixed = fix_names(sql, mapping, conn.sqlglot_dialect, schema.links()) if self.fix_names else None
                if fixed is None or not fixed.changed:
                    raise
                try:
                    checked = check_sql(fixed.sql, dialect=conn.sqlglot_dialect, schema=mapping,
                                        allow_writes=allow_writes)
                except SQLCheckError:
                    raise first from None
        answer.warnings.append("corrected names in the model's SQL: " + "; ".join(dict.fromkeys(fixed.changes)))
        return checked

    def _generate(self, answer: Answer, backend: Any, messages: list[dict],
                  cancel: threading.Event | None = None) -> str:
        from ..models.base import accepts_cancel

        identity = model_identity(backend.provenance)
        key = cache_key(identity, messages, {"greedy": True, "max_new_tokens": self.max_new_tokens})
        persist = persistent_identity(identity)  # only content-addressed models go to the disk store
        cached = self.cache.get(key, persist=persist) if self.cache is not None else None
        lead = False
        with answer.stats.stage("generate"):
            if cached is None and self.cache is not None:
                # the same prompt already being generated for another caller: wait for that reply
                lead = self._in_flight.claim(key, cancel)
                if not lead:
                    cached = self.cache.get(key, persist=persist)  # None if that caller failed: generate here
            try:
                if cached is not None:
                    answer.stats.cache_hit = True
                    text = cached["text"]
                    answer.score = cached.get("logprob")
                else:
                    extra = {"cancel": cancel} if cancel is not None and accepts_cancel(backend.generate) else {}
                    gen = backend.generate(messages, max_new_tokens=self.max_new_tokens, **extra)  # may raise
                    answer.stats.add_generation(gen.tokens_in, gen.tokens_out, gen.seconds)
                    text = gen.text
                    answer.score = gen.logprob
                    if self.cache is not None:
                        self.cache.put(key, {"text": text, "tokens_in": gen.tokens_in, "tokens_out": gen.tokens_out,
                                             "logprob": gen.logprob}, persist=persist)
            finally:
                if lead:
                    self._in_flight.release(key)
        return extract_sql(text)

    def _execute(self, answer: Answer, conn: Connection, sql: str, *, allow_writes: bool, row_cap: int,
                 cancel: threading.Event | None, fingerprint: str, stream: bool = True) -> None:
        with answer.stats.stage("execute"):
            # through the opt-in result cache, which passes writes (and everything when it is off) straight through
            result = cached_execute(self.result_cache, conn, sql, fingerprint=fingerprint, row_cap=row_cap,
                                    timeout=self.timeout, allow_writes=allow_writes, cancel=cancel,
                                    stream=stream and not allow_writes)
            answer.stats.result_cache_hit = getattr(result, "cached", None)
        answer.stats.stages["execute"].seconds -= result.fetch_seconds
        answer.stats.record("fetch", result.fetch_seconds)
        answer.dataframe = result.dataframe
        answer.rowcount = result.rowcount
        answer.truncated = result.truncated
        answer.executed = True
        if result.truncated:
            answer.warnings.append(getattr(result, "note", None) or f"result truncated to the first {row_cap} rows "
                                   "(row cap); raise it with --limit or narrow the question")

    # -- context: values, examples, schema text, prompt variants ----------------------------------------------
    def pool(self) -> ExamplePool | None:
        """The example pool named by ``example_pool`` (loaded on first use), or None."""
        if not self.example_pool:
            return None
        if self._pool is None or self._pool[0] != self.example_pool:  # the setting may change between questions
            try:
                self._pool = (self.example_pool, ExamplePool.load(self.example_pool))
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise ConfigError(f"cannot read the example pool {self.example_pool}: {exc}") from None
        return self._pool[1]

    def _context(self, question: str, conn: Connection, schema: Schema, stats: Stats,
                 progress: ProgressCallback) -> _Context:
        """Values the question mentions, examples like it, the schema text, and the prompt(s)."""
        index = None
        matches: list[ValueMatch] = []
        vocab = schema_vocabulary([t.name for t in schema.tables], [c.name for t in schema.tables for c in t.columns])
        if self.value_retrieval or self.column_values:
            progress("values", {})
            with stats.stage("values"):
                index = self.value_indexes.get(conn, schema)
                if self.value_retrieval:
                    matches = index.match(question, ignore_words=vocab)
        hints = render_matches(matches, conn.dialect)
        taught: list[StoredExample] = []
        taught_masked: list[list[str]] = []
        pool = None
        masked: list[str] = []
        exclude = [_database_name(conn)]
        if self.few_shot:
            with stats.stage("examples"):
                masked = mask_question(question, vocab, [m.span for m in matches] + _quoted(question))
                taught = self.taught.list(schema.fingerprint, conn.display_url)
                taught_masked = [mask_question(e.question, vocab, sql_literals(e.sql)) for e in taught]
                pool = self.pool()

        def shots(skip: int) -> list[StoredExample]:
            if not self.few_shot:
                return []
            return select_examples(masked, self.few_shot, taught=taught, taught_masked=taught_masked, pool=pool,
                                   exclude_db=exclude, skip=skip)

        with stats.stage("prompt"):
            values_for = None
            if self.column_values and index is not None:
                k = self.column_values
                values_for = lambda table, column: index.column_values(table, column, k)  # noqa: E731
            must = [m.table for m in matches]
            layout = self.prompt_layout
            schema_text, tables = fit_schema(schema, question, max_chars=self.max_schema_chars,
                                             sample_rows=self.sample_rows, values_for=values_for, must=must,
                                             linking=self.schema_linking, layout=layout)
            examples = shots(0)
            prompts = [build_messages(question, schema_text, conn.dialect, _as_prompt(examples), hints, layout)]
            plain = build_messages(question, schema_text, conn.dialect, (), hints, layout) if examples else None
            # more candidates: the next-best examples; without examples, the other way of showing values, then
            # the other prompt layout
            for i in range(1, self.candidates):
                if examples:
                    more = shots(i * self.few_shot)
                    if not more:
                        break
                    prompts.append(build_messages(question, schema_text, conn.dialect, _as_prompt(more), hints,
                                                  layout))
                    continue
                if i > 2:
                    break
                shown, style = values_for, layout
                if i == 1:
                    if index is None:
                        index = self.value_indexes.get(conn, schema)
                    shown = None if values_for else (lambda table, column: index.column_values(table, column, 3))
                else:
                    style = next(other for other in LAYOUTS if other != layout)
                alt_text, _ = fit_schema(schema, question, max_chars=self.max_schema_chars,
                                         sample_rows=self.sample_rows, values_for=shown, must=must,
                                         linking=self.schema_linking, layout=style)
                prompts.append(build_messages(question, alt_text, conn.dialect, (), hints, style))
        return _Context(prompts, tables, matches, hints, examples, plain, len(schema_text))

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


@dataclass
class _Context:
    """What :meth:`Assistant.ask` puts in front of the model: the prompt variants (the first is the main one), the
    tables shown in full, the values found in the question and their prompt lines, and the examples shown."""

    messages: list[list[dict]]
    tables: list[str]
    matches: list[ValueMatch]
    hints: str
    examples: list[StoredExample]
    plain: list[dict] | None = None
    """The main prompt without examples (repairs start from it), or None when no examples were shown."""
    schema_chars: int = 0
    """Length of the schema part of the main prompt."""


def _as_prompt(examples: list[StoredExample]) -> list[Example]:
    return [Example(e.question, e.sql) for e in examples]


def _quoted(question: str) -> list[str]:
    """Text in quotes in the question (a value, even when the value index does not know it)."""
    return [a or b for a, b in re.findall(r'"([^"]+)"|\B\'([^\']+)\'\B', question)]


def _database_name(conn: Connection) -> str:
    """The database's own name: the file name without its suffix for SQLite/DuckDB, else the URL's database."""
    database = conn.engine.url.database or ""
    if conn.dialect in ("sqlite", "duckdb"):
        return Path(database.split("?")[0].removeprefix("file:")).stem
    return database


def _owners_hint(error: str, schema: Schema) -> str:
    """For ``no column X in table T; did you mean Y?``: the tables that do have a column X (the model often puts
    the right column on the wrong table; the checker's did-you-mean looks only at T)."""
    m = re.match(r"no column (\S+) in tables? ", error)
    if not m or "; it is in " in error:
        return ""
    name = m.group(1).strip('"`[]').lower()
    owners = [f"{t.name}.{c.name}" for t in schema.tables for c in t.columns if c.name.lower() == name]
    return f" (a column of that name is in {', '.join(owners[:4])})" if owners else ""


def _found_nothing(frame: pd.DataFrame | None) -> bool:
    """No rows, or one row of nothing but NULLs and zeros (``count(*)``, ``sum`` over no rows)."""
    if frame is None:
        return False
    if len(frame) == 0:
        return True
    if len(frame) == 1:
        return all(v is None or (isinstance(v, float) and v != v) or (isinstance(v, (int, float)) and v == 0)
                   for v in frame.iloc[0].tolist())
    return False


def _result_key(answer: Answer) -> tuple | None:
    """A candidate's result for voting: its rows as a multiset, each row's values as a multiset (so neither column
    nor row order splits a vote); None when it failed."""
    if answer.error is not None or answer.dataframe is None:
        return None
    rows = (tuple(sorted(repr(v) for v in row)) for row in answer.dataframe.itertuples(index=False, name=None))
    return (answer.dataframe.shape[1], tuple(sorted(rows)))


def vote(tries: list[Answer]) -> tuple[Answer, int, bool]:
    """The attempt whose result most attempts share (the earliest of them), how many share it, and whether the
    model's score decided a tie.

    Failed attempts have no vote; an empty result counts half (wrong filters agree on nothing).  Ties go to the
    group whose best reply the model scored highest (mean token log-probability), then to the earlier attempt
    (the main prompt first) when scores are missing or equal.
    """
    groups: dict[tuple, list[int]] = {}
    for i, t in enumerate(tries):
        key = _result_key(t)
        if key is not None:
            groups.setdefault(key, []).append(i)
    if not groups:
        return tries[0], 0, False

    def weight(members: list[int], key: tuple) -> float:
        return len(members) * (1.0 if key[1] else 0.5)

    def score(members: list[int]) -> float:
        known = [tries[i].score for i in members if tries[i].score is not None]
        return max(known) if known else -math.inf

    top = max(weight(m, k) for k, m in groups.items())
    tied = [m for k, m in groups.items() if weight(m, k) == top]
    members = max(tied, key=lambda m: (score(m), -m[0]))
    return tries[members[0]], len(members), len(tied) > 1 and score(members) > -math.inf


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
