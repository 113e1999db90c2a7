"""Command line: ``python -m jupyter_nl2sql ask "question" --db URL`` (and ``demo``, ``serve``, ``cache``).

Prints the SQL, the result table and the stats line; while the model evaluates the prompt, a tqdm bar on stderr
when stderr is a terminal, else one plain line per step.  ``cache`` lists what lives under the cache root and
``cache --clear PART`` removes a part (``models`` only with ``--yes``: they take a minute to rebuild).  ``--db`` defaults to the bundled demo database.
Exit status: 0 on an answer, 2 when something must be fixed (the message says what), 1 when the model's SQL
failed its checks or its run.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import NoReturn, Sequence

from ..paths import CLEARABLE, cache_root, cache_usage, clear_cache
from ..settings import OPTIONS, Settings
from . import render


def _add_options(parser: argparse.ArgumentParser) -> None:
    """One flag per option of :class:`~jupyter_nl2sql.settings.Settings` (not the magic's display options):
    ``--row-cap`` for ``row_cap`` (and its extra spellings, ``-l``/``--limit``), ``--fix-names``/``--no-fix-names``
    for a switch; the help is the option's own, the default the Settings default."""
    group = parser.add_argument_group("options", "every option of jupyter_nl2sql.settings.Settings")
    for name, spec in OPTIONS.items():
        if spec.group == "display":
            continue
        if spec.type is bool:
            group.add_argument(spec.flag, dest=name, action=argparse.BooleanOptionalAction, default=None,
                               help=f"{spec.help} (default: {spec.default})")
        else:
            flags = dict.fromkeys([*spec.flags, spec.flag])
            group.add_argument(*flags, dest=name, metavar=spec.type.__name__.upper(), default=None,
                               help=f"{spec.help} (default: {spec.default})")


def settings_from_args(args: argparse.Namespace) -> Settings:
    """The :class:`Settings` the flags give (defaults for the others); a refused value raises ConfigError."""
    given = {name: getattr(args, name) for name in OPTIONS if getattr(args, name, None) is not None}
    return Settings(**{name: value if isinstance(value, bool) else OPTIONS[name].from_text(value)
                       for name, value in given.items()})


def _rows(text: str) -> int:
    """``--max-rows``: a whole number ≥ 1, or a ConfigError said in one line (not a traceback from pandas)."""
    from ..errors import ConfigError

    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1 or str(value) != text.strip().lstrip("+"):
        raise ConfigError(f"max_rows must be a whole number ≥ 1, not {text}")
    return value


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m jupyter_nl2sql",
                                description="Ask a database questions in plain English with a local model.")
    sub = p.add_subparsers(dest="command", required=True)
    ask = sub.add_parser("ask", help="answer a question: print the SQL, the result and the stats")
    ask.add_argument("question", help="the question, in quotes")
    ask.add_argument("--db", default="demo", help="SQLAlchemy URL or 'demo' (default: the bundled demo database)")
    ask.add_argument("--generate-only", action="store_true", help="print the checked SQL without running it")
    ask.add_argument("--show-prompt", action="store_true", help="print the prompt the model received")
    ask.add_argument("--allow-writes", action="store_true", help="allow SQL that changes the database")
    ask.add_argument("--max-rows", default="30", help="rows to print, at least 1 (default 30)")
    _add_options(ask)
    demo = sub.add_parser("demo", help="build the demo database and print its URL")
    demo.set_defaults()
    cache = sub.add_parser("cache", help="show what lives under the cache root, or clear a part of it")
    cache.add_argument("--clear", metavar="PART", help=f"remove a part: {', '.join(CLEARABLE)}")
    cache.add_argument("--yes", action="store_true", help="confirm clearing the models (a minute to rebuild)")
    sub.add_parser("serve", add_help=False,
                   help="serve the model to a team on Ray Serve (see: python -m jupyter_nl2sql serve --help)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    from ..errors import Nl2SqlError

    try:
        if argv[:1] == ["serve"]:  # its own options: jupyter_nl2sql.serving.serve_cli
            from ..serving.serve_cli import main as serve_main

            return serve_main(argv[1:])
        args = _parser().parse_args(argv)
        logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
        if args.command == "demo":
            from ..demo import demo_url

            print(demo_url())
            return 0
        if args.command == "cache":
            return _cache(args)
        return _ask(args)
    except Nl2SqlError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _cache(args: argparse.Namespace) -> int:
    """``cache``: one line per part of the cache root; ``--clear PART`` removes it."""
    if args.clear is None:
        print(f"cache root: {cache_root()}")
        for part, size, count in cache_usage():
            print(f"  {part:<14} {render.size_text(size):>10}  {count} file(s)")
        return 0
    if args.clear not in CLEARABLE:
        print(f"error: unknown cache part {args.clear!r}: choose one of {', '.join(CLEARABLE)}", file=sys.stderr)
        return 2
    if args.clear in ("models", "all") and not args.yes:
        print(f"error: clearing {args.clear} removes the model files (a minute to rebuild): add --yes",
              file=sys.stderr)
        return 2
    print(render.cleared_text(args.clear, cache_root(), *clear_cache(args.clear)))
    return 0


class TerminalProgress:
    """The ``on_progress`` callback of the command line: a tqdm bar on ``stream`` for the prompt evaluation when
    it is a terminal, else one plain line per step (and none for the repeated token counts)."""

    def __init__(self, stream=None) -> None:
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._bar = None
        self._stage: str | None = None

    def __call__(self, stage: str, info) -> None:
        done, total = info.get("done"), info.get("total")
        if stage == "prefill" and total and self.tty:
            if self._bar is None:
                from tqdm.auto import tqdm

                self._bar = tqdm(total=total, desc=render.progress_text(stage), unit="tok", file=self.stream,
                                 leave=False)
            self._bar.update(max(0, done - self._bar.n))
            return
        self.close()
        if stage != self._stage:
            self._stage = stage
            print(f"… {render.progress_text(stage, info)}", file=self.stream, flush=True)
        elif stage == "prefill" and done == total:
            print(f"… {render.progress_text(stage, info)}", file=self.stream, flush=True)

    def close(self) -> None:
        """Remove the bar, if one is shown."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def _ask(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    max_rows = _rows(args.max_rows)
    from ..models import preload

    # the engine loads in C while the pipeline's modules import and the schema is read; ask() waits for it
    preload(settings.model, device=settings.device, dtype=settings.dtype, backend=settings.backend)
    from ..pipeline.assistant import Assistant

    assistant = Assistant(settings=settings)
    progress = TerminalProgress()
    try:
        answer = assistant.ask(args.question, args.db, generate_only=args.generate_only,
                               allow_writes=args.allow_writes, on_progress=progress)
    finally:
        progress.close()
    if args.show_prompt and assistant.prompt_text(answer):
        print(answer.prompt, end="\n\n")
    print(render.answer_text(answer, show_error=False, max_rows=max_rows,
                             show_explanation=assistant.settings.explain))
    if answer.error:
        print(f"error: {answer.error}", file=sys.stderr)
    return 1 if answer.error else 0


def leave(code: int | None) -> NoReturn:
    """End the command with exit status ``code`` once the pooled connections are closed and the output is flushed,
    without tearing the loaded model down thread by thread and page by page: the operating system reclaims its
    memory at once, and a one-shot question does not wait for it (nor for a model load still under way)."""
    from ..connections import manager

    manager.close_all()
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (``| head``): nothing more can be written anyway
            pass
    os._exit(code or 0)


def run() -> NoReturn:
    """The ``jupyter-nl2sql`` and ``python -m jupyter_nl2sql`` command: :func:`main`, then :func:`leave` after
    ``ask`` (the command that loads the model), an ordinary exit after the others."""
    code = main()
    if sys.argv[1:2] == ["ask"]:
        leave(code)
    sys.exit(code)


if __name__ == "__main__":
    run()
