#!/usr/bin/env python3
"""Fail CI when the product regresses against a recorded baseline: the gate judges or fails.

    python scripts/check_performance_regression.py BASELINE_DIR NEW_DIR

Each directory is a gate directory (``python -m benchmarks.gate run``: one folder per run with ``run.json`` +
``results.jsonl``, and ``reference.json``, the machine yardstick measured in the same job) or a single run folder.
Every run of the baseline must be in NEW under the same name.  The gate fails (exit 1) when

- a run is missing, incomplete (a question of the sample has no record), interrupted, or resumed over commits;
- the sample or the configuration changed (benchmark, split, order, selected questions, options, scoring) or the
  model did (id, file sha256 or revision, dtype, backend);
- the baseline cannot carry the verdict: recorded with uncommitted changes or on a loaded machine, or its sample
  is so small that fewer than ``--min-questions-in-budget`` questions fit in the accuracy budget;
- execution accuracy, paired per question over all runs, drops by more than ``--max-accuracy-drop`` points
  (each question right before and wrong now is listed by name);
- a question the pipeline answered before now ends without SQL or with a crash (pipeline error);
- a time grows by more than ``--max-time-increase`` (p50) or ``--max-tail-increase`` (p95): every latency block
  of the summaries (end to end, generation, and any other the runner writes, warm or cold), each divided by the
  yardstick of its own job, so that the speed of the machine cancels out (when both directories were measured
  in one job, ``python -m benchmarks.gate run --baseline-again``, their reference files carry the same job id and
  times are compared as they are);
- peak memory (RSS) grows by more than ``--max-memory-increase``;
- a metric is missing on either side, or a run is (nothing is "not judged").

Exit 0: no regression; 2: a directory cannot be read.  A table of every verdict is printed.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere: import benchmarks

from benchmarks.compare import pair_runs, selected_records, won_lost  # noqa: E402
from benchmarks.gate import REFERENCE_FILE, reference_seconds  # noqa: E402
from benchmarks.report import load_run, summarize  # noqa: E402
from benchmarks.runner import META_FILE  # noqa: E402

#: run.json / summary keys that define the sample and the configuration: any difference fails.
SAMPLE_KEYS = ("benchmark", "split", "order", "limit", "seed", "databases", "raw", "model", "options", "scoring",
               "timeout", "selected_indices")
#: model provenance keys that identify the model and its engine: any difference fails.
MODEL_KEYS = ("model_id", "sha256", "revision", "dtype", "backend")
#: latency blocks that are not the product's time (per-stage shares are shown by benchmarks.report; scoring is ours).
NOT_GATED_LATENCY = ("stages", "scoring")
#: a p95 over fewer questions is one or two questions' time: the p50 judges such a block.
MIN_N_FOR_TAIL = 20


@dataclass(frozen=True)
class Limits:
    """What may change before the gate fails."""

    max_time_increase: float = 0.20
    max_tail_increase: float = 0.30
    max_memory_increase: float = 0.15
    max_accuracy_drop: float = 5.0
    min_questions_in_budget: int = 3


@dataclass
class Run:
    """One benchmark run: its run.json, the records of its sample (index → record) and its summary."""

    name: str
    meta: dict[str, Any]
    records: dict[int, Mapping[str, Any]]
    summary: dict[str, Any]


@dataclass
class GateDir:
    """A gate directory: its runs by name and its yardstick (seconds, None when it has none)."""

    path: Path
    runs: dict[str, Run]
    reference: float | None
    reference_version: int | None
    job: str | None = None


@dataclass(frozen=True)
class Row:
    """One line of the verdict table."""

    metric: str
    baseline: str
    new: str
    change: str
    limit: str
    failed: bool


@dataclass
class Verdict:
    """Everything the gate found."""

    rows: list[Row] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    lost: list[tuple[str, Mapping[str, Any]]] = field(default_factory=list)
    won: list[tuple[str, Mapping[str, Any]]] = field(default_factory=list)
    broken: list[tuple[str, Mapping[str, Any]]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def fail(self, reason: str) -> None:
        """Record a failure that has no row of its own."""
        self.failures.append(reason)

    def row(self, metric: str, baseline: str, new: str, change: str, limit: str, failed: bool) -> None:
        """Record a judged metric."""
        self.rows.append(Row(metric, baseline, new, change, limit, failed))
        if failed:
            self.failures.append(metric)


# ---------------------------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------------------------
def load_gate_dir(path: Path) -> GateDir:
    """The runs under ``path`` (itself a run, or one run per sub-folder) and its reference.json."""
    if not path.is_dir():
        raise FileNotFoundError(f"{path} is not a directory")
    folders = [path] if (path / META_FILE).exists() else sorted(d for d in path.iterdir()
                                                                if (d / META_FILE).exists())
    runs = {}
    for d in folders:
        meta, records = load_run(d)
        name = "." if d == path else d.name
        runs[name] = Run(name, meta, dict(selected_records(records, meta)), summarize(records, meta))
    ref_path = path / REFERENCE_FILE
    ref, version, job = None, None, None
    if ref_path.exists():
        data = json.loads(ref_path.read_text(encoding="utf-8"))
        ref, version, job = reference_seconds(data), data.get("version"), data.get("job")
    return GateDir(path, runs, ref, version, job)


def _provenance(summary: Mapping[str, Any]) -> Mapping[str, Any]:
    return (summary.get("predictor") or {}).get("provenance") or {}


def _question(record: Mapping[str, Any]) -> str:
    return f"#{record.get('index')} {record.get('db_id')}: {record.get('question')}"


# ---------------------------------------------------------------------------------------------------------------
# Formatting
# ---------------------------------------------------------------------------------------------------------------
def _sec(x: float | None) -> str:
    if x is None:
        return "missing"
    return f"{x * 1000:.0f} ms" if x < 1 else f"{x:.2f} s"


def _mb(x: float | None) -> str:
    return "missing" if x is None else f"{x / 2**20:.0f} MB"


def _rel(change: float | None) -> str:
    return "n/a" if change is None else f"{100 * change:+.1f}%"


def _figure(block: Any, stat: str | None) -> float | None:
    """``block[stat]`` of a latency distribution, or the block itself when it is one number (``stat`` None)."""
    value = block.get(stat) if stat and isinstance(block, Mapping) else (None if stat else block)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _growth(base: float | None, new: float | None) -> float | None:
    if base is None or new is None:
        return None
    return (new - base) / base if base > 0 else (0.0 if new == base else math.inf)


# ---------------------------------------------------------------------------------------------------------------
# Judging
# ---------------------------------------------------------------------------------------------------------------
def _judge_baseline(name: str, base: Run, v: Verdict, *, same_job: bool = False) -> None:
    sessions = base.meta.get("sessions") or []
    commits = {(s.get("git") or {}).get("commit") for s in sessions}
    if not sessions or any((s.get("git") or {}).get("dirty") is not False for s in sessions):
        v.fail(f"[{name}] baseline recorded with uncommitted changes (or no git state): re-record it at a clean "
               f"commit (python -m benchmarks.gate run GATE_DIR --record)")
    if len(commits) > 1:
        v.fail(f"[{name}] baseline resumed over several commits {sorted(map(str, commits))}: re-record it")
    if base.summary.get("contended"):
        load = f"(mean 1-minute load {(base.summary.get('load_avg_1m') or {}).get('mean', 0):.1f})"
        if same_job:  # measured beside the new run, run by run: both saw the same machine
            v.notes.append(f"[{name}] the baseline, measured again in this job, shared its CPUs with other work {load}")
        else:
            v.fail(f"[{name}] baseline recorded on a loaded machine {load}: its times are no budget")


def _judge_identity(name: str, base: Run, new: Run, v: Verdict) -> None:
    for key in SAMPLE_KEYS:
        b = base.meta.get(key, base.summary.get(key))
        n = new.meta.get(key, new.summary.get(key))
        if b != n:
            shown = (lambda x: f"{len(x)} questions" if key == "selected_indices" and isinstance(x, list) else repr(x))
            v.fail(f"[{name}] {key} changed: {shown(b)} (baseline) vs {shown(n)} (new)")
    bp, np_ = _provenance(base.summary), _provenance(new.summary)
    if not bp or not np_:
        v.fail(f"[{name}] model provenance missing ({'baseline' if not bp else 'new run'})")
    for key in MODEL_KEYS:
        if bp.get(key) != np_.get(key):
            v.fail(f"[{name}] model {key} changed: {bp.get(key)!r} (baseline) vs {np_.get(key)!r} (new)")


def _judge_completion(name: str, base: Run, new: Run, v: Verdict) -> None:
    wanted = base.meta.get("selected_indices") or sorted(base.records)
    missing = [i for i in wanted if i not in new.records]
    v.row(f"[{name}] questions scored", str(len(base.records)), str(len(new.records)),
          f"{len(new.records) - len(wanted):+d}", "all", bool(missing) or not wanted)
    if not wanted:
        v.fail(f"[{name}] the baseline has no questions")
    sessions = new.meta.get("sessions") or []
    if not sessions or any(s.get("interrupted") is not False for s in sessions):
        v.fail(f"[{name}] the new run did not finish (interrupted, or no finished session)")
    if len({(s.get("git") or {}).get("commit") for s in sessions}) > 1:
        v.fail(f"[{name}] the new run was resumed over several commits: run it afresh (--overwrite)")


def _judge_errors(name: str, base: Run, new: Run, v: Verdict) -> None:
    pairs = pair_runs(base.records, new.records)
    broken = [x for b, x in pairs if x.get("pred") is None and b.get("pred") is not None]
    crashes = [x for _, x in pairs if str(x.get("pipeline_error") or "").startswith("crash:")]
    b_err = sum(1 for r in base.records.values() if r.get("pred") is None)
    n_err = sum(1 for r in new.records.values() if r.get("pred") is None)
    v.row(f"[{name}] pipeline errors (no SQL)", str(b_err), str(n_err), f"{n_err - b_err:+d}",
          "no new ones", bool(broken) or bool(crashes))
    v.broken += [(name, x) for x in {id(x): x for x in broken + crashes}.values()]


def _time_rows(name: str, base: Run, new: Run, scale: float, limits: Limits, v: Verdict) -> None:
    b_lat, n_lat = base.summary.get("latency") or {}, new.summary.get("latency") or {}
    blocks = [k for k in list(b_lat) + [k for k in n_lat if k not in b_lat] if k not in NOT_GATED_LATENCY]
    if not blocks:
        v.fail(f"[{name}] no latency in either run")
    for block in blocks:
        b, n = b_lat.get(block), n_lat.get(block)
        distribution = isinstance(b if b is not None else n, Mapping)  # else one figure (seconds)
        stats = [("p50", limits.max_time_increase)]
        if distribution and ((b or n).get("n") or 0) >= MIN_N_FOR_TAIL:
            stats.append(("p95", limits.max_tail_increase))
        for stat, limit in stats:
            bv, nv = (_figure(x, stat if distribution else None) for x in (b, n))
            change = _growth(bv, None if nv is None else nv * scale)
            label = f"[{name}] {block.replace('_', ' ')}" + (f" {stat}" if distribution else "")
            v.row(label, _sec(bv), _sec(nv), _rel(change), f"+{100 * limit:g}%",
                  change is None or change > limit + 1e-9)


def _judge_run(name: str, base: Run, new: Run, scale: float | None, limits: Limits, v: Verdict, *,
               same_job: bool = False) -> None:
    _judge_baseline(name, base, v, same_job=same_job)
    if new.summary.get("contended"):
        v.notes.append(f"[{name}] the new run shared its CPUs with other work (mean 1-minute load "
                       f"{(new.summary.get('load_avg_1m') or {}).get('mean', 0):.1f}): the yardstick measured the "
                       "same machine, but a failed time may be the neighbours'")
    _judge_identity(name, base, new, v)
    _judge_completion(name, base, new, v)
    _judge_errors(name, base, new, v)
    if scale is not None:
        _time_rows(name, base, new, scale, limits, v)
    b_rss, n_rss = base.summary.get("peak_rss_bytes"), new.summary.get("peak_rss_bytes")
    change = _growth(b_rss, n_rss)
    v.row(f"[{name}] peak memory (RSS)", _mb(b_rss), _mb(n_rss), _rel(change),
          f"+{100 * limits.max_memory_increase:g}%", change is None or change > limits.max_memory_increase + 1e-9)


def _judge_accuracy(runs: Sequence[tuple[str, Run, Run]], limits: Limits, v: Verdict) -> None:
    n_total = base_ok = new_ok = 0
    for name, base, new in runs:
        pairs = pair_runs(base.records, new.records)
        won, lost = won_lost(pairs)
        v.won += [(name, x) for x in won]
        v.lost += [(name, x) for x in lost]
        n_total += len(pairs)
        base_ok += sum(1 for b, _ in pairs if b.get("correct"))
        new_ok += sum(1 for _, x in pairs if x.get("correct"))
    budget = limits.max_accuracy_drop
    need = math.ceil(limits.min_questions_in_budget * 100 / budget) if budget > 0 else 0
    if n_total < need:
        v.fail(f"sample too small: {n_total} paired questions, one is worth {100 / max(n_total, 1):.1f} points of "
               f"the {budget:g}-point budget (need at least {need} so that {limits.min_questions_in_budget} fit)")
    if not n_total:
        v.row("execution accuracy (paired)", "missing", "missing", "n/a", f"-{budget:g} pts", True)
        return
    drop = 100 * (base_ok - new_ok) / n_total
    v.row(f"execution accuracy (paired, {n_total} questions)", f"{100 * base_ok / n_total:.1f}%",
          f"{100 * new_ok / n_total:.1f}%", f"{-drop + 0.0:+.1f} pts ({len(v.won)} won, {len(v.lost)} lost)",
          f"-{budget:g} pts", drop > budget + 1e-9)


def evaluate(baseline: GateDir, new: GateDir, limits: Limits = Limits(), *, absolute_times: bool = False) -> Verdict:
    """Judge every run of ``new`` against the run of the same name in ``baseline``."""
    v = Verdict()
    if not baseline.runs:
        v.fail(f"the baseline {baseline.path} holds no run (run.json + results.jsonl)")
    scale: float | None = 1.0
    same_job = baseline.job is not None and baseline.job == new.job
    if same_job:
        v.notes.append(f"the baseline was measured again in this job ({baseline.job}), alternating with the new runs: "
                       "times are compared as they are")
    elif not absolute_times:
        if baseline.reference is None or new.reference is None:
            scale = None
            v.fail(f"no yardstick ({REFERENCE_FILE}) in the {'baseline' if baseline.reference is None else 'new'} "
                   "directory: times cannot be compared across machines (python -m benchmarks.gate run measures "
                   "it; --absolute-times compares raw seconds)")
        elif baseline.reference_version != new.reference_version:
            scale = None
            v.fail(f"the yardstick changed (version {baseline.reference_version} vs {new.reference_version}): "
                   "re-record the baseline")
        else:
            scale = baseline.reference / new.reference
            v.notes.append(f"yardstick: {baseline.reference * 1000:.1f} ms (baseline) vs "
                           f"{new.reference * 1000:.1f} ms (new): new times are multiplied by {scale:.3f}")
    paired = []
    for name, base in baseline.runs.items():
        run = new.runs.get(name)
        if run is None:
            v.fail(f"[{name}] run missing from {new.path}")
            continue
        _judge_run(name, base, run, scale, limits, v, same_job=same_job)
        paired.append((name, base, run))
    for name in new.runs:
        if name not in baseline.runs:
            v.fail(f"[{name}] is not in the baseline: re-record the baseline (python -m benchmarks.gate run "
                   "GATE_DIR --record) so that the run is judged")
    _judge_accuracy(paired, limits, v)
    return v


def table(rows: Sequence[Row]) -> str:
    """The verdicts as an aligned text table."""
    cells = [("metric", "baseline", "new", "change", "limit", "status")]
    cells += [(r.metric, r.baseline, r.new, r.change, r.limit, "FAIL" if r.failed else "ok") for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(6)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def report(v: Verdict) -> str:
    """The table, the questions lost, won and broken, the notes and the verdict."""
    out = [table(v.rows)]
    for title, items in (("right before, wrong now", v.lost), ("wrong before, right now", v.won),
                         ("answered before, pipeline error now", v.broken)):
        if items:
            out += ["", f"{title} ({len(items)}):"]
            out += [f"  [{name}] {_question(r)}" + (f"  -- {r.get('error')}" if r.get("error") else "")
                    for name, r in items]
    out += [""] + [f"note: {n}" for n in v.notes]
    if v.failures:
        out += [f"REGRESSION ({len(v.failures)}):", *[f"  - {f}" for f in v.failures]]
    else:
        out.append("no regression")
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line; returns the exit status (0 pass, 1 regression, 2 unreadable input)."""
    d = Limits()
    p = argparse.ArgumentParser(description="Fail when a benchmark gate run regresses against its baseline.")
    p.add_argument("baseline", type=Path, help="baseline gate directory (or run directory)")
    p.add_argument("new", type=Path, help="new gate directory (or run directory), from the same commands")
    p.add_argument("--max-time-increase", type=float, default=d.max_time_increase, metavar="FRACTION",
                   help="largest allowed growth of a p50 time, relative to the yardstick (default %(default)s)")
    p.add_argument("--max-tail-increase", type=float, default=d.max_tail_increase, metavar="FRACTION",
                   help="largest allowed growth of a p95 time, relative to the yardstick (default %(default)s)")
    p.add_argument("--max-memory-increase", type=float, default=d.max_memory_increase, metavar="FRACTION",
                   help="largest allowed growth of peak RSS (default %(default)s)")
    p.add_argument("--max-accuracy-drop", type=float, default=d.max_accuracy_drop, metavar="POINTS",
                   help="largest allowed net loss of paired execution accuracy, in points (default %(default)s)")
    p.add_argument("--min-questions-in-budget", type=int, default=d.min_questions_in_budget, metavar="N",
                   help="the sample must be large enough that N questions fit in the accuracy budget "
                        "(default %(default)s)")
    p.add_argument("--absolute-times", action="store_true",
                   help="compare seconds as they are (same machine only) instead of ratios to the yardstick")
    args = p.parse_args(argv)
    limits = Limits(args.max_time_increase, args.max_tail_increase, args.max_memory_increase,
                    args.max_accuracy_drop, args.min_questions_in_budget)
    try:
        baseline, new = load_gate_dir(args.baseline), load_gate_dir(args.new)
    except (OSError, ValueError) as exc:
        print(f"error: cannot read the runs: {exc}", file=sys.stderr)
        return 2
    verdict = evaluate(baseline, new, limits, absolute_times=args.absolute_times)
    print(report(verdict))
    return 1 if verdict.failures else 0


if __name__ == "__main__":
    sys.exit(main())
