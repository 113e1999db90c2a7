"""The paraphrase set (benchmarks/paraphrases.py, benchmarks/data/paraphrases_train.json) and the Spider runner's
``--questions`` / ``--wording`` options that run it (no model)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from benchmarks.paraphrases import PARAPHRASES, check
from benchmarks.runner import build_parser, default_data_dir
from benchmarks.spider import SpiderBenchmark


def _spider(tmp_path: Path) -> Path:
    (tmp_path / "spider" / "database" / "pets").mkdir(parents=True)
    con = sqlite3.connect(tmp_path / "spider" / "database" / "pets" / "pets.sqlite")
    con.executescript("CREATE TABLE pets (id INTEGER, kind TEXT); INSERT INTO pets VALUES (1, 'dog'), (2, 'cat');")
    con.commit()
    con.close()
    (tmp_path / "spider" / "dev.json").write_text(json.dumps([{"db_id": "other", "question": "?", "query": "SELECT 1"}]))
    questions = [{"db_id": "pets", "question": "How many animals?", "original_question": "How many pets?",
                  "query": "SELECT count(*) FROM pets", "index": 41}]
    (tmp_path / "para.json").write_text(json.dumps(questions))
    return tmp_path / "para.json"


def _configured(argv: list[str]) -> tuple[SpiderBenchmark, object, dict]:
    bench = SpiderBenchmark()
    parser = build_parser("spider")
    bench.add_arguments(parser)
    args = parser.parse_args(argv)
    return bench, args, bench.configure(args)


def test_questions_file_is_asked_in_either_wording(tmp_path: Path) -> None:
    path = _spider(tmp_path)
    bench, args, scoring = _configured(["--questions", str(path)])
    items = bench.load(tmp_path, args.split)
    assert [(it.index, it.question, it.skip_reason) for it in items] == [(41, "How many animals?", None)]
    assert args.split == "para" and scoring["questions"] == "para.json" and scoring["wording"] == "question"
    assert bench.score(items[0], "SELECT count(kind) FROM pets").correct
    bench, args, scoring = _configured(["--questions", str(path), "--wording", "original_question"])
    assert [it.question for it in bench.load(tmp_path, args.split)] == ["How many pets?"]
    assert args.split == "para.original_question" and scoring["questions_sha256"]


def test_wording_needs_a_questions_file_that_has_it(tmp_path: Path) -> None:
    path = _spider(tmp_path)
    with pytest.raises(SystemExit):
        _configured(["--wording", "original_question"])
    bench, args, _ = _configured(["--questions", str(path), "--wording", "paraphrase"])
    with pytest.raises(SystemExit, match="paraphrase"):
        bench.load(tmp_path, args.split)


@pytest.mark.skipif(not (default_data_dir() / "spider" / "train_spider_compact.json").exists(),
                    reason="Spider train data not available")
def test_committed_set_is_the_seeded_draw_each_reworded() -> None:
    assert check() == []
    rows = json.loads(PARAPHRASES.read_text(encoding="utf-8"))
    assert len(rows) >= 120 and len({r["db_id"] for r in rows}) >= 15
    assert all(set(r) == {"db_id", "question", "original_question", "query", "index"} for r in rows)
