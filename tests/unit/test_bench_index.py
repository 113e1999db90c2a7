"""benchmarks/index.py: the committed records (run.json + results.jsonl only), their names and the generated index."""

from __future__ import annotations

import doctest
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from benchmarks import index
from benchmarks.runner import META_FILE, RESULTS_FILE


def test_doctests() -> None:
    result = doctest.testmod(index)
    assert result.attempted > 0 and result.failed == 0


def test_the_committed_index_is_what_the_records_give() -> None:
    assert index.main(["--check"]) == 0, "run: python -m benchmarks.index --index-only"


def test_run_folders_hold_the_records_only() -> None:
    tracked = subprocess.run(["git", "ls-files", "benchmarks/results", "benchmarks/baselines"], cwd=index.REPO_ROOT,
                             capture_output=True, text=True, check=True).stdout.split()
    runs = {str(p.relative_to(index.REPO_ROOT)) for p in index.find_runs(index.RESULTS_ROOT)
            + index.find_runs(index.BASELINES_ROOT)}
    assert runs
    for path in tracked:
        folder, name = path.rsplit("/", 1)
        if folder in runs:
            assert name in (META_FILE, RESULTS_FILE), f"{path}: derived files are rebuilt, not committed"
    for run in runs:
        assert {f"{run}/{META_FILE}", f"{run}/{RESULTS_FILE}"} <= set(tracked), run


def test_each_run_is_filed_under_its_benchmark_and_name() -> None:
    for run in index.find_runs(index.RESULTS_ROOT):
        meta = json.loads((run / META_FILE).read_text(encoding="utf-8"))
        assert run.relative_to(index.RESULTS_ROOT) == Path(meta["benchmark"]) / index.run_name(meta)


def test_every_comparison_names_two_runs() -> None:
    comparisons = index.load_comparisons()
    assert comparisons
    for c in comparisons:
        for key in ("base", "new"):
            assert (index.RESULTS_ROOT / c[key] / META_FILE).exists(), c


def test_a_finished_run_is_added_under_its_name(tmp_path: Path) -> None:
    source = index.find_runs(index.RESULTS_ROOT)[0]
    run = tmp_path / "scratch"
    run.mkdir()
    for name in (META_FILE, RESULTS_FILE, ):
        shutil.copy(source / name, run / name)
    (run / "summary.json").write_text("{}")
    target = index.add_run(run, tmp_path / "results")
    assert target.relative_to(tmp_path / "results") == source.relative_to(index.RESULTS_ROOT)
    assert sorted(p.name for p in target.iterdir()) == [RESULTS_FILE, META_FILE]
    with pytest.raises(ValueError, match="exists already"):
        index.add_run(run, tmp_path / "results")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no finished run"):
        index.add_run(tmp_path / "empty", tmp_path / "results")


def test_the_index_lists_every_run_with_its_commit(tmp_path: Path) -> None:
    text = index.index_markdown()
    for run in index.find_runs(index.RESULTS_ROOT):
        assert f"`{run.relative_to(index.RESULTS_ROOT)}`" in text
    assert "`baselines/spider-ci/warm`" in text and "`a14390c` (uncommitted changes)" in text
    assert "## Comparisons" in text and "+7.2 points" in text


def test_the_index_does_not_depend_on_derived_files(tmp_path: Path) -> None:
    root, baselines = tmp_path / "results", tmp_path / "baselines"
    base, new = (index.RESULTS_ROOT / "wikisql" / name for name in ("2026-11-27-6c5f478-dev-100-raw",
                                                                    "2026-11-28-e9330b2-dev-100-defaults"))
    for run in (base, new):
        (root / "wikisql" / run.name).mkdir(parents=True)
        for name in (META_FILE, RESULTS_FILE):
            shutil.copy(run / name, root / "wikisql" / run.name / name)
    (root / index.COMPARISONS_FILE).write_text(json.dumps([{"name": "vs-raw", "base": f"wikisql/{base.name}",
                                                            "new": f"wikisql/{new.name}"}]))
    before = index.index_markdown(root, baselines)
    index.rebuild(root, baselines, plots=False)
    assert (root / index.COMPARISONS_DIR / "vs-raw.md").exists()
    assert (root / "wikisql" / new.name / "summary.json").exists()
    assert index.index_markdown(root, baselines) == before == (root / index.INDEX_FILE).read_text()
    assert "+50.0 points" in before and "other records" not in before
