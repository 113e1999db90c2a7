"""Summaries, tables and plots of a benchmark output directory.

``python -m benchmarks.report DIR [DIR ...]`` rebuilds, from ``run.json`` and ``results.jsonl``:

- ``summary.json``: execution accuracy overall and by hardness (or the benchmark's breakdown), execution-failure
  share, skipped count, p50/p95/p99 end-to-end and generation latency, per-stage medians, throughput, peak RSS,
  tokens/s, machine, command line, date and git commit (``scripts/check_performance_regression.py`` judges it).
- ``summary.md``: the same as Markdown tables.
- ``accuracy_by_<breakdown>.png`` and ``latency_hist.png`` (matplotlib, Agg backend).

Definitions: latency is the pipeline's wall time per question without model loading (scoring excluded);
generation latency is the model's decode time per question (all rounds); throughput is questions per second of
pipeline time (questions / sum of latencies, i.e. sequential); tokens/s is total generated tokens / total
generation time; peak RSS is the largest per-question process peak.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from benchmarks.runner import META_FILE, RESULTS_FILE, load_records

SUMMARY_FILE = "summary.json"
MARKDOWN_FILE = "summary.md"
LATENCY_PLOT = "latency_hist.png"


# ---------------------------------------------------------------------------------------------------------------
# Machine
# ---------------------------------------------------------------------------------------------------------------
def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def machine_info() -> dict[str, Any]:
    """Where the numbers were measured: OS, Python, CPU, cores, memory, torch and GPU when known."""
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
    }
    try:
        info["cpu_affinity"] = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        pass
    try:
        import psutil

        info["memory_total"] = psutil.virtual_memory().total
        info["cpu_physical"] = psutil.cpu_count(logical=False)
    except Exception:  # pragma: no cover - psutil missing or restricted
        pass
    try:
        from importlib.metadata import version

        info["torch"] = version("torch")
    except Exception:
        pass
    torch = sys.modules.get("torch")  # only look at CUDA when the process already uses torch
    if torch is not None:
        try:
            info["torch_threads"] = torch.get_num_threads()
            if torch.cuda.is_available():
                info["gpu"] = torch.cuda.get_device_name(0)
        except Exception:  # pragma: no cover
            pass
    return info


# ---------------------------------------------------------------------------------------------------------------
# Numbers
# ---------------------------------------------------------------------------------------------------------------
def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0-100) with linear interpolation between closest ranks; None when empty.

    >>> percentile([1, 2, 3, 4], 50), percentile([5], 99), percentile([], 50)
    (2.5, 5.0, None)
    """
    xs = sorted(float(v) for v in values)
    if not xs:
        return None
    pos = (len(xs) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def distribution(values: Iterable[float | None]) -> dict[str, Any]:
    """n, mean, p50, p95, p99 and max of the non-missing values."""
    xs = [float(v) for v in values if v is not None]
    return {"n": len(xs), "mean": sum(xs) / len(xs) if xs else None, "p50": percentile(xs, 50),
            "p95": percentile(xs, 95), "p99": percentile(xs, 99), "max": max(xs) if xs else None}


def _accuracy(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    n = len(records)
    correct = sum(1 for r in records if r.get("correct"))
    return {"n": n, "correct": correct, "ex": correct / n if n else None}


def _contended(records: Sequence[Mapping[str, Any]], machine: Mapping[str, Any]) -> bool | None:
    """True when the mean 1-minute load average during the run exceeded the CPUs available by more than one
    runnable task (timings skewed).  The run itself keeps every CPU busy while the model computes (its load is
    about the CPU count), so only load beyond that, from other work, counts."""
    loads = [r["load_avg_1m"] for r in records if r.get("load_avg_1m") is not None]
    cpus = machine.get("cpu_affinity") or machine.get("cpu_count")
    if not loads or not cpus:
        return None
    return sum(loads) / len(loads) > cpus + 1


#: How the schema part of the prompt reached the model's cache (``Stats.prefix``) → the latency block it feeds.
PREFIX_PATHS = {"computed": "first_seen", "restored": "restored", "resident": "resident"}


def _path_latencies(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """End-to-end latency split by the path a question took: first question on a database (its schema state
    computed), state restored from disk, state resident from the question before; and whole-process wall time when
    each question ran in a process of its own.  Only the paths that occur."""
    blocks = {name: distribution(r.get("latency_s") for r in records if r.get("prefix") == source)
              for source, name in PREFIX_PATHS.items()}
    blocks["new_process"] = distribution(r.get("process_wall_s") for r in records)
    return {name: block for name, block in blocks.items() if block.get("n")}


def summarize(records: Sequence[Mapping[str, Any]], meta: Mapping[str, Any]) -> dict[str, Any]:
    """The summary of the records of the selected questions (extra records from other samples are ignored)."""
    wanted = meta.get("selected_indices")
    if wanted is not None:
        keep = set(wanted)
        records = [r for r in records if r.get("index") in keep]
    by_index = {r["index"]: r for r in records}  # a repeated index keeps its last record
    records = [by_index[i] for i in sorted(by_index)]
    levels = list(meta.get("breakdown_levels") or [])
    for r in records:
        if r.get("hardness") is not None and r["hardness"] not in levels:
            levels.append(r["hardness"])
    by_level = {lvl: _accuracy([r for r in records if r.get("hardness") == lvl]) for lvl in levels}
    by_level = {k: v for k, v in by_level.items() if v["n"]}
    latencies = [r.get("latency_s") for r in records]
    total_latency = sum(v for v in latencies if v is not None)
    stage_names: list[str] = []
    for r in records:
        for name in (r.get("stages") or {}):
            if name not in stage_names:
                stage_names.append(name)
    tokens_out = sum(r.get("tokens_out") or 0 for r in records)
    # decode time where the backend splits it from prefill, else the whole generation time
    generation = sum((r.get("decode_s") if r.get("decode_s") is not None else r.get("generation_s")) or 0.0
                     for r in records)
    peaks = [r["peak_rss"] for r in records if r.get("peak_rss")]
    sessions = list(meta.get("sessions") or [])
    last = sessions[-1] if sessions else {}
    loads = [s.get("model_load_s") for s in sessions if s.get("model_load_s") is not None]
    predictor = next((s["predictor"] for s in reversed(sessions) if s.get("predictor")), {})
    n = len(records)
    return {
        "benchmark": meta.get("benchmark"),
        "split": meta.get("split"),
        "model": meta.get("model"),
        "raw": meta.get("raw"),
        "options": meta.get("options"),
        "scoring": meta.get("scoring"),
        "timeout": meta.get("timeout"),
        "limit": meta.get("limit"),
        "seed": meta.get("seed"),
        "databases": meta.get("databases"),
        "order": meta.get("order"),  # the order questions are asked in (grouped by database, or shuffled)
        "n_selected": len(wanted) if wanted is not None else n,
        "n": n,
        "complete": wanted is None or n == len(wanted),
        **{k: v for k, v in _accuracy(records).items() if k != "n"},
        "breakdown": meta.get("breakdown", "hardness"),
        "by_hardness": by_level,
        "exec_failures": sum(1 for r in records if r.get("exec_failed")),
        "exec_failure_share": (sum(1 for r in records if r.get("exec_failed")) / n) if n else None,
        "pipeline_errors": sum(1 for r in records if r.get("pred") is None),
        # SQL the pipeline flagged as failed (check or execution, after repair) that still matched the gold:
        # candidates for an over-strict check
        "flagged_by_pipeline": sum(1 for r in records if r.get("pipeline_error") and r.get("pred") is not None),
        "flagged_but_correct": sum(1 for r in records if r.get("pipeline_error") and r.get("correct")),
        "gold_failures": sum(1 for r in records if r.get("gold_error")),
        "skipped": sum((meta.get("skipped") or {}).values()),
        "skipped_reasons": meta.get("skipped") or {},
        "n_items": meta.get("n_items"),
        "n_scorable": meta.get("n_scorable"),
        "latency": {
            "end_to_end": distribution(latencies),
            "generation": distribution(r.get("generation_s") for r in records),
            "stages": {s: distribution((r.get("stages") or {}).get(s) for r in records) for s in stage_names},
            "scoring": distribution(r.get("scoring_s") for r in records),
            **_path_latencies(records),
        },
        "throughput_qps": n / total_latency if total_latency > 0 else None,
        "peak_rss_bytes": max(peaks) if peaks else None,
        "tokens_per_second": tokens_out / generation if generation > 0 and tokens_out else None,
        "tokens_in": distribution(r.get("tokens_in") for r in records),
        "tokens_out": distribution(r.get("tokens_out") for r in records),
        "model_load_s": loads[-1] if loads else None,
        "load_avg_1m": distribution(r.get("load_avg_1m") for r in records),
        "contended": _contended(records, last.get("machine") or {}),
        "predictor": predictor,
        "machine": last.get("machine"),
        "command": last.get("command"),
        "date": last.get("finished") or last.get("started"),
        "git_commit": (last.get("git") or {}).get("commit"),
        "git_dirty": (last.get("git") or {}).get("dirty"),
        "sessions": len(sessions),
    }


# ---------------------------------------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------------------------------------
def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def _sec(x: float | None) -> str:
    if x is None:
        return "n/a"
    return f"{x * 1000:.0f} ms" if x < 1 else f"{x:.2f} s"


def _bytes(n: float | None) -> str:
    if n is None:
        return "n/a"
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit in ("B", "KB") else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"  # pragma: no cover


def _num(x: float | None, fmt: str = "{:.2f}") -> str:
    return "n/a" if x is None else fmt.format(x)


def markdown(summary: Mapping[str, Any]) -> str:
    """The summary as Markdown: accuracy table, latency table, run facts."""
    kind = "raw baseline" if summary.get("raw") else "pipeline"
    model = summary.get("model") or (summary.get("predictor") or {}).get("provenance", {}).get("model_id") \
        or "default model"
    lines = [f"# {summary.get('benchmark')} {summary.get('split')}: {kind}, {model}", ""]
    if not summary.get("complete"):
        lines += [f"**Incomplete:** {summary['n']} of {summary['n_selected']} selected questions scored.", ""]
    breakdown = summary.get("breakdown", "hardness")
    lines += [f"| {breakdown} | questions | correct | execution accuracy |", "|---|---:|---:|---:|"]
    for level, acc in (summary.get("by_hardness") or {}).items():
        lines.append(f"| {level} | {acc['n']} | {acc['correct']} | {_pct(acc['ex'])} |")
    lines.append(f"| **all** | **{summary['n']}** | **{summary.get('correct', 0)}** | **{_pct(summary.get('ex'))}** |")
    lines += ["", f"Execution failures: {summary.get('exec_failures', 0)} ({_pct(summary.get('exec_failure_share'))});"
              f" pipeline errors (no SQL): {summary.get('pipeline_errors', 0)}; SQL flagged as failed by the "
              f"pipeline: {summary.get('flagged_by_pipeline', 0)} (of which correct: "
              f"{summary.get('flagged_but_correct', 0)}); gold failures: "
              f"{summary.get('gold_failures', 0)}; skipped (not scorable): {summary.get('skipped', 0)}"
              + (f" ({', '.join(f'{k}: {v}' for k, v in summary['skipped_reasons'].items())})"
                 if summary.get("skipped_reasons") else "") + ".", ""]
    lat = summary.get("latency") or {}
    lines += ["| latency per question | p50 | p95 | p99 | mean |", "|---|---:|---:|---:|---:|"]
    rows = [("end to end", lat.get("end_to_end") or {}), ("generation", lat.get("generation") or {})]
    rows += [(f"stage: {k}", v) for k, v in (lat.get("stages") or {}).items()]
    for name, d in rows:
        lines.append(f"| {name} | {_sec(d.get('p50'))} | {_sec(d.get('p95'))} | {_sec(d.get('p99'))} | "
                     f"{_sec(d.get('mean'))} |")
    machine = summary.get("machine") or {}
    lines += ["",
              f"- throughput: {_num(summary.get('throughput_qps'), '{:.3f}')} questions/s (sequential)",
              f"- generation speed: {_num(summary.get('tokens_per_second'), '{:.1f}')} tokens/s; mean tokens in/out:"
              f" {_num((summary.get('tokens_in') or {}).get('mean'), '{:.0f}')} / "
              f"{_num((summary.get('tokens_out') or {}).get('mean'), '{:.0f}')}",
              f"- peak RSS: {_bytes(summary.get('peak_rss_bytes'))}; model load: {_sec(summary.get('model_load_s'))}",
              f"- system load (1-min average) during the run: mean "
              f"{_num((summary.get('load_avg_1m') or {}).get('mean'))}, max "
              f"{_num((summary.get('load_avg_1m') or {}).get('max'))}"
              + (" — **more than the CPUs available: latencies are skewed by other processes**"
                 if summary.get("contended") else ""),
              f"- machine: {machine.get('cpu')} ({machine.get('cpu_affinity') or machine.get('cpu_count')} CPUs"
              f"{', ' + machine['gpu'] if machine.get('gpu') else ''}), {_bytes(machine.get('memory_total'))} RAM, "
              f"Python {machine.get('python')}, torch {machine.get('torch', 'n/a')}",
              f"- options: `{json.dumps(summary.get('options') or {})}`; scoring: "
              f"`{json.dumps(summary.get('scoring') or {})}`",
              f"- command: `{summary.get('command')}`",
              f"- date: {summary.get('date')}; git commit: {summary.get('git_commit') or 'none'}"
              f"{' (dirty)' if summary.get('git_dirty') else ''}", ""]
    return "\n".join(lines)


def console_summary(summary: Mapping[str, Any]) -> str:
    """One paragraph for the terminal at the end of a run."""
    lat = (summary.get("latency") or {}).get("end_to_end") or {}
    gen = (summary.get("latency") or {}).get("generation") or {}
    parts = [f"{summary.get('benchmark')}: EX {_pct(summary.get('ex'))} ({summary.get('correct', 0)}/{summary['n']})"]
    for level, acc in (summary.get("by_hardness") or {}).items():
        parts.append(f"{level} {_pct(acc['ex'])} ({acc['correct']}/{acc['n']})")
    text = ", ".join(parts)
    text += (f"\nexec failures {_pct(summary.get('exec_failure_share'))}, skipped {summary.get('skipped', 0)}; "
             f"latency p50 {_sec(lat.get('p50'))} p95 {_sec(lat.get('p95'))}; generation p50 {_sec(gen.get('p50'))};"
             f" {_num(summary.get('tokens_per_second'), '{:.1f}')} tok/s; peak RSS "
             f"{_bytes(summary.get('peak_rss_bytes'))}")
    return text


def plot(summary: Mapping[str, Any], records: Sequence[Mapping[str, Any]], out_dir: Path) -> list[Path]:
    """Accuracy-by-breakdown bar chart and latency histogram, as PNG files in ``out_dir``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    levels = summary.get("by_hardness") or {}
    breakdown = summary.get("breakdown", "hardness")
    if levels:
        fig, ax = plt.subplots(figsize=(6, 3.6))
        names = list(levels) + ["all"]
        values = [100 * (levels[k]["ex"] or 0) for k in levels] + [100 * (summary.get("ex") or 0)]
        counts = [levels[k]["n"] for k in levels] + [summary["n"]]
        bars = ax.bar(names, values, color=["#4c72b0"] * len(levels) + ["#dd8452"])
        for bar, v, n in zip(bars, values, counts):
            ax.text(bar.get_x() + bar.get_width() / 2, v + 1, f"{v:.1f}%\n(n={n})", ha="center", va="bottom",
                    fontsize=8)
        ax.set_ylim(0, 115)
        ax.set_ylabel("execution accuracy (%)")
        ax.set_title(f"{summary.get('benchmark')} {summary.get('split')}: accuracy by {breakdown}"
                     + (" (raw baseline)" if summary.get("raw") else ""))
        fig.tight_layout()
        path = out_dir / f"accuracy_by_{breakdown}.png"
        fig.savefig(path, dpi=120)
        plt.close(fig)
        written.append(path)
    e2e = [r["latency_s"] for r in records if r.get("latency_s") is not None]
    gen = [r["generation_s"] for r in records if r.get("generation_s") is not None]
    if e2e:
        fig, ax = plt.subplots(figsize=(6, 3.6))
        import numpy as np

        bins = np.histogram_bin_edges(e2e + gen, bins=min(40, max(5, len(e2e) // 3)))
        ax.hist(e2e, bins=bins, alpha=0.6, label="end to end")
        if gen:
            ax.hist(gen, bins=bins, alpha=0.6, label="generation")
        for q, style in ((50, "--"), (95, ":")):
            p = percentile(e2e, q)
            if p is not None:
                ax.axvline(p, color="k", linestyle=style, linewidth=1, label=f"p{q} end to end {p:.2f} s")
        ax.set_xlabel("seconds per question")
        ax.set_ylabel("questions")
        ax.set_title(f"{summary.get('benchmark')} latency (n={len(e2e)})")
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = out_dir / LATENCY_PLOT
        fig.savefig(path, dpi=120)
        plt.close(fig)
        written.append(path)
    return written


def load_run(out_dir: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """``run.json`` (empty dict when missing) and the records of ``results.jsonl``."""
    meta_path = out_dir / META_FILE
    meta = json.loads(meta_path.read_text(encoding="utf-8")) if meta_path.exists() else {}
    return meta, load_records(out_dir / RESULTS_FILE)


def write_reports(out_dir: Path, *, plots: bool = True) -> dict[str, Any]:
    """Write summary.json, summary.md and the plots of ``out_dir``; return the summary."""
    meta, records = load_run(out_dir)
    summary = summarize(records, meta)
    (out_dir / SUMMARY_FILE).write_text(json.dumps(summary, indent=2, default=str) + "\n", encoding="utf-8")
    (out_dir / MARKDOWN_FILE).write_text(markdown(summary), encoding="utf-8")
    if plots and records:
        wanted = set(meta.get("selected_indices") or [r["index"] for r in records])
        plot(summary, [r for r in records if r["index"] in wanted], out_dir)
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m benchmarks.report DIR [DIR ...]``: rebuild the reports of output directories."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.report", description=__doc__.split("\n\n")[0])
    p.add_argument("dirs", nargs="+", type=Path, help="benchmark output directories")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    args = p.parse_args(argv)
    for d in args.dirs:
        if not (d / RESULTS_FILE).exists():
            print(f"error: {d} has no {RESULTS_FILE}", file=sys.stderr)
            return 2
        summary = write_reports(d, plots=not args.no_plots)
        print(f"{d}:\n{console_summary(summary)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
