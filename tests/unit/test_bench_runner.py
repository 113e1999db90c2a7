"""The shared benchmark loop: sampling, resumable JSONL, reports, comparison, and the two predictors."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from benchmarks import compare as compare_mod
from benchmarks import report
from benchmarks.runner import ENGINE_ENVIRONMENT, Benchmark, Item, Prediction, Score, build_parser, load_records, \
    parse_set, run, select_items, sqlite_readonly_url
from benchmarks.scoring import execution_match
from benchmarks.spider import SpiderBenchmark


# -- a tiny benchmark -------------------------------------------------------------------------------------------------
def make_db(path: Path) -> Path:
    con = sqlite3.connect(path)
    con.executescript("""
        CREATE TABLE pets (id INTEGER PRIMARY KEY, name TEXT, kind TEXT, age INTEGER);
        INSERT INTO pets VALUES (1, 'Rex', 'dog', 3), (2, 'Tom', 'cat', 5), (3, 'Kit', 'cat', 1), (4, 'Bo', 'dog', 7);
    """)
    con.commit()
    con.close()
    return path


QUESTIONS = [
    ("How many pets are there?", "SELECT count(*) FROM pets", "easy"),
    ("Names of cats?", "SELECT name FROM pets WHERE kind = 'cat'", "easy"),
    ("Oldest pet?", "SELECT name FROM pets ORDER BY age DESC LIMIT 1", "medium"),
    ("Pets per kind?", "SELECT kind, count(*) FROM pets GROUP BY kind", "medium"),
    ("Average age?", "SELECT avg(age) FROM pets", "easy"),
    ("Dogs older than 4?", "SELECT name FROM pets WHERE kind = 'dog' AND age > 4", "medium"),
]


class TinyBenchmark(Benchmark):
    name = "tiny"
    breakdown_levels = ("easy", "medium")

    def __init__(self, db: Path) -> None:
        self.db = db

    def load(self, data_dir: Path, split: str) -> list[Item]:
        items = [Item(i, "pets", q, g, h) for i, (q, g, h) in enumerate(QUESTIONS)]
        items.append(Item(len(items), "gone", "Unscorable?", "SELECT 1", "easy", skip_reason="database gone missing"))
        return items

    def database_path(self, item: Item) -> Path:
        return self.db

    def score(self, item: Item, pred_sql: str | None, *, timeout: float = 60.0) -> Score:
        m = execution_match(self.db, pred_sql, item.gold, timeout=timeout)
        return Score(m.correct, m.pred_error, m.gold_error, m.pred_rows, m.gold_rows)


class FakePredictor:
    """Answers from a table: the gold SQL for questions in ``right``, a wrong query otherwise."""

    def __init__(self, right: set[str], seconds: float = 1.0, rss: int = 500_000_000, fail: set[str] = frozenset()):
        self.right, self.seconds, self.rss, self.fail = right, seconds, rss, fail
        self.asked: list[str] = []
        self.urls: list[str] = []

    def prepare(self) -> float | None:
        return 0.25

    def predict(self, question: str, url: str) -> Prediction:
        self.asked.append(question)
        self.urls.append(url)
        if question in self.fail:
            raise RuntimeError("pipeline bug")
        gold = next(g for q, g, _ in QUESTIONS if q == question)
        sql = gold if question in self.right else "SELECT nonsense FROM pets"
        stats = {"stages": {"schema": {"seconds": 0.01}, "generate": {"seconds": self.seconds * 0.8}},
                 "total_seconds": self.seconds, "generation_seconds": self.seconds * 0.8, "tokens_in": 100,
                 "tokens_out": 20, "tokens_per_second": 25.0, "rss_peak": self.rss, "model_load_seconds": None}
        return Prediction(sql, None, stats)

    def describe(self) -> dict[str, Any]:
        return {"kind": "fake"}


def args_for(out: Path, *extra: str):
    argv = ["--out", str(out), "--no-progress", *extra]
    return build_parser("tiny").parse_args(argv), ["benchmarks.tiny", *argv]


@pytest.fixture()
def bench(tmp_path: Path) -> TinyBenchmark:
    return TinyBenchmark(make_db(tmp_path / "pets.sqlite"))


# -- tests ----------------------------------------------------------------------------------------------------------
def test_parse_set() -> None:
    assert parse_set(["repair_rounds=0", "model=Qwen/X", "flag=true", "ratio=0.5", "empty=", "x=a=b"]) == {
        "repair_rounds": 0, "model": "Qwen/X", "flag": True, "ratio": 0.5, "empty": "", "x": "a=b"}
    with pytest.raises(Exception):
        parse_set(["novalue"])


def test_sample_is_reproducible_sorted_and_scorable(bench: TinyBenchmark) -> None:
    items = bench.load(Path("."), "dev")
    a = select_items(items, 3, seed=7)
    assert [it.index for it in a] == sorted(it.index for it in a)
    assert [it.index for it in a] == [it.index for it in select_items(items, 3, seed=7)]
    assert all(it.skip_reason is None for it in select_items(items, None, 0))
    assert len(select_items(items, 100, 0)) == len(QUESTIONS)


def test_sample_can_be_drawn_from_a_few_databases() -> None:
    items = [Item(index=i, db_id=f"db{i % 5}", question=f"q{i}", gold="SELECT 1") for i in range(50)]
    few = select_items(items, 6, seed=3, databases=2)
    assert len(few) == 6 and len({it.db_id for it in few}) <= 2
    every = select_items(items, None, seed=3, databases=2)
    assert len(every) == 20 and {it.db_id for it in every} == {it.db_id for it in select_items(items, 40, 3, 2)}
    assert [it.index for it in few] == [it.index for it in select_items(items, 6, seed=3, databases=2)]
    assert build_parser("tiny").parse_args(["--databases", "2"]).databases == 2
    for bad in ("0", "-1", "two"):
        with pytest.raises(SystemExit):
            build_parser("tiny").parse_args(["--databases", bad])


def test_run_writes_records_and_reports(bench: TinyBenchmark, tmp_path: Path) -> None:
    out = tmp_path / "out"
    pred = FakePredictor(right={q for q, _, _ in QUESTIONS[:4]})
    args, argv = args_for(out)
    run(bench, args, argv, predictor_factory=lambda: pred)
    records = load_records(out / "results.jsonl")
    assert [r["index"] for r in records] == list(range(len(QUESTIONS)))
    for field in ("index", "db_id", "question", "gold", "pred", "correct", "error", "hardness", "latency_s",
                  "stages", "generation_s", "tokens_in", "tokens_out", "tokens_per_s", "peak_rss", "exec_failed",
                  "load_avg_1m"):
        assert field in records[0]
    assert records[0]["latency_s"] == pytest.approx(1.0) and records[0]["stages"]["generate"] == pytest.approx(0.8)
    assert sum(r["correct"] for r in records) == 4
    assert records[5]["exec_failed"] and "no such column" in records[5]["error"]
    assert all(u.startswith("sqlite:///file:") and u.endswith("?mode=ro&uri=true") for u in pred.urls)

    summary = json.loads((out / "summary.json").read_text())
    assert summary["n"] == 6 and summary["correct"] == 4 and summary["ex"] == pytest.approx(4 / 6)
    assert summary["skipped"] == 1 and summary["skipped_reasons"] == {"database gone missing": 1}
    assert summary["by_hardness"]["easy"] == {"n": 3, "correct": 2, "ex": pytest.approx(2 / 3)}
    assert summary["exec_failure_share"] == pytest.approx(2 / 6)
    assert summary["latency"]["end_to_end"]["p50"] == pytest.approx(1.0)
    assert summary["latency"]["generation"]["p95"] == pytest.approx(0.8)
    assert summary["throughput_qps"] == pytest.approx(1.0)
    assert summary["peak_rss_bytes"] == 500_000_000 and summary["tokens_per_second"] == pytest.approx(25.0)
    assert summary["model_load_s"] == 0.25
    assert summary["flagged_by_pipeline"] == 0 and summary["flagged_but_correct"] == 0
    assert summary["command"].endswith("--no-progress") and summary["date"] and summary["machine"]["cpu_count"]
    md = (out / "summary.md").read_text()
    assert "| easy | 3 | 2 | 66.7% |" in md and "**66.7%**" in md
    assert (out / "accuracy_by_hardness.png").stat().st_size > 1000
    assert (out / "latency_hist.png").stat().st_size > 1000


def test_rerun_resumes(bench: TinyBenchmark, tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = FakePredictor(right=set())
    args, argv = args_for(out, "--limit", "3", "--seed", "1")
    run(bench, args, argv, predictor_factory=lambda: first)
    assert len(first.asked) == 3
    again = FakePredictor(right=set())
    run(bench, args, argv, predictor_factory=lambda: again)
    assert again.asked == []  # everything done: no model call at all
    # a torn last line (killed mid-write) is dropped and that question asked again
    path = out / "results.jsonl"
    data = path.read_bytes()
    path.write_bytes(data[: data.rfind(b"\n", 0, len(data) - 1) + 1] + b'{"index": 9, "corr')
    rest = FakePredictor(right=set())
    args, argv = args_for(out)
    run(bench, args, argv, predictor_factory=lambda: rest)
    assert len(rest.asked) == len(QUESTIONS) - 2
    records = load_records(path)
    assert sorted(r["index"] for r in records) == list(range(len(QUESTIONS)))
    meta = json.loads((out / "run.json").read_text())
    assert len(meta["sessions"]) == 3


def test_other_configuration_is_refused(bench: TinyBenchmark, tmp_path: Path) -> None:
    out = tmp_path / "out"
    args, argv = args_for(out, "--limit", "1")
    run(bench, args, argv, predictor_factory=lambda: FakePredictor(set()))
    args, argv = args_for(out, "--limit", "1", "--set", "repair_rounds=0")
    with pytest.raises(SystemExit, match="another configuration"):
        run(bench, args, argv, predictor_factory=lambda: FakePredictor(set()))
    args, argv = args_for(out, "--limit", "1", "--set", "repair_rounds=0", "--overwrite")
    run(bench, args, argv, predictor_factory=lambda: FakePredictor(set()))
    assert json.loads((out / "run.json").read_text())["options"]["repair_rounds"] == 0


def test_the_engines_environment_is_recorded_and_names_the_run(bench: TinyBenchmark, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """A run with guessing turned off (NL2SQL_DRAFT_TOKENS=0) is another configuration, and is named as one."""
    from benchmarks import index

    out = tmp_path / "out"
    for key in ENGINE_ENVIRONMENT:
        monkeypatch.delenv(key, raising=False)
    args, argv = args_for(out, "--limit", "1")
    run(bench, args, argv, predictor_factory=lambda: FakePredictor(set()))
    meta = json.loads((out / "run.json").read_text())
    assert meta["environment"] == {} and index.run_name(meta).endswith("-defaults")
    del meta["environment"]  # as a run recorded before the key existed: the same configuration
    (out / "run.json").write_text(json.dumps(meta))
    run(bench, args, argv, predictor_factory=lambda: FakePredictor(set()))
    monkeypatch.setenv("NL2SQL_DRAFT_TOKENS", "0")
    with pytest.raises(SystemExit, match="environment"):
        run(bench, args, argv, predictor_factory=lambda: FakePredictor(set()))
    args, argv = args_for(out, "--limit", "1", "--overwrite")
    run(bench, args, argv, predictor_factory=lambda: FakePredictor(set()))
    meta = json.loads((out / "run.json").read_text())
    assert meta["environment"] == {"NL2SQL_DRAFT_TOKENS": "0"} and index.run_name(meta).endswith("-draft_tokens-0")
    assert index.describe(meta) == "pipeline, draft_tokens=0"


def test_pipeline_crash_is_recorded_not_fatal(bench: TinyBenchmark, tmp_path: Path) -> None:
    out = tmp_path / "out"
    q = QUESTIONS[1][0]
    args, argv = args_for(out)
    run(bench, args, argv, predictor_factory=lambda: FakePredictor(set(), fail={q}))
    rec = next(r for r in load_records(out / "results.jsonl") if r["question"] == q)
    assert rec["pred"] is None and rec["error"].startswith("crash: RuntimeError") and not rec["correct"]
    args, argv = args_for(tmp_path / "out2", "--fail-fast")
    with pytest.raises(RuntimeError):
        run(bench, args, argv, predictor_factory=lambda: FakePredictor(set(), fail={q}))


def test_compare_states_gain_and_ratios(bench: TinyBenchmark, tmp_path: Path) -> None:
    base, new = tmp_path / "base", tmp_path / "new"
    args, argv = args_for(base, "--raw")
    run(bench, args, argv, predictor_factory=lambda: FakePredictor({QUESTIONS[0][0]}, seconds=1.0, rss=400_000_000))
    args, argv = args_for(new)
    run(bench, args, argv, predictor_factory=lambda: FakePredictor({q for q, _, _ in QUESTIONS[:4]}, seconds=2.0,
                                                                   rss=500_000_000))
    c = compare_mod.compare(base, new)
    assert c["n_common"] == 6
    assert c["accuracy"]["gain_points"] == pytest.approx(50.0)
    assert c["accuracy"]["only_new"] == 3 and c["accuracy"]["only_base"] == 0
    assert c["latency"]["end_to_end_p50"]["ratio"] == pytest.approx(2.0)
    assert c["latency"]["generation_p50"]["ratio"] == pytest.approx(2.0)
    assert c["peak_rss"]["ratio"] == pytest.approx(1.25)
    text = compare_mod.markdown(c)
    assert "+50.0 points" in text and "2.00× the median end-to-end latency" in text
    assert compare_mod.main([str(base), str(new), "--out", str(tmp_path / "c.md")]) == 0
    assert (tmp_path / "c.md").exists()


def test_report_command_rebuilds(bench: TinyBenchmark, tmp_path: Path) -> None:
    out = tmp_path / "out"
    args, argv = args_for(out)
    run(bench, args, argv, predictor_factory=lambda: FakePredictor(set()))
    (out / "summary.json").unlink()
    assert report.main([str(out), "--no-plots"]) == 0
    assert json.loads((out / "summary.json").read_text())["ex"] == 0.0
    assert report.main([str(tmp_path / "nothing")]) == 2


def test_contention_is_flagged() -> None:
    meta = {"sessions": [{"machine": {"cpu_affinity": 2}}]}
    busy = [{"index": i, "correct": True, "load_avg_1m": 5.0} for i in range(3)]
    calm = [{"index": i, "correct": True, "load_avg_1m": 0.5} for i in range(3)]
    assert report.summarize(busy, meta)["contended"] is True
    assert report.summarize(calm, meta)["contended"] is False
    own = [{"index": i, "correct": True, "load_avg_1m": 2.1} for i in range(3)]  # the run's own 2 threads
    assert report.summarize(own, meta)["contended"] is False
    assert "skewed by other processes" in report.markdown(report.summarize(busy, meta))


def test_percentiles() -> None:
    assert report.percentile([1, 2, 3, 4], 50) == 2.5
    assert report.percentile(list(range(101)), 95) == 95
    assert report.distribution([None, 2.0, 4.0])["mean"] == 3.0


# -- the real predictors, without a real model ----------------------------------------------------------------------
def test_assistant_predictor_with_scripted_backend(scripted, tmp_path: Path) -> None:
    from benchmarks.runner import AssistantPredictor

    db = make_db(tmp_path / "pets.sqlite")
    backend = scripted("```sql\nSELECT count(*) FROM pets\n```")
    pred = AssistantPredictor(None, {"generation_cache": False})
    assert pred.prepare() is None
    p = pred.predict("How many pets are there?", sqlite_readonly_url(db))
    assert p.sql is not None and "count(*)" in p.sql.lower() and p.error is None
    assert p.stats["tokens_out"] > 0 and "generate" in p.stats["stages"] and p.stats["total_seconds"] > 0
    assert len(backend.calls) == 1


def test_raw_predictor_prompt(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import jupyter_nl2sql.models as models
    from benchmarks import raw
    from jupyter_nl2sql.models import Generation

    db = make_db(tmp_path / "pets.sqlite")
    seen: list[list[dict]] = []

    class Backend:
        device, dtype, provenance = "cpu", "float32", {"model_id": "fake"}

        def generate(self, messages: list[dict], max_new_tokens: int = 256) -> Generation:
            seen.append(messages)
            return Generation("```sql\nSELECT count(*) FROM pets;\n```", 50, 9, 0.5)

    monkeypatch.setattr(models, "get_backend", lambda *a, **k: (Backend(), None))
    p = raw.RawPredictor(model="fake")
    p.prepare()
    out = p.predict("How many pets?", sqlite_readonly_url(db))
    assert out.sql == "SELECT count(*) FROM pets;"
    prompt = seen[0][0]["content"]
    assert len(seen[0]) == 1 and seen[0][0]["role"] == "user"
    assert "CREATE TABLE pets" in prompt and "3 example rows" in prompt and "Rex\tdog" in prompt
    assert "Bo" not in prompt.split("LIMIT 3;")[1]  # three rows only
    assert "How many pets?" in prompt and "Output only the SQL" in prompt and "SQLite" in prompt
    assert out.stats["tokens_out"] == 9 and out.stats["generation_seconds"] == 0.5
    assert raw.strip_fence("SELECT 1") == "SELECT 1" and raw.strip_fence("```\nSELECT 2\n") == "SELECT 2"


# -- Spider loading -----------------------------------------------------------------------------------------------
def test_spider_missing_database_is_skipped(tmp_path: Path) -> None:
    base = tmp_path / "spider"
    (base / "database" / "pets").mkdir(parents=True)
    make_db(base / "database" / "pets" / "pets.sqlite")
    dev = [{"db_id": "pets", "question": "How many?", "query": "SELECT count(*) FROM pets"},
           {"db_id": "gone", "question": "What?", "query": "SELECT a FROM t WHERE b IN (SELECT c FROM u)"}]
    (base / "dev.json").write_text(json.dumps(dev))
    sp = SpiderBenchmark()
    items = sp.load(tmp_path, "dev")
    assert [it.skip_reason for it in items] == [None, "database gone missing"]
    assert [it.hardness for it in items] == ["easy", "hard"]
    assert sp.score(items[0], "SELECT count(id) FROM pets").correct
    assert sp.connection_url(items[0]).endswith("pets.sqlite?mode=ro&uri=true")
