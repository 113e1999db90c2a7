"""Command line: ``python -m jupyter_nl2sql ask "question" --db URL`` (and ``demo``, ``serve``).

Prints the SQL, the result table and the stats line.  ``--db`` defaults to the bundled demo database.
Exit status: 0 on an answer, 2 when something must be fixed (the message says what), 1 when the model's SQL
failed its checks or its run.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Sequence

from ..settings import OPTIONS, Settings


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
    ask.add_argument("--max-rows", type=int, default=30, help="rows to print (default 30)")
    _add_options(ask)
    demo = sub.add_parser("demo", help="build the demo database and print its URL")
    demo.set_defaults()
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
        return _ask(args)
    except Nl2SqlError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _ask(args: argparse.Namespace) -> int:
    from ..pipeline.assistant import Assistant
    from . import render

    assistant = Assistant(settings=settings_from_args(args))
    answer = assistant.ask(args.question, args.db, generate_only=args.generate_only,
                           allow_writes=args.allow_writes)
    if args.show_prompt and answer.prompt:
        print(answer.prompt, end="\n\n")
    print(render.answer_text(answer, show_error=False, max_rows=args.max_rows))
    if answer.error:
        print(f"error: {answer.error}", file=sys.stderr)
    return 1 if answer.error else 0


if __name__ == "__main__":
    sys.exit(main())
