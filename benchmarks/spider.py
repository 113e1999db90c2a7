"""Spider dev: execution accuracy (test-suite-sql-eval semantics) by Spider hardness.

Questions whose database file is missing (``wta_1`` in the shared data: 62 of 1034) are skipped — counted and
reported, never scored as wrong.  ``python -m benchmarks.spider --help`` for the options (shared with WikiSQL, see
:mod:`benchmarks.runner`).

``--questions FILE`` asks the questions of another file in Spider's format (a JSON list of ``db_id``, ``question``,
``query``; an ``index`` field keeps the source's numbering) on Spider's databases, and ``--wording FIELD`` picks the
field that is asked.  The paraphrase set ``benchmarks/data/paraphrases_train.json`` (Spider *train* questions
reworded with everyday words for the schema's names, see :mod:`benchmarks.paraphrases`) is run that way, its
paraphrased wording and, as the baseline, its original one::

    python -m benchmarks.spider --questions benchmarks/data/paraphrases_train.json --out /tmp/para-RUN
    python -m benchmarks.spider --questions benchmarks/data/paraphrases_train.json --wording original_question ...
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Any, Sequence

from benchmarks.runner import Benchmark, Item, Score, main as runner_main
from benchmarks.scoring import DEFAULT_TIMEOUT, HARDNESS_LEVELS, execution_match, hardness_from_spider_sql, \
    spider_hardness


class SpiderBenchmark(Benchmark):
    """Spider (dev by default) through the shared runner."""

    name = "spider"
    breakdown = "hardness"
    breakdown_levels = HARDNESS_LEVELS

    def __init__(self, keep_distinct: bool = False) -> None:
        self.keep_distinct = keep_distinct
        self.questions: Path | None = None
        self.wording = "question"
        self._db_root: Path | None = None

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """``--keep-distinct``: score without test-suite's DISTINCT removal."""
        parser.add_argument("--keep-distinct", action="store_true",
                            help="keep DISTINCT when scoring (test-suite-sql-eval removes it by default)")
        parser.add_argument("--examples-pool", default=None, metavar="train|PATH|none",
                            help="few-shot pool passed as Assistant(example_pool=PATH): 'train' for "
                                 "spider/train_spider_compact.json (Spider train, whose databases are disjoint "
                                 "from dev), or a JSON list of {question, query, db_id}; default none, like "
                                 "Assistant() (examples from other databases cost accuracy on Spider: see "
                                 "benchmarks/results/ablation-train)")
        parser.add_argument("--questions", type=Path, default=None, metavar="FILE",
                            help="ask the questions of FILE (a JSON list in Spider's format: db_id, question, query, "
                                 "optional index) instead of spider/<split>.json, on Spider's databases")
        parser.add_argument("--wording", default="question", metavar="FIELD",
                            help="the field of --questions that is asked (default question; original_question: the "
                                 "Spider wording of benchmarks/data/paraphrases_train.json)")

    def configure(self, args: argparse.Namespace) -> dict[str, Any]:
        """Take ``--keep-distinct``, ``--questions`` and ``--wording``; the scoring settings and the question file
        (name, sha256, field asked) go into run.json, so a rerun resumes only the same questions, and the run's
        split becomes the file's name (``paraphrases_train``, ``paraphrases_train.original_question``)."""
        self.keep_distinct = bool(getattr(args, "keep_distinct", False))
        self.questions = getattr(args, "questions", None)
        self.wording = getattr(args, "wording", None) or "question"
        scoring: dict[str, Any] = {"keep_distinct": self.keep_distinct,
                                   "order": "outermost ORDER BY of the gold (sqlglot)"}
        if self.questions is not None:
            self.questions = Path(self.questions).resolve()
            if not self.questions.is_file():
                raise SystemExit(f"error: --questions {self.questions} does not exist")
            scoring.update(questions=self.questions.name, wording=self.wording,
                           questions_sha256=hashlib.sha256(self.questions.read_bytes()).hexdigest()[:16])
            # the run's "split" names the questions asked (run.json, the index, the report), not spider/<split>
            args.split = self.questions.stem + ("" if self.wording == "question" else f".{self.wording}")
        elif self.wording != "question":
            raise SystemExit("error: --wording goes with --questions")
        return scoring

    def pipeline_options(self, args: argparse.Namespace, data_dir: Path) -> dict[str, Any]:
        """``example_pool``, only with ``--examples-pool``: Spider train (``train``) or a file, after checking that
        none of its databases is one the questions are asked on (train and dev databases are disjoint; the check
        makes sure).  For a
        ``train*`` split (``--split train_spider_compact``: choosing settings without looking at dev) the overlap is
        expected and allowed, because the pipeline excludes examples of the asked question's own database."""
        choice = getattr(args, "examples_pool", None)
        if choice is None or str(choice).lower() == "none":
            return {}
        pool = data_dir / "spider" / "train_spider_compact.json" if choice == "train" else Path(choice)
        if not pool.exists():
            raise SystemExit(f"error: --examples-pool {pool} does not exist")
        pool_dbs = {ex.get("db_id") for ex in json.loads(pool.read_text(encoding="utf-8"))}
        questions = getattr(args, "questions", None)
        split_file = Path(questions) if questions else data_dir / "spider" / f"{args.split}.json"
        asked = {ex["db_id"] for ex in json.loads(split_file.read_text(encoding="utf-8"))}
        shared = sorted(pool_dbs & asked)
        dev = {ex["db_id"] for ex in json.loads((data_dir / "spider" / "dev.json").read_text(encoding="utf-8"))}
        on_train = not (asked & dev) if questions else args.split.startswith("train")
        if shared and on_train:
            # questions from the pool's own split (an ablation that must not look at dev): the pipeline never
            # shows a question examples of its own database (``exclude_db``), so its own pair is never among them
            print(f"note: the example pool shares {len(shared)} databases with the {split_file.stem} questions; "
                  "each question sees only examples of other databases", file=sys.stderr)
        elif shared:
            raise SystemExit(f"error: the example pool {pool} holds examples of {len(shared)} database(s) the "
                             f"{split_file.stem} questions are asked on ({', '.join(shared[:5])}): they would leak "
                             "answers")
        return {"example_pool": str(pool.resolve())}

    def load(self, data_dir: Path, split: str) -> list[Item]:
        """Questions of ``spider/<split>.json`` (or of ``--questions``, the ``--wording`` field, numbered by their
        ``index`` field when they have one); hardness from the official parse when present, else from sqlglot."""
        base = data_dir / "spider"
        self._db_root = base / "database"
        source = self.questions or base / f"{split}.json"
        examples: list[dict[str, Any]] = json.loads(source.read_text(encoding="utf-8"))
        if any(self.wording not in ex for ex in examples):
            raise SystemExit(f"error: not every question of {source.name} has a {self.wording!r} field")
        items = []
        for position, ex in enumerate(examples):
            index = int(ex.get("index", position)) if self.questions else position
            db_path = self._db_root / ex["db_id"] / f"{ex['db_id']}.sqlite"
            hardness = hardness_from_spider_sql(ex["sql"]) if isinstance(ex.get("sql"), dict) \
                else spider_hardness(ex["query"])
            items.append(Item(index=index, db_id=ex["db_id"], question=ex[self.wording], gold=ex["query"],
                              hardness=hardness,
                              skip_reason=None if db_path.exists() else f"database {ex['db_id']} missing"))
        return items

    def database_path(self, item: Item) -> Path:
        """``spider/database/<db_id>/<db_id>.sqlite``."""
        assert self._db_root is not None, "load() first"
        return self._db_root / item.db_id / f"{item.db_id}.sqlite"

    def score(self, item: Item, pred_sql: str | None, *, timeout: float = DEFAULT_TIMEOUT) -> Score:
        """Execution match of the prediction against the gold query on the item's database."""
        return execution_match(self.database_path(item), pred_sql, item.gold, timeout=timeout,
                               keep_distinct=self.keep_distinct)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m benchmarks.spider``."""
    return runner_main(SpiderBenchmark(), argv)


if __name__ == "__main__":
    raise SystemExit(main())
