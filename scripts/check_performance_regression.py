#!/usr/bin/env python3
"""Fail CI when a benchmark run regresses against a baseline run.

    python scripts/check_performance_regression.py BASELINE.json NEW.json

Both files are ``summary.json`` files written by ``python -m benchmarks.spider`` / ``benchmarks.wikisql`` (or
``benchmarks.report``); a benchmark output directory is accepted too (its ``summary.json`` is read).
The check fails (exit 1) when

- median generation time (``latency.generation.p50``) grows by more than 20 %,
- peak memory (``peak_rss_bytes``) grows by more than 15 %,
- execution accuracy (``ex``) drops by more than 5 points,

and passes (exit 0) otherwise.  A metric missing from either file is shown as ``n/a`` and not judged (``--strict``
fails instead).  Exit 2: a file cannot be read.  The limits can be changed with ``--max-generation-increase``,
``--max-memory-increase`` and ``--max-accuracy-drop``.  A table of every metric and its verdict is printed.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence


@dataclass(frozen=True)
class Check:
    """One gated metric: where it lives in the summary, how it is compared and shown."""

    name: str
    path: tuple[str, ...]
    kind: str  # "relative": may grow by at most ``limit`` (fraction); "points": may drop by at most ``limit``
    limit: float
    unit: str


@dataclass(frozen=True)
class Verdict:
    """The outcome of one check."""

    check: Check
    baseline: float | None
    new: float | None
    change: float | None  # relative change (fraction) or points
    failed: bool
    judged: bool


def _get(summary: Mapping[str, Any], path: Sequence[str]) -> float | None:
    node: Any = summary
    for key in path:
        if not isinstance(node, Mapping) or key not in node:
            return None
        node = node[key]
    return float(node) if isinstance(node, (int, float)) and not isinstance(node, bool) else None


def default_checks(max_generation_increase: float = 0.20, max_memory_increase: float = 0.15,
                   max_accuracy_drop: float = 5.0) -> list[Check]:
    """The three gates: generation p50 (+20 %), peak RSS (+15 %), execution accuracy (-5 points)."""
    return [
        Check("generation time p50", ("latency", "generation", "p50"), "relative", max_generation_increase, "s"),
        Check("peak memory (RSS)", ("peak_rss_bytes",), "relative", max_memory_increase, "bytes"),
        Check("execution accuracy", ("ex",), "points", max_accuracy_drop, "fraction"),
    ]


def evaluate(baseline: Mapping[str, Any], new: Mapping[str, Any], checks: Sequence[Check],
             strict: bool = False) -> list[Verdict]:
    """Judge every check of ``new`` against ``baseline``."""
    verdicts = []
    for c in checks:
        b, n = _get(baseline, c.path), _get(new, c.path)
        if b is None or n is None:
            verdicts.append(Verdict(c, b, n, None, failed=strict, judged=False))
            continue
        if c.kind == "points":
            change = 100.0 * (n - b)  # accuracy is a fraction in the summary
            failed = -change > c.limit + 1e-9
        else:
            change = (n - b) / b if b > 0 else (0.0 if n == b else float("inf"))
            failed = change > c.limit + 1e-9
        verdicts.append(Verdict(c, b, n, change, failed, judged=True))
    return verdicts


def _show(value: float | None, unit: str) -> str:
    if value is None:
        return "n/a"
    if unit == "s":
        return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"
    if unit == "bytes":
        return f"{value / 2**20:.0f} MB"
    if unit == "fraction":
        return f"{100 * value:.1f}%"
    return f"{value:g}"


def table(verdicts: Sequence[Verdict]) -> str:
    """The verdicts as an aligned text table."""
    rows = [("metric", "baseline", "new", "change", "limit", "status")]
    for v in verdicts:
        c = v.check
        if v.change is None:
            change = "n/a"
        elif c.kind == "points":
            change = f"{v.change:+.1f} pts"
        else:
            change = f"{100 * v.change:+.1f}%"
        limit = f"-{c.limit:g} pts" if c.kind == "points" else f"+{100 * c.limit:g}%"
        status = "FAIL" if v.failed else ("ok" if v.judged else "not judged")
        rows.append((c.name, _show(v.baseline, c.unit), _show(v.new, c.unit), change, limit, status))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def load_summary(path: Path) -> dict[str, Any]:
    """A summary.json, or the summary.json inside a benchmark output directory."""
    if path.is_dir():
        path = path / "summary.json"
    return json.loads(path.read_text(encoding="utf-8"))


def main(argv: Sequence[str] | None = None) -> int:
    """Command line; returns the exit status (0 pass, 1 regression, 2 unreadable input)."""
    p = argparse.ArgumentParser(description="Fail when a benchmark summary regresses against a baseline.")
    p.add_argument("baseline", type=Path, help="baseline summary.json (or its output directory)")
    p.add_argument("new", type=Path, help="new summary.json (or its output directory)")
    p.add_argument("--max-generation-increase", type=float, default=0.20, metavar="FRACTION",
                   help="largest allowed growth of the generation-time p50 (default 0.20 = 20%%)")
    p.add_argument("--max-memory-increase", type=float, default=0.15, metavar="FRACTION",
                   help="largest allowed growth of peak RSS (default 0.15 = 15%%)")
    p.add_argument("--max-accuracy-drop", type=float, default=5.0, metavar="POINTS",
                   help="largest allowed drop of execution accuracy in points (default 5)")
    p.add_argument("--strict", action="store_true", help="fail when a metric is missing from either file")
    args = p.parse_args(argv)
    try:
        baseline, new = load_summary(args.baseline), load_summary(args.new)
    except (OSError, ValueError) as exc:
        print(f"error: cannot read the summaries: {exc}", file=sys.stderr)
        return 2
    verdicts = evaluate(baseline, new, default_checks(args.max_generation_increase, args.max_memory_increase,
                                                      args.max_accuracy_drop), strict=args.strict)
    print(table(verdicts))
    for key in ("benchmark", "model", "n"):
        if baseline.get(key) != new.get(key):
            print(f"note: {key} differs: {baseline.get(key)!r} (baseline) vs {new.get(key)!r} (new)")
    failed = [v.check.name for v in verdicts if v.failed]
    if failed:
        print(f"REGRESSION: {', '.join(failed)}")
        return 1
    print("no regression")
    return 0


if __name__ == "__main__":
    sys.exit(main())
