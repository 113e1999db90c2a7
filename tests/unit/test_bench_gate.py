"""scripts/check_performance_regression.py: the CI gate on benchmark summaries."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "check_performance_regression.py"


@pytest.fixture(scope="module")
def gate() -> ModuleType:
    spec = importlib.util.spec_from_file_location("check_performance_regression", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def summary(gen_p50: float | None = 2.0, rss: int | None = 2_000_000_000, ex: float | None = 0.60) -> dict[str, Any]:
    s: dict[str, Any] = {"benchmark": "spider", "model": "m", "n": 100, "latency": {"generation": {}}}
    if gen_p50 is not None:
        s["latency"]["generation"]["p50"] = gen_p50
    if rss is not None:
        s["peak_rss_bytes"] = rss
    if ex is not None:
        s["ex"] = ex
    return s


def run_main(gate: ModuleType, tmp_path: Path, base: dict[str, Any], new: dict[str, Any], *extra: str) -> int:
    b, n = tmp_path / "base.json", tmp_path / "new.json"
    b.write_text(json.dumps(base))
    n.write_text(json.dumps(new))
    return gate.main([str(b), str(n), *extra])


def test_no_regression_passes(gate: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_main(gate, tmp_path, summary(), summary(gen_p50=2.2, rss=2_200_000_000, ex=0.56)) == 0
    out = capsys.readouterr().out
    assert "no regression" in out and "generation time p50" in out and "FAIL" not in out


def test_improvements_pass(gate: ModuleType, tmp_path: Path) -> None:
    assert run_main(gate, tmp_path, summary(), summary(gen_p50=1.0, rss=1_000_000_000, ex=0.9)) == 0


@pytest.mark.parametrize("new, failing", [
    (summary(gen_p50=2.5), "generation time p50"),        # +25 % > 20 %
    (summary(rss=2_400_000_000), "peak memory (RSS)"),    # +20 % > 15 %
    (summary(ex=0.54), "execution accuracy"),             # -6 points > 5
])
def test_each_regression_fails(gate: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                               new: dict[str, Any], failing: str) -> None:
    assert run_main(gate, tmp_path, summary(), new) == 1
    out = capsys.readouterr().out
    assert f"REGRESSION: {failing}" in out
    row = next(line for line in out.splitlines() if line.startswith(failing))
    assert row.rstrip().endswith("FAIL")


def test_limits_are_inclusive(gate: ModuleType) -> None:
    checks = gate.default_checks()
    at_limit = gate.evaluate(summary(), summary(gen_p50=2.4, rss=2_300_000_000, ex=0.55), checks)
    assert not any(v.failed for v in at_limit)
    just_over = gate.evaluate(summary(), summary(gen_p50=2.401, rss=2_300_001_000, ex=0.5499), checks)
    assert all(v.failed for v in just_over)


def test_table_shows_every_metric(gate: ModuleType) -> None:
    verdicts = gate.evaluate(summary(), summary(gen_p50=3.0, ex=0.5), gate.default_checks())
    text = gate.table(verdicts)
    lines = text.splitlines()
    assert lines[0].split() == ["metric", "baseline", "new", "change", "limit", "status"]
    assert "+50.0%" in text and "-10.0 pts" in text and "2.00 s" in text and "60.0%" in text


def test_missing_metrics_are_not_judged_unless_strict(gate: ModuleType, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    assert run_main(gate, tmp_path, summary(rss=None), summary()) == 0
    assert "not judged" in capsys.readouterr().out
    assert run_main(gate, tmp_path, summary(rss=None), summary(), "--strict") == 1


def test_custom_limits(gate: ModuleType, tmp_path: Path) -> None:
    assert run_main(gate, tmp_path, summary(), summary(gen_p50=2.5), "--max-generation-increase", "0.3") == 0
    assert run_main(gate, tmp_path, summary(), summary(ex=0.58), "--max-accuracy-drop", "1") == 1


def test_directories_are_accepted(gate: ModuleType, tmp_path: Path) -> None:
    for name, s in (("base", summary()), ("new", summary(ex=0.3))):
        (tmp_path / name).mkdir()
        (tmp_path / name / "summary.json").write_text(json.dumps(s))
    assert gate.main([str(tmp_path / "base"), str(tmp_path / "new")]) == 1


def test_unreadable_input_exits_2(gate: ModuleType, tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text("{not json")
    assert gate.main([str(tmp_path / "missing.json"), str(tmp_path / "bad.json")]) == 2


def test_runs_as_a_script(tmp_path: Path) -> None:
    b, n = tmp_path / "b.json", tmp_path / "n.json"
    b.write_text(json.dumps(summary()))
    n.write_text(json.dumps(summary(gen_p50=5.0)))
    res = subprocess.run([sys.executable, str(SCRIPT), str(b), str(n)], capture_output=True, text=True)
    assert res.returncode == 1 and "REGRESSION" in res.stdout
    res = subprocess.run([sys.executable, str(SCRIPT), str(b), str(b)], capture_output=True, text=True)
    assert res.returncode == 0
