"""The analyst question suite (benchmarks/analyst.py, benchmarks/data/analyst.json) and its streaming database
(benchmarks/analyst_db.py): the questions are fit to score with, the database is the same everywhere, and the runner
scores, files and reports a run.  The predictor here is scripted (plumbing only: no model)."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any, Iterator

import pytest

from benchmarks import analyst_db, index
from benchmarks.analyst import CATEGORIES, DEFAULT_DATA, AnalystBenchmark, database_file, gold_problems, \
    load_questions, main, order_ties, parser_for, rank_ties
from benchmarks.runner import Prediction, load_records, run

QUESTIONS = load_questions()
#: sha256 of the generator's rows: a change of data (another Python's random, an edited generator) shows here;
#: an intended change bumps analyst_db.VERSION and this digest together.
ROWS_SHA256 = "61a0b7485aa0947562bcc652f328635474e8d4afa1b5613d3ece3385db2674ce"


@pytest.fixture(scope="module", autouse=True)
def bench_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The streaming database is built in a private cache folder, not the user's."""
    folder = tmp_path_factory.mktemp("bench-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NL2SQL_BENCH_CACHE", str(folder))
        yield folder


def _contents(path: Path) -> dict[str, list[tuple]]:
    db = sqlite3.connect(path)
    try:
        names = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        return {n: db.execute(f"SELECT * FROM {n}").fetchall() for n in names}
    finally:
        db.close()


# -- the questions ----------------------------------------------------------------------------------------------------
def test_the_suite_is_large_unique_and_covers_every_category() -> None:
    assert len(QUESTIONS) >= 80
    assert len({q["id"] for q in QUESTIONS}) == len(QUESTIONS)
    assert len({q["question"] for q in QUESTIONS}) == len(QUESTIONS)
    assert {q["database"] for q in QUESTIONS} == {"demo", analyst_db.NAME}
    per_category = Counter(q["category"] for q in QUESTIONS)
    assert set(per_category) == set(CATEGORIES)
    assert min(per_category.values()) >= 5, per_category
    for db in ("demo", analyst_db.NAME):
        assert sum(q["database"] == db for q in QUESTIONS) >= 40


#: Held-out date questions scored the same way (``--data``).
DATES_HOLDOUT = load_questions(DEFAULT_DATA.with_name("analyst_dates_holdout.json"))


@pytest.mark.parametrize("question", QUESTIONS + DATES_HOLDOUT, ids=[q["id"] for q in QUESTIONS + DATES_HOLDOUT])
def test_every_gold_runs_finds_rows_and_does_not_depend_on_ties(question: dict[str, Any]) -> None:
    assert gold_problems(database_file(question["database"]), question["gold"]) == []


def test_the_tie_checks_see_ties(tmp_path: Path) -> None:
    db = tmp_path / "t.sqlite"
    with sqlite3.connect(db) as con:
        con.executescript("CREATE TABLE t (g TEXT, name TEXT, n INT);"
                          "INSERT INTO t VALUES ('a', 'x', 3), ('a', 'y', 2), ('a', 'z', 2), ('b', 'w', 5);")
    con.close()
    assert order_ties(db, "SELECT name FROM t ORDER BY n DESC LIMIT 1") == []
    assert "cuts between tied rows" in order_ties(db, "SELECT name FROM t ORDER BY n DESC LIMIT 3")[0]
    assert "tie on the sort key" in order_ties(db, "SELECT name, n AS k FROM t ORDER BY k")[0]
    assert order_ties(db, "SELECT name FROM t ORDER BY n, 1") == []
    top = "SELECT g, name FROM (SELECT g, name, {f}() OVER (PARTITION BY g ORDER BY n DESC) AS r FROM t) WHERE r <= {k}"
    assert rank_ties(db, top.format(f="ROW_NUMBER", k=1)) == []
    assert rank_ties(db, top.format(f="RANK", k=2)) != []
    assert gold_problems(db, "SELECT name FROM t WHERE n > 9") == ["returns no row, or only NULLs"]
    assert gold_problems(db, "SELECT nothing FROM t")[0].startswith("does not run")


# -- the streaming database -------------------------------------------------------------------------------------------
def test_the_streaming_database_is_the_same_on_every_build(tmp_path: Path) -> None:
    first = analyst_db.build_analyst_db(tmp_path / "one.sqlite")
    second = analyst_db.build_analyst_db(tmp_path / "two.sqlite")
    assert _contents(first) == _contents(second)
    assert hashlib.sha256(json.dumps(analyst_db.rows(), sort_keys=True).encode()).hexdigest() == ROWS_SHA256
    assert first.stat().st_size < 2 * 2**20


def test_the_streaming_database_has_dates_money_nulls_and_a_link_table() -> None:
    tables = _contents(database_file(analyst_db.NAME))
    assert len(tables) >= 6 and "title_genres" in tables
    db = sqlite3.connect(database_file(analyst_db.NAME))
    try:
        for column in ("subscriptions.cancelled_on", "subscriptions.cancel_reason", "subscribers.birth_year",
                       "subscribers.referred_by", "payments.discount", "payments.refunded_at", "views.rating",
                       "titles.runtime_minutes", "titles.maturity_rating"):
            table, name = column.split(".")
            nulls, filled = db.execute(f"SELECT SUM({name} IS NULL), SUM({name} IS NOT NULL) FROM {table}").fetchone()
            assert nulls and filled, column
        first, last = db.execute("SELECT MIN(paid_at), MAX(paid_at) FROM payments").fetchone()
        assert first < "2022-02" and last > "2024-12"
        assert db.execute("SELECT COUNT(*) FROM payments WHERE amount <> ROUND(amount, 0)").fetchone()[0] > 0
    finally:
        db.close()


# -- the runner -------------------------------------------------------------------------------------------------------
class ScriptedPredictor:
    """Answers from a table question -> SQL (no model: plumbing only)."""

    def __init__(self, answers: dict[str, str]) -> None:
        self.answers = answers

    def prepare(self) -> float | None:
        return 0.0

    def predict(self, question: str, url: str) -> Prediction:
        stats = {"total_seconds": 0.5, "stages": {"generate": {"seconds": 0.4}}}
        return Prediction(self.answers.get(question), None, stats)

    def describe(self) -> dict[str, Any]:
        return {"kind": "scripted"}


def _mini_suite(tmp_path: Path) -> tuple[Path, list[dict[str, Any]]]:
    """Three questions of the suite: a year as text, a rounded percentage, a top-1."""
    picked = [q for q in QUESTIONS if q["id"] in ("s06", "s12", "d05")]
    path = tmp_path / "analyst_mini.json"
    path.write_text(json.dumps({"questions": picked}), encoding="utf-8")
    return path, picked


def test_the_runner_scores_right_and_wrong_answers_and_files_the_run(tmp_path: Path) -> None:
    data, picked = _mini_suite(tmp_path)
    by_id = {q["id"]: q for q in picked}
    answers = {
        # the year as an integer where the gold has strftime's text: the same answer
        by_id["s06"]["question"]: "SELECT CAST(strftime('%Y', started_on) AS INT) AS y FROM subscriptions "
                                  "GROUP BY y ORDER BY COUNT(*) DESC LIMIT 1",
        # the percentage asked for, but not rounded: wrong
        by_id["s12"]["question"]: "SELECT 100.0 * COUNT(discount) / COUNT(*) FROM payments",
        by_id["d05"]["question"]: by_id["d05"]["gold"],
    }
    out = tmp_path / "run"
    argv = ["--data", str(data), "--out", str(out), "--no-progress"]
    bench = AnalystBenchmark()
    run(bench, parser_for(bench).parse_args(argv), ["benchmarks.analyst", *argv],
        predictor_factory=lambda: ScriptedPredictor(answers))
    verdicts = {r["question"]: r["correct"] for r in load_records(out / "results.jsonl")}
    assert verdicts == {by_id["s06"]["question"]: True, by_id["s12"]["question"]: False,
                        by_id["d05"]["question"]: True}
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["breakdown"] == "category" and summary["by_hardness"]["share"]["correct"] == 0
    assert "| period | 2 | 2 |" in (out / "summary.md").read_text(encoding="utf-8")
    meta = json.loads((out / "run.json").read_text(encoding="utf-8"))
    assert meta["benchmark"] == "analyst" and meta["scoring"]["data"] == "analyst_mini.json"
    filed = index.add_run(out, root=tmp_path / "results")
    assert filed.parent.name == "analyst" and filed.name.endswith("-mini-defaults")
    assert index.find_runs(tmp_path / "results") == [filed]


def test_the_command_resumes_and_prints_each_database(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    data, picked = _mini_suite(tmp_path)
    monkeypatch.setattr(AnalystBenchmark, "predictor_factory",
                        lambda self, args, options, process_per_question=False:
                        lambda: ScriptedPredictor({q["question"]: q["gold"] for q in picked}))
    assert main(["--data", str(data), "--out", str(tmp_path / "run"), "--no-progress"]) == 0
    assert "demo: 1/1; streaming: 2/2" in capsys.readouterr().out
    assert main(["--data", str(data), "--out", str(tmp_path / "run"), "--no-progress"]) == 0
    assert len(load_records(tmp_path / "run" / "results.jsonl")) == 3


def test_the_default_file_is_the_committed_suite() -> None:
    assert DEFAULT_DATA.name == "analyst.json" and AnalystBenchmark().load(Path("."), "all")[0].payload == "d01"
