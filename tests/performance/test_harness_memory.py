"""The harness without a model stays small and does not grow (``benchmarks/harness_memory.py``; the model is a
stand-in replaying Spider's gold SQL, plumbing only).  Skipped without the Spider data."""

from __future__ import annotations

from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


@pytest.mark.skipif(not (DATA / "spider" / "dev.json").exists(), reason="Spider data not present")
def test_harness_memory_budget_and_no_growth() -> None:
    from benchmarks.harness_memory import measure

    result = measure(DATA, 150)
    assert result["errors"] == 0  # every gold query ran through check, execution and the DataFrame
    assert not result["torch_imported"]
    assert result["peak_rss_mb"] < 512
    assert result["growth_q100_to_end_pct"] < 5
