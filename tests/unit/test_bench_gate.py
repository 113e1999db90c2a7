"""The CI regression gate (scripts/check_performance_regression.py) on synthetic gate directories, and its runs'
yardstick and manifest (benchmarks/gate.py).  No model: the records are written here the way the runner writes them."""

from __future__ import annotations

import copy
import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

import pytest

from benchmarks import gate as gate_runs

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "check_performance_regression.py"
N = 60  # the smallest sample that fits 3 questions in the 5-point budget
PROVENANCE = {"model_id": "Qwen/Qwen2.5-Coder-1.5B-Instruct", "sha256": "ab" * 32, "revision": None,
              "dtype": "q4_k_m", "backend": "llama.cpp"}


@pytest.fixture(scope="module")
def gate() -> ModuleType:
    spec = importlib.util.spec_from_file_location("check_performance_regression", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def records(n: int = N, *, wrong: tuple[int, ...] = (0, 1, 2, 3, 4, 5), gen: float = 1.0,
            rss: int = 2_000_000_000) -> list[dict[str, Any]]:
    """``n`` questions, 1 s of generation each (the slowest three 3 s), the ``wrong`` ones answered wrongly."""
    out = []
    for i in range(n):
        g = gen * (3.0 if i >= n - 3 else 1.0)
        out.append({"index": 10 * i, "db_id": f"db{i % 4}", "question": f"Question {i}?", "gold": "SELECT 1",
                    "pred": "SELECT 1", "correct": i not in wrong, "error": None, "pipeline_error": None,
                    "exec_failed": False, "hardness": "easy", "latency_s": g + 0.1, "generation_s": g,
                    "stages": {"generate": g}, "peak_rss": rss, "load_avg_1m": 0.5, "tokens_out": 20})
    return out


def meta(recs: list[dict[str, Any]], **changes: Any) -> dict[str, Any]:
    m = {"benchmark": "spider", "split": "dev", "model": None, "raw": False, "options": {"generation_cache": False},
         "scoring": {"keep_distinct": False}, "timeout": 60.0, "limit": len(recs), "seed": 0, "databases": 4,
         "selected_indices": [r["index"] for r in recs],
         "sessions": [{"command": "python -m benchmarks.spider", "git": {"commit": "c0ffee", "dirty": False},
                       "machine": {"cpu_count": 2}, "predictor": {"kind": "assistant", "provenance": PROVENANCE},
                       "interrupted": False, "finished": "2026-12-05T12:00:00+00:00"}]}
    m.update(changes)
    return m


def write_run(folder: Path, recs: list[dict[str, Any]], m: dict[str, Any] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "run.json").write_text(json.dumps(meta(recs) if m is None else m))
    (folder / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    return folder


def write_reference(folder: Path, seconds: float) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "reference.json").write_text(json.dumps({"version": gate_runs.REFERENCE_VERSION,
                                                       "samples": [{"seconds": seconds}, {"seconds": seconds}]}))


def gate_dir(folder: Path, runs: dict[str, list[dict[str, Any]]], reference: float | None = 0.03,
             metas: dict[str, dict[str, Any]] | None = None) -> Path:
    for name, recs in runs.items():
        write_run(folder / name, recs, (metas or {}).get(name))
    if reference is not None:
        write_reference(folder, reference)
    return folder


@pytest.fixture()
def judge(gate: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str]]:
    """``judge(new_runs, base_runs=None, *args, **gate_dir_kwargs_for_new)`` → (exit status, printed report)."""
    def run(new: dict[str, list[dict[str, Any]]], base: dict[str, list[dict[str, Any]]] | None = None,
            *args: str, base_metas: dict[str, dict[str, Any]] | None = None, **kwargs: Any) -> tuple[int, str]:
        b = gate_dir(tmp_path / "base", base or {"warm": records()}, metas=base_metas)
        n = gate_dir(tmp_path / "new", new, **kwargs)
        status = gate.main([str(b), str(n), *args])
        return status, capsys.readouterr().out

    return run


def failing_rows(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.rstrip().endswith("FAIL")]


def test_the_same_run_passes(judge) -> None:
    status, out = judge({"warm": records()})
    assert status == 0, out
    assert out.rstrip().endswith("no regression") and not failing_rows(out)
    for metric in ("questions scored", "pipeline errors", "end to end p50", "generation p50", "generation p95",
                   "peak memory", "execution accuracy (paired, 60 questions)"):
        assert metric in out


def test_improvements_pass(judge) -> None:
    status, out = judge({"warm": records(wrong=(), gen=0.5, rss=1_000_000_000)})
    assert status == 0, out
    assert "6 won, 0 lost" in out


def test_lost_questions_are_named_and_fail_beyond_the_budget(judge) -> None:
    # 3 of 60 lost = 5.0 points: at the limit
    status, out = judge({"warm": records(wrong=(0, 1, 2, 3, 4, 5, 6, 7, 8))})
    assert status == 0, out
    status, out = judge({"warm": records(wrong=(0, 1, 2, 3, 4, 5, 6, 7, 8, 9))})
    assert status == 1
    assert "right before, wrong now (4):" in out and "[warm] #60 db2: Question 6?" in out
    assert any(r.startswith("execution accuracy") for r in failing_rows(out))


def test_accuracy_is_paired_not_net_of_luck_elsewhere(judge) -> None:
    # 4 lost and 4 won: the same accuracy, both lists shown
    status, out = judge({"warm": records(wrong=(6, 7, 8, 9, 10, 11))}, {"warm": records(wrong=(0, 1, 2, 3, 10, 11))})
    assert status == 0, out
    assert "right before, wrong now (4)" in out and "wrong before, right now (4)" in out


def test_generation_time_is_judged_against_the_yardstick(judge) -> None:
    status, out = judge({"warm": records(gen=1.3)})  # +30 % on the same machine
    assert status == 1
    assert any("generation p50" in r for r in failing_rows(out))
    # a machine 1.3x slower at the yardstick too: the same code, nothing to report
    status, out = judge({"warm": records(gen=1.3)}, reference=0.039)
    assert status == 0, out
    # a faster machine does not hide a slower pipeline
    status, out = judge({"warm": records(gen=1.0)}, reference=0.02)
    assert status == 1 and any("generation p50" in r for r in failing_rows(out))


def test_the_tail_is_judged(judge) -> None:
    slow_tail = records()
    for r in slow_tail[-6:]:
        r["generation_s"] = r["latency_s"] = 6.0
    status, out = judge({"warm": slow_tail})
    assert status == 1
    assert any("generation p95" in r for r in failing_rows(out)) and not any("p50" in r for r in failing_rows(out))


def test_memory_is_judged(judge) -> None:
    status, out = judge({"warm": records(rss=2_400_000_000)})
    assert status == 1 and any("peak memory" in r for r in failing_rows(out))


def test_an_empty_run_fails(judge, tmp_path: Path) -> None:
    status, out = judge({"warm": []})
    assert status == 1
    assert any("questions scored" in r for r in failing_rows(out)) and "0 paired questions" in out


def test_a_missing_run_or_an_empty_directory_fails(judge, gate: ModuleType, tmp_path: Path) -> None:
    status, out = judge({"cold": records()})
    assert status == 1 and "[warm] run missing" in out and "[cold] is not in the baseline" in out
    (tmp_path / "nothing").mkdir()
    assert gate.main([str(tmp_path / "base"), str(tmp_path / "nothing")]) == 1


def test_an_incomplete_run_fails(judge) -> None:
    status, out = judge({"warm": records()[:-1]})
    assert status == 1 and any("questions scored" in r for r in failing_rows(out))


def test_an_interrupted_run_fails(judge) -> None:
    recs = records()
    m = meta(recs)
    m["sessions"][0]["interrupted"] = True
    status, out = judge({"warm": recs}, reference=0.03, metas={"warm": m})
    assert status == 1 and "did not finish" in out


@pytest.mark.parametrize("change, message", [
    ({"seed": 1}, "seed changed"),
    ({"order": "shuffled"}, "order changed"),
    ({"options": {"generation_cache": False, "repair_rounds": 0}}, "options changed"),
    ({"raw": True}, "raw changed"),
])
def test_a_changed_sample_or_configuration_fails(judge, change: dict[str, Any], message: str) -> None:
    recs = records()
    status, out = judge({"warm": recs}, metas={"warm": meta(recs, **change)})
    assert status == 1 and message in out


def test_a_different_sample_fails(judge) -> None:
    recs = records()
    for r in recs:
        r["index"] += 1
    status, out = judge({"warm": recs})
    assert status == 1 and "selected_indices changed" in out


@pytest.mark.parametrize("key, value", [("sha256", "cd" * 32), ("model_id", "Qwen/Qwen2.5-Coder-0.5B-Instruct"),
                                        ("backend", "transformers"), ("dtype", "bfloat16")])
def test_a_changed_model_fails(judge, key: str, value: str) -> None:
    recs = records()
    m = meta(recs)
    m["sessions"][0]["predictor"]["provenance"] = {**PROVENANCE, key: value}
    status, out = judge({"warm": recs}, metas={"warm": m})
    assert status == 1 and f"model {key} changed" in out


def test_new_pipeline_errors_fail_and_are_named(judge) -> None:
    recs = records()
    crash = "crash: RuntimeError: boom"
    recs[20].update(pred=None, correct=False, error=crash, pipeline_error=crash)
    status, out = judge({"warm": recs})
    assert status == 1
    assert any("pipeline errors" in r for r in failing_rows(out))
    assert "answered before, pipeline error now (1):" in out and "Question 20?  -- crash: RuntimeError: boom" in out


def test_a_missing_metric_fails(judge) -> None:
    recs = records()
    for r in recs:
        r["generation_s"] = None
    status, out = judge({"warm": recs})
    assert status == 1 and any("generation p50" in r and "missing" in r for r in failing_rows(out))
    recs = records()
    for r in recs:
        r["peak_rss"] = None
    status, out = judge({"warm": recs})
    assert status == 1 and any("peak memory" in r for r in failing_rows(out))


def test_every_latency_block_is_judged_cold_and_warm(gate: ModuleType, tmp_path: Path) -> None:
    base = gate.load_gate_dir(gate_dir(tmp_path / "b", {"warm": records()}))
    new = gate.load_gate_dir(gate_dir(tmp_path / "n", {"warm": records()}))
    base.runs["warm"].summary["latency"]["first_question_known_db"] = 2.0
    new.runs["warm"].summary["latency"]["first_question_known_db"] = 3.0
    verdict = gate.evaluate(base, new)
    assert [r.metric for r in verdict.rows if r.failed] == ["[warm] first question known db"]
    del new.runs["warm"].summary["latency"]["first_question_known_db"]
    assert any(r.failed and "first question" in r.metric for r in gate.evaluate(base, new).rows)
    # a block only the new run has: the baseline must be re-recorded before it counts
    base2 = gate.load_gate_dir(tmp_path / "b")
    new.runs["warm"].summary["latency"]["cold"] = {"n": 30, "p50": 1.0, "p95": 2.0}
    assert any(r.failed and "[warm] cold p50" == r.metric for r in gate.evaluate(base2, new).rows)


def test_accuracy_is_pooled_over_the_runs(judge) -> None:
    # 30 + 30 questions: each run alone would be too small, together they carry the 5-point budget
    status, out = judge({"warm": records(30, wrong=()), "cold": records(30, wrong=())},
                        {"warm": records(30, wrong=()), "cold": records(30, wrong=())})
    assert status == 0, out
    assert "execution accuracy (paired, 60 questions)" in out
    status, out = judge({"warm": records(30, wrong=(0, 1)), "cold": records(30, wrong=(0, 1))},
                        {"warm": records(30, wrong=()), "cold": records(30, wrong=())})
    assert status == 1 and "[cold] #10 db1: Question 1?" in out


def test_a_sample_too_small_for_the_budget_fails(judge) -> None:
    status, out = judge({"warm": records(20)}, {"warm": records(20)})
    assert status == 1 and "sample too small: 20 paired questions" in out
    status, out = judge({"warm": records(20)}, {"warm": records(20)}, "--min-questions-in-budget", "1")
    assert status == 0, out


def test_a_baseline_that_cannot_carry_a_verdict_fails(judge) -> None:
    recs = records()
    dirty = meta(recs)
    dirty["sessions"][0]["git"]["dirty"] = True
    status, out = judge({"warm": recs}, base_metas={"warm": dirty})
    assert status == 1 and "uncommitted changes" in out
    loaded = copy.deepcopy(recs)
    for r in loaded:
        r["load_avg_1m"] = 3.5
    status, out = judge({"warm": recs}, {"warm": loaded})
    assert status == 1 and "loaded machine" in out
    status, out = judge({"warm": loaded})  # a loaded CI machine: said, and judged against the yardstick
    assert status == 0 and "shared its CPUs" in out, out
    resumed = meta(recs)
    resumed["sessions"].append({**resumed["sessions"][0], "git": {"commit": "other", "dirty": False}})
    status, out = judge({"warm": recs}, base_metas={"warm": resumed})
    assert status == 1 and "several commits" in out


def test_without_a_yardstick_times_fail_unless_absolute(judge) -> None:
    status, out = judge({"warm": records()}, reference=None)
    assert status == 1 and "no yardstick" in out
    status, out = judge({"warm": records()}, None, "--absolute-times", reference=None)
    assert status == 0, out
    status, out = judge({"warm": records(gen=1.3)}, None, "--absolute-times", reference=None)
    assert status == 1


def test_a_changed_yardstick_fails(gate: ModuleType, tmp_path: Path) -> None:
    b = gate_dir(tmp_path / "b", {"warm": records()})
    n = gate_dir(tmp_path / "n", {"warm": records()})
    data = json.loads((n / "reference.json").read_text())
    (n / "reference.json").write_text(json.dumps({**data, "version": gate_runs.REFERENCE_VERSION + 1}))
    assert gate.main([str(b), str(n)]) == 1


def test_a_single_run_folder_is_accepted(gate: ModuleType, tmp_path: Path) -> None:
    b = write_run(tmp_path / "b", records())
    n = write_run(tmp_path / "n", records())
    assert gate.main([str(b), str(n), "--absolute-times"]) == 0
    write_run(n, records(wrong=tuple(range(12))))
    assert gate.main([str(b), str(n), "--absolute-times"]) == 1


def test_unreadable_input_exits_2(gate: ModuleType, tmp_path: Path) -> None:
    assert gate.main([str(tmp_path / "missing"), str(tmp_path / "missing")]) == 2
    bad = write_run(tmp_path / "bad", records())
    (bad / "run.json").write_text("{not json")
    assert gate.main([str(bad), str(bad)]) == 2


def test_runs_as_a_script(tmp_path: Path) -> None:
    b = gate_dir(tmp_path / "b", {"warm": records()})
    n = gate_dir(tmp_path / "n", {"warm": records(gen=2.0)})
    res = subprocess.run([sys.executable, str(SCRIPT), str(b), str(n)], capture_output=True, text=True,
                         cwd=tmp_path)
    assert res.returncode == 1 and "REGRESSION" in res.stdout, res.stderr
    res = subprocess.run([sys.executable, str(SCRIPT), str(b), str(b)], capture_output=True, text=True, cwd=tmp_path)
    assert res.returncode == 0 and "no regression" in res.stdout, res.stdout + res.stderr


# -- benchmarks/gate.py: the yardstick and the manifest --------------------------------------------------------------
def test_the_yardstick_is_measured_and_appended(tmp_path: Path) -> None:
    path = tmp_path / "reference.json"
    gate_runs.add_reference_sample(path, "before")
    data = gate_runs.add_reference_sample(path, "after")
    assert [s["when"] for s in data["samples"]] == ["before", "after"]
    assert set(data["samples"][0]["parts"]) == set(gate_runs.WORKLOADS)
    assert data["version"] == gate_runs.REFERENCE_VERSION and data["machine"]["cpu_count"]
    seconds = gate_runs.reference_seconds(json.loads(path.read_text()))
    assert seconds is not None and seconds > 0
    assert gate_runs.reference_seconds({"samples": []}) is None


def test_the_manifest_names_each_run_and_its_command(tmp_path: Path) -> None:
    (tmp_path / "gate.json").write_text(json.dumps({"runs": {"warm": ["benchmarks.spider", "--limit", 60]}}))
    assert gate_runs.load_manifest(tmp_path) == {"warm": ["benchmarks.spider", "--limit", "60"]}
    for bad in ({}, {"runs": {}}, {"runs": {"warm": []}}, {"runs": ["benchmarks.spider"]}):
        (tmp_path / "gate.json").write_text(json.dumps(bad))
        with pytest.raises(ValueError):
            gate_runs.load_manifest(tmp_path)


def test_the_manifest_may_set_variables_for_the_runs(tmp_path: Path) -> None:
    (tmp_path / "gate.json").write_text(json.dumps({"runs": {"warm": ["benchmarks.spider"]},
                                                    "env": {"NL2SQL_X": "{out}/cache-{run}"}}))
    assert gate_runs.load_env(tmp_path) == {"NL2SQL_X": "{out}/cache-{run}"}
    (tmp_path / "gate.json").write_text(json.dumps({"runs": {"warm": ["benchmarks.spider"]}, "env": {"X": 1}}))
    with pytest.raises(ValueError):
        gate_runs.load_env(tmp_path)


def test_the_gate_runs_each_command_between_two_yardsticks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "gate.json").write_text(json.dumps({"runs": {"warm": ["benchmarks.spider", "--limit", "60"],
                                                             "cold": ["benchmarks.spider", "--order", "shuffled"]},
                                                    "env": {"NL2SQL_X": "{out}/{run}"}}))
    calls = []

    def fake_run(argv, cwd, env):
        calls.append((argv, env["NL2SQL_X"]))
        return subprocess.CompletedProcess(argv, 0)

    monkeypatch.setattr(gate_runs.subprocess, "run", fake_run)
    monkeypatch.setattr(gate_runs, "measure_reference", lambda: {"seconds": 0.03, "parts": {}})
    out = tmp_path / "out"
    assert gate_runs.run_gate(tmp_path, out) == 0
    assert [c[0][2:] for c in calls] == [
        ["benchmarks.spider", "--limit", "60", "--no-progress", "--overwrite", "--out", str(out / "warm")],
        ["benchmarks.spider", "--order", "shuffled", "--no-progress", "--overwrite", "--out", str(out / "cold")]]
    assert [c[1] for c in calls] == [f"{out}/warm", f"{out}/cold"]
    samples = json.loads((out / "reference.json").read_text())["samples"]
    assert [s["when"] for s in samples] == ["before", "after"]
    monkeypatch.setattr(gate_runs.subprocess, "run", lambda argv, cwd, env: subprocess.CompletedProcess(argv, 3))
    assert gate_runs.run_gate(tmp_path, out) == 3  # a failed run fails the gate's runs


def test_the_committed_manifest_is_valid() -> None:
    runs = gate_runs.load_manifest(gate_runs.REPO_ROOT / "benchmarks" / "baselines" / "spider-ci")
    assert runs and all(cmd[0].startswith("benchmarks.") for cmd in runs.values())
    assert not any(a in ("--out", "--overwrite", "--data-dir") for cmd in runs.values() for a in cmd)


def test_a_recorded_baseline_keeps_the_records_only(tmp_path: Path) -> None:
    gate_dir, out = tmp_path / "gate", tmp_path / "out"
    gate_dir.mkdir()
    (gate_dir / "gate.json").write_text(json.dumps({"runs": {"warm": ["benchmarks.spider"]}}))
    write_run(gate_dir / "gone", records())  # a run the manifest no longer names
    write_run(out / "warm", records(wrong=()))
    write_reference(out, 0.02)
    for name in ("summary.json", "summary.md", "latency_hist.png"):
        (out / "warm" / name).write_text("x")
    gate_runs.install_baseline(out, gate_dir)
    assert sorted(p.name for p in gate_dir.iterdir()) == ["gate.json", "reference.json", "warm"]
    assert sorted(p.name for p in (gate_dir / "warm").iterdir()) == ["results.jsonl", "run.json"]
    assert (gate_dir / "warm" / "results.jsonl").read_bytes() == (out / "warm" / "results.jsonl").read_bytes()


def test_recording_needs_a_clean_checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "gate.json").write_text(json.dumps({"runs": {"warm": ["benchmarks.spider"]}}))
    monkeypatch.setattr(gate_runs, "_dirty", lambda: True)
    monkeypatch.setattr(gate_runs, "run_gate", lambda *a, **k: pytest.fail("ran on a dirty checkout"))
    assert gate_runs.main(["run", str(tmp_path), "--record"]) == 2


def test_run_needs_an_output_folder_or_record(tmp_path: Path) -> None:
    (tmp_path / "gate.json").write_text(json.dumps({"runs": {"warm": ["benchmarks.spider"]}}))
    for argv in (["run", str(tmp_path)], ["run", str(tmp_path), str(tmp_path / "out"), "--record"]):
        with pytest.raises(SystemExit):
            gate_runs.main(argv)


def test_the_baseline_commit_is_the_one_clean_commit_of_its_runs(tmp_path: Path) -> None:
    (tmp_path / "gate.json").write_text(json.dumps({"runs": {"warm": ["benchmarks.spider"],
                                                             "cold": ["benchmarks.spider"]}}))
    for name in ("warm", "cold"):
        write_run(tmp_path / name, records())
    assert gate_runs.baseline_commit(tmp_path) == "c0ffee"
    other = meta(records())
    other["sessions"][0]["git"] = {"commit": "c0ffee", "dirty": True}
    write_run(tmp_path / "cold", records(), other)
    assert gate_runs.baseline_commit(tmp_path) is None  # a dirty run has no commit to measure again


def paired_setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, checkout: bool,
                 baseline_ran: str = "c0ffee") -> tuple[Path, list]:
    gate = tmp_path / "gate"
    gate.mkdir()
    (gate / "gate.json").write_text(json.dumps({"runs": {"warm": ["benchmarks.spider", "--limit", "60"],
                                                         "cold": ["benchmarks.spider", "--order", "shuffled"]}}))
    for name in ("warm", "cold"):
        write_run(gate / name, records())
    write_reference(gate, 0.02)
    calls: list = []
    real_run = subprocess.run

    def fake_run(argv, *args, cwd=None, env=None, **kwargs):
        if argv[0] != sys.executable:  # not a gate run (platform's own queries)
            return real_run(argv, *args, cwd=cwd, env=env, **kwargs)
        calls.append((argv, Path(cwd), env.get("PYTHONPATH", "")))
        out = Path(argv[argv.index("--out") + 1])  # what the runner writes: the commit it ran
        ran = baseline_ran if Path(cwd) != gate_runs.REPO_ROOT else "new"
        write_run(out, records(), {**meta(records()), "sessions": [{"git": {"commit": ran, "dirty": False}}]})
        return subprocess.CompletedProcess(argv, 0)

    def fake_worktree(commit: str, where: Path) -> bool:
        calls.append(("worktree", commit))
        if checkout:
            where.mkdir(parents=True)
        return checkout

    monkeypatch.setattr(gate_runs.subprocess, "run", fake_run)
    monkeypatch.setattr(gate_runs, "_add_worktree", fake_worktree)
    monkeypatch.setattr(gate_runs, "_remove_worktree", lambda where: calls.append(("removed", where)))
    monkeypatch.setattr(gate_runs, "measure_reference", lambda: {"seconds": 0.03, "parts": {}})
    return gate, calls


def test_the_baseline_is_measured_again_run_by_run_beside_the_new_runs(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    gate, calls = paired_setup(tmp_path, monkeypatch, checkout=True)
    out, base = tmp_path / "out", tmp_path / "base"
    assert gate_runs.main(["run", str(gate), str(out), "--baseline-again", str(base)]) == 0
    assert calls[0] == ("worktree", "c0ffee") and calls[-1][0] == "removed"
    runs = calls[1:-1]
    tree = calls[-1][1]
    # alternating: the baseline's warm, the new warm, the baseline's cold, the new cold
    assert [r[0][r[0].index("--out") + 1] for r in runs] == [str(base / "warm"), str(out / "warm"),
                                                                 str(base / "cold"), str(out / "cold")]
    for argv, cwd, pythonpath in runs[0::2]:  # the baseline runs its own code, on this checkout's data
        assert cwd == tree and pythonpath.split(":")[0] == str(tree)
        assert argv[argv.index("--data-dir") + 1] == str(gate_runs.default_data_dir())
    for argv, cwd, pythonpath in runs[1::2]:
        assert cwd == gate_runs.REPO_ROOT and "--data-dir" not in argv
    refs = [json.loads((d / "reference.json").read_text()) for d in (base, out)]
    assert refs[0]["job"] == refs[1]["job"] and refs[0]["samples"] == refs[1]["samples"]
    assert [s["when"] for s in refs[0]["samples"]] == ["before", "after"]


def test_without_the_baseline_commit_the_recorded_baseline_judges(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    gate, calls = paired_setup(tmp_path, monkeypatch, checkout=False)
    out, base = tmp_path / "out", tmp_path / "base"
    assert gate_runs.main(["run", str(gate), str(out), "--baseline-again", str(base)]) == 0
    assert [c[0][c[0].index("--out") + 1] for c in calls if c[0] not in ("worktree", "removed")] == [
        str(out / "warm"), str(out / "cold")]
    for name in ("warm", "cold"):
        assert (base / name / "results.jsonl").read_bytes() == (gate / name / "results.jsonl").read_bytes()
    assert "job" not in json.loads((base / "reference.json").read_text())


def test_a_baseline_measured_in_the_same_job_is_compared_as_is(gate: ModuleType, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    loaded = records()
    for r in loaded:
        r["load_avg_1m"] = 3.5
    for new_gen, expected in ((1.0, 0), (1.3, 1)):
        b = gate_dir(tmp_path / "b", {"warm": loaded}, reference=0.03)
        n = gate_dir(tmp_path / "n", {"warm": records(gen=new_gen)}, reference=0.039)  # the yardstick is not used
        for d in (b, n):
            data = json.loads((d / "reference.json").read_text())
            (d / "reference.json").write_text(json.dumps({**data, "job": "job-1"}))
        status = gate.main([str(b), str(n)])
        out = capsys.readouterr().out
        assert status == expected, out
        assert "measured again in this job" in out and "shared its CPUs" in out  # a loaded job is said, not failed


def test_a_baseline_run_of_other_code_fails_the_gate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    gate, calls = paired_setup(tmp_path, monkeypatch, checkout=True, baseline_ran="new")  # the checkout's code
    assert gate_runs.main(["run", str(gate), str(tmp_path / "out"), "--baseline-again", str(tmp_path / "b")]) == 1
    assert calls[-1][0] == "removed"  # the worktree is removed all the same
