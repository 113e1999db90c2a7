"""Execution-accuracy scoring (test-suite-sql-eval semantics) and the WikiSQL comparison."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from benchmarks.scoring import execute_sqlite, execution_match, has_top_level_order_by, remove_distinct, \
    results_equal
from benchmarks.wikisql import values_match


# -- results_equal --------------------------------------------------------------------------------------------------
def test_unordered_results_compare_as_multisets() -> None:
    gold = [(1, "a"), (2, "b"), (2, "b")]
    assert results_equal(gold, [(2, "b"), (1, "a"), (2, "b")], ordered=False)
    # same set of rows, different multiplicities: wrong
    assert not results_equal(gold, [(1, "a"), (1, "a"), (2, "b")], ordered=False)
    assert not results_equal(gold, [(1, "a"), (2, "b")], ordered=False)


def test_ordered_results_compare_as_lists() -> None:
    gold = [(1,), (2,), (3,)]
    assert results_equal(gold, [(1,), (2,), (3,)], ordered=True)
    assert not results_equal(gold, [(3,), (2,), (1,)], ordered=True)
    assert results_equal(gold, [(3,), (2,), (1,)], ordered=False)


def test_columns_may_come_in_any_order() -> None:
    gold = [(1, "a", 10.5), (2, "b", 20.5)]
    assert results_equal(gold, [("a", 10.5, 1), ("b", 20.5, 2)], ordered=False)
    assert results_equal(gold, [("a", 10.5, 1), ("b", 20.5, 2)], ordered=True)
    # the same values per column, but paired differently across rows: wrong
    assert not results_equal(gold, [("a", 20.5, 1), ("b", 10.5, 2)], ordered=False)


def test_column_permutation_with_pruning_beyond_three_columns() -> None:
    gold = [(i, f"n{i}", i * 1.5, i % 2, f"c{i % 3}") for i in range(30)]
    perm = [(r[4], r[2], r[0], r[3], r[1]) for r in gold]
    assert results_equal(gold, perm, ordered=True)
    assert results_equal(gold, list(reversed(perm)), ordered=False)
    broken = list(perm)
    broken[7] = (broken[7][0], broken[7][1], broken[7][2], 1 - broken[7][3], broken[7][4])
    assert not results_equal(gold, broken, ordered=False)


def test_shapes() -> None:
    assert results_equal([], [], ordered=False)
    assert results_equal([], [], ordered=True)
    assert not results_equal([(1,)], [], ordered=False)
    assert not results_equal([], [(1,)], ordered=False)
    assert not results_equal([(1, 2)], [(1,)], ordered=False)  # a column missing
    assert not results_equal([(1,)], [(1, 2)], ordered=False)  # a column too many


def test_nulls() -> None:
    assert results_equal([(None,)], [(None,)], ordered=False)
    assert results_equal([(None, 1)], [(1, None)], ordered=False)
    assert not results_equal([(None,)], [(0,)], ordered=False)
    assert not results_equal([(None,)], [("",)], ordered=False)
    assert not results_equal([(None,)], [], ordered=False)


def test_floats() -> None:
    assert results_equal([(1,)], [(1.0,)], ordered=False)  # int vs float: Python equality, as test-suite
    assert results_equal([(2.5,)], [(2.5,)], ordered=False)
    assert not results_equal([(0.3,)], [(0.1 + 0.2,)], ordered=False)  # exact by default, as test-suite
    assert results_equal([(0.3,)], [(0.1 + 0.2,)], ordered=False, float_digits=12)  # opt-in tolerance
    assert not results_equal([(0.3,)], [(0.31,)], ordered=False, float_digits=12)


# -- SQL properties ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("sql, ordered", [
    ("SELECT a FROM t ORDER BY a", True),
    ("select a from t order by a desc limit 3", True),
    ("SELECT a FROM t WHERE b = (SELECT b FROM u ORDER BY c LIMIT 1)", False),
    ("SELECT a FROM t WHERE b = 'order by'", False),
    ("SELECT a FROM t UNION SELECT a FROM u ORDER BY a", True),
    ("SELECT a FROM (SELECT a FROM t ORDER BY a)", False),
    ("SELECT a FROM t", False),
])
def test_order_by_is_read_from_the_outermost_query(sql: str, ordered: bool) -> None:
    assert has_top_level_order_by(sql) is ordered


def test_order_by_fallback_for_unparseable_sql() -> None:
    assert has_top_level_order_by("SELECT a FROM t ORDER BY a ))") in (True, False)  # never raises


def test_remove_distinct() -> None:
    assert remove_distinct("SELECT DISTINCT name FROM t") == "SELECT name FROM t"
    assert remove_distinct("SELECT count(DISTINCT name) FROM t") == "SELECT count(name) FROM t"
    assert remove_distinct("SELECT name FROM t WHERE x = 'DISTINCT'") == "SELECT name FROM t WHERE x = 'DISTINCT'"


# -- executing ------------------------------------------------------------------------------------------------------
@pytest.fixture()
def db(tmp_path: Path) -> Path:
    path = tmp_path / "t.sqlite"
    con = sqlite3.connect(path)
    con.executescript("""
        CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT, city TEXT, score REAL);
        INSERT INTO people VALUES (1, 'Ann', 'Oslo', 1.5), (2, 'Bob', 'Rome', NULL), (3, 'Cid', 'Oslo', 3.0),
                                  (4, 'Dee', NULL, 2.0);
    """)
    con.commit()
    con.close()
    return path


def test_match_ignores_column_order_and_row_order(db: Path) -> None:
    gold = "SELECT name, city FROM people WHERE city = 'Oslo'"
    assert execution_match(db, "SELECT city, name FROM people WHERE city = 'Oslo' ORDER BY id DESC", gold).correct
    assert not execution_match(db, "SELECT name FROM people WHERE city = 'Oslo'", gold).correct


def test_match_respects_gold_order_by(db: Path) -> None:
    gold = "SELECT name FROM people ORDER BY name DESC"
    m = execution_match(db, "SELECT name FROM people ORDER BY name", gold)
    assert m.ordered and not m.correct
    assert execution_match(db, "SELECT name FROM people ORDER BY id DESC", gold).correct


def test_distinct_removed_by_default(db: Path) -> None:
    gold = "SELECT DISTINCT city FROM people WHERE city IS NOT NULL"
    pred = "SELECT city FROM people WHERE city IS NOT NULL"
    assert execution_match(db, pred, gold).correct  # test-suite's default: DISTINCT dropped from both
    assert not execution_match(db, pred, gold, keep_distinct=True).correct


def test_error_is_wrong(db: Path) -> None:
    m = execution_match(db, "SELECT nope FROM people", "SELECT name FROM people")
    assert not m.correct and m.exec_failed and "no such column" in (m.pred_error or "")
    m = execution_match(db, "SELECT name FROM people; SELECT 1", "SELECT name FROM people")
    assert not m.correct and m.exec_failed
    m = execution_match(db, "", "SELECT name FROM people")
    assert not m.correct and m.pred_error == "no SQL predicted"
    m = execution_match(db, None, "SELECT name FROM people")
    assert not m.correct and m.exec_failed


def test_gold_error_is_reported_apart(db: Path) -> None:
    m = execution_match(db, "SELECT 1", "SELECT nope FROM people")
    assert not m.correct and m.gold_error and m.pred_error is None


def test_timeout_is_wrong(db: Path) -> None:
    endless = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT max(x) FROM c"
    r = execute_sqlite(db, endless, timeout=0.3)
    assert r.timed_out and not r.ok and "timeout" in (r.error or "")  # the query is endless: only the limit ends it
    m = execution_match(db, endless, "SELECT 1", timeout=0.3)
    assert not m.correct and "timeout" in (m.pred_error or "")


def test_database_is_opened_read_only(db: Path) -> None:
    m = execution_match(db, "DELETE FROM people", "SELECT count(*) FROM people")
    assert not m.correct and "readonly" in (m.pred_error or "").replace("-", "").replace(" ", "")
    assert execute_sqlite(db, "SELECT count(*) FROM people").rows == [(4,)]


def test_null_and_float_values_from_sqlite(db: Path) -> None:
    assert execution_match(db, "SELECT score FROM people WHERE id IN (2, 4)",
                           "SELECT score FROM people WHERE name IN ('Bob', 'Dee')").correct
    assert execution_match(db, "SELECT sum(score) FROM people", "SELECT 6.5").correct
    assert execution_match(db, "SELECT count(*) FROM people", "SELECT 4.0").correct


def test_missing_database_is_an_error(tmp_path: Path) -> None:
    r = execute_sqlite(tmp_path / "missing.sqlite", "SELECT 1")
    assert not r.ok


# -- WikiSQL comparison ----------------------------------------------------------------------------------------------
def test_wikisql_values_compare_as_case_insensitive_sets() -> None:
    assert values_match(["guard-forward"], [("Guard-Forward",)])
    assert values_match(["a", "b"], [("B",), ("a",), ("a",)])
    assert not values_match(["a"], [("a",), ("b",)])
    assert values_match([3], [(3.0,)])
    assert values_match([None], [(None,)])
    assert not values_match([None], [])
    assert not values_match(["a"], [("a", "b")])  # one column expected
