"""The ipywidgets panel: ask, review and run SQL with a few clicks (``%nl2sql panel`` / ``jupyter_nl2sql.panel()``).

The panel is a front end of the one pipeline: **Generate** calls ``Assistant.ask(..., generate_only=True)``,
**Run** calls ``Assistant.ask`` for a new question or ``Assistant.run_sql`` for SQL that is shown (edited or as
generated), so the panel applies the same checks and read-only layers as the magic.

Responsiveness: a click only changes the panel's state (status line, buttons disabled) and starts a worker
thread; the schema, the model and the database run in that thread, and report their stage through
``on_progress``.  **Cancel** sets the job's ``cancel`` event (the pipeline and the database query watch it),
abandons the job and gives the panel back at once; whatever the abandoned thread still produces is discarded.

Picking a database in the menu (or adding one) starts its background warm-up
(:mod:`jupyter_nl2sql.frontends.warming`): the status line says what it is doing, with a bar while the schema is
evaluated, until a click takes the status line over.  Opening the panel warms nothing by itself.

History is the assistant's own (``assistant.history`` plus ``assistant.on_answer``), so questions asked with
``%%nl2sql`` appear in the panel too.  A question that reads as a follow-up continues the earlier ones on its
database (its history entry is marked ``↳``); **New conversation** starts over.  Every problem the user can act on is shown inline in
plain words; the panel stays usable.

Testing without a browser: ``p = panel("demo"); p.question.value = "..."; p.run_button.click(); p.wait()``.
"""

from __future__ import annotations

import keyword
import threading
import time
import weakref
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import ipywidgets as w

from ..errors import (
    Cancelled,
    ConfigError,
    ConnectionFailed,
    ExecutionError,
    ModelError,
    Nl2SqlError,
    QuestionError,
    SQLCheckError,
    WriteRefused,
)
from ..pipeline.conversation import thread_label
from ..settings import Settings
from . import charts, render
from .warming import WarmJob, warmer

#: Rows per page of the result table (choices offered in the page-size menu).
PAGE_SIZES = (10, 20, 50, 100)
DEFAULT_PAGE_SIZE = 20

#: The stages ``Assistant.ask`` reports through ``on_progress``, as the panel names them.
STAGES = (("schema", "schema"), ("load", "model"), ("generate", "SQL"), ("execute", "run"))
STAGE_TEXT = {
    "schema": "Reading the database schema…",
    "load": "Getting the model ready…",
    "generate": "The model is writing SQL…",
    "execute": "Running the query…",
}

_TABLE_STYLE = """<style>
.nl2sql-table-box {max-height: 480px; overflow: auto;}
.nl2sql-table-box table {border-collapse: collapse; font-size: 12px; font-family: var(--jp-code-font-family, monospace);}
.nl2sql-table-box th, .nl2sql-table-box td {border: 1px solid #d0d0d0; padding: 2px 8px; text-align: right;
  white-space: nowrap;}
.nl2sql-table-box th {background: #f2f2f2; position: sticky; top: 0;}
</style>"""


@dataclass
class _Job:
    """One Generate / Run / Add-connection click, done in a worker thread."""

    kind: str  # "generate", "ask", "sql", "connect"
    cancel: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)
    started: float = field(default_factory=time.perf_counter)
    stage: str | None = None
    stages_done: list[str] = field(default_factory=list)
    info: Mapping[str, Any] = field(default_factory=dict)
    thread: threading.Thread | None = None


_esc = render.escape


def plain_error(exc: BaseException) -> str:
    """A one-line, plain-words explanation of ``exc`` for the panel (no traceback)."""
    message = str(exc).strip().rstrip(".") or type(exc).__name__
    end = "" if message.endswith(("?", "!")) else "."
    if isinstance(exc, WriteRefused):
        return f"Not run, because it would change the database: {message}"
    if isinstance(exc, SQLCheckError):
        return f"The SQL was not run: {message}{end} Fix the SQL and press Run."
    if isinstance(exc, ExecutionError):
        if message == "cancelled":
            return "Cancelled."
        return f"The database could not run the query: {message}"
    if isinstance(exc, ConnectionFailed):
        return f"Cannot use that database: {message}"
    if isinstance(exc, ModelError):
        return f"The model is not available: {message}"
    if isinstance(exc, QuestionError):
        return message[:1].upper() + message[1:]
    if isinstance(exc, Nl2SqlError):
        return message
    return f"Something went wrong ({type(exc).__name__}: {message}); the panel is still usable."


def _close_tree(widget: Any) -> None:
    """Close a widget and its descendants (not every widget of the kernel, as ``Widget.close_all`` would)."""
    for child in getattr(widget, "children", ()):
        _close_tree(child)
    widget.close()


def _user_shell() -> Any | None:
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython is a dependency
        return None
    return get_ipython()


def _magics() -> Any | None:
    """The ``Nl2SqlMagics`` configurable of the running shell, when the extension is loaded."""
    shell = _user_shell()
    for configurable in getattr(shell, "configurables", []) if shell is not None else []:
        if type(configurable).__name__ == "Nl2SqlMagics":
            return configurable
    return None


def _magic_default_connection() -> str | None:
    magics = _magics()
    return getattr(magics, "default_connection", None) if magics is not None else None


class Nl2SqlPanel:
    """The panel's widgets and behaviour; display it (it is the last expression of a cell) or use ``.widget``.

    Attributes tests and notebooks may drive: ``connection`` (Dropdown), ``connection_text`` +
    ``add_connection_button``, ``question``, ``generate_button``, ``run_button``, ``cancel_button``,
    ``new_conversation_button``, ``allow_writes``, ``sql`` (editable), ``explanation`` (what the SQL shown does),
    ``status``, ``error``, ``table``, ``prev_button``, ``next_button``,
    ``page_label``, ``page_size``, ``view`` (Table / Chart) + ``chart`` (the PNG) + ``chart_note``, ``stats``,
    ``warnings``, ``candidates`` + ``use_candidate_button``, ``history``,
    ``variable_name`` + ``save_button``, ``insert_button``; ``answer`` is the answer shown.
    """

    def __init__(self, connection: Any = None, *, assistant: Any = None,
                 page_size: int = DEFAULT_PAGE_SIZE, namespace: MutableMapping[str, Any] | None = None,
                 **options: Any) -> None:
        from ..connections import manager

        self._fixed_assistant = assistant
        self.options = options
        """Options of :class:`~jupyter_nl2sql.settings.Settings` for this panel's questions (checked at each
        click: a refused one is shown in the panel)."""
        self._namespace = namespace
        self.manager = getattr(assistant, "connections", None) or manager
        self.answer: Any = None
        self.page = 0
        self._job: _Job | None = None
        self._threads: list[threading.Thread] = []
        self._lock = threading.RLock()
        self._shown_sql = ""        # the SQL the panel last put in the SQL area
        self._shown_question = ""   # the question that SQL answers
        self._history_answers: list[Any] = []
        self._restoring = False
        self._conn_tokens: dict[str, Any] = {}
        self.reaction_log: list[tuple[str, float]] = []  # (what, seconds from click to visible state)
        self._build(page_size)
        self._warm_text: str | None = None  # the status line the background warm-up last showed
        self.refresh_connections(select=connection)
        self.connection.observe(lambda _: self._guard(self.warm_selected), names="value")
        self._update_model_label()
        self._refresh_history()
        self._update_hint()
        ref = weakref.ref(self)

        def listener(answer: Any) -> None:
            panel = ref()
            if panel is not None:
                panel._refresh_history()

        self._listener = listener
        self._unsubscribe = self.assistant.on_answer(listener)

    # -- construction -----------------------------------------------------------------------------------------
    def _build(self, page_size: int) -> None:
        full = w.Layout(width="100%")
        self.title = w.HTML("<b style='font-size:120%'>nl2sql</b>")
        self.model_label = w.HTML("", layout=w.Layout(margin="0 0 0 12px"))
        self.model_label.add_class("nl2sql-model")

        self.connection = w.Dropdown(description="Database", options=[], layout=w.Layout(width="46%"))
        self.connection.add_class("nl2sql-connection")
        self.refresh_button = w.Button(icon="refresh", tooltip="Re-read the connections the kernel knows",
                                       layout=w.Layout(width="36px"))
        self.connection_text = w.Text(placeholder="add: SQLAlchemy URL, alias or Engine variable",
                                      layout=w.Layout(width="34%"))
        self.connection_text.add_class("nl2sql-connection-text")
        self.add_connection_button = w.Button(description="Add", tooltip="Connect to this database and select it",
                                              layout=w.Layout(width="60px"))

        self.question = w.Textarea(placeholder="Ask a question about the database, e.g. "
                                               "How many customers are there in each country?",
                                   rows=2, continuous_update=True, layout=full)
        self.question.add_class("nl2sql-question")
        self.generate_button = w.Button(description="Generate", icon="magic", tooltip="Write the SQL, do not run it")
        self.run_button = w.Button(description="Run", icon="play", button_style="primary",
                                   tooltip="Run the SQL shown (edited or generated), or ask the model for a "
                                           "new question")
        self.cancel_button = w.Button(description="Cancel", icon="stop", button_style="warning", disabled=True,
                                      tooltip="Stop the model / the query")
        self.new_conversation_button = w.Button(description="New conversation", icon="comments",
                                                layout=w.Layout(width="170px"),
                                                tooltip="The next question starts over: it does not follow up on "
                                                        "the earlier ones on this database")
        for button, name in ((self.generate_button, "generate"), (self.run_button, "run"),
                             (self.cancel_button, "cancel"), (self.new_conversation_button, "new-conversation")):
            button.add_class(f"nl2sql-{name}")
        self.allow_writes = w.Checkbox(value=False, description="allow writes (this run only)", indent=False,
                                       layout=w.Layout(width="auto", margin="0 0 0 12px"))
        self.status = w.HTML("Ready.", layout=w.Layout(margin="0 0 0 12px"))
        self.status.add_class("nl2sql-status")
        self.progress = w.IntProgress(value=0, min=0, max=1, layout=w.Layout(width="160px", display="none"))
        self.progress.add_class("nl2sql-progress")
        self.error = w.HTML("", layout=w.Layout(display="none"))
        self.error.add_class("nl2sql-error")

        self.sql = w.Textarea(placeholder="The SQL appears here; edit it and press Run to execute your version.",
                              rows=5, continuous_update=True, layout=full)
        self.sql.add_class("nl2sql-sql")
        self.explanation = w.HTML("", layout=w.Layout(display="none"))
        self.explanation.add_class("nl2sql-explanation")
        self.sql_hint = w.HTML("")
        self.sql_hint.add_class("nl2sql-hint")
        self.candidates = w.Dropdown(description="Candidates", options=[], layout=w.Layout(width="70%"))
        self.use_candidate_button = w.Button(description="Use this SQL", layout=w.Layout(width="120px"))
        self.candidates_box = w.HBox([self.candidates, self.use_candidate_button], layout=w.Layout(display="none"))

        self.table = w.HTML("")
        self.table.add_class("nl2sql-table")
        self.prev_button = w.Button(description="◀ Prev", layout=w.Layout(width="80px"), disabled=True)
        self.next_button = w.Button(description="Next ▶", layout=w.Layout(width="80px"), disabled=True)
        self.page_label = w.HTML("")
        self.page_label.add_class("nl2sql-page")
        size = page_size if page_size in PAGE_SIZES else DEFAULT_PAGE_SIZE
        self.page_size = w.Dropdown(options=PAGE_SIZES, value=size, description="rows/page",
                                    layout=w.Layout(width="160px"))
        self.pager = w.HBox([self.prev_button, self.next_button, self.page_label, self.page_size],
                            layout=w.Layout(display="none", align_items="center"))
        self.table_view = w.VBox([self.table, self.pager])
        self.view = w.ToggleButtons(options=["Table", "Chart"], value="Table",
                                    tooltips=["The result as a table", "The result's chart (setting: plot)"],
                                    style=w.ToggleButtonsStyle(button_width="70px"))
        self.view.add_class("nl2sql-view")
        self.chart = w.Image(format="png", layout=w.Layout(max_width="100%", display="none"))
        self.chart.add_class("nl2sql-chart")
        self.chart_note = w.HTML("")
        self.chart_note.add_class("nl2sql-chart-note")
        self.chart_view = w.VBox([self.chart, self.chart_note], layout=w.Layout(display="none"))
        self._chart: tuple[Any, charts.Chart | None, str] | None = None  # (answer, its chart, the line under it)
        self._answer_connection: Any = None  # the Connection that answered (aggregates a cut result's chart)
        self.warnings = w.HTML("")
        self.stats = w.HTML("")
        self.stats.add_class("nl2sql-stats")

        self.variable_name = w.Text(value="df", description="Variable", layout=w.Layout(width="220px"))
        self.save_button = w.Button(description="Save DataFrame", icon="download", disabled=True,
                                    tooltip="Store the result as this variable in the notebook")
        self.insert_button = w.Button(description="SQL → new cell", icon="plus", disabled=True,
                                      tooltip="Put code that runs this SQL into a new cell")
        self.history = w.Select(options=[], rows=6, layout=full)
        self.history.add_class("nl2sql-history")

        self.widget = w.VBox([
            w.HBox([self.title, self.model_label], layout=w.Layout(align_items="center")),
            w.HBox([self.connection, self.refresh_button, self.connection_text, self.add_connection_button]),
            self.question,
            w.HBox([self.generate_button, self.run_button, self.cancel_button, self.new_conversation_button,
                    self.allow_writes, self.status,
                    self.progress],
                   layout=w.Layout(align_items="center")),
            self.error,
            self.sql, self.explanation, self.sql_hint, self.candidates_box,
            self.view, self.table_view, self.chart_view, self.warnings, self.stats,
            w.HBox([self.variable_name, self.save_button, self.insert_button]),
            w.HTML("<b>History</b> <span style='color:#666'>(click to restore; shared with %%nl2sql)</span>"),
            self.history,
        ], layout=w.Layout(border="1px solid #ccc", padding="8px", width="100%"))
        self.widget.add_class("nl2sql-panel")

        self.generate_button.on_click(lambda _: self._guard(self.on_generate))
        self.run_button.on_click(lambda _: self._guard(self.on_run))
        self.cancel_button.on_click(lambda _: self._guard(self.on_cancel))
        self.new_conversation_button.on_click(lambda _: self._guard(self.on_new_conversation))
        self.add_connection_button.on_click(lambda _: self._guard(self.on_add_connection))
        self.refresh_button.on_click(lambda _: self._guard(lambda: self.refresh_connections()))
        self.prev_button.on_click(lambda _: self._guard(lambda: self.show_page(self.page - 1)))
        self.next_button.on_click(lambda _: self._guard(lambda: self.show_page(self.page + 1)))
        self.use_candidate_button.on_click(lambda _: self._guard(self.on_use_candidate))
        self.save_button.on_click(lambda _: self._guard(self.on_save))
        self.insert_button.on_click(lambda _: self._guard(self.on_insert))
        self.page_size.observe(lambda _: self._guard(lambda: self.show_page(0)), names="value")
        self.view.observe(lambda _: self._guard(self.show_view), names="value")
        self.question.observe(lambda _: self._guard(self._update_hint), names="value")
        self.sql.observe(lambda _: self._guard(self._update_hint), names="value")
        self.history.observe(self._on_history_select, names="value")

    # -- display ----------------------------------------------------------------------------------------------
    def _repr_mimebundle_(self, **kwargs: Any) -> dict:
        bundle = self.widget._repr_mimebundle_(**kwargs)
        bundle["text/plain"] = "nl2sql panel"  # stable text (what nbval compares), not the widget tree
        return bundle

    def close(self) -> None:
        """Cancel any running job, stop listening to the assistant and close the widgets."""
        if self._job is not None:
            self._job.cancel.set()
        self._unsubscribe()
        _close_tree(self.widget)

    # -- state helpers ----------------------------------------------------------------------------------------
    @property
    def assistant(self) -> Any:
        """The assistant this panel asks (the shared one unless one was passed)."""
        if self._fixed_assistant is not None:
            return self._fixed_assistant
        from ..pipeline.assistant import get_assistant

        return get_assistant()

    def settings(self) -> Settings:
        """The settings of the next question: the ``%config Nl2SqlMagics`` ones (the passed assistant's own when
        one was passed, or without the extension), with the panel's :attr:`options`; checked here, so a refused
        option is a one-line :class:`~jupyter_nl2sql.errors.ConfigError` before anything runs."""
        magics = _magics() if self._fixed_assistant is None else None
        base = magics.settings() if magics is not None else None
        return self.assistant.settings_for(base, **self.options)

    @property
    def busy(self) -> bool:
        """Whether a Generate / Run / Add job is in progress."""
        return self._job is not None

    def wait(self, timeout: float | None = 60.0) -> bool:
        """Wait for the worker threads (the current job and abandoned ones); True when all have finished."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in list(self._threads):
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            thread.join(remaining)
        self._threads = [t for t in self._threads if t.is_alive()]
        return not self._threads

    def _guard(self, fn: Callable[[], Any]) -> None:
        """Run a UI callback; any exception becomes an inline message (callbacks must never break the panel)."""
        try:
            fn()
        except Exception as exc:  # noqa: BLE001 - shown to the user, the panel stays usable
            self._show_error(plain_error(exc))

    def _namespace_now(self) -> MutableMapping[str, Any] | None:
        if self._namespace is not None:
            return self._namespace
        shell = _user_shell()
        return getattr(shell, "user_ns", None)

    def _show_error(self, message: str | None) -> None:
        if message:
            self.error.value = render.error_html(message)
            self.error.layout.display = None
        else:
            self.error.value = ""
            self.error.layout.display = "none"

    def _set_status(self, text: str, *, kind: str = "info") -> None:
        """Set the status line (``text`` is HTML); ``busy`` adds a spinner (Font Awesome, which ipywidgets loads)."""
        color = {"info": "#444", "busy": "#0b5cad", "ok": "#1b7f3b", "error": "#b00020"}[kind]
        spinner = "<i class='fa fa-spinner fa-spin' aria-hidden='true'></i> " if kind == "busy" else ""
        self.status.value = f"<span class='nl2sql-{kind}' style='color:{color}'>{spinner}{text}</span>"

    def _show_progress(self, info: Mapping[str, Any] | None) -> None:
        """The progress bar beside the status line: shown with the tokens evaluated so far, hidden for None."""
        done, total = (info or {}).get("done"), (info or {}).get("total")
        if done is None or not total:
            self.progress.layout.display = "none"
            return
        self.progress.max = max(1, int(total))
        self.progress.value = min(int(done), self.progress.max)
        self.progress.layout.display = None

    def _set_busy(self, job: _Job, text: str) -> None:
        """The visible reaction to a click: status, Cancel enabled, everything that starts work disabled.

        Each change is one message to the front end; the ones the user looks at go first.
        """
        self._set_status(_esc(text), kind="busy")
        self.run_button.disabled = True
        self.generate_button.disabled = True
        self.cancel_button.disabled = job.kind == "connect"
        for button in (self.add_connection_button, self.save_button, self.insert_button, self.use_candidate_button):
            button.disabled = True
        self._show_error(None)

    def _set_idle(self) -> None:
        self._show_progress(None)
        self.generate_button.disabled = False
        self.run_button.disabled = False
        self.add_connection_button.disabled = False
        self.use_candidate_button.disabled = False
        self.cancel_button.disabled = True
        has_frame = self.answer is not None and getattr(self.answer, "dataframe", None) is not None
        self.save_button.disabled = not has_frame
        self.insert_button.disabled = not self.sql.value.strip()

    def _update_hint(self) -> None:
        plan = self._run_plan()
        shown = getattr(self.answer, "explanation", None) if self.answer is not None else None
        same = bool(shown) and self.sql.value.strip() == self._shown_sql.strip()
        self.explanation.value = render.explanation_html(shown) if same else ""
        self.explanation.layout.display = None if same else "none"  # it explains the SQL shown, not an edit
        if plan == "sql":
            edited = self.sql.value.strip() != self._shown_sql.strip()
            text = ("edited: <b>Run</b> executes your version of the SQL" if edited
                    else "<b>Run</b> executes this SQL")
        elif plan == "ask":
            text = ("the question changed: <b>Run</b> asks the model again" if self.sql.value.strip()
                    else "<b>Run</b> asks the model, checks its SQL and runs it")
        else:
            text = "write a question (or SQL) to start"
        self.sql_hint.value = f"<span style='color:#666;font-size:90%'>{text}</span>"
        if self._job is None:
            self.insert_button.disabled = not self.sql.value.strip()

    def _run_plan(self) -> str | None:
        """What Run does now: ``"sql"`` (run the SQL area), ``"ask"`` (ask the model) or None (nothing to do)."""
        question = self.question.value.strip()
        sql = self.sql.value.strip()
        if sql and (sql != self._shown_sql.strip() or question == self._shown_question.strip()):
            return "sql"
        if question:
            return "ask"
        return "sql" if sql else None

    # -- connections ------------------------------------------------------------------------------------------
    def refresh_connections(self, select: Any = None) -> None:
        """Re-read the aliases and connections the kernel knows; select ``select`` (a token) when given."""
        aliases = self.manager.aliases()
        options: list[tuple[str, str]] = []
        tokens: dict[str, Any] = {}
        for alias, url in sorted(aliases.items()):
            label = f"{alias} — bundled demo database" if alias == "demo" and "<" in url else f"{alias} — {url}"
            options.append((label, f"alias:{alias}"))
            tokens[f"alias:{alias}"] = alias
        alias_urls = set(aliases.values())
        for conn in self.manager.connections():
            if conn.name in aliases or conn.display_url in alias_urls:
                continue
            key = f"conn:{conn.key}"
            options.append((conn.display_url, key))
            tokens[key] = conn
        previous = self.connection.value
        self._conn_tokens = tokens
        wanted = None
        if select is not None:
            wanted = self._key_for(select)
            if wanted is None:  # a URL or Engine not opened yet: offer it as given (it is opened at Run)
                label = select if isinstance(select, str) else getattr(select, "display_url", repr(select))
                wanted = f"token:{label}"
                options.append((label, wanted))
                tokens[wanted] = select
        if wanted is None and previous in tokens:
            wanted = previous
        if wanted is None:
            wanted = self._key_for(self.manager.current) or self._key_for(_magic_default_connection())
        if wanted is None and "alias:demo" in tokens:
            wanted = "alias:demo"
        self.connection.options = options
        if wanted in tokens:
            self.connection.value = wanted

    def warm_selected(self) -> WarmJob | None:
        """Start the background warm-up of the selected connection (the picker calls it on each change)."""
        if self.connection.value is None:
            return None
        token = self._selected_connection()

        def progress(stage: str, info: Mapping[str, Any]) -> None:
            with self._lock:
                if self._job is None and self._warm_text is not None and self.status.value == self._warm_text:
                    self._warm_status(f"Getting ready in the background: {render.progress_text(stage, info)}…")
                    self._show_progress(info)

        def done(job: WarmJob) -> None:
            with self._lock:
                if self._job is None and self._warm_text is not None and self.status.value == self._warm_text:
                    self._show_progress(None)
                    if job.error:
                        self._set_status(f"Background warm-up failed: {_esc(job.error)}", kind="error")
                    else:
                        self._set_status("Ready: the model and this database's schema are prepared.", kind="ok")
                self._warm_text = None

        with self._lock:
            if self._job is None:
                self._warm_status("Getting the model and the schema ready in the background…")
        return warmer.start(self.assistant, token, namespace=self._namespace_now(), settings=self.settings(),
                            on_progress=progress, on_done=done)

    def _warm_status(self, text: str) -> None:
        """Show the warm-up's state in the status line (it stops updating once something else is shown there)."""
        self._set_status(_esc(text), kind="busy")
        self._warm_text = self.status.value

    def _key_for(self, token: Any) -> str | None:
        """The dropdown key of a token (alias, URL, Connection), when the dropdown lists it."""
        from ..connections import Connection

        if token is None:
            return None
        if isinstance(token, Connection):
            for key, value in self._conn_tokens.items():
                if value is token:
                    return key
            for alias, url in self.manager.aliases().items():
                if token.name == alias or token.display_url == url:
                    return f"alias:{alias}"
            return None
        if isinstance(token, str):
            if f"alias:{token}" in self._conn_tokens:
                return f"alias:{token}"
            for key, value in self._conn_tokens.items():
                if getattr(value, "display_url", None) == token:
                    return key
        return None

    def _selected_connection(self) -> Any:
        key = self.connection.value
        if key is None:
            raise ConnectionFailed("no database selected: pick one in the menu or add a URL")
        return self._conn_tokens[key]

    def on_add_connection(self) -> None:
        """Add: connect (in the worker) to the URL / alias / Engine variable typed, and select it."""
        token = self.connection_text.value.strip()
        if not token:
            self._show_error("Type a SQLAlchemy URL (e.g. sqlite:///shop.db), an alias or an Engine variable, "
                             "then press Add.")
            return
        namespace = self._namespace_now()

        def work(job: _Job) -> Callable[[], None]:
            conn = self.manager.resolve(token, namespace)

            def apply() -> None:
                self.refresh_connections(select=conn)
                self.connection_text.value = ""
                self._set_status(f"✓ Connected to {_esc(conn.display_url)}", kind="ok")
            return apply

        self._start("connect", f"Connecting to {token}…", work)

    # -- model ------------------------------------------------------------------------------------------------
    def _update_model_label(self, provenance: Mapping[str, Any] | None = None) -> None:
        from ..models import DEFAULT_MODEL, loaded_backends

        assistant = self.assistant
        if provenance and provenance.get("model_id"):
            name = provenance["model_id"]
            device = f"{provenance.get('device', '?')} {provenance.get('dtype', '')}".strip()
            state = "loaded"
        else:
            try:
                settings = self.settings()
            except ConfigError:  # shown at the next click
                settings = assistant.settings
            name = settings.model or DEFAULT_MODEL
            backends = loaded_backends()
            match = next((b for b in backends if getattr(b, "model_id", None) == name), None)
            if match is not None:
                device, state = f"{match.device} {match.dtype}", "loaded"
            else:
                wanted = settings.device or "auto"
                device, state = f"device {wanted}", "loads at the first question"
        self.model_label.value = (f"<span style='color:#555'>model <code>{_esc(name)}</code> on "
                                  f"<code>{_esc(device)}</code> <i>({_esc(state)})</i></span>")

    # -- Generate / Run / Cancel ------------------------------------------------------------------------------
    def on_generate(self) -> None:
        """Generate: ask the model for SQL only (it is checked, not run); the SQL area receives it."""
        question = self.question.value.strip()
        if not question:
            self._show_error("Write a question first, e.g. How many customers are there?")
            return
        self._start_ask(question, generate_only=True)

    def on_run(self) -> None:
        """Run: execute the SQL shown (edited or as generated) or, for a new question, ask the model."""
        plan = self._run_plan()
        if plan is None:
            self._show_error("Write a question (or SQL) first, e.g. How many customers are there?")
            return
        if plan == "ask":
            self._start_ask(self.question.value.strip(), generate_only=False)
        else:
            self._start_sql(self.sql.value.strip())

    def on_cancel(self) -> None:
        """Cancel: signal the worker, abandon its result and give the panel back immediately."""
        t0 = time.perf_counter()
        with self._lock:
            job = self._job
            if job is None:
                return
            job.cancel.set()
            self._job = None
            self._set_idle()
            still = " (the model finishes its current step in the background)" if job.stage == "generate" else ""
            self._set_status(f"Cancelled{still}.", kind="info")
        self.reaction_log.append(("cancel", time.perf_counter() - t0))

    def on_new_conversation(self) -> None:
        """New conversation: the selected database's next question does not follow up on the earlier ones."""
        self.assistant.new_conversation(self._selected_connection(), namespace=self._namespace_now())
        self._set_status("New conversation: the next question starts over.")

    def _start_ask(self, question: str, *, generate_only: bool) -> None:
        connection = self._selected_connection()
        settings = self.settings()
        allow_writes = bool(self.allow_writes.value)
        namespace = self._namespace_now()
        assistant = self.assistant
        warmer.cancel(keep=connection)  # a warm-up of this connection does the work this question needs next

        def work(job: _Job) -> Callable[[], None]:
            def progress(stage: str, info: Mapping[str, Any]) -> None:
                if job.cancel.is_set():
                    raise Cancelled()
                self._on_progress(job, stage, info)

            answer = assistant.ask(question, connection, namespace=namespace, generate_only=generate_only,
                                   allow_writes=allow_writes, cancel=job.cancel, on_progress=progress,
                                   settings=settings, follow_up=None)
            if job.cancel.is_set():
                raise Cancelled()
            return self._answered(answer, connection, namespace, settings, question=question, generated=True)

        self._start("generate" if generate_only else "ask",
                    "Writing SQL…" if generate_only else "Asking…", work)

    def _start_sql(self, sql: str) -> None:
        connection = self._selected_connection()
        settings = self.settings()
        allow_writes = bool(self.allow_writes.value)
        namespace = self._namespace_now()
        assistant = self.assistant
        question = self.question.value.strip()

        def work(job: _Job) -> Callable[[], None]:
            self._on_progress(job, "execute", {})
            answer = assistant.run_sql(sql, connection, namespace=namespace, allow_writes=allow_writes,
                                       cancel=job.cancel, settings=settings)
            if job.cancel.is_set():
                raise Cancelled()
            return self._answered(answer, connection, namespace, settings, question=question, generated=False)

        self._start("sql", "Running your SQL…", work)

    def _answered(self, answer: Any, connection: Any, namespace: Any, settings: Settings, *, question: str,
                  generated: bool) -> Callable[[], None]:
        """In the worker, after an answer: its chart when the chart view is open (drawing is not free), and what
        shows the answer in the panel."""
        conn = self.manager.resolve(connection, namespace, check=False) if answer.dataframe is not None else None
        chart = self._chart_state(answer, conn, settings) if self.view.value == "Chart" else None

        def apply() -> None:
            self._answer_connection = conn
            if chart is not None:
                self._chart = chart
            self._show_answer(answer, question=question, generated=generated)

        return apply

    def _start(self, kind: str, text: str, work: Callable[[_Job], Callable[[], None]]) -> None:
        """Show the busy state (synchronously: the visible reaction to the click), then start the worker."""
        t0 = time.perf_counter()
        with self._lock:
            if self._job is not None:
                self._set_status("Still working: wait, or press Cancel.", kind="busy")
                return
            job = _Job(kind)
            self._job = job
            self._set_busy(job, text)
            self.allow_writes.value = False  # writes are allowed for one run only, never as a default
        self.reaction_log.append((kind, time.perf_counter() - t0))
        thread = threading.Thread(target=self._work, args=(job, work), daemon=True, name=f"nl2sql-panel-{kind}")
        job.thread = thread
        self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()
        ticker = threading.Thread(target=self._tick, args=(job,), daemon=True, name="nl2sql-panel-ticker")
        ticker.start()

    def _work(self, job: _Job, work: Callable[[_Job], Callable[[], None]]) -> None:
        apply: Callable[[], None] | None = None
        error: str | None = None
        try:
            apply = work(job)
        except Cancelled:
            error = "Cancelled."
        except ExecutionError as exc:
            error = "Cancelled." if job.cancel.is_set() else plain_error(exc)
        except Exception as exc:  # noqa: BLE001 - every failure is shown inline; the panel stays usable
            error = plain_error(exc)
        finally:
            job.done.set()
        with self._lock:
            if self._job is not job:  # cancelled and abandoned: its result is not shown
                return
            self._job = None
            try:
                if apply is not None:
                    apply()
                elif error is not None:
                    self._show_error(None if error == "Cancelled." else error)
                    self._set_status("Cancelled." if error == "Cancelled." else "✗ Failed (see the message).",
                                     kind="info" if error == "Cancelled." else "error")
            except Exception as exc:  # noqa: BLE001
                self._show_error(plain_error(exc))
            finally:
                self._set_idle()
                self._update_hint()

    def _tick(self, job: _Job) -> None:
        """Refresh the status line with the stage and the elapsed time while the job runs."""
        while not job.done.wait(0.5):
            with self._lock:
                if self._job is not job:
                    return
                self._render_progress(job)

    def _on_progress(self, job: _Job, stage: str, info: Mapping[str, Any]) -> None:
        with self._lock:
            if job.stage and job.stage != stage and job.stage not in job.stages_done:
                job.stages_done.append(job.stage)
            job.stage, job.info = stage, dict(info)
            if stage == "generate" and info.get("round"):
                job.stage = "repair"
            if self._job is job:
                self._render_progress(job)

    def _render_progress(self, job: _Job) -> None:
        elapsed = time.perf_counter() - job.started
        stage = job.stage
        if stage == "repair":
            text = "The first SQL failed; the model is repairing it…"
        elif stage in ("prefill", "values"):
            text = render.progress_text(stage, job.info).capitalize() + "…"
        elif stage == "load":
            from ..models import loaded_backends

            text = STAGE_TEXT["load"] if loaded_backends() else "Loading the model (once per kernel)…"
        else:
            text = STAGE_TEXT.get(stage or "", "Working…")
        chips = []
        if job.kind in ("ask", "generate"):
            for key, label in STAGES:
                if job.kind == "generate" and key == "execute":
                    continue
                current = stage == key or (stage == "repair" and key == "generate")
                mark = "✓" if key in job.stages_done and not current else ("…" if current else "")
                style = "font-weight:bold" if current else ("color:#1b7f3b" if mark == "✓" else "color:#999")
                chips.append(f"<span style='{style}'>{label}{mark}</span>")
        steps = f" <span style='font-size:85%'>{' › '.join(chips)}</span>" if chips else ""
        self._set_status(f"{_esc(text)} {elapsed:.1f} s{steps}", kind="busy")
        self._show_progress(job.info if stage == "prefill" else None)

    # -- showing answers --------------------------------------------------------------------------------------
    def _show_answer(self, answer: Any, *, question: str | None, generated: bool) -> None:
        """Put an answer in the panel: SQL area, table, stats, warnings, candidates, error."""
        self.answer = answer
        if generated or answer.question:
            self._shown_question = answer.question or question or ""
        elif question is not None:
            self._shown_question = question
        if answer.sql is not None:
            self._shown_sql = answer.sql
            self.sql.value = answer.sql
        if answer.provenance.get("model_id"):
            self._update_model_label(answer.provenance)
        self._show_candidates(answer)
        self.show_page(0)
        self.show_view()
        confidence = getattr(answer, "confidence", None)
        shown = render.confidence_html(confidence) if confidence is not None and not answer.error else ""
        self.warnings.value = shown + render.warnings_html(answer.warnings)
        self.stats.value = answer.stats._repr_html_() if answer.stats is not None else ""
        if answer.error:
            if answer.sql is None:  # refused before any SQL was written: what the question asks is not there
                self._show_error(f"{answer.error[:1].upper()}{answer.error[1:]}. Rephrase the question.")
            else:
                self._show_error(f"The SQL the model wrote did not work: {answer.error}. Edit the SQL and press "
                                 "Run, or rephrase the question.")
            self._set_status("✗ No result (see the message).", kind="error")
        else:
            self._show_error(None)
            seconds = answer.stats.total_seconds if answer.stats is not None else 0.0
            if answer.dataframe is not None:
                rows = len(answer.dataframe)
                more = " (truncated at the row cap)" if answer.truncated else ""
                self._set_status(f"✓ {rows} row{'s' if rows != 1 else ''}{more} in {seconds:.2f} s", kind="ok")
            elif answer.executed:
                count = answer.rowcount if answer.rowcount is not None and answer.rowcount >= 0 else "?"
                self._set_status(f"✓ Done: {count} row(s) changed in {seconds:.2f} s", kind="ok")
            else:
                self._set_status(f"✓ SQL written and checked in {seconds:.2f} s: review it, then press Run",
                                 kind="ok")
        self._update_hint()

    def _show_candidates(self, answer: Any) -> None:
        unique = list(dict.fromkeys(c for c in (answer.candidates or []) if c))
        if len(unique) > 1:
            self.candidates.options = [(f"{i + 1}: {' '.join(c.split())[:90]}", c) for i, c in enumerate(unique)]
            runner_up = getattr(getattr(answer, "confidence", None), "runner_up", None)
            self.candidates.value = runner_up if runner_up in unique else unique[-1]  # the runner-up: one click away
            self.candidates_box.layout.display = None
        else:
            self.candidates.options = []
            self.candidates_box.layout.display = "none"

    def show_page(self, page: int) -> None:
        """Show page ``page`` (0-based) of the current result as an HTML table."""
        frame = getattr(self.answer, "dataframe", None) if self.answer is not None else None
        if frame is None:
            self.table.value = ""
            self.pager.layout.display = "none"
            self.page = 0
            return
        size = int(self.page_size.value)
        total = len(frame)
        pages = max(1, -(-total // size))
        self.page = min(max(0, page), pages - 1)
        start, stop = self.page * size, min(total, (self.page + 1) * size)
        body = render.table_html(frame.iloc[start:stop], max_rows=None)
        self.table.value = f"{_TABLE_STYLE}<div class='nl2sql-table-box'>{body}</div>"
        truncated = " (first rows only: row cap reached)" if getattr(self.answer, "truncated", False) else ""
        shown = f"rows {start + 1}–{stop} of {total}" if total else "no rows"
        self.page_label.value = (f"<span style='margin:0 8px'>{shown}{truncated} · page {self.page + 1}/{pages} · "
                                 f"{frame.shape[1]} column{'s' if frame.shape[1] != 1 else ''}</span>")
        self.prev_button.disabled = self.page == 0
        self.next_button.disabled = self.page >= pages - 1
        self.pager.layout.display = None

    # -- chart view ---------------------------------------------------------------------------------------------
    def _chart_state(self, answer: Any, connection: Any = None,
                     settings: Settings | None = None) -> tuple[Any, charts.Chart | None, str]:
        """``(answer, its chart or None, the line shown under it)``: the chart the ``plot`` setting gives (a result
        cut at the row cap is aggregated on ``connection``)."""
        settings = settings or self.settings()
        if getattr(answer, "dataframe", None) is None:
            return answer, None, "No result to chart yet: press Run."
        if settings.plot == "none":
            return answer, None, "Charts are off (plot = 'none'); choose a kind with %config Nl2SqlMagics.plot."
        try:
            made = charts.answer_chart(answer, settings.plot, connection, timeout=settings.timeout,
                                       max_result_bytes=settings.max_result_bytes)
        except ImportError:
            return answer, None, "Charts need matplotlib: pip install matplotlib"
        except Nl2SqlError as exc:
            return answer, None, str(exc)[:1].upper() + str(exc)[1:] + "."
        except Exception as exc:  # noqa: BLE001 - drawing never costs the panel its answer
            return answer, None, f"No chart: {type(exc).__name__}: {exc}"
        if made is None:
            return answer, None, (f"No natural chart for this result ({charts.describe_columns(answer.dataframe)}): "
                                  "a chart needs a category and a number, a date and numbers, or two numbers.")
        return answer, made, made.description

    def show_view(self) -> None:
        """Show the table or the chart of the answer, as the Table/Chart toggle says (the chart is drawn the
        first time it is looked at)."""
        charting = self.view.value == "Chart"
        self.table_view.layout.display = "none" if charting else None
        self.chart_view.layout.display = None if charting else "none"
        if not charting:
            return
        if self._chart is None or self._chart[0] is not self.answer:
            self._chart = self._chart_state(self.answer, self._answer_connection)
        _, made, text = self._chart
        self.chart.value = made.png if made is not None else b""
        self.chart.layout.display = None if made is not None else "none"
        self.chart_note.value = f"<span style='color:#555;font-size:90%'>{_esc(text)}</span>"

    def on_use_candidate(self) -> None:
        """Put the chosen candidate into the SQL area (Run then executes it)."""
        if self.candidates.value:
            self.sql.value = self.candidates.value
            self._set_status("Candidate copied into the SQL area: press Run to execute it.")

    # -- history ----------------------------------------------------------------------------------------------
    def _refresh_history(self) -> None:
        with self._lock:
            answers = list(self.assistant.history)[::-1]  # newest first
            options = []
            for i, answer in enumerate(answers):
                if answer.question:
                    what = answer.question
                else:
                    what = "SQL: " + " ".join((answer.sql or "").split())
                what = what if len(what) <= 90 else what[:89] + "…"
                if answer.error:
                    outcome = "error"
                elif answer.dataframe is not None:
                    outcome = f"{len(answer.dataframe)} row{'s' if len(answer.dataframe) != 1 else ''}"
                elif answer.executed:
                    outcome = "done"
                else:
                    outcome = "SQL only"
                mark = thread_label(answer.turn)  # "↳ follow-up (turn 2)" or ""
                options.append((f"{'↳ ' if mark else ''}{len(answers) - i}. {what} — {outcome}"
                                f"{' · ' + mark[2:] if mark else ''}", i))
            self._restoring = True
            try:
                self._history_answers = answers
                self.history.options = options
                self.history.value = None
            finally:
                self._restoring = False

    def _on_history_select(self, change: Mapping[str, Any]) -> None:
        if self._restoring or change.get("new") is None:
            return
        self._guard(lambda: self.restore(change["new"]))

    def restore(self, index: int) -> None:
        """Show history entry ``index`` (0 = newest): its question, SQL, result and stats."""
        answer = self._history_answers[index]
        if self._job is not None:
            self._set_status("Still working: wait, or press Cancel, before restoring.", kind="busy")
            return
        if answer.question:
            self.question.value = answer.question
        self._answer_connection = None  # a restored result cut at the row cap is charted from its rows at hand
        self._show_answer(answer, question=answer.question or self.question.value.strip(), generated=False)
        self._set_idle()
        self._set_status(f"Restored from history: {_esc(self.history.label or '')}")

    # -- copy out ---------------------------------------------------------------------------------------------
    def on_save(self) -> None:
        """Store the result DataFrame in the notebook namespace under the name typed."""
        frame = getattr(self.answer, "dataframe", None)
        if frame is None:
            self._show_error("There is no result to save yet: press Run first.")
            return
        name = self.variable_name.value.strip()
        if not name.isidentifier() or keyword.iskeyword(name):
            self._show_error(f"'{name}' is not a valid Python variable name; use letters, digits and _ "
                             "(e.g. df or top_customers).")
            return
        namespace = self._namespace_now()
        if namespace is None:
            self._show_error("No notebook namespace to save into (not running in IPython).")
            return
        namespace[name] = frame.copy()
        self._show_error(None)
        self._set_status(f"✓ Saved {frame.shape[0]}×{frame.shape[1]} DataFrame as <code>{_esc(name)}</code>",
                         kind="ok")

    def insert_code(self) -> str:
        """Code for a new cell that runs the SQL shown on the selected connection."""
        sql = self.sql.value.strip()
        token = self._selected_connection()
        if isinstance(token, str):
            where = repr(token)
        elif "***" in getattr(token, "display_url", "***"):
            where = "None  # the panel's connection (its URL holds a password)"
        else:
            where = repr(token.display_url)
        answer = self.answer
        question = (answer.question if answer is not None and answer.question
                    and (answer.sql or "").strip() == sql else None)  # the question this SQL answers, if any
        comment = f"# nl2sql panel: {' '.join(question.split())}\n" if question else "# nl2sql panel\n"
        quoted = sql.replace("\\", "\\\\").replace('"""', '\\"\\"\\"')
        return (f"{comment}from jupyter_nl2sql import get_assistant\n"
                f'df = get_assistant().run_sql("""\n{quoted}\n""", {where}).dataframe\ndf')

    def on_insert(self) -> None:
        """Put code that runs the SQL into a new cell (``get_ipython().set_next_input``)."""
        if not self.sql.value.strip():
            self._show_error("There is no SQL yet: press Generate or Run first.")
            return
        shell = _user_shell()
        if shell is None:
            self._show_error("Not running in IPython: no notebook to add a cell to.")
            return
        shell.set_next_input(self.insert_code(), replace=False)
        self._show_error(None)
        self._set_status("✓ The code goes into a new cell when the next cell runs (Jupyter adds cells only then)",
                         kind="ok")


#: What ``%nl2sql panel --side`` says when the ``sidecar`` package is missing.
SIDECAR_MISSING = ("The side panel needs the sidecar package: pip install sidecar (then restart the kernel and "
                   "reload JupyterLab); the panel is shown here instead.")


def dock(shown: Nl2SqlPanel, *, title: str = "nl2sql") -> Any | None:
    """Show ``shown`` in JupyterLab's side area, in a ``sidecar.Sidecar`` (returned; it stays visible while the
    notebook scrolls); None, with nothing shown, when the ``sidecar`` package is not installed."""
    try:
        from sidecar import Sidecar
    except ImportError:
        return None
    side = Sidecar(title=title)
    side.append_display_data(shown)  # works without a front end too (an Output's context manager needs a kernel)
    return side


def panel(connection: Any = None, *, assistant: Any = None, page_size: int = DEFAULT_PAGE_SIZE,
          namespace: MutableMapping[str, Any] | None = None, **options: Any) -> Nl2SqlPanel:
    """Show the nl2sql panel (the last expression of a cell displays it).

    ``connection``: the database selected first (URL, alias, Engine or Connection; default: the current one,
    else ``demo``).  ``assistant``: default the process-wide one shared with ``%%nl2sql`` (with the
    ``%config Nl2SqlMagics`` settings).  ``namespace``: where Engine variables are found and Save stores the
    DataFrame (default: the notebook's).  ``**options``: options of :class:`~jupyter_nl2sql.settings.Settings` for
    the panel's questions (``row_cap=100``), over the ``%config Nl2SqlMagics`` ones.
    """
    from ..connections import Connection

    if connection is not None and not isinstance(connection, (str, Connection)):
        from ..connections import manager

        connection = (getattr(assistant, "connections", None) or manager).resolve(connection, namespace)
    return Nl2SqlPanel(connection, assistant=assistant, page_size=page_size, namespace=namespace, **options)
