#!/usr/bin/env python3
"""Replay the confidence caps that read only an answer's SQL on stored Spider benchmark runs.

    python scripts/replay_doubts.py [--data-dir DIR] benchmarks/results/spider/2026-12-07-d7f5d0f-dev-defaults [RUN ...]

A "high" answer becomes "medium" when its stored SQL joins tables
(:func:`jupyter_nl2sql.pipeline.confidence.join_doubt`), when its question names a table the SQL does not read
(:func:`jupyter_nl2sql.pipeline.shown.unread_tables`; the tables from Spider's ``tables.json``), or when the SQL
visibly does not do what the question asks (:func:`jupyter_nl2sql.pipeline.asks.unmet_asks`).  None of them reads
the model, so the replay gives what a run with them would have shown.  Prints, as stored and with each cap added, how
many answers of each confidence level were right, and how many wrong answers were not "high".
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.runner import RESULTS_FILE, default_data_dir  # noqa: E402
from jupyter_nl2sql.pipeline.asks import unmet_asks  # noqa: E402
from jupyter_nl2sql.pipeline.confidence import LEVELS, join_doubt  # noqa: E402
from jupyter_nl2sql.pipeline.shown import unread_tables  # noqa: E402

Doubt = Callable[[dict[str, Any]], bool]


def _level(record: dict[str, Any]) -> str | None:
    confidence = record.get("confidence")
    return confidence.get("level") if isinstance(confidence, dict) else None


def replay(run: Path, tables: dict[str, list[str]], dialect: str = "sqlite") -> list[str]:
    """One line per step for ``run``: its confidence levels as stored, then with each cap added in turn (joins,
    unread tables, unmet asks)."""
    records = [json.loads(line) for line in (run / RESULTS_FILE).read_text(encoding="utf-8").splitlines() if line]
    steps: list[tuple[str, list[Doubt]]] = [("stored", [])]
    steps.append(("+ joins", [lambda r: bool(join_doubt(r.get("pred") or "", dialect))]))
    steps.append(("+ unread", steps[-1][1] + [lambda r: bool(unread_tables(
        r.get("question") or "", r.get("pred") or "", dialect, tables.get(r.get("db_id"), [])))]))
    steps.append(("+ asks", steps[-1][1] + [lambda r: bool(unmet_asks(r.get("question") or "", r.get("pred") or "",
                                                                      dialect))]))
    lines = []
    for name, doubts in steps:
        levels = ["medium" if _level(r) == "high" and any(d(r) for d in doubts) else _level(r) for r in records]
        shown = " · ".join(f"{sum(1 for r, lv in zip(records, levels) if lv == level and r.get('correct'))}/"
                           f"{sum(1 for lv in levels if lv == level)}" for level in LEVELS)
        wrong = [lv for r, lv in zip(records, levels) if not r.get("correct")]
        lines.append(f"{run.name}  {name:9s} {'/'.join(LEVELS)} right: {shown}; "
                     f"wrong answers not high: {sum(1 for lv in wrong if lv != 'high')} of {len(wrong)}")
    return lines


def run_arguments(doc: str, argv: Sequence[str] | None) -> argparse.Namespace:
    """The stored runs to replay (``runs``) and the shared data folder (``--data-dir``) of a replay script."""
    p = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    p.add_argument("runs", nargs="+", type=Path, help="run folders (results.jsonl, run.json)")
    p.add_argument("--data-dir", type=Path, default=default_data_dir(), help="the shared data folder")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = run_arguments(__doc__, argv)
    schemas = json.loads((args.data_dir / "spider" / "tables.json").read_text(encoding="utf-8"))
    tables = {s["db_id"]: list(s["table_names_original"]) for s in schemas}
    for run in args.runs:
        print("\n".join(replay(run, tables)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
