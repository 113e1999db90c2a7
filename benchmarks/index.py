"""The committed benchmark records and everything derived from them.

Layout: ``benchmarks/results/<benchmark>/<run>/`` and ``benchmarks/baselines/<gate>/<run>/`` hold ``run.json`` +
``results.jsonl`` only (what the runner writes; see :mod:`benchmarks.runner`).  A run's folder name says when, at
which commit, on which sample and with which settings it ran (:func:`run_name`), e.g.
``2026-11-28-a14390c-dev-defaults`` or ``2026-11-28-e9330b2-train-150-db12-fix_names-false``.
``benchmarks/results/comparisons.json`` lists the side-by-side comparisons (``{"name", "base", "new"}``, run paths
relative to ``benchmarks/results``).

``python -m benchmarks.index`` rebuilds, from those records alone:

- each run's ``summary.json``, ``summary.md`` and plots (:func:`benchmarks.report.write_reports`; not committed);
- each comparison as ``benchmarks/results/comparisons/<name>.md`` (:mod:`benchmarks.compare`; not committed);
- the index ``benchmarks/results/README.md`` (committed): per run what it is, its commit and date, its headline
  numbers, and the lead sentence of each comparison.

``--add RUN_DIR`` first copies a finished run (written anywhere with ``--out``) to its place under
``benchmarks/results/``; ``--index-only`` writes the index alone; ``--check`` exits 1 when the committed index is not
what the records give.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path
from typing import Any, Mapping, Sequence

from benchmarks.compare import compare, markdown as compare_markdown
from benchmarks.report import load_run, summarize, write_reports
from benchmarks.runner import META_FILE, REPO_ROOT, RESULTS_FILE

RESULTS_ROOT = REPO_ROOT / "benchmarks" / "results"
BASELINES_ROOT = REPO_ROOT / "benchmarks" / "baselines"
INDEX_FILE = "README.md"
COMPARISONS_FILE = "comparisons.json"
COMPARISONS_DIR = "comparisons"
#: the option the runner adds to every pipeline run (replies generated, not remembered): not a setting of the run
RUNNER_OPTIONS = {"generation_cache": False}


def find_runs(root: Path) -> list[Path]:
    """Every run folder ``root/<benchmark>/<run>/`` (holding run.json), sorted by path.  Only that depth: the
    runner's default ``--out`` (``benchmarks/results/<benchmark>``) is a scratch place, not a filed run."""
    return sorted(p.parent for p in root.glob(f"*/*/{META_FILE}"))


def _first_session(meta: Mapping[str, Any]) -> Mapping[str, Any]:
    sessions = meta.get("sessions") or [{}]
    return sessions[0]


def _settings(meta: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The run's own settings: options other than the runner's, with file paths shortened to their stem, and the
    engine's environment settings (``draft_tokens`` for ``NL2SQL_DRAFT_TOKENS``)."""
    out = []
    for key, value in sorted((meta.get("options") or {}).items()):
        if RUNNER_OPTIONS.get(key, object()) == value:
            continue
        text = json.dumps(value) if not isinstance(value, str) else value
        if isinstance(value, str) and "/" in value:
            text = Path(value).stem
        out.append((key, text))
    if meta.get("model"):
        out.append(("model", Path(str(meta["model"])).name))
    for key, value in sorted((meta.get("environment") or {}).items()):  # NL2SQL_DRAFT_TOKENS=0: draft_tokens
        out.append((key.removeprefix("NL2SQL_").lower(), str(value)))
    return out


def describe(meta: Mapping[str, Any]) -> str:
    """What the run is, in words: pipeline or plain prompt, and its settings.

    >>> describe({"raw": False, "options": {"generation_cache": False}})
    'pipeline, defaults'
    >>> describe({"raw": True, "options": {"backend": "transformers"}})
    'plain prompt (--raw), backend=transformers'
    """
    kind = "plain prompt (--raw)" if meta.get("raw") else "pipeline"
    settings = _settings(meta)
    return f"{kind}, " + (", ".join(f"{k}={v}" for k, v in settings) if settings else "defaults")


def sample_name(meta: Mapping[str, Any]) -> str:
    """The sample in a few characters: split, ``--limit``, ``--seed`` (when not 0), ``--databases``.

    >>> sample_name({"split": "train_spider_compact", "limit": 150, "seed": 0, "databases": 12})
    'train-150-db12'
    """
    split = str(meta.get("split") or "dev")
    text = "train" if split.startswith("train") else split
    data = (meta.get("scoring") or {}).get("data")  # a benchmark read from a data file (the follow-up sets)
    if data:
        text = Path(str(data)).stem.removeprefix(f"{meta.get('benchmark')}_")
    if meta.get("limit"):
        text += f"-{meta['limit']}" + (f"-seed{meta['seed']}" if meta.get("seed") else "")
    if meta.get("databases"):
        text += f"-db{meta['databases']}"
    return text


def run_name(meta: Mapping[str, Any]) -> str:
    """The folder name of a run: date, commit, sample, settings.

    >>> run_name({"split": "dev", "raw": False, "options": {"generation_cache": False, "fix_names": False},
    ...           "sessions": [{"started": "2026-11-28T10:00:00+00:00", "git": {"commit": "a14390c99"}}]})
    '2026-11-28-a14390c-dev-fix_names-false'
    """
    first = _first_session(meta)
    date = str(first.get("started") or "undated")[:10]
    commit = str((first.get("git") or {}).get("commit") or "nogit")[:7]
    settings = _settings(meta)
    what = ("raw" if meta.get("raw") else "") + "".join(f"+{k}-{v}" for k, v in settings)
    if (meta.get("scoring") or {}).get("history") is False:  # the follow-ups' ablation
        what += "+no-history"
    what = what.lstrip("+") or "defaults"
    return f"{date}-{commit}-{sample_name(meta)}-{what}"


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f} %"


def _sec(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.2f} s"


def _commit(summary: Mapping[str, Any]) -> str:
    commit = summary.get("git_commit")
    if not commit:
        return "none"
    return f"`{commit[:7]}`" + (" (uncommitted changes)" if summary.get("git_dirty") else "")


def run_row(rel: str, summary: Mapping[str, Any], meta: Mapping[str, Any]) -> str:
    """One Markdown table row: the run, what it is, commit, date, headline numbers."""
    e2e = (summary.get("latency") or {}).get("end_to_end") or {}
    rss = summary.get("peak_rss_bytes")
    backend = ((summary.get("predictor") or {}).get("provenance") or {}).get("backend") or "n/a"
    return (f"| `{rel}` | {describe(meta)} | {backend} | {_commit(summary)} | {str(summary.get('date') or '')[:10]} | "
            f"{summary.get('n')}" + ("" if summary.get("complete") else f" of {summary.get('n_selected')}") +
            f" | {_pct(summary.get('ex'))} | {_pct(summary.get('exec_failure_share'))} | "
            f"{_sec(e2e.get('p50'))} / {_sec(e2e.get('p95'))} | "
            f"{'n/a' if not rss else f'{rss / 2**30:.1f} GB'} |")


HEADER = ("| run | what | engine | commit | date | questions | EX | exec failed | p50 / p95 end to end | peak RSS |\n"
          "|---|---|---|---|---|---:|---:|---:|---|---:|")


def load_comparisons(root: Path = RESULTS_ROOT) -> list[dict[str, str]]:
    """The comparisons listed in ``comparisons.json`` (empty when there is none)."""
    path = root / COMPARISONS_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else []


def _table(root: Path, rel_to: Path) -> list[str]:
    lines: list[str] = []
    groups: dict[str, list[Path]] = {}
    for run in find_runs(root):
        groups.setdefault(run.relative_to(root).parts[0], []).append(run)
    for group, runs in groups.items():
        lines += ["", f"### {group}", "", HEADER]
        for run in runs:
            meta, records = load_run(run)
            lines.append(run_row(str(run.relative_to(rel_to)), summarize(records, meta), meta))
    return lines


def index_markdown(root: Path = RESULTS_ROOT, baselines: Path = BASELINES_ROOT) -> str:
    """The index of the committed runs, the CI baselines and the comparisons (the text of README.md)."""
    lines = ["# Benchmark results (index)", "",
             "Generated by `python -m benchmarks.index` from the records (`run.json` + `results.jsonl` of each run "
             "folder); do not edit by hand. The same command rebuilds each run's `summary.json`, `summary.md` and "
             "plots and the comparisons under `comparisons/` (not committed). The commands, the machine and the "
             "reading of these numbers: `benchmarks/README.md`.", "",
             "A run folder is named date-commit-sample-settings (sample: split, `--limit`, `--seed` when not 0, "
             "`--databases`). EX: execution accuracy; latency without model loading.", "", "## Runs"]
    lines += _table(root, root)
    others = sorted(p for p in root.glob("*/*")
                    if p.is_file() and p.parent.name != COMPARISONS_DIR and not (p.parent / META_FILE).exists())
    if others:
        lines += ["", "### other records", "", "Measurements of other tools, kept as they wrote them "
                  "(see `benchmarks/README.md`): " + ", ".join(f"`{p.relative_to(root)}`" for p in others) + "."]
    if baselines.exists():
        lines += ["", "## CI baselines (`benchmarks/baselines/`)", "",
                  "What `scripts/check_performance_regression.py` compares CI runs with (`gate.json` names the "
                  "commands; `python -m benchmarks.gate run DIR --record` records them)."]
        lines += _table(baselines, baselines.parent)
    comparisons = load_comparisons(root)
    if comparisons:
        lines += ["", "## Comparisons", "", "Paired on the questions both runs scored "
                  "(`python -m benchmarks.compare BASE NEW`); full tables in `comparisons/<name>.md` once rebuilt.",
                  ""]
        for c in comparisons:
            result = compare(root / c["base"], root / c["new"])
            lead = compare_markdown(result).splitlines()[2]
            lines.append(f"- **{c['name']}** (`{c['new']}` vs `{c['base']}`): {lead}")
    return "\n".join(lines) + "\n"


def rebuild(root: Path = RESULTS_ROOT, baselines: Path = BASELINES_ROOT, *, plots: bool = True) -> None:
    """Rebuild every derived file: run reports, comparisons, the index."""
    for run in find_runs(root) + (find_runs(baselines) if baselines.exists() else []):
        write_reports(run, plots=plots)
    out = root / COMPARISONS_DIR
    for c in load_comparisons(root):
        out.mkdir(exist_ok=True)
        (out / f"{c['name']}.md").write_text(compare_markdown(compare(root / c["base"], root / c["new"])),
                                             encoding="utf-8")
    (root / INDEX_FILE).write_text(index_markdown(root, baselines), encoding="utf-8")


def add_run(run: Path, root: Path = RESULTS_ROOT) -> Path:
    """Copy a finished run's records (run.json + results.jsonl) to ``root/<benchmark>/<run_name>``; return it."""
    meta, records = load_run(run)
    if not meta or not records:
        raise ValueError(f"{run} holds no finished run (run.json + results.jsonl)")
    target = root / str(meta.get("benchmark")) / run_name(meta)
    if target.exists():
        raise ValueError(f"{target} exists already")
    target.mkdir(parents=True)
    for name in (META_FILE, RESULTS_FILE):
        shutil.copy2(run / name, target / name)
    return target


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m benchmarks.index [--add RUN_DIR ...] [--index-only | --check] [--no-plots]``."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.index", description=__doc__.split("\n\n")[0])
    p.add_argument("--index-only", action="store_true", help="write benchmarks/results/README.md only")
    p.add_argument("--check", action="store_true", help="exit 1 when the committed index is out of date")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    p.add_argument("--add", type=Path, nargs="+", default=[], metavar="RUN_DIR",
                   help="first copy these finished runs (any --out) to benchmarks/results/<benchmark>/<run name>")
    args = p.parse_args(argv)
    for run in args.add:
        try:
            print(f"{run} -> {add_run(run)}")
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    if args.check:
        current = (RESULTS_ROOT / INDEX_FILE).read_text(encoding="utf-8") if (RESULTS_ROOT / INDEX_FILE).exists() \
            else ""
        if current != index_markdown():
            print(f"{RESULTS_ROOT / INDEX_FILE} is out of date: run python -m benchmarks.index --index-only",
                  file=sys.stderr)
            return 1
        return 0
    if args.index_only:
        (RESULTS_ROOT / INDEX_FILE).write_text(index_markdown(), encoding="utf-8")
    else:
        rebuild(plots=not args.no_plots)
    print(RESULTS_ROOT / INDEX_FILE)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
