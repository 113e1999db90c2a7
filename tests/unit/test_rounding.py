"""Rounding what the question asks to be rounded (pipeline/rounding.py and the Assistant's refinement step).

The Assistant tests use a scripted backend (prepared replies): they check the plumbing, not the model."""

from __future__ import annotations

import pytest

from jupyter_nl2sql import Assistant
from jupyter_nl2sql.pipeline.rounding import asked_decimals, rounded_as_asked


@pytest.mark.parametrize("question, decimals", [
    ("What percentage of orders were cancelled? Round to 1 decimal.", 1),
    ("Average rating per month, rounded to 2 decimals", 2),
    ("share of revenue, in percent, two decimal places", 2),
    ("What percentage of payments had a discount? 1 decimal", 1),
    ("average age rounded to the nearest whole number", 0),
    ("How many orders were placed in 2024?", None),
    ("the top 3 products by revenue", None),
    ("What is the average salary in each department?", None),
])
def test_asked_decimals(question: str, decimals: int | None) -> None:
    assert asked_decimals(question) == decimals


def test_fractional_columns_are_rounded_and_named() -> None:
    sql = ("SELECT c.country, CAST(SUM(o.status = 'delivered') AS REAL) * 100 / COUNT(*) AS pct, COUNT(*) "
           "FROM orders AS o JOIN customers AS c ON c.customer_id = o.customer_id GROUP BY c.country")
    new, names = rounded_as_asked(sql, 1, "sqlite")
    assert names == ["pct"]
    assert new.startswith("SELECT c.country, ROUND(CAST(SUM(o.status = 'delivered') AS REAL) * 100 / COUNT(*), 1) "
                          "AS pct, COUNT(*) FROM")
    assert rounded_as_asked("SELECT AVG(x) FROM t", 2, "sqlite") == ("SELECT ROUND(AVG(x), 2) FROM t", ["column 1"])


@pytest.mark.parametrize("sql", [
    "SELECT ROUND(AVG(x), 1) FROM t",            # rounded already
    "SELECT name, COUNT(*) FROM t GROUP BY name",  # whole numbers
    "SELECT price FROM t",                       # a stored value: as it is
    "SELECT a FROM t UNION SELECT b FROM u",     # not one SELECT
    "SELECT FROM WHERE",                         # does not parse
])
def test_nothing_to_round(sql: str) -> None:
    assert rounded_as_asked(sql, 1, "sqlite") is None


def test_postgres_rounds_a_numeric() -> None:  # ROUND(double precision, int) does not exist in PostgreSQL
    new, _ = rounded_as_asked("SELECT AVG(x) / 3 AS r FROM t", 1, "postgres")
    assert new == "SELECT ROUND(CAST(AVG(x) / 3 AS DECIMAL), 1) AS r FROM t"


def test_assistant_rounds_as_asked_and_says_so(scripted, demo_sqlite_url) -> None:
    scripted("SELECT CAST(SUM(CASE WHEN status = 'cancelled' THEN 1 ELSE 0 END) AS REAL) * 100 / COUNT(*) "
             "AS pct FROM orders")
    answer = Assistant(generation_cache=False, few_shot=0).ask(
        "What percentage of orders were cancelled? Round to 1 decimal.", demo_sqlite_url)
    assert answer.ok, answer.error
    value = float(answer.dataframe.iat[0, 0])
    assert value == round(value, 1) and 0 < value < 100
    assert answer.sql.startswith("SELECT ROUND(")
    assert "rounded pct to 1 decimal as the question asks" in answer.warnings


def test_assistant_rounding_can_be_switched_off(scripted, demo_sqlite_url) -> None:
    scripted("SELECT AVG(salary) AS avg_salary FROM employees")
    answer = Assistant(generation_cache=False, few_shot=0, round_as_asked=False).ask(
        "Average salary, rounded to 2 decimals", demo_sqlite_url)
    assert answer.ok and answer.sql == "SELECT AVG(salary) AS avg_salary FROM employees"
    assert not any("rounded" in w for w in answer.warnings)
