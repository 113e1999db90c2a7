"""One markdown table for several runs of the same sample: ``python -m benchmarks.ablation BASE OTHER...``.

Each argument is a runner output directory (``--out``), optionally ``label=DIR``.  Per run: execution accuracy,
the change against the first run with the questions it wins and loses (paired, same question indices), median and
p95 latency, mean prompt and generated tokens, mean model calls per question (the SQL the model wrote: first try,
repairs, candidates) and the mean 1-minute load average while it ran (other processes on the machine slow it).
Runs over different question samples are refused.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path
from typing import Any, Sequence

from benchmarks.runner import RESULTS_FILE, load_records


def _quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    pos = q * (len(ordered) - 1)
    lo, hi = int(pos), min(int(pos) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def _mean(values: list[float]) -> float | None:
    return statistics.fmean(values) if values else None


def summarize(records: list[dict[str, Any]]) -> dict[str, Any]:
    """EX, latency and token figures of one run's records."""
    lat = [r["latency_s"] for r in records if r.get("latency_s") is not None]
    calls = [len(r["candidates"]) for r in records if r.get("candidates")]
    return {
        "n": len(records), "correct": sum(bool(r["correct"]) for r in records),
        "p50": _quantile(lat, 0.5), "p95": _quantile(lat, 0.95),
        "tokens_in": _mean([r["tokens_in"] for r in records if r.get("tokens_in") is not None]),
        "tokens_out": _mean([r["tokens_out"] for r in records if r.get("tokens_out") is not None]),
        "calls": _mean(calls) if calls else None,
        "load": _mean([r["load_avg_1m"] for r in records if r.get("load_avg_1m") is not None]),
    }


def table(runs: Sequence[tuple[str, Path]]) -> str:
    """The markdown table comparing ``runs`` (label, directory) with the first one."""
    loaded = []
    for label, directory in runs:
        records = load_records(directory / RESULTS_FILE)
        if not records:
            raise SystemExit(f"error: no results in {directory}")
        loaded.append((label, {r["index"]: r for r in records}))
    base_label, base = loaded[0]
    for label, recs in loaded[1:]:
        if set(recs) != set(base):
            raise SystemExit(f"error: {label} and {base_label} scored different questions "
                             f"({len(set(recs) ^ set(base))} differ); use the same --limit/--seed and finish both")
    lines = ["| configuration | EX | Δ EX vs first | wins / losses | p50 latency (s) | p95 latency (s) | "
             "prompt tokens (mean) | generated tokens (mean) | model calls (mean) | load avg |",
             "|---|---|---|---|---|---|---|---|---|---|"]

    def fmt(x: float | None, digits: int = 1) -> str:
        return "–" if x is None else f"{x:.{digits}f}"

    base_ex = None
    for label, recs in loaded:
        s = summarize(list(recs.values()))
        ex = 100 * s["correct"] / s["n"]
        base_ex = ex if base_ex is None else base_ex
        wins = sum(1 for i, r in recs.items() if r["correct"] and not base[i]["correct"])
        losses = sum(1 for i, r in recs.items() if not r["correct"] and base[i]["correct"])
        delta = "" if label == base_label else f"{ex - base_ex:+.1f}"
        lines.append(f"| {label} | {ex:.1f} % ({s['correct']}/{s['n']}) | {delta} | "
                     f"{'' if label == base_label else f'+{wins} / −{losses}'} | {fmt(s['p50'])} | {fmt(s['p95'])} | "
                     f"{fmt(s['tokens_in'], 0)} | {fmt(s['tokens_out'], 0)} | {fmt(s['calls'], 2)} | "
                     f"{fmt(s['load'])} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Print the table."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.ablation", description=__doc__.split("\n")[0])
    p.add_argument("runs", nargs="+", metavar="[LABEL=]DIR", help="runner output directories; the first is the base")
    args = p.parse_args(argv)
    runs = []
    for item in args.runs:
        label, sep, path = item.partition("=")
        runs.append((label, Path(path)) if sep else (Path(item).name, Path(item)))
    print(table(runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
