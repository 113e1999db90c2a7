"""One column equal to two values on the same row (pipeline/conjunctions.py): refused by the checker, written as an
intersection before any repair round when the query lists plain columns.

The Assistant tests use a scripted backend (prepared replies): they check the plumbing, not the model."""

from __future__ import annotations

import pytest

from jupyter_nl2sql import Assistant
from jupyter_nl2sql.errors import SQLCheckError
from jupyter_nl2sql.pipeline.conjunctions import contradictions, intersected
from jupyter_nl2sql.pipeline.sqlcheck import check_sql

BOTH = "SELECT c.name FROM c JOIN l ON l.code = c.code WHERE l.lang = 'en' AND l.official = 1 AND l.lang = 'fr'"


@pytest.mark.parametrize("sql", [
    "SELECT name FROM l WHERE lang = 'en' OR lang = 'fr'",  # either value
    "SELECT name FROM l WHERE lang = 'en' AND lang = 'en'",  # the same value twice
    "SELECT name FROM l WHERE lang = 'en' AND code = 'fr'",  # two columns
    "SELECT name FROM l AS a JOIN l AS b ON a.code = b.code WHERE a.lang = 'en' AND b.lang = 'fr'",  # two rows
])
def test_conditions_that_can_hold_together(sql: str) -> None:
    assert contradictions(sql, "sqlite") == []
    check_sql(sql)


def test_one_column_equal_to_two_values_is_refused_and_intersected() -> None:
    with pytest.raises(SQLCheckError, match="can never hold on one row"):
        check_sql(BOTH)
    assert intersected(BOTH, "sqlite") == (
        "SELECT c.name FROM c JOIN l ON l.code = c.code WHERE l.lang = 'en' AND l.official = 1 INTERSECT "
        "SELECT c.name FROM c JOIN l ON l.code = c.code WHERE l.official = 1 AND l.lang = 'fr'")


@pytest.mark.parametrize("sql", [
    BOTH.replace("SELECT c.name", "SELECT COUNT(DISTINCT c.name)"),  # the count of an intersection is not this
    BOTH + " LIMIT 3",
    BOTH.replace("l.official = 1", "l.official = 1 AND l.lang = 'de'"),  # two pairs
])
def test_an_intersection_is_not_guessed(sql: str) -> None:
    assert contradictions(sql, "sqlite") and intersected(sql, "sqlite") is None


def test_assistant_intersects_without_another_model_call(scripted, demo_sqlite_url) -> None:
    backend = scripted("SELECT c.name FROM customers AS c JOIN orders AS o ON o.customer_id = c.customer_id "
                       "WHERE o.status = 'cancelled' AND o.status = 'delivered'")
    answer = Assistant(generation_cache=False, few_shot=0).ask(
        "customers with both a cancelled and a delivered order", demo_sqlite_url)
    assert answer.ok and len(backend.calls) == 1 and " INTERSECT " in answer.sql
    want = Assistant(generation_cache=False).run_sql(
        "SELECT name FROM customers WHERE customer_id IN (SELECT customer_id FROM orders WHERE status = 'cancelled') "
        "AND customer_id IN (SELECT customer_id FROM orders WHERE status = 'delivered')", demo_sqlite_url).dataframe
    assert len(want) > 0 and sorted(answer.dataframe.iloc[:, 0]) == sorted(set(want.iloc[:, 0]))
    assert any("intersected" in w for w in answer.warnings)


def test_a_count_of_both_goes_to_the_repair_round(scripted, demo_sqlite_url) -> None:
    backend = scripted("SELECT COUNT(*) FROM orders WHERE status = 'cancelled' AND status = 'delivered'",
                       "SELECT COUNT(*) FROM orders WHERE status IN ('cancelled', 'delivered')")
    answer = Assistant(generation_cache=False, few_shot=0).ask("how many orders", demo_sqlite_url)
    assert answer.ok and len(backend.calls) == 2
    assert "can never hold on one row" in backend.calls[1][-1]["content"]
