"""The CI regression gate's runs: the benchmark sample it measures and the machine yardstick it divides times by.

A gate directory (``benchmarks/baselines/<name>/``) holds:

- ``gate.json``: the runs, each a runner command without its output options, e.g.
  ``{"runs": {"warm": ["benchmarks.spider", "--databases", "8", "--limit", "60", "--seed", "0"]}}``, and optionally
  ``"env"``, variables set for every run (:func:`load_env`);
- one folder per run with ``run.json`` + ``results.jsonl`` (what the runner writes);
- ``reference.json``: a fixed CPU micro-benchmark measured before and after the runs, on the same machine and in the
  same job, so that ``scripts/check_performance_regression.py`` compares times as ratios to it and the speed of the
  machine cancels out.

``python -m benchmarks.gate run GATE_DIR OUT_DIR`` measures the yardstick, runs every command of ``GATE_DIR/gate.json``
into ``OUT_DIR/<run>`` (``--no-progress --overwrite``) and measures the yardstick again; CI then judges ``OUT_DIR``
against ``GATE_DIR``.  With ``--baseline-again BASE_DIR`` the commit the baseline was recorded at is checked out
(a git worktree) and its runs are measured again in the same job, run by run alternating with the new ones, into
``BASE_DIR``: CI judges ``OUT_DIR`` against ``BASE_DIR``, times as they are, so that neither another CPU (the
yardstick does not follow every engine from one CPU to another) nor the machine's drift moves the verdict.  When
that commit is not in the clone, ``BASE_DIR`` gets a copy of the recorded baseline and the yardstick judges.  ``python -m benchmarks.gate run GATE_DIR --record`` records a new baseline: it refuses a
checkout with uncommitted changes, runs into a scratch folder and then replaces the records in ``GATE_DIR``.  ``python -m benchmarks.gate reference FILE`` measures the yardstick alone.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from benchmarks.report import machine_info
from benchmarks.runner import META_FILE, REPO_ROOT, RESULTS_FILE, default_data_dir

MANIFEST_FILE = "gate.json"
REFERENCE_FILE = "reference.json"
#: Bumped whenever the workloads below change: references of different versions are not comparable.
REFERENCE_VERSION = 1


# ---------------------------------------------------------------------------------------------------------------
# The yardstick: fixed work of the kinds a question costs (prefill ~ matrix products, decode ~ streaming the
# weights through memory, the harness ~ the Python interpreter), timed as the median of several repeats.
# ---------------------------------------------------------------------------------------------------------------
def _matmul_work() -> Callable[[], object]:
    # integer products run in numpy's own single-threaded loop: a BLAS thread pool spinning on a busy machine
    # measured 15 to 140 ms for the same float work, this stays within 15 %
    rng = np.random.default_rng(0)
    a = rng.integers(-8, 8, (160, 160), dtype=np.int32)
    b = rng.integers(-8, 8, (160, 160), dtype=np.int32)
    return lambda: [a @ b for _ in range(5)]


def _stream_work() -> Callable[[], object]:
    big = np.ones(16 * 2**20, dtype=np.float32)  # 64 MB: larger than any cache, as a model's weights are
    return lambda: [float(big.sum()) for _ in range(4)]


def _python_work() -> Callable[[], object]:
    words = [f"column_{i}" for i in range(2000)]

    def run() -> int:
        seen: dict[str, int] = {}
        for _ in range(20):
            for w in words:
                seen[w.upper()] = seen.get(w.upper(), 0) + len(w)
        return len(seen)

    return run


WORKLOADS: dict[str, Callable[[], Callable[[], object]]] = {
    "matmul": _matmul_work, "memory_stream": _stream_work, "python": _python_work}


def measure_reference(repeats: int = 15) -> dict[str, Any]:
    """One measurement of the yardstick: median seconds per workload and their geometric mean (``seconds``)."""
    parts = {}
    for name, make in WORKLOADS.items():
        work = make()
        work()  # warm up: allocation, BLAS threads, caches
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            work()
            times.append(time.perf_counter() - t0)
        parts[name] = statistics.median(times)
    seconds = math.exp(sum(math.log(v) for v in parts.values()) / len(parts))
    return {"seconds": seconds, "parts": parts,
            "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}


def add_reference_sample(path: Path, when: str, *, sample: Mapping[str, Any] | None = None,
                         job: str | None = None) -> dict[str, Any]:
    """Measure the yardstick (or take ``sample``) and append it to the reference file at ``path`` (created when
    missing).  ``job`` marks the files of runs measured in one job, on one machine (``--baseline-again``)."""
    data: dict[str, Any] = {"version": REFERENCE_VERSION, "machine": machine_info(), "samples": []}
    if path.exists():
        data = json.loads(path.read_text(encoding="utf-8"))
    if job is not None:
        data["job"] = job
    data["samples"].append({"when": when, **(sample or measure_reference())})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return data


def reference_seconds(data: Mapping[str, Any]) -> float | None:
    """The yardstick of a reference file: the median of its samples (None without samples)."""
    values = [s["seconds"] for s in data.get("samples") or [] if s.get("seconds")]
    return statistics.median(values) if values else None


# ---------------------------------------------------------------------------------------------------------------
# The runs
# ---------------------------------------------------------------------------------------------------------------
def load_manifest(gate_dir: Path) -> dict[str, list[str]]:
    """Run name → runner command (module and options) from ``gate_dir/gate.json``."""
    data = json.loads((gate_dir / MANIFEST_FILE).read_text(encoding="utf-8"))
    runs = data.get("runs")
    if not isinstance(runs, dict) or not runs or not all(isinstance(v, list) and v for v in runs.values()):
        raise ValueError(f"{gate_dir / MANIFEST_FILE}: 'runs' must map each run name to a command list")
    return {str(k): [str(a) for a in v] for k, v in runs.items()}


def load_env(gate_dir: Path) -> dict[str, str]:
    """Optional ``"env"`` of gate.json: variables set for every run; ``{out}`` and ``{run}`` in a value become the
    output folder and the run's name (e.g. a cache folder of the run's own, so that no earlier job warms it)."""
    env = json.loads((gate_dir / MANIFEST_FILE).read_text(encoding="utf-8")).get("env") or {}
    if not isinstance(env, dict) or not all(isinstance(v, str) for v in env.values()):
        raise ValueError(f"{gate_dir / MANIFEST_FILE}: 'env' must map variable names to strings")
    return {str(k): v for k, v in env.items()}


def _dirty() -> bool:
    res = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO_ROOT,
                         capture_output=True, text=True, check=True)
    return bool(res.stdout.strip())


def _clear_outputs(out_dir: Path, runs: Mapping[str, Sequence[str]]) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / REFERENCE_FILE).unlink(missing_ok=True)
    for name in runs:
        if (out_dir / name).is_dir():
            shutil.rmtree(out_dir / name)


def _run_one(name: str, command: Sequence[str], out_dir: Path, env: Mapping[str, str], *, repo: Path = REPO_ROOT,
             extra: Sequence[str] = ()) -> int:
    """One run of the manifest into ``out_dir/name``, with the code of the checkout at ``repo``."""
    argv = [sys.executable, "-m", *command, *extra, "--no-progress", "--overwrite", "--out", str(out_dir / name)]
    print(f"[gate] {name}{'' if repo == REPO_ROOT else f' (baseline code, {repo})'}: {' '.join(argv[1:])}",
          flush=True)
    run_env = {**os.environ, **{k: v.format(out=out_dir, run=name) for k, v in env.items()}}
    if repo != REPO_ROOT:  # the baseline's package, not the installed (editable) one
        run_env["PYTHONPATH"] = os.pathsep.join([str(repo), *filter(None, [os.environ.get("PYTHONPATH")])])
    res = subprocess.run(argv, cwd=repo, env=run_env)
    if res.returncode != 0:
        print(f"error: run {name!r} exited with {res.returncode}", file=sys.stderr)
    return res.returncode


def run_gate(gate_dir: Path, out_dir: Path, *, extra: Sequence[str] = ()) -> int:
    """Measure the yardstick, run every command of the manifest into ``out_dir/<run>``, measure it again."""
    runs, env = load_manifest(gate_dir), load_env(gate_dir)
    _clear_outputs(out_dir, runs)
    reference = out_dir / REFERENCE_FILE
    add_reference_sample(reference, "before")
    for name, command in runs.items():
        status = _run_one(name, command, out_dir, env, extra=extra)
        if status != 0:
            return status
    data = add_reference_sample(reference, "after")
    shown = ", ".join(f"{s['seconds'] * 1000:.1f} ms" for s in data["samples"])
    print(f"[gate] yardstick (before, after): {shown}")
    return 0


def _run_commits(run_dir: Path) -> set[str | None]:
    """The commits the sessions of the run at ``run_dir`` measured, each None when its checkout was not clean."""
    meta = json.loads((run_dir / META_FILE).read_text(encoding="utf-8"))
    return {(s.get("git") or {}).get("commit") if (s.get("git") or {}).get("dirty") is False else None
            for s in meta.get("sessions") or [{}]}


def baseline_commit(gate_dir: Path) -> str | None:
    """The one clean commit every run of the recorded baseline was measured at (None when they disagree)."""
    commits = set().union(*(_run_commits(gate_dir / name) for name in load_manifest(gate_dir)))
    return commits.pop() if len(commits) == 1 else None


def copy_recorded(gate_dir: Path, base_dir: Path) -> None:
    """``base_dir`` gets the recorded baseline of ``gate_dir`` (run.json + results.jsonl per run, reference.json)."""
    _copy_records(gate_dir, base_dir, load_manifest(gate_dir))


#: git for the gate's worktree: a CI clone may belong to another user than the job's (git's "dubious ownership").
_GIT = ["git", "-c", f"safe.directory={REPO_ROOT}"]


def _add_worktree(commit: str, where: Path) -> bool:
    """Check ``commit`` out at ``where`` (a detached git worktree of this repository); False, saying why, when it
    cannot be."""
    res = subprocess.run([*_GIT, "worktree", "add", "--detach", str(where), commit], cwd=REPO_ROOT,
                         capture_output=True, text=True)
    if res.returncode != 0:
        print(f"[gate] git worktree add {commit}: {res.stderr.strip() or res.returncode}", flush=True)
    return res.returncode == 0


def _remove_worktree(where: Path) -> None:
    subprocess.run([*_GIT, "worktree", "remove", "--force", str(where)], cwd=REPO_ROOT, capture_output=True)


def run_gate_paired(gate_dir: Path, out_dir: Path, base_dir: Path, *, extra: Sequence[str] = ()) -> int:
    """The gate's runs for the checkout (into ``out_dir``) and again for the baseline's commit (into ``base_dir``),
    alternating run by run in this job; both reference files carry the same yardstick samples and job id.  Without
    that commit (a shallow clone, say), ``base_dir`` gets the recorded baseline and only the checkout runs."""
    commit = baseline_commit(gate_dir)
    runs, env = load_manifest(gate_dir), load_env(gate_dir)
    with tempfile.TemporaryDirectory(prefix="nl2sql-gate-baseline-") as tmp:
        tree = Path(tmp) / "tree"
        if commit is None or not _add_worktree(commit, tree):
            print(f"[gate] the baseline's commit {commit or '(several or unknown)'} is not in this clone: judging "
                  "against the recorded baseline through the yardstick", flush=True)
            copy_recorded(gate_dir, base_dir)
            return run_gate(gate_dir, out_dir, extra=extra)
        try:
            # the baseline's code reads its data where this checkout does (a worktree has no ../shared next to it)
            base_extra = list(extra) if "--data-dir" in extra else [*extra, "--data-dir", str(default_data_dir())]
            job = f"{_dt.datetime.now(_dt.timezone.utc).isoformat(timespec='seconds')}-{os.getpid()}"
            for d in (out_dir, base_dir):
                _clear_outputs(d, runs)
            before = measure_reference()
            for d in (out_dir, base_dir):
                add_reference_sample(d / REFERENCE_FILE, "before", sample=before, job=job)
            for name, command in runs.items():
                for status in (_run_one(name, command, base_dir, env, repo=tree, extra=base_extra),
                               _run_one(name, command, out_dir, env, extra=extra)):
                    if status != 0:
                        return status
                measured = _run_commits(base_dir / name)
                if measured != {commit}:  # the baseline's run must have run the baseline's code, clean
                    print(f"error: the baseline's run {name!r} ran commit(s) {sorted(map(str, measured))}, not "
                          f"{commit}", file=sys.stderr)
                    return 1
            after = measure_reference()
            for d in (out_dir, base_dir):
                add_reference_sample(d / REFERENCE_FILE, "after", sample=after, job=job)
            print(f"[gate] baseline measured again at {commit[:12]} in this job; yardstick (before, after): "
                  f"{before['seconds'] * 1000:.1f} ms, {after['seconds'] * 1000:.1f} ms", flush=True)
            return 0
        finally:
            _remove_worktree(tree)


def _copy_records(src: Path, dst: Path, runs: Mapping[str, Sequence[str]]) -> None:
    """Each run's run.json + results.jsonl (not the derived files) and reference.json, from ``src`` to ``dst``."""
    for name in runs:
        target = dst / name
        if target.exists():
            shutil.rmtree(target)
        target.mkdir(parents=True)
        for f in (META_FILE, RESULTS_FILE):
            shutil.copy2(src / name / f, target / f)
    shutil.copy2(src / REFERENCE_FILE, dst / REFERENCE_FILE)


def install_baseline(out_dir: Path, gate_dir: Path) -> None:
    """Replace the baseline in ``gate_dir`` with the runs in ``out_dir``: each run's run.json + results.jsonl (the
    derived files stay behind) and the reference; runs the manifest no longer names are removed."""
    runs = load_manifest(gate_dir)
    for old in gate_dir.iterdir():
        if old.is_dir() and (old / META_FILE).exists() and old.name not in runs:
            shutil.rmtree(old)
    _copy_records(out_dir, gate_dir, runs)


def record_baseline(gate_dir: Path, *, extra: Sequence[str] = ()) -> int:
    """Record a new baseline: at a clean commit, into a scratch folder (so that no run sees the checkout changed by
    an earlier one), then installed into ``gate_dir``."""
    if _dirty():
        print("error: the checkout has uncommitted changes; a baseline is recorded at a clean commit",
              file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="nl2sql-gate-record-") as tmp:
        status = run_gate(gate_dir, Path(tmp), extra=extra)
        if status == 0:
            install_baseline(Path(tmp), gate_dir)
            print(f"[gate] baseline recorded in {gate_dir}: commit it")
    return status


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m benchmarks.gate run GATE_DIR (OUT_DIR | --record)`` or ``python -m benchmarks.gate reference FILE``."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.gate", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run the gate's sample (the commands of GATE_DIR/gate.json) into OUT_DIR")
    r.add_argument("gate_dir", type=Path, help="the baseline folder holding gate.json")
    r.add_argument("out_dir", type=Path, nargs="?", default=None, help="where the runs go (not with --record)")
    r.add_argument("--record", action="store_true",
                   help="record a new baseline into GATE_DIR (clean checkout only; run.json + results.jsonl kept)")
    r.add_argument("--data-dir", default=None, help="passed to every run (default: the runner's)")
    r.add_argument("--baseline-again", type=Path, default=None, metavar="BASE_DIR",
                   help="also measure the baseline's commit in this job, alternating with the new runs, into "
                        "BASE_DIR (judge OUT_DIR against BASE_DIR); the recorded baseline is copied there when "
                        "that commit is not in the clone")
    ref = sub.add_parser("reference", help="measure the yardstick once and append it to FILE")
    ref.add_argument("file", type=Path)
    args = p.parse_args(argv)
    if args.command == "reference":
        data = add_reference_sample(args.file, "alone")
        print(f"{data['samples'][-1]['seconds'] * 1000:.1f} ms ({args.file})")
        return 0
    if (args.out_dir is None) == (not args.record):
        p.error("give OUT_DIR, or --record to replace the baseline in GATE_DIR")
    extra = ["--data-dir", args.data_dir] if args.data_dir else []
    if args.record:
        if args.baseline_again is not None:
            p.error("--baseline-again measures a gate run, not a recording")
        return record_baseline(args.gate_dir, extra=extra)
    if args.baseline_again is not None:
        return run_gate_paired(args.gate_dir, args.out_dir, args.baseline_again, extra=extra)
    return run_gate(args.gate_dir, args.out_dir, extra=extra)


if __name__ == "__main__":
    raise SystemExit(main())
