#!/usr/bin/env python3
"""Replay the join cap (:func:`jupyter_nl2sql.pipeline.confidence.join_doubt`) on stored benchmark runs.

    python scripts/replay_join_doubt.py benchmarks/results/spider/2026-12-07-d7f5d0f-dev-defaults [RUN ...]

A "high" answer whose stored SQL joins tables becomes "medium"; the rule reads only the SQL, so the replay gives
what a run with it would have shown.  Prints, before and with the cap, how many answers of each confidence level
were right, and how many wrong answers were not "high".
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.runner import RESULTS_FILE  # noqa: E402
from jupyter_nl2sql.pipeline.confidence import LEVELS, join_doubt  # noqa: E402


def _level(record: dict[str, Any]) -> str | None:
    confidence = record.get("confidence")
    return confidence.get("level") if isinstance(confidence, dict) else None


def replay(run: Path, dialect: str = "sqlite") -> list[str]:
    """Two lines for ``run``: its confidence levels as stored, and with the join cap."""
    records = [json.loads(line) for line in (run / RESULTS_FILE).read_text(encoding="utf-8").splitlines() if line]
    lines = []
    for capped in (False, True):
        levels = ["medium" if capped and _level(r) == "high" and join_doubt(r.get("pred") or "", dialect)
                  else _level(r) for r in records]
        shown = " · ".join(f"{sum(1 for r, lv in zip(records, levels) if lv == level and r.get('correct'))}/"
                           f"{sum(1 for lv in levels if lv == level)}" for level in LEVELS)
        wrong = [lv for r, lv in zip(records, levels) if not r.get("correct")]
        lines.append(f"{run.name}  {'join cap' if capped else 'stored  '}  {'/'.join(LEVELS)} right: {shown}; "
                     f"wrong answers not high: {sum(1 for lv in wrong if lv != 'high')} of {len(wrong)}")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    runs = [Path(a) for a in (sys.argv[1:] if argv is None else argv)]
    if not runs:
        print(__doc__)
        return 2
    for run in runs:
        print("\n".join(replay(run)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
