"""What a follow-up's query keeps and must not add (jupyter_nl2sql.pipeline.refinements, issue 19): the English
cues, the sqlglot changes (a condition of the previous query added back, a LIMIT left out), and the pipeline running
the changed query.  Plumbing only: the ScriptedBackend's replies are prepared; what the model writes is measured by
``python -m benchmarks.followups``."""

from __future__ import annotations

import pytest

from jupyter_nl2sql.connections import ConnectionManager
from jupyter_nl2sql.pipeline.assistant import Assistant
from jupyter_nl2sql.pipeline.refinements import asks_for_a_limit, kept_conditions, outer_limit, unasked_limit

WELL_PAID = "SELECT first_name, last_name, salary FROM employees WHERE salary > 80000"
TOP_PAID = WELL_PAID + " ORDER BY salary DESC LIMIT 1"


@pytest.mark.parametrize("question", [
    "top 10 instead", "just the top 3", "top 5 only", "which one is the lowest?", "show me the 5 biggest",
    "what is the most expensive product?", "who earns the most?", "the cheapest one", "give me five",
    "limit it to 20 rows", "and the latest order?", "What is the name of the station with the most docks?",
    "sorted by name, only the one with the highest price", "Which employee was hired first?", "who came last?",
])
def test_questions_that_ask_for_some_rows(question: str) -> None:
    assert asks_for_a_limit(question)


@pytest.mark.parametrize("question", [
    "biggest first", "most recent first", "sorted by revenue, highest first", "sort it from highest to lowest",
    "list them with their salaries", "only customers with more than 3 orders", "and in 2024?",
    "split by product category", "and per product within it?", "with their prices too", "how many is that?",
])
def test_questions_that_do_not(question: str) -> None:
    assert not asks_for_a_limit(question)


def test_the_limit_is_left_out_only_when_unasked_and_new() -> None:
    assert unasked_limit(TOP_PAID, WELL_PAID, "highest paid first", "sqlite") == \
        WELL_PAID + " ORDER BY salary DESC"
    assert unasked_limit(TOP_PAID, WELL_PAID, "who is paid the most?", "sqlite") is None  # asked for
    assert unasked_limit(TOP_PAID, WELL_PAID + " LIMIT 5", "highest paid first", "sqlite") is None  # had one
    assert unasked_limit(TOP_PAID, None, "highest paid first", "sqlite") is None  # no previous query
    assert unasked_limit(WELL_PAID + " LIMIT 5 OFFSET 5", WELL_PAID, "the next page", "sqlite") is None
    assert unasked_limit(WELL_PAID, WELL_PAID, "highest paid first", "sqlite") is None  # nothing to leave out


def test_only_the_outermost_limit_counts() -> None:
    inner = "SELECT name FROM t WHERE id IN (SELECT id FROM u ORDER BY n DESC LIMIT 3)"
    assert outer_limit(inner, "sqlite") is None
    assert unasked_limit(inner, "SELECT name FROM t", "with their names", "sqlite") is None
    union = "SELECT a FROM t UNION SELECT a FROM u LIMIT 2"
    assert unasked_limit(union, "SELECT a FROM t", "and from u too", "sqlite") == \
        "SELECT a FROM t UNION SELECT a FROM u"
    assert outer_limit("SELEC nonsense", "sqlite") is None


def test_a_follow_up_runs_without_the_limit_it_did_not_ask_for(scripted, demo_sqlite_url) -> None:
    scripted(WELL_PAID, TOP_PAID)
    a = Assistant(connections=ConnectionManager())
    first = a.ask("Which employees earn more than 80000?", demo_sqlite_url)
    second = a.ask("highest paid first", demo_sqlite_url, follow_up=True)
    assert "LIMIT" not in second.sql.upper() and len(second.dataframe) == len(first.dataframe) > 1
    assert list(second.dataframe["salary"]) == sorted(first.dataframe["salary"], reverse=True)
    assert any("without its LIMIT" in w for w in second.warnings)


def test_a_limit_that_was_asked_for_or_switched_off_stays(scripted, demo_sqlite_url) -> None:
    scripted(WELL_PAID, TOP_PAID)
    a = Assistant(connections=ConnectionManager())
    a.ask("Which employees earn more than 80000?", demo_sqlite_url)
    asked = a.ask("which one is paid the most?", demo_sqlite_url, follow_up=True)
    assert len(asked.dataframe) == 1 and not any("LIMIT" in w for w in asked.warnings)
    scripted(WELL_PAID, TOP_PAID)
    a = Assistant(connections=ConnectionManager(), generation_cache="off")
    first = a.ask("Which employees earn more than 80000?", demo_sqlite_url)
    off = a.ask("highest paid first", demo_sqlite_url, follow_up=True, drop_unasked_limit=False)
    assert len(first.dataframe) > 1 and len(off.dataframe) == 1


def test_a_question_that_starts_a_conversation_keeps_its_limit(scripted, demo_sqlite_url) -> None:
    scripted(TOP_PAID)
    answer = Assistant(connections=ConnectionManager()).ask("List the employees by salary, highest first",
                                                            demo_sqlite_url)
    assert len(answer.dataframe) == 1  # no previous query: the rule is for follow-ups


# -- conditions a follow-up dropped ----------------------------------------------------------------------------------
SHOP = {"orders": {"order_id": "INT", "customer_id": "INT", "order_date": "DATE", "status": "TEXT"},
        "customers": {"customer_id": "INT", "country": "TEXT", "name": "TEXT"},
        "station": {"city": "TEXT", "dock_count": "INT"}}
IN_2024 = ("SELECT c.country, COUNT(*) AS n FROM orders o JOIN customers c ON c.customer_id = o.customer_id "
           "WHERE o.order_date >= '2024-01-01' AND o.order_date < '2025-01-01' GROUP BY c.country")
CANCELLED = ("SELECT customers.country, COUNT(*) AS n FROM orders JOIN customers ON orders.customer_id = "
             "customers.customer_id WHERE orders.status = 'cancelled' GROUP BY customers.country")


def test_a_dropped_condition_comes_back_under_the_new_query_s_names() -> None:
    sql, added = kept_conditions(CANCELLED, IN_2024, "now just the cancelled ones", "sqlite", SHOP)
    assert added == ["o.order_date >= '2024-01-01'", "o.order_date < '2025-01-01'"]
    assert "orders.order_date >= '2024-01-01'" in sql and "orders.order_date < '2025-01-01'" in sql
    assert "orders.status = 'cancelled'" in sql and " o." not in sql


def test_a_dropped_having_comes_back_when_the_grouping_is_the_same() -> None:
    previous = "SELECT city, COUNT(*) FROM station GROUP BY city HAVING COUNT(*) > 10"
    sql, _ = kept_conditions("SELECT city, COUNT(*) FROM station GROUP BY city ORDER BY COUNT(*) DESC", previous,
                             "most first", "sqlite", SHOP)
    assert sql == "SELECT city, COUNT(*) FROM station GROUP BY city HAVING COUNT(*) > 10 ORDER BY COUNT(*) DESC"
    assert kept_conditions("SELECT COUNT(*) FROM station", previous, "how many is that", "sqlite", SHOP) is None


@pytest.mark.parametrize("new, question", [
    ("SELECT COUNT(*) FROM orders WHERE order_date >= '2023-01-01' AND order_date < '2024-01-01'", "and 2023?"),
    (CANCELLED, "now for all years, cancelled only"),  # widened on purpose
    (CANCELLED.replace("WHERE orders.status = 'cancelled' ", ""), "both years"),
    ("SELECT city FROM station ORDER BY dock_count DESC LIMIT 1", "Which city has the biggest station?"),  # other table
    ("SELECT o1.order_id FROM orders o1 JOIN orders o2 ON o1.customer_id = o2.customer_id", "pairs of them"),
    ("SELECT country FROM (SELECT * FROM customers) AS t", "their countries"),  # a derived table: not followed
    ("SELECT COUNT(*) FROM orders WHERE order_id >= '2024-01-01' AND order_id < '2025-01-01'", "by id then"),  # moved
])
def test_nothing_is_added_when_the_condition_was_changed_widened_or_cannot_be_placed(new: str, question: str) -> None:
    assert kept_conditions(new, IN_2024, question, "sqlite", SHOP) is None


def test_a_follow_up_keeps_the_condition_it_dropped(scripted, demo_sqlite_url) -> None:
    scripted(IN_2024, CANCELLED)
    a = Assistant(connections=ConnectionManager(), generation_cache="off")
    a.ask("How many orders were placed in each country in 2024?", demo_sqlite_url)
    second = a.ask("now just the cancelled ones", demo_sqlite_url, follow_up=True)
    assert "2024-01-01" in second.sql and any("did not lift" in w for w in second.warnings)
    scripted(IN_2024, CANCELLED)
    a.ask("How many orders were placed in each country in 2024?", demo_sqlite_url)
    off = a.ask("now just the cancelled ones", demo_sqlite_url, follow_up=True, keep_conditions=False)
    assert "2024" not in off.sql and off.dataframe["n"].sum() > second.dataframe["n"].sum()


def test_a_question_of_its_own_is_left_as_written(scripted, demo_sqlite_url) -> None:
    scripted(IN_2024, CANCELLED, IN_2024, "SELECT first_name FROM employees ORDER BY hire_date LIMIT 1")
    a = Assistant(connections=ConnectionManager(), generation_cache="off")
    a.ask("How many orders were placed in each country in 2024?", demo_sqlite_url)
    switched = a.ask("How many cancelled orders are there per customer country?", demo_sqlite_url, follow_up=True)
    assert "2024" not in switched.sql and not any("did not lift" in w for w in switched.warnings)
    a.ask("How many orders were placed in each country in 2024?", demo_sqlite_url)
    own = a.ask("List the first names of the employees by hire date.", demo_sqlite_url, follow_up=True)
    assert len(own.dataframe) == 1 and not own.warnings  # its LIMIT stays: the rules are for refinements
