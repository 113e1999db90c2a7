"""Spider dev: execution accuracy (test-suite-sql-eval semantics) by Spider hardness.

Questions whose database file is missing (``wta_1`` in the shared data: 62 of 1034) are skipped — counted and
reported, never scored as wrong.  ``python -m benchmarks.spider --help`` for the options (shared with WikiSQL, see
:mod:`benchmarks.runner`).
"""

from __future__ import annotations

import argparse
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

    def configure(self, args: argparse.Namespace) -> dict[str, Any]:
        """Take ``--keep-distinct``; the scoring settings go into run.json."""
        self.keep_distinct = bool(getattr(args, "keep_distinct", False))
        return {"keep_distinct": self.keep_distinct, "order": "outermost ORDER BY of the gold (sqlglot)"}

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
        split_file = data_dir / "spider" / f"{args.split}.json"
        asked = {ex["db_id"] for ex in json.loads(split_file.read_text(encoding="utf-8"))}
        shared = sorted(pool_dbs & asked)
        if shared and args.split.startswith("train"):
            # questions from the pool's own split (an ablation that must not look at dev): the pipeline never
            # shows a question examples of its own database (``exclude_db``), so its own pair is never among them
            print(f"note: the example pool shares {len(shared)} databases with the {args.split} questions; each "
                  "question sees only examples of other databases", file=sys.stderr)
        elif shared:
            raise SystemExit(f"error: the example pool {pool} holds examples of {len(shared)} database(s) the "
                             f"{args.split} questions are asked on ({', '.join(shared[:5])}): they would leak answers")
        return {"example_pool": str(pool.resolve())}

    def load(self, data_dir: Path, split: str) -> list[Item]:
        """Questions of ``spider/<split>.json``; hardness from the official parse when present, else from sqlglot."""
        base = data_dir / "spider"
        self._db_root = base / "database"
        examples: list[dict[str, Any]] = json.loads((base / f"{split}.json").read_text(encoding="utf-8"))
        items = []
        for index, ex in enumerate(examples):
            db_path = self._db_root / ex["db_id"] / f"{ex['db_id']}.sqlite"
            hardness = hardness_from_spider_sql(ex["sql"]) if isinstance(ex.get("sql"), dict) \
                else spider_hardness(ex["query"])
            items.append(Item(index=index, db_id=ex["db_id"], question=ex["question"], gold=ex["query"],
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
