"""State a benchmark run against a baseline run measured side by side.

``python -m benchmarks.compare BASE_DIR NEW_DIR`` (typically BASE = ``--raw``, NEW = the pipeline, same model,
sample and machine) prints, and with ``--out`` writes, a Markdown comparison:

- accuracy on the questions both runs scored (paired): gain in points, and how many questions only one run got;
- the gain by hardness;
- latency ratios NEW / BASE: end-to-end p50/p95/mean, generation p50, prompt tokens, peak RSS, throughput.

Comparability warnings are printed when the runs differ in benchmark, split, model or machine.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Mapping, Sequence

from benchmarks.report import load_run, percentile, summarize


def _ratio(new: float | None, base: float | None) -> float | None:
    return new / base if new is not None and base not in (None, 0) else None


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def _x(r: float | None) -> str:
    return "n/a" if r is None else f"{r:.2f}×"


def _label(summary: Mapping[str, Any], d: Path) -> str:
    return ("raw baseline" if summary.get("raw") else "pipeline") + f" ({d.name})"


def selected_records(records: Sequence[Mapping[str, Any]], meta: Mapping[str, Any]) -> dict[int, Mapping[str, Any]]:
    """Index → record for the questions of the run's sample (``selected_indices``; all records when absent).
    A repeated index keeps its last record, as :func:`benchmarks.report.summarize` does."""
    wanted = meta.get("selected_indices")
    keep = set(wanted) if wanted is not None else {r["index"] for r in records}
    return {r["index"]: r for r in records if r["index"] in keep}


Pair = tuple[Mapping[str, Any], Mapping[str, Any]]


def pair_runs(base_by: Mapping[int, Mapping[str, Any]], new_by: Mapping[int, Mapping[str, Any]]) -> list[Pair]:
    """(base record, new record) for every question both runs scored, by index."""
    return [(base_by[i], new_by[i]) for i in sorted(set(base_by) & set(new_by))]


def won_lost(pairs: Sequence[Pair]) -> tuple[list[Mapping[str, Any]], list[Mapping[str, Any]]]:
    """The new records of the questions only the new run got right (won) and only the base run got right (lost)."""
    won = [x for b, x in pairs if x.get("correct") and not b.get("correct")]
    lost = [x for b, x in pairs if b.get("correct") and not x.get("correct")]
    return won, lost


def compare(base_dir: Path, new_dir: Path) -> dict[str, Any]:
    """The comparison of two output directories as a dict (see the module docstring)."""
    base_meta, base_records = load_run(base_dir)
    new_meta, new_records = load_run(new_dir)
    base_sum, new_sum = summarize(base_records, base_meta), summarize(new_records, new_meta)
    base_by, new_by = selected_records(base_records, base_meta), selected_records(new_records, new_meta)
    pairs = pair_runs(base_by, new_by)
    n = len(pairs)
    base_ok = sum(1 for b, _ in pairs if b["correct"])
    new_ok = sum(1 for _, x in pairs if x["correct"])
    won, lost = won_lost(pairs)
    only_new, only_base = len(won), len(lost)
    levels: dict[str, dict[str, Any]] = {}
    for b, x in pairs:
        lvl = x.get("hardness") or b.get("hardness")
        if lvl is None:
            continue
        d = levels.setdefault(lvl, {"n": 0, "base": 0, "new": 0})
        d["n"] += 1
        d["base"] += bool(b["correct"])
        d["new"] += bool(x["correct"])

    def paired(key: str, q: float | None = None, which: str = "mean") -> dict[str, Any]:
        bv = [b.get(key) for b, _ in pairs if b.get(key) is not None]
        nv = [x.get(key) for _, x in pairs if x.get(key) is not None]
        if which == "mean":
            bs = sum(bv) / len(bv) if bv else None
            ns = sum(nv) / len(nv) if nv else None
        else:
            bs, ns = percentile(bv, q or 50), percentile(nv, q or 50)
        return {"base": bs, "new": ns, "ratio": _ratio(ns, bs)}

    warnings = []
    for key in ("benchmark", "split"):
        if base_sum.get(key) != new_sum.get(key):
            warnings.append(f"{key} differs: {base_sum.get(key)} vs {new_sum.get(key)}")
    base_model = base_sum.get("model") or ((base_sum.get("predictor") or {}).get("provenance") or {}).get("model_id")
    new_model = new_sum.get("model") or ((new_sum.get("predictor") or {}).get("provenance") or {}).get("model_id")
    if base_model != new_model:
        warnings.append(f"model differs: {base_model} vs {new_model}")
    bm, nm = base_sum.get("machine") or {}, new_sum.get("machine") or {}
    for key in ("cpu", "gpu", "cpu_affinity"):
        if bm.get(key) != nm.get(key):
            warnings.append(f"machine {key} differs: {bm.get(key)} vs {nm.get(key)} (latency ratios not comparable)")
    for label, summ in (("base", base_sum), ("new", new_sum)):
        if summ.get("contended"):
            warnings.append(f"the {label} run shared its CPUs with other work (mean load average "
                            f"{(summ.get('load_avg_1m') or {}).get('mean', 0):.1f}): its latencies are skewed")
    if n < max(len(base_by), len(new_by)):
        warnings.append(f"only {n} questions are common to both runs ({len(base_by)} base, {len(new_by)} new); "
                        "paired numbers use those")

    return {
        "base_dir": str(base_dir), "new_dir": str(new_dir),
        "base_label": _label(base_sum, base_dir), "new_label": _label(new_sum, new_dir),
        "n_common": n,
        "accuracy": {"base": base_ok / n if n else None, "new": new_ok / n if n else None,
                     "gain_points": 100 * (new_ok - base_ok) / n if n else None,
                     "only_new": only_new, "only_base": only_base,
                     "both": sum(1 for b, x in pairs if b["correct"] and x["correct"]),
                     "neither": sum(1 for b, x in pairs if not b["correct"] and not x["correct"])},
        "by_hardness": {k: {**v, "gain_points": 100 * (v["new"] - v["base"]) / v["n"]} for k, v in levels.items()},
        "exec_failure_share": {"base": (sum(1 for b, _ in pairs if b.get("exec_failed")) / n) if n else None,
                               "new": (sum(1 for _, x in pairs if x.get("exec_failed")) / n) if n else None},
        "latency": {
            "end_to_end_p50": paired("latency_s", 50, "pct"),
            "end_to_end_p95": paired("latency_s", 95, "pct"),
            "end_to_end_mean": paired("latency_s"),
            "generation_p50": paired("generation_s", 50, "pct"),
            "tokens_in_mean": paired("tokens_in"),
            "tokens_out_mean": paired("tokens_out"),
        },
        "peak_rss": {"base": base_sum.get("peak_rss_bytes"), "new": new_sum.get("peak_rss_bytes"),
                     "ratio": _ratio(new_sum.get("peak_rss_bytes"), base_sum.get("peak_rss_bytes"))},
        "throughput_qps": {"base": base_sum.get("throughput_qps"), "new": new_sum.get("throughput_qps"),
                           "ratio": _ratio(new_sum.get("throughput_qps"), base_sum.get("throughput_qps"))},
        "warnings": warnings,
    }


def markdown(c: Mapping[str, Any]) -> str:
    """The comparison as Markdown, led by one sentence with the ratios."""
    acc, lat = c["accuracy"], c["latency"]
    e2e = lat["end_to_end_p50"]
    lines = [f"# {c['new_label']} vs {c['base_label']}", ""]
    if c["n_common"]:
        gain = acc["gain_points"]
        lines.append(f"On the {c['n_common']} questions both runs scored, the {c['new_label'].split(' (')[0]} is "
                     f"{'+' if gain >= 0 else ''}{gain:.1f} points of execution accuracy against the "
                     f"{c['base_label'].split(' (')[0]} ({_pct(acc['new'])} vs {_pct(acc['base'])}; "
                     f"{acc['only_new']} only it answers, {acc['only_base']} only the baseline answers), "
                     f"at {_x(e2e['ratio'])} the median end-to-end latency "
                     f"and {_x(lat['generation_p50']['ratio'])} the median generation time.")
    else:
        lines.append("The runs have no question in common.")
    gain_text = "n/a" if acc["gain_points"] is None else f"{acc['gain_points']:+.1f} pts"
    lines += ["", "| metric | base | new | new / base |", "|---|---:|---:|---:|",
              f"| execution accuracy (paired) | {_pct(acc['base'])} | {_pct(acc['new'])} | {gain_text} |",
              f"| execution failures | {_pct(c['exec_failure_share']['base'])} | "
              f"{_pct(c['exec_failure_share']['new'])} | |"]

    def sec(x: float | None) -> str:
        return "n/a" if x is None else f"{x:.2f} s"

    for key, name in (("end_to_end_p50", "end-to-end latency p50"), ("end_to_end_p95", "end-to-end latency p95"),
                      ("end_to_end_mean", "end-to-end latency mean"), ("generation_p50", "generation time p50")):
        d = lat[key]
        lines.append(f"| {name} | {sec(d['base'])} | {sec(d['new'])} | {_x(d['ratio'])} |")
    for key, name in (("tokens_in_mean", "prompt tokens (mean)"), ("tokens_out_mean", "generated tokens (mean)")):
        d = lat[key]
        fmt = (lambda v: "n/a" if v is None else f"{v:.0f}")
        lines.append(f"| {name} | {fmt(d['base'])} | {fmt(d['new'])} | {_x(d['ratio'])} |")
    rss = c["peak_rss"]
    mb = (lambda v: "n/a" if v is None else f"{v / 2**20:.0f} MB")
    lines.append(f"| peak RSS | {mb(rss['base'])} | {mb(rss['new'])} | {_x(rss['ratio'])} |")
    tp = c["throughput_qps"]
    qps = (lambda v: "n/a" if v is None else f"{v:.3f} q/s")
    lines.append(f"| throughput | {qps(tp['base'])} | {qps(tp['new'])} | {_x(tp['ratio'])} |")
    if c["by_hardness"]:
        lines += ["", "| level | questions | base | new | gain |", "|---|---:|---:|---:|---:|"]
        for lvl, d in c["by_hardness"].items():
            lines.append(f"| {lvl} | {d['n']} | {_pct(d['base'] / d['n'])} | {_pct(d['new'] / d['n'])} | "
                         f"{d['gain_points']:+.1f} pts |")
    if c["warnings"]:
        lines += ["", *[f"> warning: {w}" for w in c["warnings"]]]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m benchmarks.compare BASE_DIR NEW_DIR [--out FILE.md] [--json FILE.json]``."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.compare",
                                description="Compare a run (NEW) with a baseline run (BASE), e.g. pipeline vs --raw.")
    p.add_argument("base", type=Path, help="baseline output directory (e.g. a --raw run)")
    p.add_argument("new", type=Path, help="output directory to compare with it")
    p.add_argument("--out", type=Path, default=None, help="also write the Markdown here")
    p.add_argument("--json", type=Path, default=None, help="also write the numbers as JSON here")
    args = p.parse_args(argv)
    for d in (args.base, args.new):
        if not (d / "results.jsonl").exists():
            print(f"error: {d} has no results.jsonl", file=sys.stderr)
            return 2
    c = compare(args.base, args.new)
    text = markdown(c)
    print(text)
    if args.out:
        args.out.write_text(text, encoding="utf-8")
    if args.json:
        args.json.write_text(json.dumps(c, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
