"""The one pipeline: question → schema → prompt → model → checked SQL → DataFrame, with stats.

Every front end (the magics, the panel, the command line, the benchmarks) calls :meth:`Assistant.ask` or
:meth:`Assistant.run_sql`, so a fix or a speed-up lands everywhere at once.  The options are a
:class:`~jupyter_nl2sql.settings.Settings` (every option, its help and its check are there); a call may change
some of them for itself (``ask(question, db, row_cap=50)``), checked before anything else happens.  Each question
is carried through the stages by one :class:`Run`.
"""

from __future__ import annotations

import datetime as _dt
import functools
import math
import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import pandas as pd

from ..version import __version__
from ..caches import CacheSet
from ..caches.generation import InFlight, cache_key, model_identity, persistent_identity
from ..connections import Connection, ConnectionManager, manager as default_manager
from ..errors import ExecutionError, QuestionError, SQLCheckError, WriteRefused
from ..frontends import render
from ..models.base import BranchPoint, accepts_cancel, accepts_keyword
from ..settings import OPTIONS, Settings
from .examples import (ExampleStore, StoredExample, TaughtStore, identifier_words, mask_question, schema_vocabulary,
                       select_examples, sql_literals)
from .execution import ExecutionResult, execute
from .confidence import Confidence, hesitations, join_doubt, lowest_in_sql
from .dateparts import portable_date_parts
from .drift import dropped_asks
from .conjunctions import intersected
from .conversation import Conversations, FollowUp, Turn, looks_like_follow_up
from .explain import explain_sql
from .refinements import kept_conditions, unasked_limit
from .pergroup import top_per_group
from .rounding import asked_decimals, rounded_as_asked
from .windows import nest_windows
from .lexicon import LexiconCache
from .asks import unmet_asks
from .grounding import read_schema, said_ungrounded, ungrounded
from .invented import invented_names, looked_for, said_missing
from .missing import missing_from_schema, refusal
from .prompting import (LAYOUTS, Example, build_messages, empty_result_messages, extract_sql, follow_up_message,
                        follow_up_messages, prompt_head, repair_messages)
from .schema import Schema, SchemaCache, fit_schema
from .shown import unread_tables, unshown_attributes
from .namefix import NameFix, fix_names, fix_values
from .sqlcheck import WAY_OUT, CheckedSQL, check_sql
from .stats import Stats
from .write_intent import write_request
from .synonyms import LinkerCache, SynonymLink, render_links
from .values import ValueIndexCache, ValueMatch, render_matches

#: Longest question accepted (characters).
MAX_QUESTION_CHARS = 4000

ProgressCallback = Callable[[str, Mapping[str, Any]], None]

#: The options that decide which model runs (a question asked with other values loads that model).
MODEL_OPTIONS = ("model", "device", "dtype", "backend")
#: The warning an answer that changed the database carries.
WRITE_NOTE = "this statement changes the database (writes were allowed for this call)"


def _no_progress(stage: str, info: Mapping[str, Any]) -> None:
    """The progress callback of a call that gave none."""


def _reports_errors(method: Callable[..., Any]) -> Callable[..., Any]:
    """Tell the :meth:`Assistant.on_error` listeners what ``method`` raised (then raise it)."""

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
    error_kind: str | None = None
    """The class name of the error behind ``error`` (``SQLCheckError``, ``ExecutionError``...), None without one."""
    truncated: bool = False
    rowcount: int | None = None
    executed: bool = False
    messages: list[dict] | None = None
    prompt: str | None = None
    score: float | None = None
    """The model's score of the reply that wrote ``sql``: its mean token log-probability (None when the backend
    cannot tell); breaks ties between candidates."""
    confidence: Confidence | None = None
    """How sure the answer is: whether the model hesitated while writing its SQL and how many candidate queries
    agree on the result (see ``alternatives``); None when nothing was generated or the backend cannot tell."""
    explanation: str | None = None
    """What ``sql`` does in plain English, made from its syntax tree (:func:`~.explain.explain_sql`), never from
    the model; None without SQL."""
    turn: int | None = None
    """The question's number in its connection's conversation (1: it started one; 2 and up: a follow-up, asked
    with the earlier turns as context); None for SQL run by a person."""
    context_turns: int = 0
    """How many earlier turns of the conversation the prompt showed (0: none, the question stood alone)."""

    @property
    def follow_up(self) -> bool:
        """True when the question continued a conversation (``turn`` > 1)."""
        return (self.turn or 0) > 1

    @property
    def ok(self) -> bool:
        """True when the SQL passed its checks (and ran, unless generate-only)."""
        return self.error is None

    def fail(self, exc: BaseException) -> None:
        """Record ``exc`` as this answer's error."""
        self.error, self.error_kind = str(exc), type(exc).__name__

    def _repr_html_(self) -> str:
        return render.answer_html(self)

    def __str__(self) -> str:
        return render.answer_text(self)

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(str(self))


@dataclass
class Run:
    """One question (or one statement) on its way through the stages: what every stage needs, in one object.

    ``settings`` are this call's (the assistant's, with the call's changes), ``conn`` and ``schema`` the database,
    ``context`` what the prompt shows (after the context stage), ``backend`` the model (after loading), the caches
    the settings name, and the call's ``cancel`` event and ``progress`` callback.
    """

    settings: Settings
    conn: Connection
    schema: Schema
    replies: Any = None
    """The cache of model replies (None: off)."""
    results: Any = None
    """The opt-in cache of query results (None: off)."""
    backend: Any = None
    context: _Context | None = None
    generate_only: bool = False
    allow_writes: bool = False
    cancel: threading.Event | None = None
    progress: ProgressCallback = _no_progress
    prefix: str | None = None
    """The head every prompt on this database shares (schema, sample rows), as the model renders it, when the
    backend keeps its evaluated state (:meth:`Assistant._prefix`); None otherwise."""
    hesitated: tuple[list[dict], tuple[BranchPoint, ...]] | None = None
    """The messages of the latest reply the SQL came from, and where the model hesitated in it."""
    dropped: list[str] = field(default_factory=list)
    """What a repair round dropped that the question asked for (:func:`~.drift.dropped_asks`)."""
    notes: list[str] = field(default_factory=list)
    """Warnings that say nothing against the query (a row cap reached): they leave its confidence as it is."""

    @property
    def cancelled(self) -> bool:
        """Whether the caller asked to stop."""
        return self.cancel is not None and self.cancel.is_set()

    @property
    def row_cap(self) -> int:
        """Most rows fetched."""
        return self.settings.row_cap


class Assistant:
    """Answers questions about databases with a local model.

    ``model`` and ``**options``: any option of :class:`~jupyter_nl2sql.settings.Settings` (the same as the
    ``%config Nl2SqlMagics`` traits; see ``Settings`` for each one's meaning, default and check), applied to
    ``settings`` (default: the defaults).  A refused value raises :class:`~jupyter_nl2sql.errors.ConfigError`.
    ``connections``: the connection manager (default: the process-wide one).

    The settings never change after construction; a call changes them for itself only:
    ``ask(question, db, row_cap=50)``, or ``ask(question, db, settings=other)``.
    """

    def __init__(self, model: str | None = None, *, connections: ConnectionManager | None = None,
                 settings: Settings | None = None, **options: Any) -> None:
        if model is not None:
            options["model"] = model
        object.__setattr__(self, "settings", (settings or Settings()).replace(**options))
        s = self.settings
        self.connections = connections or default_manager
        self._caches = CacheSet()
        self.cache = self._caches.get("generation", s.generation_cache, s.cache_dir)
        self.results = self._caches.get("result", s.result_cache)
        self.schemas = SchemaCache(shared=self._caches.get("schema", s.schema_cache), timeout=s.timeout)
        self._schema_caches: dict[str | None, SchemaCache] = {s.schema_cache: self.schemas}
        self._in_flight = InFlight()
        self.value_indexes = ValueIndexCache()
        self.synonym_linkers = LinkerCache()
        self.lexicons = LexiconCache()
        self.examples_store = ExampleStore(s.examples_dir)
        self.history: deque[Answer] = deque(maxlen=200)
        self.conversations = Conversations()
        """The conversation of each connection (:mod:`~.conversation`): what a follow-up question is asked with."""
        self._listeners: list[Callable[[Answer], None]] = []
        self._lock = threading.Lock()
        self._heads: dict[tuple, str] = {}  # (backend, dialect, layout, schema text) → prompt head

    def __getattr__(self, name: str) -> Any:
        """The options read as attributes (``assistant.row_cap``): this assistant's settings."""
        if name in OPTIONS:
            return getattr(self.__dict__["settings"], name)
        raise AttributeError(f"{type(self).__name__!s} object has no attribute {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        if (name in OPTIONS and not hasattr(type(self), name)) or name == "settings":  # backend(): a method
            raise AttributeError(f"the settings of an Assistant do not change (another thread may be using them): "
                                 f"pass {name}=... to ask(), or make an Assistant with it")
        object.__setattr__(self, name, value)

    # -- settings and resources of one call -------------------------------------------------------------------
    def settings_for(self, settings: Settings | None = None, **overrides: Any) -> Settings:
        """The settings of one call: ``settings`` (default: this assistant's) with ``overrides`` applied (a None
        value leaves that option as it is); raises :class:`~jupyter_nl2sql.errors.ConfigError` for a refused one."""
        base = settings if settings is not None else self.settings
        if not isinstance(base, Settings):
            raise TypeError(f"settings must be a Settings, not {type(base).__name__}")
        return base.replace(**{k: v for k, v in overrides.items() if v is not None})

    def _own(self, settings: Settings, *names: str) -> bool:
        return all(getattr(settings, n) == getattr(self.settings, n) for n in names)

    def _replies(self, settings: Settings) -> Any:
        if self._own(settings, "generation_cache", "cache_dir"):
            return self.cache
        return self._caches.get("generation", settings.generation_cache, settings.cache_dir)

    def _results(self, settings: Settings) -> Any:
        if self._own(settings, "result_cache"):
            return self.results
        return self._caches.get("result", settings.result_cache)

    def _schema_cache(self, settings: Settings) -> SchemaCache:
        with self._lock:
            if settings.schema_cache not in self._schema_caches:
                shared = self._caches.get("schema", settings.schema_cache)
                self._schema_caches[settings.schema_cache] = SchemaCache(shared=shared, timeout=settings.timeout)
            return self._schema_caches[settings.schema_cache]

    def _examples(self, settings: Settings) -> ExampleStore:
        if self._own(settings, "examples_dir"):
            return self.examples_store
        return ExampleStore(settings.examples_dir)

    def _start(self, settings: Settings, connection: Any, namespace: Mapping[str, Any] | None, stats: Stats, *,
               refresh_schema: bool = False, **how: Any) -> Run:
        """Resolve the connection, read the schema (the ``schema`` stage) and make the call's :class:`Run`."""
        conn = self.connections.resolve(connection, namespace)
        progress = how.get("progress") or _no_progress
        how["progress"] = progress
        progress("schema", {})
        with stats.stage("schema"):
            schema = self._schema_cache(settings).get(conn, sample_rows=settings.sample_rows,
                                                      refresh=refresh_schema)
        return Run(settings, conn, schema, replies=self._replies(settings), results=self._results(settings), **how)

    # -- model ------------------------------------------------------------------------------------------------
    def backend(self, settings: Settings | None = None) -> tuple[Any, float | None]:
        """The model backend the settings name (default: this assistant's), loading it on first use, and the
        seconds this call spent loading it (None: already loaded)."""
        from ..models import get_backend

        s = settings or self.settings
        return get_backend(s.model, device=s.device, dtype=s.dtype, backend=s.backend)

    def _deferred(self, settings: Settings) -> Any:
        """The model the settings name as a :class:`~jupyter_nl2sql.models.DeferredBackend` (identified, not
        loaded), or None when it is loaded already, is a model server, or :meth:`backend` is overridden (a test
        double or a subclass serves the questions)."""
        if type(self).backend is not _ASSISTANT_BACKEND:
            return None
        from ..models import defer_backend

        return defer_backend(settings.model, device=settings.device, dtype=settings.dtype, backend=settings.backend)

    def _load_model(self, answer: Answer, run: Run) -> None:
        """Load the run's model (the ``load`` stage, when it was not loaded yet), then what needs it: the prompt as
        the model renders it (``answer.prompt``) and the head whose evaluated state it keeps (``run.prefix``)."""
        run.progress("load", {})
        t0 = time.perf_counter()
        run.backend, load_seconds = self.load(run.settings)
        if load_seconds is not None:
            answer.stats.model_load_seconds = load_seconds
            answer.stats.record("load", time.perf_counter() - t0)
        answer.prompt = run.backend.render_prompt(answer.messages)
        run.prefix = self._prefix(run.backend, run.conn, run.context)
        if answer.provenance:  # loaded after the answer was described: the engine's own record
            answer.provenance.update(run.backend.provenance)

    def prompt_text(self, answer: Answer, settings: Settings | None = None) -> str | None:
        """The prompt ``answer`` sent, as the model renders it (``answer.prompt``): rendered now, loading the model,
        when its reply came from the cache before the model was loaded; None for an answer without messages (a
        refusal)."""
        if answer.prompt is None and answer.messages:
            answer.prompt = self.load(settings)[0].render_prompt(answer.messages)
        return answer.prompt

    def load(self, settings: Settings | None = None) -> tuple[Any, float | None]:
        """:meth:`backend` for a call's settings: ``backend()`` itself when they name this assistant's own model
        (so an override of ``backend()``, a test double or a subclass, serves every such question)."""
        if settings is None or self._own(settings, *MODEL_OPTIONS):
            return self.backend()
        return self.backend(settings)

    # -- public API -------------------------------------------------------------------------------------------
    @_reports_errors
    def ask(self, question: str, connection: Any = None, *, namespace: Mapping[str, Any] | None = None,
            generate_only: bool = False, allow_writes: bool = False, refresh_schema: bool = False,
            cancel: threading.Event | None = None, on_progress: ProgressCallback | None = None,
            follow_up: FollowUp = False, settings: Settings | None = None, **overrides: Any) -> Answer:
        """Answer ``question`` on ``connection`` (URL, alias, Engine, or None for the current connection).

        ``follow_up``: False (default) starts a new conversation on the connection with this question; True
        continues it (the earlier questions and their SQL are shown to the model; with no earlier question,
        :class:`~jupyter_nl2sql.errors.QuestionError`); None continues it when there is one (the magic and the
        panel).  See :mod:`~jupyter_nl2sql.pipeline.conversation`.

        ``settings`` / ``**overrides``: this call's settings (see :meth:`settings_for`), checked first.  Raises
        :class:`~jupyter_nl2sql.errors.Nl2SqlError` for what the user must fix (a refused option, an empty
        question, a bad connection, a missing model).  Problems with the SQL the model wrote come back as
        ``Answer.error``.
        """
        s = self.settings_for(settings, **overrides)
        question = _clean_question(question)
        stats = Stats().start()
        run = self._start(s, connection, namespace, stats, refresh_schema=refresh_schema, cancel=cancel,
                          progress=on_progress, generate_only=generate_only, allow_writes=allow_writes)
        if not run.schema.tables:
            raise QuestionError(f"{run.conn.display_url} has no tables to ask about")
        earlier = self.conversations.context(run.conn.key, follow_up, question)
        verb = None if allow_writes or generate_only else write_request(question)
        said = (f"refused: the question asks to change the database ({verb}); {WAY_OUT}" if verb else
                self._unanswerable(question, run, stats) if s.refuse_missing else None)
        if said:  # a write not allowed, or nothing like it to read: no model call, nothing runs
            answer = Answer(question=question, sql=None, stats=stats,
                            provenance={"connection": run.conn.display_url,
                                        "schema_fingerprint": run.schema.fingerprint})
            answer.error, answer.error_kind = said, "WriteRefused" if verb else "MissingFromSchema"
            return self._finish(self._record_turn(answer, run, earlier), run)
        ctx = run.context = self._context(question, run, stats, earlier)
        answer = Answer(question=question, sql=None, stats=stats, messages=ctx.messages[0],
                        context_turns=len(earlier))
        if len(ctx.tables) < len(run.schema.tables):
            answer.warnings.append(f"schema too large for the prompt: showed the model {len(ctx.tables)} of "
                                   f"{len(run.schema.tables)} tables in full ({', '.join(ctx.tables)})")
        if ctx.schema_chars > s.max_schema_chars:
            answer.warnings.append(f"the schema shown to the model is {ctx.schema_chars:,} characters, over "
                                   f"max_schema_chars={s.max_schema_chars:,}: raise max_schema_chars, lower "
                                   "sample_rows, or ask about fewer tables")
        # a reply the cache may hold needs no model: the engine starts when a reply must be generated
        run.backend = self._deferred(s) if run.replies is not None else None
        if run.backend is None:
            self._load_model(answer, run)
        stats.device = f"{run.backend.device} {run.backend.dtype}"
        answer.provenance = self._provenance(run)
        answer.provenance["context"] = {"examples": [e.id for e in ctx.examples],
                                        "values": [m.render() for m in ctx.matches],
                                        "synonyms": [link.render() for link in ctx.links], "turns": len(earlier)}
        self._solve(answer, run)
        return self._finish(self._record_turn(answer, run, earlier), run)

    def unanswerable(self, question: str, connection: Any = None, *, namespace: Mapping[str, Any] | None = None,
                     settings: Settings | None = None, **overrides: Any) -> str | None:
        """The "can't answer that from this database" line :meth:`ask` would answer ``question`` with, before any
        model call (whatever ``refuse_missing`` says), or None when it would go on; nothing is generated or run."""
        s = self.settings_for(settings, **overrides)
        stats = Stats().start()
        return self._unanswerable(_clean_question(question), self._start(s, connection, namespace, stats), stats)

    def _unanswerable(self, question: str, run: Run, stats: Stats) -> str | None:
        """:func:`~jupyter_nl2sql.pipeline.missing.refusal` for what the question asks about that the schema lacks
        (tables it names, subjects no name, comment, sample or indexed value, nor a WordNet relative of one, is
        like), or None."""
        schema = run.schema
        values = self._value_words(run, stats)
        with stats.stage("refuse"):
            missing = missing_from_schema(question, schema, self.lexicons.get(schema), values)
        return refusal(missing, [t.name for t in schema.tables]) if missing else None

    def _value_words(self, run: Run, stats: Stats) -> frozenset[str]:
        """The words of the database's name and (with ``value_retrieval``) of its indexed values: what the refusals
        count as known besides the schema's names."""
        values = frozenset(identifier_words(_database_name(run.conn)))  # a database is about what it is named
        if run.settings.value_retrieval:  # the index the context reads next: built once
            with stats.stage("values"):
                values |= self.value_indexes.get(run.conn, run.schema).words()
        return values

    def _looked_for(self, question: str, sql: str, run: Run, stats: Stats) -> str | None:
        """The refusal for a question whose SQL, as the model first wrote it, names what no table or column has and
        spells a word of the question that the schema knows nothing like (:mod:`~.invented`); None otherwise."""
        with stats.stage("refuse"):
            names = invented_names(sql, run.schema.mapping(), run.conn.sqlglot_dialect)
            missing = looked_for(question, names, self.lexicons.get(run.schema),
                                 self._value_words(run, stats)) if names else []
        return said_missing(missing, [t.name for t in run.schema.tables]) if missing else None

    def _ungrounded(self, question: str, sql: str, run: Run, stats: Stats) -> str | None:
        """The refusal for a question about something the schema has nothing close to, whose checked query reads
        nothing like it either (:mod:`~.grounding`); None otherwise."""
        with stats.stage("refuse"):
            missing = ungrounded(question, sql, run.schema, run.conn.sqlglot_dialect, self.lexicons.get(run.schema),
                                 self._value_words(run, stats))
        if not missing:
            return None
        read = read_schema(sql, run.schema, run.conn.sqlglot_dialect)
        return said_ungrounded(missing, read, [t.name for t in run.schema.tables])

    def _record_turn(self, answer: Answer, run: Run, earlier: Sequence[Turn]) -> Answer:
        """Add the answered question to its connection's conversation (a new one when it had no context)."""
        # a follow-up adds one message; a refusal was asked nothing (the thread shows its question alone)
        said = tuple((answer.messages or [])[-1:] if earlier else answer.messages or ())
        turn = Turn(answer.question or "", answer.sql, answer.ok, said)
        answer.turn = self.conversations.add(run.conn.key, turn, new=not earlier)
        return answer

    def new_conversation(self, connection: Any = None, *, namespace: Mapping[str, Any] | None = None) -> bool:
        """Start over on ``connection`` (default: the current one): its next question is not a follow-up.
        True when there was a conversation to end."""
        return self.conversations.reset(self.connections.resolve(connection, namespace).key)

    @_reports_errors
    def run_sql(self, sql: str, connection: Any = None, *, namespace: Mapping[str, Any] | None = None,
                allow_writes: bool = False, cancel: threading.Event | None = None,
                settings: Settings | None = None, **overrides: Any) -> Answer:
        """Check and run SQL written by a person (or edited in the panel) under the same safety layers.

        Unlike :meth:`ask`, a failed check or execution raises (the person can fix their SQL).
        """
        s = self.settings_for(settings, **overrides)
        stats = Stats().start()
        run = self._start(s, connection, namespace, stats, cancel=cancel, allow_writes=allow_writes)
        answer = Answer(question=None, sql=sql, stats=stats,
                        provenance={"connection": run.conn.display_url, "schema_fingerprint": run.schema.fingerprint})
        with stats.stage("check"):
            checked = check_sql(sql, dialect=run.conn.sqlglot_dialect, schema=run.schema.mapping(),
                                allow_writes=allow_writes)
        answer.sql = checked.sql
        answer.warnings.extend(checked.warnings)
        self._execute(answer, run, checked)
        if checked.is_write:
            self._schema_cache(s).get(run.conn, sample_rows=s.sample_rows, refresh=True)
        return self._finish(answer, run)

    def teach(self, question: str, sql: str, connection: Any = None, *,
              namespace: Mapping[str, Any] | None = None, settings: Settings | None = None) -> StoredExample:
        """Save a worked example for ``connection``'s database: later questions like ``question`` are shown it.

        The SQL is checked (read-only policy; tables and columns exist) and run once, read-only, before it is
        saved; a problem raises :class:`~jupyter_nl2sql.errors.Nl2SqlError` with a one-line message.  Examples are
        kept per database (schema fingerprint and password-free URL) in the settings' ``examples_dir``; teaching
        the same question again replaces its SQL.
        """
        question = _clean_question(question)
        if not isinstance(sql, str) or not sql.strip():
            raise QuestionError("the example's SQL is empty: give the query that answers the question")
        run, store = self._taught(connection, namespace, settings)
        checked = check_sql(sql, dialect=run.conn.sqlglot_dialect, schema=run.schema.mapping(), allow_writes=False)
        if checked.kind == "explain":
            raise QuestionError("teach a query, not an EXPLAIN")
        execute(run.conn, checked.sql, row_cap=1, timeout=run.settings.timeout, allow_writes=False)
        return store.add(run.schema.fingerprint, run.conn.display_url, question, checked.sql)

    def examples(self, connection: Any = None, *, namespace: Mapping[str, Any] | None = None,
                 settings: Settings | None = None) -> list[StoredExample]:
        """The examples taught for ``connection``'s database, oldest first."""
        run, store = self._taught(connection, namespace, settings)
        return store.list(run.schema.fingerprint, run.conn.display_url)

    def forget(self, example_id: str, connection: Any = None, *,
               namespace: Mapping[str, Any] | None = None, settings: Settings | None = None) -> bool:
        """Remove a taught example by its id (or a prefix of it); True when one was removed."""
        run, store = self._taught(connection, namespace, settings)
        return store.remove(run.schema.fingerprint, run.conn.display_url, str(example_id).strip())

    def _taught(self, connection: Any, namespace: Mapping[str, Any] | None, settings: Settings | None
                ) -> tuple[Run, TaughtStore]:
        """The database (its :class:`Run`) and the store of its taught examples, for these settings."""
        s = self.settings_for(settings)
        return self._start(s, connection, namespace, Stats()), self._examples(s).taught

    def on_answer(self, callback: Callable[[Answer], None]) -> Callable[[], None]:
        """Call ``callback(answer)`` after every answer (the panel uses it to share the history).

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
    def _solve(self, answer: Answer, run: Run) -> None:
        """One attempt (:meth:`_attempt`); with ``candidates`` > 1, one attempt per prompt variant, keeping the
        result most of them agree on (ties: the model's score, then the earlier prompt)."""
        ctx = run.context
        variants = ctx.messages[:1] if run.generate_only else ctx.messages[:run.settings.candidates]
        if len(variants) <= 1:
            told = len(answer.warnings)
            self._attempt(answer, run, answer.messages or variants[0])
            if not run.generate_only:
                self._second_look(answer, run)
            if run.dropped and answer.ok:  # told in a warning; the level says it too
                answer.confidence = (answer.confidence or Confidence("high")).lowered(
                    "the repaired query dropped " + ", ".join(run.dropped) + " that the question asks for")
            elif answer.ok and answer.confidence is not None and answer.executed:
                dialect = run.conn.sqlglot_dialect
                doubt = _doubt(answer, [w for w in answer.warnings[told:] if w not in run.notes]) or \
                    self._unshown(answer, run) or unmet_asks(answer.question or "", answer.sql or "", dialect) or \
                    join_doubt(answer.sql or "", dialect) or self._unread(answer, run)
                if doubt:
                    answer.confidence = answer.confidence.capped("medium", doubt)
            return
        tries: list[Answer] = []
        for i, messages in enumerate(variants):
            if tries and run.cancelled:
                break
            run.progress("candidate", {"candidate": i, "of": len(variants)})
            attempt = Answer(question=answer.question, sql=None, stats=answer.stats, messages=messages)
            self._attempt(attempt, run, messages)
            tries.append(attempt)
        best, votes, by_score = vote(tries)
        answer.sql, answer.dataframe, answer.error, answer.error_kind = best.sql, best.dataframe, best.error, \
            best.error_kind
        answer.score = best.score
        answer.rowcount, answer.truncated, answer.executed = best.rowcount, best.truncated, best.executed
        answer.messages = best.messages
        answer.warnings.extend(best.warnings)
        answer.candidates = [sql for t in tries for sql in t.candidates]
        if len(tries) > 1:
            tie = "; a tie, decided by the model's score" if by_score else ""
            answer.warnings.append(f"wrote {len(tries)} candidate queries; {votes} of them agree on this result{tie}")
            answer.confidence = Confidence.of_votes(votes, len(tries), runner_up=_runner_up(tries, best))

    def _unshown(self, answer: Answer, run: Run) -> str:
        """Why the answer does not show what the question asks for ("" when it does, as far as can be read): an
        attribute asked for that nothing in the query's result is like (:func:`~.shown.unshown_attributes`)."""
        missing = unshown_attributes(answer.question or "", answer.sql or "", run.conn.sqlglot_dialect,
                                     self.lexicons.get(run.schema))
        if not missing:
            return ""
        return f"the question asks for {' and '.join(missing)}; nothing the query shows is like it"

    def _unread(self, answer: Answer, run: Run) -> str:
        """Why the answer may have read the wrong table ("" when not): the question names a table the query does
        not read (:func:`~.shown.unread_tables`)."""
        unread = unread_tables(answer.question or "", answer.sql or "", run.conn.sqlglot_dialect,
                               [t.name for t in run.schema.tables])
        if not unread:
            return ""
        them = "it" if len(unread) == 1 else "them"
        return f"the question names {' and '.join(unread)}; the query does not read {them}"

    def _second_look(self, answer: Answer, run: Run) -> None:
        """Where the model hesitated while writing the answer's SQL (a token below ``unsure_below``), continue its
        reply from up to ``alternatives`` of those places with the runner-up token (the prompt is not evaluated
        again), run each query, and keep the result most of them agree on (the first query wins a tie); the
        answer's :class:`~.confidence.Confidence` says how many agree."""
        s = run.settings
        if run.hesitated is None or answer.error_kind in ("WriteRefused", "MissingFromSchema") or run.cancelled:
            return
        messages, points = run.hesitated
        lowest = lowest_in_sql(points)
        unsure = hesitations(points, s.unsure_below)
        places = unsure[:s.alternatives]
        if not places:
            if points or answer.score is not None:  # else the backend cannot tell
                answer.confidence = Confidence("low" if not answer.ok else "medium" if unsure else "high",
                                               lowest=lowest)
            return
        tries, tried = [answer], []
        for i, place in enumerate(places):
            if run.cancelled:
                break
            run.progress("alternative", {"alternative": i + 1, "of": len(places)})
            trial = Answer(question=answer.question, sql=None, stats=answer.stats, messages=messages)
            try:
                trial.sql = self._generate(trial, run, messages, reply_start=place.reply_before + place.alternative)
                checked = self._refined(trial, run, self._check(trial, run, trial.sql, allow_writes=False))
                trial.sql = checked.sql
                if checked.kind == "explain":
                    continue
                self._execute(trial, run, checked)
                trial.warnings.extend(checked.warnings)
            except (SQLCheckError, ExecutionError, WriteRefused) as exc:
                trial.fail(exc)
            trial.score = None  # a continuation's score is not comparable with a whole reply's: ties go to the first
            tries.append(trial)
            tried.append(place.p_chosen)
        answer.candidates.extend(t.sql for t in tries[1:] if t.sql)
        best, votes, _ = vote(tries)
        runner_up = _runner_up(tries, best)  # before the answer takes the winner's result
        if best is not answer:
            answer.sql, answer.dataframe, answer.error, answer.error_kind = best.sql, best.dataframe, None, None
            answer.rowcount, answer.truncated, answer.executed = best.rowcount, best.truncated, best.executed
            answer.warnings.extend(best.warnings)
            answer.warnings.append(f"the model hesitated; took the result {votes} of {len(tries)} candidate queries "
                                   "agree on instead of its first query's")
        answer.confidence = Confidence.of_votes(votes, len(tries), lowest=lowest, runner_up=runner_up,
                                                places=tuple(tried))

    def _attempt(self, answer: Answer, run: Run, messages: list[dict]) -> None:
        """Generate, check, execute; on a failed check or execution, feed the error back (bounded rounds); on an
        empty result although the question names database values, one more round with their spellings."""
        s = run.settings
        for round_no in range(s.repair_rounds + 1):
            run.progress("generate", {"round": round_no})
            sql = self._generate(answer, run, messages)
            answer.sql = sql
            answer.candidates.append(sql)
            try:
                checked = self._refined(answer, run, self._check(answer, run, sql))
                answer.sql = checked.sql
                answer.warnings.extend(checked.warnings)
                if round_no:  # a repair: did it drop what the question asked for?
                    lost = dropped_asks(answer.question or "", answer.candidates[0], checked.sql,
                                        run.conn.sqlglot_dialect)
                    run.dropped = lost
                    if lost:
                        answer.warnings.append("the repaired query no longer has " + ", ".join(lost) + ", which "
                                               "the question asks for: check that it answers the question")
                if checked.is_write:
                    answer.warnings.append(WRITE_NOTE)
                    run.notes.append(WRITE_NOTE)
                alone = not round_no and not answer.context_turns and not checked.is_write  # a first query, no thread
                said = self._ungrounded(answer.question or "", checked.sql, run, answer.stats) \
                    if alone and s.refuse_ungrounded else None
                if said:  # the question asks about what the database lacks, and the query read something else
                    answer.sql, answer.error, answer.error_kind = None, said, "MissingFromSchema"
                    return
                if run.generate_only:
                    answer.error = answer.error_kind = None
                    return
                run.progress("execute", {})
                self._execute(answer, run, checked)
                answer.error = answer.error_kind = None
                if (not checked.is_write and checked.kind != "explain" and _found_nothing(answer.dataframe)
                        and not run.cancelled):
                    if s.fix_values and self._respell(answer, run, checked.sql):
                        return
                    if s.repair_empty and run.context.hints:
                        self._repair_empty(answer, run, messages, checked.sql)
                return
            except WriteRefused as exc:
                answer.fail(exc)
                return
            except (SQLCheckError, ExecutionError) as exc:
                answer.fail(exc)
                if run.cancelled:
                    return
                said = (self._looked_for(answer.question or "", sql, run, answer.stats)
                        if isinstance(exc, SQLCheckError) and not round_no and s.refuse_invented else None)
                if said:  # the model looked for what the database lacks: say so rather than repair into another thing
                    answer.sql, answer.error, answer.error_kind = None, said, "MissingFromSchema"
                    return
                if round_no < s.repair_rounds:
                    answer.warnings.append(f"first SQL failed ({exc}); asked the model to repair it")
                    # without the examples: names copied from another database's example are a common cause
                    plain = run.context.plain
                    base = plain if plain is not None and round_no == 0 else messages
                    messages = repair_messages(base, sql, str(exc) + _owners_hint(str(exc), run.schema))

    def _repair_empty(self, answer: Answer, run: Run, messages: list[dict], sql: str) -> None:
        """The query ran but found nothing although the question names values: ask once more with the values'
        spellings; keep the new query only if it checks, runs and returns rows."""
        run.progress("generate", {"round": "empty result"})
        new_sql = self._generate(answer, run, empty_result_messages(messages, sql, run.context.hints))
        answer.candidates.append(new_sql)
        self._instead(answer, run, new_sql,
                      note="the first query returned no rows; the model rewrote it with the database's spelling of "
                           "the values the question mentions")

    def _respell(self, answer: Answer, run: Run, sql: str) -> bool:
        """The query found nothing: compare its string literals with the column's own values and, where exactly
        one is the same up to case, accents, dashes and spacing, use it (no model call); True when that finds rows."""
        with answer.stats.stage("values"):
            index = self.value_indexes.get(run.conn, run.schema)
            fixed = fix_values(sql, run.schema.mapping(), index.spelling, run.conn.sqlglot_dialect)
        if not fixed.changed:
            return False
        return self._instead(answer, run, fixed.sql,
                             note="the query found nothing; used the database's spelling of its values: "
                                  + "; ".join(fixed.changes))

    def _instead(self, answer: Answer, run: Run, sql: str, *, note: str) -> bool:
        """Check and run ``sql`` in place of a query that found nothing; keep it (with ``note`` among the answer's
        warnings) only if it returns rows.  True when kept."""
        trial = Answer(question=answer.question, sql=None, stats=answer.stats)
        try:
            checked = self._check(trial, run, sql, allow_writes=False)
            if checked.kind == "explain":
                return False
            self._execute(trial, run, checked)
        except (SQLCheckError, ExecutionError, WriteRefused):
            return False
        if _found_nothing(trial.dataframe):
            return False
        answer.sql, answer.dataframe = checked.sql, trial.dataframe
        answer.rowcount, answer.truncated = trial.rowcount, trial.truncated
        answer.warnings.extend(checked.warnings + trial.warnings + [note])
        return True

    def _check(self, answer: Answer, run: Run, sql: str, *, allow_writes: bool | None = None) -> CheckedSQL:
        """:func:`check_sql`; when it refuses a name and ``fix_names`` finds the one the model meant, the corrected
        SQL (with a warning saying what changed).  A correction that still fails the check raises the first error,
        which is what the model's repair round is told."""
        writes = run.allow_writes if allow_writes is None else allow_writes
        dialect = run.conn.sqlglot_dialect
        with answer.stats.stage("check"):
            ported = portable_date_parts(sql, dialect)
            if ported is not None:  # a translation, not a mend: the answer's confidence is not lowered for it
                sql = ported.sql
                note = "wrote the date parts in this database's words: " + "; ".join(ported.changes)
                answer.warnings.append(note)
                run.notes.append(note)
            mapping = run.schema.mapping()
            try:
                return check_sql(sql, dialect=dialect, schema=mapping, allow_writes=writes)
            except SQLCheckError as first:
                fixed = fix_names(sql, mapping, dialect, run.schema.links()) if run.settings.fix_names else None
                fixed = _mended(fixed or NameFix(sql), dialect)
                if not fixed.changed:
                    raise
                try:
                    checked = check_sql(fixed.sql, dialect=dialect, schema=mapping, allow_writes=writes)
                except SQLCheckError:
                    raise first from None
        answer.warnings.append("corrected the model's SQL: " + "; ".join(dict.fromkeys(fixed.changes)))
        return checked

    def _refined(self, answer: Answer, run: Run, checked: CheckedSQL) -> CheckedSQL:
        """The query with its fractional columns rounded as the question asks (``round_as_asked``, :mod:`~.rounding`);
        for a follow-up, also with the previous query's conditions it dropped unasked (``keep_conditions``) and
        without a LIMIT its question did not ask for (``drop_unasked_limit``); each change checked again and said in
        a warning (:mod:`~.refinements`); else ``checked`` as it is (also for a question that does not read as a
        follow-up, :func:`~.conversation.looks_like_follow_up`)."""
        if checked.is_write or checked.kind == "explain":
            return checked
        s, question, dialect = run.settings, answer.question or "", run.conn.sqlglot_dialect
        decimals = asked_decimals(question) if s.round_as_asked else None
        rounded = rounded_as_asked(checked.sql, decimals, dialect) if decimals is not None else None
        grouped = top_per_group(rounded[0] if rounded else checked.sql, question, dialect) if s.top_per_group \
            else None
        previous = run.context.previous_sql if run.context is not None else None
        follow_up = bool(previous) and looks_like_follow_up(question)  # else as the model wrote it
        if rounded is None and grouped is None and not follow_up:
            return checked
        mapping = run.schema.mapping()

        def changed(sql: str, note: str) -> CheckedSQL:  # ``sql`` checked in its place (kept as it was if it fails)
            try:
                new = check_sql(sql, dialect=dialect, schema=mapping, allow_writes=False)
            except SQLCheckError:
                return checked
            answer.warnings.append(note)
            return new

        if rounded is not None:
            checked = changed(rounded[0], f"rounded {', '.join(rounded[1])} to {decimals} decimal"
                                          f"{'' if decimals == 1 else 's'} as the question asks")
        if grouped is not None:
            checked = changed(grouped[0], f"kept the top rows of each {grouped[1]} as the question asks (the "
                                          f"model's query ranked all rows together)")
        if not follow_up:
            return checked
        if s.keep_conditions:
            kept = kept_conditions(checked.sql, previous, question, dialect, mapping)
            if kept is not None:
                checked = changed(kept[0], "kept the previous query's conditions that the follow-up did not lift: "
                                           + "; ".join(kept[1]))
        if s.drop_unasked_limit:
            sql = unasked_limit(checked.sql, previous, question, dialect)
            if sql is not None:
                checked = changed(sql, "ran the query without its LIMIT: the follow-up did not ask for a number of "
                                       "rows and the previous query returned them all")
        return checked

    def _generate(self, answer: Answer, run: Run, messages: list[dict], reply_start: str = "") -> str:
        """The SQL of the model's greedy reply to ``messages`` (remembered in the generation cache), its cost in
        ``answer.stats`` and its score in ``answer.score``.  ``reply_start``: the reply's first characters, taken as
        written (another way at a place the model hesitated); without it, where the model hesitated goes to
        ``run.hesitated``."""
        backend, cache, cancel = run.backend, run.replies, run.cancel
        max_new_tokens = run.settings.max_new_tokens
        identity = model_identity(backend.provenance)
        how = {"greedy": True, "max_new_tokens": max_new_tokens, **({"reply_start": reply_start} if reply_start else {})}
        key = cache_key(identity, messages, how)
        persist = persistent_identity(identity)  # only content-addressed models go to the disk store
        cached = cache.get(key, persist=persist) if cache is not None else None
        if cached is None and getattr(backend, "deferred", False):  # a reply to write: the model is needed now
            self._load_model(answer, run)
            backend = run.backend
        lead = False
        with answer.stats.stage("generate"):
            if cached is None and cache is not None:
                # the same prompt already being generated for another caller: wait for that reply
                lead = self._in_flight.claim(key, cancel)
                # a waiter reads the reply the leader stored (None if that caller failed: generate here); a new
                # leader looks again too (uncounted unless found), since another caller may have finished between
                # the miss and the claim
                if not lead or cache.lookup(key, persist=persist) is not None:
                    cached = cache.get(key, persist=persist)
            try:
                if cached is not None:
                    answer.stats.cache_hit = True
                    text = cached["text"]
                    answer.score = cached.get("logprob")
                    points = tuple(BranchPoint(*p) for p in cached.get("points") or ())
                else:
                    extra = {"cancel": cancel} if cancel is not None and accepts_cancel(backend.generate) else {}
                    if reply_start:
                        extra["reply_start"] = reply_start
                    if run.prefix is not None:  # the backend keeps prefix states (see _prefix)
                        extra["prefix"] = run.prefix
                        extra["progress"] = functools.partial(_prefill_then_decode, run)
                    gen = backend.generate(messages, max_new_tokens=max_new_tokens, **extra)  # may raise
                    answer.stats.add_generation(gen)
                    text, points = gen.text, tuple(gen.branch_points)
                    answer.score = gen.logprob
                    if cache is not None:
                        cache.put(key, {"text": text, "tokens_in": gen.tokens_in, "tokens_out": gen.tokens_out,
                                        "logprob": gen.logprob, "points": [p.to_list() for p in points]},
                                  persist=persist)
            finally:
                if lead:
                    self._in_flight.release(key)
        if not reply_start:
            run.hesitated = (messages, points)
        return extract_sql(text)

    def _execute(self, answer: Answer, run: Run, checked: CheckedSQL) -> None:
        """Run checked SQL (the ``execute`` and ``fetch`` stages); a read-only query goes through the opt-in result
        cache first, and its result into it after."""
        write = checked.is_write
        cache = run.results if not write else None  # writes are never cached nor answered from the cache
        with answer.stats.stage("execute"):
            result = self._cached_result(run, checked.sql) if cache is not None else None
            if result is None:
                result = execute(run.conn, checked.sql, row_cap=run.row_cap, timeout=run.settings.timeout,
                                 allow_writes=write, cancel=run.cancel, stream=checked.kind != "explain" and not write,
                                 max_result_bytes=run.settings.max_result_bytes)
                if cache is not None and result.dataframe is not None:
                    cache.put(run.conn.key, run.schema.fingerprint, checked.sql, run.row_cap, result.dataframe,
                              result.truncated, result.rowcount)
        answer.stats.result_cache_hit = None if cache is None else bool(getattr(result, "cached", False))
        answer.stats.stages["execute"].seconds -= result.fetch_seconds
        answer.stats.record("fetch", result.fetch_seconds)
        answer.dataframe = result.dataframe
        answer.rowcount = result.rowcount
        answer.truncated = result.truncated
        answer.executed = True
        if result.truncated:
            note = getattr(result, "note", None) or (f"result truncated to the first {run.row_cap} rows (row cap); "
                                                     "raise it with --limit or narrow the question")
            answer.warnings.append(note)
            run.notes.append(note)

    @staticmethod
    def _cached_result(run: Run, sql: str) -> ExecutionResult | None:
        """The result cache's entry for ``sql`` as an :class:`ExecutionResult` (``cached`` set), or None."""
        t0 = time.perf_counter()
        hit = run.results.get(run.conn.key, run.schema.fingerprint, sql, run.row_cap)
        if hit is None:
            return None
        result = ExecutionResult(hit["dataframe"], hit["truncated"], hit["rowcount"], time.perf_counter() - t0, 0.0)
        result.cached = True  # type: ignore[attr-defined]
        return result

    # -- context: values, examples, schema text, prompt variants ----------------------------------------------
    def pool(self, settings: Settings | None = None) -> Any:
        """The example pool the settings name (``example_pool``, loaded on first use), or None."""
        s = settings or self.settings
        return self._examples(s).pool(s.example_pool)

    def _context(self, question: str, run: Run, stats: Stats, earlier: Sequence[Turn] = ()) -> _Context:
        """Values the question mentions, examples like it, the schema text, and the prompt(s); ``earlier``: the
        conversation's turns a follow-up is asked with (shown after the schema; their questions also pick the
        tables of a schema too large to show whole)."""
        s, conn, schema = run.settings, run.conn, run.schema
        index = None
        matches: list[ValueMatch] = []
        vocab = schema_vocabulary([t.name for t in schema.tables], [c.name for t in schema.tables for c in t.columns])
        if s.value_retrieval or s.column_values:
            run.progress("values", {})
            with stats.stage("values"):
                index = self.value_indexes.get(conn, schema)
                if s.value_retrieval:
                    matches = index.match(question, ignore_words=vocab)
        hints = render_matches(matches, conn.dialect)
        links: list[SynonymLink] = []
        if s.synonym_linking:
            with stats.stage("synonyms"):
                linker = self.synonym_linkers.get(schema)
                if linker is not None:
                    links = linker.link(question, ignore=[m.span for m in matches] + _quoted(question))
        # what the prompt says just before the question: the values' spellings, then the words that mean the schema
        said = "\n".join(part for part in (hints, render_links(links)) if part)
        taught: list[StoredExample] = []
        taught_masked: list[list[str]] = []
        pool = None
        masked: list[str] = []
        exclude = [_database_name(conn)]
        if s.few_shot and not earlier:  # a follow-up's examples are those its conversation's first prompt shows
            with stats.stage("examples"):
                masked = mask_question(question, vocab, [m.span for m in matches] + _quoted(question))
                store = self._examples(s)
                taught = store.taught.list(schema.fingerprint, conn.display_url)
                taught_masked = [mask_question(e.question, vocab, sql_literals(e.sql)) for e in taught]
                pool = store.pool(s.example_pool)

        def shots(skip: int) -> list[StoredExample]:
            if not s.few_shot:
                return []
            return select_examples(masked, s.few_shot, taught=taught, taught_masked=taught_masked, pool=pool,
                                   exclude_db=exclude, skip=skip)

        linked = " ".join([*(t.question for t in earlier), question])

        must = [m.table for m in matches] + [link.table for link in links if link.table]

        def schema_text(values_for: Any, layout: str) -> tuple[str, list[str]]:
            return fit_schema(schema, linked, max_chars=s.max_schema_chars, sample_rows=s.sample_rows,
                              values_for=values_for, must=must, linking=s.schema_linking, layout=layout)

        with stats.stage("prompt"):
            values_for = None
            if s.column_values and index is not None:
                k = s.column_values
                values_for = lambda table, column: index.column_values(table, column, k)  # noqa: E731
            layout = s.prompt_layout
            text, tables = schema_text(values_for, layout)
            if earlier:  # a follow-up: the next message of the conversation's chat, one prompt
                # a turn that asked nothing (a refusal) is shown as its question alone
                opening = earlier[0].messages or tuple(build_messages(earlier[0].question, text, conn.dialect, (),
                                                                      "", layout))
                thread = [(opening, _kept_sql(earlier[0])),
                          *((t.messages or (follow_up_message(t.question, "", layout),), _kept_sql(t))
                            for t in earlier[1:])]
                prompts = [follow_up_messages(thread, question, said, layout)]
                return _Context(prompts, tables, matches, hints, [], None, text, layout,
                                previous_sql=_kept_sql(earlier[-1]) or "", links=links)
            examples = shots(0)
            prompts = [build_messages(question, text, conn.dialect, _as_prompt(examples), said, layout)]
            plain = build_messages(question, text, conn.dialect, (), said, layout) if examples else None
            # more candidates: the next-best examples; without examples, the other way of showing values, then
            # the other prompt layout
            for i in range(1, s.candidates):
                if examples:
                    more = shots(i * s.few_shot)
                    if not more:
                        break
                    prompts.append(build_messages(question, text, conn.dialect, _as_prompt(more), said, layout))
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
                alt_text, _ = schema_text(shown, style)
                prompts.append(build_messages(question, alt_text, conn.dialect, (), said, style))
        return _Context(prompts, tables, matches, hints, examples, plain, text, layout, links=links)

    # -- helpers ----------------------------------------------------------------------------------------------
    def _prefix(self, backend: Any, conn: Connection, ctx: _Context) -> str | None:
        """The head every prompt over this schema text shares (:func:`~.prompting.prompt_head`), when ``backend``
        keeps the evaluated state of such heads (``generate(..., prefix=...)``); None otherwise."""
        if not callable(getattr(backend, "warm", None)) or not accepts_keyword(backend.generate, "prefix"):
            return None
        key = (id(backend), conn.dialect, ctx.layout, ctx.schema_text)
        with self._lock:
            head = self._heads.get(key)
        if head is None:
            head = prompt_head(backend.render_prompt, ctx.schema_text, conn.dialect, ctx.layout)
            with self._lock:
                if len(self._heads) >= 256:  # one per database and layout: a bound, not a working set
                    self._heads.pop(next(iter(self._heads)))
                self._heads[key] = head
        return head

    @_reports_errors
    def warm(self, connection: Any = None, *, namespace: Mapping[str, Any] | None = None,
             cancel: threading.Event | None = None, on_progress: ProgressCallback | None = None,
             settings: Settings | None = None, **overrides: Any) -> Any:
        """Make the first question on ``connection`` fast: read its schema, load the model and bring the prompt's
        schema part into the model's cache — restored from its state file when any process computed it before,
        else evaluated now and saved.  The magic and the panel call it in the background when a connection is
        made, while the user types.

        Returns the backend's report (``source``: resident, restored, computed or none; ``tokens``; ``seconds``),
        or None when the backend keeps no prefix states.  Raises like :meth:`ask`;
        :class:`~jupyter_nl2sql.errors.Cancelled` when ``cancel`` is set.
        """
        s = self.settings_for(settings, **overrides)
        stats = Stats().start()
        run = self._start(s, connection, namespace, stats, cancel=cancel, progress=on_progress)
        if not run.schema.tables:
            return None
        ctx = self._context("How many rows are there?", run, stats)
        run.backend, _ = self.load(s)
        head = self._prefix(run.backend, run.conn, ctx)
        if head is None:
            return None
        return run.backend.warm(head, cancel=cancel,
                                progress=lambda done, total: run.progress("prefill", {"done": done, "total": total}))

    def _provenance(self, run: Run) -> dict[str, Any]:
        return {**run.backend.provenance, "schema_fingerprint": run.schema.fingerprint,
                "connection": run.conn.display_url,
                "decoding": {"strategy": "greedy", "max_new_tokens": run.settings.max_new_tokens},
                "jupyter_nl2sql": __version__,
                "time": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}

    def _finish(self, answer: Answer, run: Run) -> Answer:
        role_warning = run.conn.role_warning_once()  # a role that may write: told on the connection's first answer
        if role_warning:
            answer.warnings.insert(0, role_warning)
        if answer.sql:
            with answer.stats.stage("explain"):
                answer.explanation = explain_sql(answer.sql, run.conn.sqlglot_dialect)
        answer.stats.finish()
        self.history.append(answer)
        for callback in list(self._listeners):
            callback(answer)
        return answer


#: The model loading of :meth:`Assistant.backend` as defined here: a replaced one (a test double, a subclass's) is
#: never deferred.
_ASSISTANT_BACKEND = Assistant.backend


@dataclass
class _Context:
    """What :meth:`Assistant.ask` puts in front of the model: the prompt variants (the first is the main one), the
    tables shown in full, the values found in the question and their prompt lines (``hints``: what a query that
    found nothing is repaired with), and the examples shown."""

    messages: list[list[dict]]
    tables: list[str]
    matches: list[ValueMatch]
    hints: str
    examples: list[StoredExample]
    plain: list[dict] | None = None
    """The main prompt without examples (repairs start from it), or None when no examples were shown."""
    schema_text: str = ""
    """The schema part of the main prompt."""
    layout: str = "sql"
    """The main prompt's layout."""
    previous_sql: str | None = None
    """A follow-up: the SQL kept for the turn before ("" when that turn has none); None for a question that
    starts a conversation."""
    links: list[SynonymLink] = field(default_factory=list)
    """The question's words that mean a table or column in other words (``synonym_linking``), said in the
    prompt after the value hints."""

    @property
    def schema_chars(self) -> int:
        """Length of the schema part of the main prompt."""
        return len(self.schema_text)


def _as_prompt(examples: list[StoredExample]) -> list[Example]:
    return [Example(e.question, e.sql) for e in examples]


def _kept_sql(turn: Turn) -> str | None:
    """The SQL a later follow-up is shown for ``turn``: none when it did not work (no model for the next query)."""
    return turn.sql if turn.ok else None


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


def _doubt(answer: Answer, mended: list[str]) -> str:
    """Why an answer the model wrote without hesitating is still not sure ("" when nothing says so): the pipeline
    had to mend or re-ask its query (``mended``: those warnings), or the query found nothing.  On stored Spider runs
    such answers were wrong far more often than the rest, so their confidence is medium at most."""
    if mended:
        return "the model's query needed mending: " + mended[0]
    return "the query found nothing" if _found_nothing(answer.dataframe) else ""


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


def _runner_up(tries: list[Answer], best: Answer) -> str | None:
    """The SQL of the first attempt whose result differs from ``best``'s (a failed one last), None when all agree."""
    chosen = _result_key(best)
    others = [t for t in tries if t.sql and _result_key(t) != chosen]
    others.sort(key=lambda t: _result_key(t) is None)
    return others[0].sql if others else None


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


_default: Assistant | None = None
_default_lock = threading.Lock()


def get_assistant() -> Assistant:
    """The process-wide assistant shared by the magic and the widget."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Assistant()
        return _default


#: Deterministic mends of SQL the checker refused, tried after the names (each: the SQL, or None when it does not
#: apply), and what each change is called in the answer's warnings.
MENDS: tuple[tuple[Callable[[str, str], str | None], str], ...] = (
    (nest_windows, "window aggregates over the groups' aggregates (SUM(SUM(x)) OVER)"),
    (intersected, "one query per value, intersected (no row has both values)"),
)


def _mended(fixed: NameFix, dialect: str) -> NameFix:
    """``fixed`` after every :data:`MENDS` entry that applies to its SQL, each change added to its list."""
    for mend, note in MENDS:
        sql = mend(fixed.sql, dialect)
        if sql is not None:
            fixed = NameFix(sql, [*fixed.changes, note])
    return fixed


def _prefill_then_decode(run: Run, done: int, total: int) -> None:
    """Report the prompt's evaluation as ``prefill`` and, once it is complete, the model writing as ``generate``."""
    if done < total:
        run.progress("prefill", {"done": done, "total": total})
    else:
        run.progress("generate", {})
