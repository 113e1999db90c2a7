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


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m jupyter_nl2sql",
                                description="Ask a database questions in plain English with a local model.")
    sub = p.add_subparsers(dest="command", required=True)
    ask = sub.add_parser("ask", help="answer a question: print the SQL, the result and the stats")
    ask.add_argument("question", help="the question, in quotes")
    ask.add_argument("--db", default="demo", help="SQLAlchemy URL or 'demo' (default: the bundled demo database)")
    ask.add_argument("--model", help="Hugging Face id, local directory or .gguf file (default: Qwen2.5-Coder-1.5B)")
    ask.add_argument("--device", help="cpu, cuda, cuda:N (default: automatic)")
    ask.add_argument("--dtype", help="bfloat16, float16, float32 (default: automatic)")
    ask.add_argument("--limit", type=int, default=1000, help="row cap (default 1000)")
    ask.add_argument("--generate-only", action="store_true", help="print the checked SQL without running it")
    ask.add_argument("--show-prompt", action="store_true", help="print the prompt the model received")
    ask.add_argument("--allow-writes", action="store_true", help="allow SQL that changes the database")
    ask.add_argument("--max-rows", type=int, default=30, help="rows to print (default 30)")
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
        if argv[:1] == ["serve"]:  # its own options: jupyter_nl2sql.serving.ray_serve
            from ..serving.ray_serve import main as serve_main

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
    import pandas as pd

    from ..pipeline.assistant import Assistant

    assistant = Assistant(args.model, device=args.device, dtype=args.dtype, row_cap=args.limit)
    answer = assistant.ask(args.question, args.db, generate_only=args.generate_only,
                           allow_writes=args.allow_writes)
    if args.show_prompt and answer.prompt:
        print(answer.prompt, end="\n\n")
    if answer.sql:
        print(answer.sql, end="\n\n")
    if answer.dataframe is not None:
        with pd.option_context("display.max_rows", args.max_rows, "display.width", 120):
            print(answer.dataframe.to_string(index=False, max_rows=args.max_rows), end="\n\n")
    for warning in answer.warnings:
        print(f"warning: {warning}")
    if answer.error:
        print(f"error: {answer.error}", file=sys.stderr)
    print(answer.stats)
    return 1 if answer.error else 0


if __name__ == "__main__":
    sys.exit(main())
