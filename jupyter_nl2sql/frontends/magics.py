"""``%nl2sql`` / ``%%nl2sql``: ask a database a question from a notebook cell.

Usage::

    %load_ext jupyter_nl2sql
    %nl2sql connect sqlite:///shop.db --alias shop      # or a URL / alias / Engine variable with -c
    %%nl2sql -c shop -o top
    Which 5 customers spent the most?

    df = %nl2sql How many orders were cancelled?
    %config Nl2SqlMagics.row_cap = 200

Subcommands of the line magic: ``connect``, ``connections``, ``models``, ``load``, ``panel``, ``history``.
Errors the user can fix raise :class:`IPython.core.error.UsageError` (one line, no traceback).
"""

from __future__ import annotations

import shlex
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class, needs_local_scope
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring
from IPython.display import display
from traitlets import Bool, Float, Int, Unicode, TraitError, validate
from traitlets.config.configurable import Configurable

from ..errors import Nl2SqlError

SUBCOMMANDS = ("connect", "connections", "models", "load", "panel", "history")


@magics_class
class Nl2SqlMagics(Magics, Configurable):
    """Ask databases questions in English; the SQL is written by a local model, checked, then run."""

    model = Unicode(None, allow_none=True, config=True,
                    help="Model: a Hugging Face id, a local directory or a .gguf file. None: the default "
                         "(Qwen/Qwen2.5-Coder-1.5B-Instruct, from the offline packages when installed).")
    device = Unicode(None, allow_none=True, config=True, help="'cpu', 'cuda', 'cuda:1'… None: CUDA if available.")
    backend = Unicode("auto", config=True,
                      help="'auto' (llama.cpp on the CPU when installed, else transformers), 'transformers' or "
                           "'llama.cpp'.")
    dtype = Unicode(None, allow_none=True, config=True,
                    help="'bfloat16', 'float16' or 'float32'. None: automatic for the device.")
    row_cap = Int(1000, config=True, help="Most rows fetched per query; the rest are not read.")
    timeout = Float(30.0, config=True, help="Statement timeout in seconds (0: none).")
    repair_rounds = Int(1, config=True, help="How many times the model may fix SQL that failed a check or run.")
    sample_rows = Int(3, config=True, help="Sample rows per table shown to the model.")
    max_new_tokens = Int(256, config=True, help="Most tokens the model may generate per answer.")
    prompt_layout = Unicode("sql", config=True,
                            help="'sql': the prompt is a SQL script (schema, sample rows, -- Question:); 'chat': a "
                                 "system message and labelled sections.")
    fix_names = Bool(True, config=True,
                     help="Correct a table or column name the schema has exactly once, or join the table a column "
                          "belongs to along the foreign keys, without asking the model again.")
    fix_values = Bool(True, config=True,
                      help="When a query finds nothing, use the database's spelling of a value that differs only in "
                           "case, accents or dashes.")
    value_retrieval = Bool(True, config=True,
                           help="Tell the model how the database spells the values the question mentions.")
    candidates = Int(1, config=True,
                     help="Queries written from varied prompts; the result most of them agree on is kept, a tie "
                          "going to the reply the model scored highest (at most 3 without taught examples).")
    show_sql = Bool(True, config=True, help="Show the SQL above the result.")
    show_stats = Bool(True, config=True, help="Show timing and memory stats below the result.")
    default_connection = Unicode(None, allow_none=True, config=True,
                                 help="Connection used when a cell names none and none was used yet "
                                      "(URL, alias or Engine variable).")
    result_cache = Unicode(None, allow_none=True, config=True,
                           help="Opt-in: a Redis URL (redis://host:6379/0#ttl=60) where results of read-only "
                                "queries are shared for the TTL. None: every query runs.")
    schema_cache = Unicode(None, allow_none=True, config=True,
                           help="A Redis URL (redis://host:6379/0#ttl=600) where introspected schemas are shared "
                                "by kernels. None: each kernel introspects.")

    @validate("row_cap", "max_new_tokens", "candidates")
    def _positive(self, proposal: dict) -> int:
        if proposal["value"] < 1:
            raise TraitError(f"{proposal['trait'].name} must be ≥ 1, not {proposal['value']}")
        return proposal["value"]

    @validate("repair_rounds", "sample_rows")
    def _non_negative(self, proposal: dict) -> int:
        if proposal["value"] < 0:
            raise TraitError(f"{proposal['trait'].name} must be ≥ 0, not {proposal['value']}")
        return proposal["value"]

    @validate("prompt_layout")
    def _layout(self, proposal: dict) -> str:
        from ..pipeline.prompting import LAYOUTS

        if proposal["value"] not in LAYOUTS:
            raise TraitError(f"prompt_layout must be one of {', '.join(LAYOUTS)}, not {proposal['value']!r}")
        return proposal["value"]

    @validate("backend")
    def _backend(self, proposal: dict) -> str:
        if proposal["value"] not in ("auto", "transformers", "llama.cpp"):
            raise TraitError(f"backend must be auto, transformers or llama.cpp, not {proposal['value']!r}")
        return proposal["value"]

    @validate("timeout")
    def _timeout(self, proposal: dict) -> float:
        if proposal["value"] < 0:
            raise TraitError(f"timeout must be ≥ 0 seconds, not {proposal['value']}")
        return proposal["value"]

    @validate("dtype")
    def _dtype(self, proposal: dict) -> str | None:
        value = proposal["value"]
        if value not in (None, "bfloat16", "float16", "float32", "auto"):
            raise TraitError(f"dtype must be bfloat16, float16, float32 or auto, not {value!r}")
        return value

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
    @argument("-c", "--connection", help="SQLAlchemy URL, alias or Engine variable (default: the last used).")
    @argument("-a", "--alias", help="Remember this connection under a name.")
    @argument("-m", "--model", help="Model for this cell (Hub id, directory or .gguf); default: the configured one.")
    @argument("-g", "--generate-only", action="store_true", help="Write and check the SQL; do not run it.")
    @argument("-l", "--limit", type=int, help="Row cap for this cell (most rows fetched).")
    @argument("-o", "--output", help="Store the result DataFrame in this variable.")
    @argument("-p", "--show-prompt", action="store_true", help="Show the exact prompt the model received.")
    @argument("--allow-writes", action="store_true",
              help="Allow SQL that changes the database, for this cell only (never a default).")
    @argument("--refresh-schema", action="store_true", help="Re-read the database schema before asking.")
    @argument("--no-stats", action="store_true", help="Do not show the stats line.")
    @argument("question", nargs="*", help="The question (line magic); in a cell magic, the cell body.")
    @line_cell_magic
    def nl2sql(self, line: str = "", cell: str | None = None, local_ns: dict | None = None) -> Any:
        """Ask a database a question in English; returns the result as a pandas DataFrame.

        Line magic: ``%nl2sql [options] question`` or a subcommand: ``connect URL [--alias NAME]``,
        ``connections``, ``models``, ``load [MODEL]``, ``panel``, ``history``.  Cell magic: ``%%nl2sql [options]`` with the question
        as the cell body; ``{var}`` in the cell is replaced by the variable's value.
        """
        namespace = {**self.shell.user_ns, **(local_ns or {})}
        words = line.split(maxsplit=1)
        if cell is None and words and words[0] in SUBCOMMANDS:
            return self._subcommand(words[0], words[1] if len(words) > 1 else "", namespace)
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

    def _assistant(self) -> Any:
        from ..pipeline.assistant import get_assistant

        assistant = get_assistant()
        for name in ("model", "device", "dtype", "timeout", "repair_rounds", "sample_rows", "max_new_tokens",
                     "row_cap", "prompt_layout", "fix_names", "fix_values", "value_retrieval", "candidates"):
            value = getattr(self, name)
            setattr(assistant, name, (value or None) if name == "timeout" else value)
        assistant.backend_name = self.backend
        self._share_caches(assistant)
        return assistant

    def _share_caches(self, assistant: Any) -> None:
        """Apply the ``result_cache`` and ``schema_cache`` settings when they changed."""
        wanted = {"result": self.result_cache or None, "schema": self.schema_cache or None}
        current = {"result": getattr(assistant.result_cache, "setting", None),
                   "schema": getattr(assistant.schemas.shared, "setting", None)}
        if wanted == current:
            return
        from ..caches.redis_store import RedisSchemaCache, ResultCache

        if wanted["result"] != current["result"]:
            assistant.result_cache = ResultCache.from_setting(wanted["result"]) if wanted["result"] else None
        if wanted["schema"] != current["schema"]:
            assistant.schemas.shared = RedisSchemaCache.from_setting(wanted["schema"]) if wanted["schema"] else None

    def _connection_token(self, token: str | None) -> str | None:
        from ..connections import manager

        if token is None and manager.current is None:
            return self.default_connection
        return token

    def _ask(self, question: str, args: Any, namespace: dict) -> Any:
        from ..connections import manager

        assistant = self._assistant()
        if args.model:
            assistant.model = args.model
        conn = manager.resolve(self._connection_token(args.connection), namespace, alias=args.alias)
        answer = assistant.ask(question, conn, namespace=namespace, generate_only=args.generate_only,
                               allow_writes=args.allow_writes, row_cap=args.limit,
                               refresh_schema=args.refresh_schema)
        if args.show_prompt and answer.prompt:
            _show(answer.prompt, f"<pre class='nl2sql-prompt'>{_escape(answer.prompt)}</pre>")
        if self.show_sql and answer.sql:
            _show(answer.sql, f"<pre class='nl2sql-sql'><code>{_escape(answer.sql)}</code></pre>")
        for warning in answer.warnings:
            _show(f"⚠ {warning}", f"<div class='nl2sql-warning' style='color:#a60'>⚠ {_escape(warning)}</div>")
        if self.show_stats and not args.no_stats:
            self._show_stats_after_cell(answer.stats)
        if answer.error:
            raise UsageError(f"{answer.error} — rephrase the question, check the connection, or run your own "
                             "SQL with %%sql / Assistant.run_sql")
        if args.output and answer.dataframe is not None:
            if not args.output.isidentifier():
                raise UsageError(f"-o needs a variable name, not {args.output!r}")
            self.shell.user_ns[args.output] = answer.dataframe
        return answer.dataframe

    def _show_stats_after_cell(self, stats: Any) -> None:
        """Display the stats in their own output, below the cell's result (after the table)."""
        events = self.shell.events

        def show(*_: Any) -> None:
            events.unregister("post_run_cell", show)
            display(stats)

        events.register("post_run_cell", show)

    # -- subcommands -----------------------------------------------------------------------------------------
    def _subcommand(self, name: str, rest: str, namespace: dict) -> Any:
        try:
            return getattr(self, f"_cmd_{name}")(shlex.split(rest), namespace)
        except Nl2SqlError as exc:
            raise UsageError(str(exc)) from None
        except ValueError as exc:
            raise UsageError(f"{name}: {exc}") from None

    def _cmd_connect(self, argv: list[str], namespace: dict) -> None:
        from ..connections import manager

        alias = None
        if "--alias" in argv:
            i = argv.index("--alias")
            if i + 1 >= len(argv):
                raise UsageError("connect: --alias needs a name")
            alias = argv[i + 1]
            argv = argv[:i] + argv[i + 2:]
        if len(argv) != 1:
            raise UsageError("usage: %nl2sql connect URL|ALIAS|ENGINE_VARIABLE [--alias NAME]")
        conn = manager.resolve(argv[0], namespace, alias=alias)
        print(f"Connected: {conn.display_url}" + (f" (alias {alias})" if alias else ""))

    def _cmd_connections(self, argv: list[str], namespace: dict) -> Any:
        from ..connections import manager
        import pandas as pd

        rows = [{"alias": a, "url": u, "current": bool(manager.current and manager.current.display_url == u)}
                for a, u in manager.aliases().items()]
        known = {r["url"] for r in rows}
        rows += [{"alias": "", "url": c.display_url, "current": c is manager.current}
                 for c in manager.connections() if c.display_url not in known]
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
        """Load the configured model now (the first question would otherwise do it) and say where it runs."""
        assistant = self._assistant()
        if argv:
            assistant.model = argv[0]
        backend, seconds = assistant.backend()
        when = f"loaded in {seconds:.1f} s" if seconds is not None else "already loaded"
        print(f"{backend.model_id} on {backend.device} ({backend.dtype}), {when}")

    def _cmd_panel(self, argv: list[str], namespace: dict) -> Any:
        from .widget import panel

        return panel(argv[0] if argv else None)

    def _cmd_history(self, argv: list[str], namespace: dict) -> Any:
        import pandas as pd
        from ..pipeline.assistant import get_assistant

        return pd.DataFrame([{"question": a.question, "sql": a.sql, "rows": a.rowcount, "error": a.error,
                              "seconds": round(a.stats.total_seconds, 3)} for a in get_assistant().history])


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


def _show(text: str, html_text: str) -> None:
    """Display one output with a plain-text form (what nbval compares) and an HTML form."""
    display({"text/plain": text, "text/html": html_text}, raw=True)


def _escape(text: str) -> str:
    import html

    return html.escape(text)
