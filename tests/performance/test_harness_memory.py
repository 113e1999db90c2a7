"""The harness without a model stays small and does not grow (``benchmarks/harness_memory.py``; the model is a
stand-in replaying Spider's gold SQL, plumbing only).  Run in a fresh process: RSS, its peak and the torch check
are per process, and other tests in this one load models.  Skipped without the Spider data."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.runner import default_data_dir

ROOT = Path(__file__).resolve().parents[2]
DATA = default_data_dir()


@pytest.mark.skipif(not (DATA / "spider" / "dev.json").exists(), reason="Spider data not present")
def test_harness_memory_budget_and_no_growth(tmp_path: Path) -> None:
    out = tmp_path / "harness.json"
    subprocess.run([sys.executable, "-m", "benchmarks.harness_memory", "--questions", "150", "--data-dir",
                    str(DATA), "--json", str(out)], cwd=ROOT, check=True, capture_output=True, timeout=600)
    result = json.loads(out.read_text())
    assert result["errors"] == 0  # every gold query ran through check, execution and the DataFrame
    assert not result["torch_imported"]
    assert result["peak_rss_mb"] < 512
    assert result["growth_q100_to_end_pct"] < 5
