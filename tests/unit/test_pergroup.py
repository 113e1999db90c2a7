"""The top rows of each group, when the question asks for them (pipeline/pergroup.py and the Assistant's refinement
step).

The Assistant tests use a scripted backend (prepared replies): they check the plumbing, not the model."""

from __future__ import annotations

import pytest

from jupyter_nl2sql import Assistant
from jupyter_nl2sql.pipeline.pergroup import RANK, asked_group, top_per_group


@pytest.mark.parametrize("question, group", [
    ("The 2 biggest spenders in each country", "country"),
    ("highest paid employee in every department", "department"),
    ("For each year, the top 3 products by revenue", "year"),
    ("the best-selling product per category", "category"),
    ("Which country has the most customers?", None),
])
def test_asked_group(question: str, group: str | None) -> None:
    assert asked_group(question) == group


SPEND = ("SELECT c.country, c.name, SUM(o.total) AS spend FROM customers AS c JOIN orders AS o "
         "ON o.customer_id = c.customer_id GROUP BY c.country, c.name ORDER BY spend DESC")


@pytest.mark.parametrize("sql, question, keep, group", [
    (SPEND + " LIMIT 2", "The 2 biggest spenders in each country", 2, "c.country"),
    (SPEND, "the top 3 spenders in each country", 3, "c.country"),  # no LIMIT: the number the question asks for
    (SPEND, "the biggest spender in each country", 1, "c.country"),  # a plain superlative: one a group
    (SPEND.replace("ORDER BY spend", "ORDER BY 3"), "the biggest spender in each country", 1, "c.country"),
    # the group is a table: its columns in the grouping
    ("SELECT e.first_name, e.last_name, o.order_id, SUM(o.total) AS v FROM employees AS e JOIN orders AS o "
     "ON o.employee_id = e.employee_id GROUP BY e.first_name, e.last_name, o.order_id ORDER BY v DESC LIMIT 1",
     "for each employee, their single largest order", 1, "e.first_name, e.last_name"),
    # no grouping: the output named like the group
    ("SELECT d.name AS department, e.last_name, e.salary FROM employees AS e JOIN departments AS d "
     "ON d.department_id = e.department_id ORDER BY e.salary DESC",
     "highest paid employee in every department", 1, "d.name"),
    # one word of a name: an abbreviation, and a word of an output name
    ("SELECT i.dept_name, i.name, i.salary FROM instructor AS i ORDER BY i.salary DESC",
     "the highest paid instructor in each department", 1, "i.dept_name"),
    ("SELECT m.name AS media_type_name, t.name, t.bytes FROM tracks AS t JOIN media_types AS m "
     "ON m.id = t.media_type_id ORDER BY t.bytes DESC LIMIT 2", "the 2 largest tracks in each media type", 2, "m.name"),
])
def test_top_rows_of_each_group(sql: str, question: str, keep: int, group: str) -> None:
    found = top_per_group(sql, question, "sqlite")
    assert found is not None and found[1] == group
    assert f"PARTITION BY {group}" in found[0] and f"WHERE {RANK} <= {keep}" in found[0]
    assert "ORDER BY 3" not in found[0]  # a position means the output it names, which a window cannot see


@pytest.mark.parametrize("sql, question", [
    (SPEND + " LIMIT 2", "The 2 biggest spenders"),  # no group asked for
    (SPEND.replace(" ORDER BY spend DESC", ""), "The biggest spender in each country"),  # no ranking to keep
    (SPEND + " LIMIT 2", "Total spend in each country"),  # no ranking asked for
    ("SELECT c.country, COUNT(*) FROM customers AS c GROUP BY c.country ORDER BY COUNT(*) DESC LIMIT 1",
     "the country with the most customers for each country"),  # the grouping is the group: one row each already
    (SPEND + " LIMIT 2", "The 2 biggest spenders in each city"),  # the group is not in the query
    ("SELECT a.name, b.name, a.x FROM t AS a JOIN u AS b ON a.id = b.id ORDER BY a.x DESC LIMIT 1",
     "the largest x in each t"),  # two outputs named alike: the outer query could not tell them apart
])
def test_nothing_to_rank_within(sql: str, question: str) -> None:
    assert top_per_group(sql, question, "sqlite") is None


def test_assistant_keeps_the_top_rows_of_each_group(scripted, demo_sqlite_url) -> None:
    scripted("SELECT d.name, e.first_name, e.last_name, e.salary FROM employees AS e JOIN departments AS d "
             "ON e.department_id = d.department_id ORDER BY e.salary DESC")
    answer = Assistant(generation_cache=False, few_shot=0).ask(
        "highest paid employee in every department: department name, first name, last name, salary",
        demo_sqlite_url)
    assert answer.ok, answer.error
    want = Assistant(generation_cache=False).run_sql(
        "SELECT d.name, MAX(e.salary) FROM employees AS e JOIN departments AS d "
        "ON e.department_id = d.department_id GROUP BY d.name", demo_sqlite_url).dataframe
    got = answer.dataframe
    assert list(got.columns) == ["name", "first_name", "last_name", "salary"]
    assert sorted(zip(got["name"], got["salary"])) == sorted(zip(want.iloc[:, 0], want.iloc[:, 1]))
    assert any("top rows of each d.name" in w for w in answer.warnings)


def test_assistant_top_per_group_can_be_switched_off(scripted, demo_sqlite_url) -> None:
    sql = ("SELECT d.name, e.last_name, e.salary FROM employees AS e JOIN departments AS d "
           "ON e.department_id = d.department_id ORDER BY e.salary DESC LIMIT 1")
    scripted(sql)
    answer = Assistant(generation_cache=False, few_shot=0, top_per_group=False).ask(
        "highest paid employee in every department", demo_sqlite_url)
    assert answer.ok and answer.sql == sql and len(answer.dataframe) == 1


@pytest.mark.parametrize("short, word, alike", [
    ("dept", "department", True), ("cust", "customer", True), ("empl", "employee", True),
    ("date", "department", False),  # letters in order, but not its first three
    ("emp", "employee", False),  # too short to tell
    ("department", "department", False),  # the word itself is matched as a word, not as an abbreviation
])
def test_abbreviations(short: str, word: str, alike: bool) -> None:
    from jupyter_nl2sql.pipeline.pergroup import _abbreviates

    assert _abbreviates(short, word) is alike
