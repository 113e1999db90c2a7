"""Follow-up questions: execution match per turn of two- and three-turn conversations on the demo database.

The conversations are in ``benchmarks/data/followups_demo.json``: each turn is a question as a person types it
after the turns before it ("and only for 2024?", "split that by country", "top 10 instead"), with the gold SQL
that answers it in that context.  Each conversation is asked in order through
``Assistant.ask(question, demo, follow_up=...)``: its first turn starts a new conversation and the later ones
follow up (the pipeline shows them the earlier questions and the SQL it wrote for them, right or wrong, as a user
would meet it).  ``--no-history`` is the ablation: every turn asked on its own.

Scoring is :func:`benchmarks.scoring.execution_match` with DISTINCT kept (what the user sees is scored, not
test-suite's DISTINCT-free variant); the report breaks accuracy down by turn position (``turn 1`` is a plain
question, ``turn 2`` and ``turn 3`` are follow-ups) and ``conversations.json`` counts the conversations whose
every turn is right.  The runner is the shared one (:mod:`benchmarks.runner`): resumable, one JSON line per turn.

    python -m benchmarks.followups --out /tmp/followups-RUN (then python -m benchmarks.index --add it) [--no-history]
    python -m benchmarks.followups --data benchmarks/data/followups_tune.json --out /tmp/followups-tune-RUN

``followups_tune.json`` (a Spider train database, named by its ``"database"``) is the set prompt designs are tuned on;
the demo set is the held-out one.  ``followups_check.json`` (Spider train's ``bike_1``) was written later, before any
run of it, to check a change designed after reading the demo set's failures (the unasked ``LIMIT`` of
:mod:`jupyter_nl2sql.pipeline.refinements`) on conversations nobody had looked at.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from benchmarks.runner import (REPO_ROOT, RESULTS_FILE, AssistantPredictor, Benchmark, Item, Prediction, Predictor,
                               Score, build_parser, load_records, run)
from benchmarks.scoring import DEFAULT_TIMEOUT, execution_match

#: The conversations scored by default.
DEFAULT_DATA = REPO_ROOT / "benchmarks" / "data" / "followups_demo.json"
TURN_LEVELS = ("turn 1", "turn 2", "turn 3")


class FollowupBenchmark(Benchmark):
    """The follow-up conversations, one :class:`Item` per turn (``payload``: conversation id, turn number, the
    questions before it)."""

    name = "followups"
    breakdown = "turn"
    breakdown_levels = TURN_LEVELS

    def __init__(self) -> None:
        self.data = DEFAULT_DATA
        self.history = True
        self.spider_dir = Path(".")

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """``--data FILE`` and ``--no-history`` (the ablation)."""
        parser.add_argument("--data", type=Path, default=DEFAULT_DATA,
                            help=f"conversations file (default: {DEFAULT_DATA.relative_to(REPO_ROOT)})")
        parser.add_argument("--no-history", action="store_true",
                            help="ablation: ask every turn on its own, without the conversation before it")

    def configure(self, args: argparse.Namespace) -> dict[str, Any]:
        """Take ``--data`` and ``--no-history``; both go into run.json (a rerun must match them to resume)."""
        self.data = Path(args.data).resolve()
        self.history = not args.no_history
        digest = hashlib.sha256(self.data.read_bytes()).hexdigest()[:16]
        return {"history": self.history, "keep_distinct": True, "data": self.data.name, "data_sha256": digest,
                "order": "outermost ORDER BY of the gold (sqlglot)"}

    def load(self, data_dir: Path, split: str) -> list[Item]:
        """Every turn of every conversation, in file order."""
        doc = json.loads(self.data.read_text(encoding="utf-8"))
        db_id = doc.get("database", "demo")
        if db_id != "demo":
            self.spider_dir = data_dir / "spider" / "database"
        conversations = doc["conversations"]
        items: list[Item] = []
        for conv in conversations:
            earlier: list[str] = []
            for number, turn in enumerate(conv["turns"], 1):
                items.append(Item(index=len(items), db_id=db_id, question=turn["question"], gold=turn["gold"],
                                  hardness=f"turn {number}", payload=(conv["id"], number, tuple(earlier))))
                earlier.append(turn["question"])
        return items

    def database_path(self, item: Item) -> Path:
        """The bundled demo database (built on first use) for ``"database": "demo"``, else the Spider database of
        that name under ``--data-dir`` (the tuning set is on a Spider *train* database)."""
        if item.db_id != "demo":
            return self.spider_dir / item.db_id / f"{item.db_id}.sqlite"
        from jupyter_nl2sql.demo import demo_path

        return demo_path()

    def score(self, item: Item, pred_sql: str | None, *, timeout: float = DEFAULT_TIMEOUT) -> Score:
        """Execution match against the turn's gold, DISTINCT kept."""
        return execution_match(self.database_path(item), pred_sql, item.gold, timeout=timeout, keep_distinct=True)

    def predictor_factory(self, args: argparse.Namespace, options: Mapping[str, Any],
                          process_per_question: bool = False) -> Callable[[], Predictor]:
        """The pipeline asked conversation by conversation (:class:`ConversationPredictor`)."""
        return lambda: ConversationPredictor(args.model, options, history=self.history)


class ConversationPredictor(AssistantPredictor):
    """The pipeline, asked turn by turn: the first turn of a conversation starts a new one, the later ones follow
    up (``follow_up=True``); with ``history`` off, every turn stands alone.

    A run resumed in the middle of a conversation asks its earlier turns again first (greedy decoding: the same
    SQL), so a follow-up always has the context it would have had."""

    def __init__(self, model: str | None, options: Mapping[str, Any], history: bool) -> None:
        super().__init__(model, options)
        self.history = history
        self._at: tuple[str, int] | None = None  # (conversation, turn) asked last

    def predict_item(self, item: Item, url: str) -> Prediction:
        """Ask ``item``'s turn in its conversation."""
        conversation, number, earlier = item.payload
        if not self.history:
            return self.predict(item.question, url, follow_up=False)
        if number > 1 and self._at != (conversation, number - 1):
            for i, question in enumerate(earlier):
                self.predict(question, url, follow_up=i > 0)
        self._at = (conversation, number)
        return self.predict(item.question, url, follow_up=number > 1)

    def describe(self) -> dict[str, Any]:
        """The pipeline's description, and whether turns see the conversation."""
        return {**super().describe(), "history": self.history}


def conversation_summary(records: Sequence[Mapping[str, Any]], items: Sequence[Item]) -> dict[str, Any]:
    """Turns and conversations right: per turn position, and the conversations whose every turn is right."""
    by_index = {it.index: it for it in items}
    turns: dict[str, list[bool]] = {}
    for r in records:
        it = by_index.get(r["index"])
        if it is not None:
            turns.setdefault(it.payload[0], []).append(bool(r["correct"]))
    lengths = {it.payload[0]: it.payload[1] for it in items}
    complete = {c: v for c, v in turns.items() if len(v) == lengths[c]}
    n_turns = sum(len(v) for v in turns.values())
    return {"turns": n_turns, "turns_correct": sum(sum(v) for v in turns.values()),
            "conversations": len(complete), "conversations_all_correct": sum(all(v) for v in complete.values()),
            "wrong": sorted(f"{c}/{i + 1}" for c, v in turns.items() for i, ok in enumerate(v) if not ok)}


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m benchmarks.followups``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    benchmark = FollowupBenchmark()
    parser = build_parser(benchmark.name)
    parser.set_defaults(split="demo")
    benchmark.add_arguments(parser)
    args = parser.parse_args(argv)
    if args.raw or args.process_per_question or args.order != "grouped":
        parser.error("follow-ups are asked through the pipeline, in conversation order: no --raw, "
                     "--process-per-question or --order shuffled")
    if args.limit is not None or args.databases is not None:
        parser.error("--limit/--databases would cut conversations apart: score the whole file (or pass --data)")
    out = run(benchmark, args, [f"benchmarks.{benchmark.name}", *argv])
    summary = conversation_summary(load_records(out / RESULTS_FILE), benchmark.load(Path("."), args.split))
    (out / "conversations.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    print(f"turns right: {summary['turns_correct']}/{summary['turns']}; conversations with every turn right: "
          f"{summary['conversations_all_correct']}/{summary['conversations']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
