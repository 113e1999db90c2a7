"""WikiSQL: dbengine semantics for the gold, real-header tables for the prediction (synthetic mini dataset)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from benchmarks.runner import default_data_dir, select_items
from benchmarks.wikisql import LogicalForm, WikiSQLBenchmark, column_names, dbengine_conditions, parse_number

TABLE_ID = "1-234-5"
HEADER = ["Player", "No.", "Points", "", "points "]
TYPES = ["text", "text", "real", "text", "real"]
ROWS = [["Ann Lee", "21", 1234.5, "x", 1], ["Bob Ray", "3", 10.0, "y", 2], ["Cid Moe", "3", 7.0, "z", 3]]
QUESTIONS = [
    ("Who wears 21?", {"sel": 0, "agg": 0, "conds": [[1, 0, "21"]]}),
    ("How many wear 3?", {"sel": 0, "agg": 3, "conds": [[1, 0, "3"]]}),
    ("Most points of a player named ANN LEE?", {"sel": 2, "agg": 1, "conds": [[0, 0, "ANN LEE"]]}),
    ("Who scored more than 1,000?", {"sel": 0, "agg": 0, "conds": [[2, 1, "1,000"]]}),
    ("Who scored under 9 points total?", {"sel": 0, "agg": 0, "conds": [[2, 2, "9 points"]]}),
    ("Sum of points?", {"sel": 2, "agg": 4, "conds": []}),
    ("Points of nobody?", {"sel": 2, "agg": 5, "conds": [[0, 0, "nobody"]]}),
]


@pytest.fixture()
def data_dir(tmp_path: Path) -> Path:
    base = tmp_path / "wikisql"
    base.mkdir()
    (base / "dev.jsonl").write_text("".join(
        json.dumps({"phase": 1, "table_id": TABLE_ID, "question": q, "sql": sql}) + "\n" for q, sql in QUESTIONS))
    (base / "dev.tables.jsonl").write_text(json.dumps({"id": TABLE_ID, "header": HEADER, "types": TYPES,
                                                       "rows": ROWS}) + "\n")
    con = sqlite3.connect(base / "dev.db")  # the layout of WikiSQL's dev.db: col0..N, text lower-cased
    con.execute("CREATE TABLE table_1_234_5 (col0 text, col1 text, col2 real, col3 text, col4 real)")
    con.executemany("INSERT INTO table_1_234_5 VALUES (?, ?, ?, ?, ?)",
                    [[v.lower() if isinstance(v, str) else v for v in row] for row in ROWS])
    con.commit()
    con.close()
    v2 = tmp_path / "wikisql-v2"
    v2.mkdir()
    (v2 / "dev_empty_columns_names.json").write_text(json.dumps([{"Name": "Note", "Table": TABLE_ID}]))
    return tmp_path


def test_column_names() -> None:
    assert column_names(["Name", "", "name", " Year "]) == ["Name", "col1", "name_2", "Year"]
    assert column_names(["A", ""], {1: "Rank"}) == ["A", "Rank"]
    assert column_names(["A", "A", "a"]) == ["A", "A_2", "a_3"]


def test_parse_number_like_dbengine() -> None:
    assert parse_number("1,234") == 1234.0
    assert parse_number("12.5") == 12.5
    assert parse_number("9 points") == 9.0
    with pytest.raises(ValueError):
        parse_number("none")


def test_dbengine_conditions() -> None:
    lf = LogicalForm(0, 0, ((0, 0, "ANN"), (2, 1, "1,000"), (1, 0, 21)))
    assert dbengine_conditions(lf, ["text", "text", "real"]) == [(0, "=", "ann"), (2, ">", 1000.0), (1, "=", 21)]
    # two conditions on one column share the last value, as dbengine's single parameter per column does
    lf = LogicalForm(0, 0, ((2, 1, 5), (2, 2, 9)))
    assert dbengine_conditions(lf, ["text", "text", "real"]) == [(2, ">", 9), (2, "<", 9)]


def test_gold_values_and_real_header_tables(data_dir: Path, tmp_path: Path) -> None:
    wb = WikiSQLBenchmark(cache_dir=tmp_path / "cache")
    items = wb.load(data_dir, "dev")
    assert [wb.gold_values(it) for it in items] == [
        ["ann lee"], [2], [1234.5], ["ann lee"], ["cid moe"], [1251.5], [None]]
    assert items[0].gold == 'SELECT "Player" FROM "table_1_234_5" WHERE "No." = \'21\''
    assert items[3].gold == 'SELECT "Player" FROM "table_1_234_5" WHERE "Points" > 1000.0'
    assert [it.hardness for it in items][:2] == ["1 cond", "1 cond"] and items[5].hardness == "0 cond"
    # the prediction's database: real headers (empty one named from wikisql-v2, duplicate renamed), dev.db rows
    db = wb.database_path(items[0])
    con = sqlite3.connect(db)
    cols = [r[1] for r in con.execute('PRAGMA table_info("table_1_234_5")')]
    assert cols == ["Player", "No.", "Points", "Note", "points_2"]
    assert con.execute('SELECT "Player" FROM table_1_234_5 WHERE "No." = \'21\'').fetchall() == [("ann lee",)]
    con.close()
    assert wb.connection_url(items[0]).startswith("sqlite:///file:")
    # every gold SQL rendition scores correct against the dbengine gold
    assert all(wb.score(it, it.gold).correct for it in items)


def test_scoring_predictions(data_dir: Path, tmp_path: Path) -> None:
    wb = WikiSQLBenchmark(cache_dir=tmp_path / "cache")
    items = wb.load(data_dir, "dev")
    who21 = items[0]
    assert wb.score(who21, "SELECT Player FROM table_1_234_5 WHERE \"No.\" = '21'").correct
    assert wb.score(who21, "SELECT upper(Player) FROM table_1_234_5 WHERE \"No.\" = 21").correct  # case-insensitive
    s = wb.score(who21, "SELECT Player, Points FROM table_1_234_5 WHERE \"No.\" = '21'")
    assert not s.correct and not s.exec_failed  # two columns: wrong, but it ran
    s = wb.score(who21, "SELECT col0 FROM table_1_234_5")
    assert not s.correct and s.exec_failed  # dev.db's column names do not exist for the model
    s = wb.score(who21, None)
    assert not s.correct and s.pred_error == "no SQL predicted"
    assert wb.score(items[1], 'SELECT count(*) FROM table_1_234_5 WHERE "No." = \'3\'').correct
    assert wb.score(items[6], 'SELECT avg(Points) FROM table_1_234_5 WHERE Player = \'nobody\'').correct
    # the prediction's database is read-only
    s = wb.score(who21, "DELETE FROM table_1_234_5")
    assert s.exec_failed


def _shared_wikisql() -> Path:
    return default_data_dir() / "wikisql" / "dev.db"


@pytest.mark.skipif(not _shared_wikisql().exists(), reason="WikiSQL dev data not available")
def test_shared_data_sample(tmp_path: Path) -> None:
    wb = WikiSQLBenchmark(cache_dir=tmp_path / "cache")
    items = wb.load(default_data_dir(), "dev")
    assert len(items) == 8421
    sample = select_items(items, 40, seed=3)
    assert all(wb.score(it, it.gold).correct for it in sample)
