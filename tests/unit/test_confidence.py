"""Second looks where the model hesitated, and the confidence an answer carries.

A HesitantBackend (prepared replies with prepared hesitations; plumbing only, no claim about a real model) stands
in for the engine: its first reply hesitates where it is told to, and a reply asked to start with a given text
(``reply_start``) is the prepared continuation of that text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from jupyter_nl2sql.errors import ConfigError
from jupyter_nl2sql.frontends import render
from jupyter_nl2sql.models.base import BRANCH_FLOOR, BranchPoint, Generation, branch_points
from jupyter_nl2sql.models.testing import StandInBackend
from jupyter_nl2sql.pipeline.assistant import Assistant
from jupyter_nl2sql.pipeline.confidence import Confidence, hesitations, join_doubt, lowest_in_sql
from jupyter_nl2sql.pipeline.asks import unmet_asks
from jupyter_nl2sql.pipeline.shown import unread_tables

FIRST = "```sql\nSELECT count(*) FROM customers\n```"
OPEN = "```sql\nSELECT "


@dataclass(kw_only=True)
class HesitantBackend(StandInBackend):
    """Replies ``first``, hesitating at ``points``; a reply that must start with ``s`` is ``continuations[s]``."""

    first: str = FIRST
    points: tuple[BranchPoint, ...] = ()
    continuations: dict[str, str] = field(default_factory=dict)
    model_id: str = "hesitant-test-backend"
    starts: list[str] = field(default_factory=list)

    def generate(self, messages: list[dict], max_new_tokens: int = 256, reply_start: str = "",
                 **_: Any) -> Generation:
        self.calls.append(messages)
        self.starts.append(reply_start)
        if reply_start:
            return Generation(text=self.continuations[reply_start], tokens_in=10, tokens_out=5, seconds=0.001,
                              logprob=-0.1)
        return Generation(text=self.first, tokens_in=10, tokens_out=5, seconds=0.001, logprob=-0.2,
                          branch_points=self.points)


def _point(after: str, chosen: str, alternative: str, p: float) -> BranchPoint:
    return BranchPoint(OPEN + after, chosen, alternative, p, 1 - p - 0.01)


@pytest.fixture()
def hesitant(monkeypatch: pytest.MonkeyPatch):
    def install(**kwargs: Any) -> HesitantBackend:
        backend = HesitantBackend(**kwargs)
        monkeypatch.setattr(Assistant, "backend", lambda self: (backend, None))
        return backend

    return install


def test_no_hesitation_is_high_confidence_and_one_call(hesitant, demo_sqlite_url: str) -> None:
    backend = hesitant(points=(_point("count(*) FROM customers", "\n", " WHERE", 0.99),))
    ans = Assistant(generation_cache="off", alternatives=2).ask("How many customers?", demo_sqlite_url)
    assert ans.ok and ans.dataframe.iloc[0, 0] == 60
    assert ans.confidence == Confidence("high", lowest=0.99)
    assert backend.starts == [""]
    assert "high confidence: the model did not hesitate" in str(ans)


def test_majority_of_the_alternatives_wins_and_names_the_runner_up(hesitant, demo_sqlite_url: str) -> None:
    # the first reply counts customers; at two places the model nearly wrote a count of orders instead
    a = OPEN + "count(*) FROM orders"
    b = OPEN + "count(order_id)"
    backend = hesitant(points=(_point("count(*) FROM", " customers", " orders", 0.45),
                               _point("count(", "*)", "order_id)", 0.3)),
                       continuations={a: a + "\n```", b: b + " FROM orders\n```"})
    ans = Assistant(generation_cache="off", alternatives=2).ask("How many orders?", demo_sqlite_url)
    assert backend.starts == ["", b, a]  # least sure place first
    assert ans.sql == "SELECT count(order_id) FROM orders"
    assert ans.confidence.agree == 2 and ans.confidence.of == 3 and ans.confidence.level == "medium"
    assert ans.confidence.runner_up == "SELECT count(*) FROM customers"
    assert ans.confidence.places == (0.3, 0.45)
    assert any("hesitated" in w and "2 of 3" in w for w in ans.warnings)
    assert ans.candidates[-2:] == ["SELECT count(order_id) FROM orders", "SELECT count(*) FROM orders"]


def test_a_tie_keeps_the_first_query_and_says_low(hesitant, demo_sqlite_url: str) -> None:
    a = OPEN + "count(*) FROM orders"
    hesitant(points=(_point("count(*) FROM", " customers", " orders", 0.45),), continuations={a: a + "\n```"})
    ans = Assistant(generation_cache="off", alternatives=1).ask("How many customers?", demo_sqlite_url)
    assert ans.sql == "SELECT count(*) FROM customers"
    assert ans.confidence.level == "low" and (ans.confidence.agree, ans.confidence.of) == (1, 2)
    assert ans.confidence.runner_up == "SELECT count(*) FROM orders"
    text = render.confidence_text(ans.confidence)
    assert text.startswith(render.WARNING_MARK) and "the runner-up: SELECT count(*) FROM orders" in text


def test_a_failing_alternative_has_no_vote(hesitant, demo_sqlite_url: str) -> None:
    a = OPEN + "count(*) FROM unicorns"
    hesitant(points=(_point("count(*) FROM", " customers", " unicorns", 0.45),), continuations={a: a + "\n```"})
    ans = Assistant(generation_cache="off", alternatives=1).ask("How many customers?", demo_sqlite_url)
    assert ans.ok and ans.sql == "SELECT count(*) FROM customers"
    assert (ans.confidence.agree, ans.confidence.of) == (1, 2) and ans.confidence.runner_up is not None


def test_alternatives_off_still_says_the_model_hesitated(hesitant, demo_sqlite_url: str) -> None:
    backend = hesitant(points=(_point("count(*) FROM", " customers", " orders", 0.45),))
    ans = Assistant(generation_cache="off").ask("How many customers?", demo_sqlite_url)
    assert backend.starts == [""]
    assert ans.confidence.level == "medium" and not ans.confidence.hesitated
    assert "hesitated" in str(ans.confidence)


def test_a_write_is_never_looked_at_again(hesitant, demo_copy_url: str) -> None:
    backend = hesitant(first="```sql\nDELETE FROM customers\n```",
                       points=(_point("", "DELETE", "SELECT", 0.4),))
    ans = Assistant(generation_cache="off", alternatives=2).ask("Get rid of the customers", demo_copy_url)
    assert ans.error_kind == "WriteRefused" and backend.starts == [""]


def test_hesitations_are_remembered_with_the_cached_reply(hesitant, demo_sqlite_url: str) -> None:
    a = OPEN + "count(*) FROM orders"
    backend = hesitant(points=(_point("count(*) FROM", " customers", " orders", 0.45),), continuations={a: a + "\n```"})
    assistant = Assistant(generation_cache="memory", alternatives=1)
    first = assistant.ask("How many customers?", demo_sqlite_url)
    again = assistant.ask("How many customers?", demo_sqlite_url)
    assert len(backend.calls) == 2  # the second ask came from the cache, its second look too
    assert again.confidence == first.confidence and again.confidence.of == 2


def test_hesitations_inside_the_sql_only() -> None:
    points = (BranchPoint("", "```", "SELECT", 0.6, 0.3), BranchPoint("```", "sql", "SQL", 0.4, 0.5),
              BranchPoint(OPEN, "name", "NAME", 0.4, 0.5), BranchPoint(OPEN + "name", "\n", "  ", 0.5, 0.4),
              BranchPoint(OPEN + "name", " FROM", " ,", 0.7, 0.2), BranchPoint(OPEN + "a", "\n", "```", 0.3, 0.6))
    assert [p.alternative for p in hesitations(points, 0.8)] == [" ,"]
    assert hesitations(points, 0.6) == []
    assert lowest_in_sql(points) == 0.3
    assert [p.alternative for p in hesitations((BranchPoint("SELECT", " a", " b", 0.2, 0.7),), 0.5)] == [" b"]


def test_branch_points_from_tokens() -> None:
    tokens = [("```sql\n", 1.0, None, None), ("SELECT", 0.5, "WITH", 0.4), (" a", BRANCH_FLOOR, " b", 0.01),
              (" b", 0.9, " b", 0.05)]
    assert branch_points(tokens) == (BranchPoint("```sql\n", "SELECT", "WITH", 0.5, 0.4),)


@pytest.mark.parametrize("value", [0, -0.1, 1.5, "half", True])
def test_unsure_below_is_a_probability(value: Any) -> None:
    with pytest.raises(ConfigError, match="unsure_below"):
        Assistant(unsure_below=value)


def test_levels_by_votes() -> None:
    assert [Confidence.of_votes(a, n).level for a, n in [(3, 3), (2, 3), (1, 2), (1, 3), (0, 3)]] == \
        ["high", "medium", "low", "low", "low"]


def test_an_attribute_the_query_does_not_show_lowers_a_sure_answer(hesitant, demo_sqlite_url) -> None:
    """"the weight of each product" answered with the unit price: the model did not hesitate, the answer is not sure."""
    hesitant(first="```sql\nSELECT name, unit_price FROM products\n```")
    ans = Assistant(generation_cache=False, few_shot=0).ask("What is the weight of each product?", demo_sqlite_url)
    assert ans.ok and ans.confidence.level == "medium"
    assert str(ans.confidence) == "the question asks for weight; nothing the query shows is like it"
    hesitant(first="```sql\nSELECT name, unit_price FROM products\n```")
    ans = Assistant(generation_cache=False, few_shot=0).ask("What is the price of each product?", demo_sqlite_url)
    assert ans.ok and ans.confidence.level == "high"  # unit_price is a price


def test_a_query_that_joins_tables_is_not_sure(hesitant, demo_sqlite_url) -> None:
    """The model did not hesitate, but it picked the join: medium at most, saying so."""
    hesitant(first="```sql\nSELECT DISTINCT p.name FROM products p JOIN order_items oi "
                   "ON oi.product_id = p.product_id\n```")
    ans = Assistant(generation_cache=False, few_shot=0).ask("List the names of the products that were ordered.",
                                                            demo_sqlite_url)
    assert ans.ok and ans.confidence.level == "medium"
    assert str(ans.confidence) == "the query joins 2 tables: check that the join is the one the question means"
    assert join_doubt("SELECT name FROM products WHERE product_id IN (SELECT product_id FROM order_items)",
                      "sqlite") == ""  # a subquery is no join
    assert join_doubt("SELECT FROM WHERE", "sqlite") == ""  # does not parse: nothing to say


def test_a_table_the_question_names_and_the_query_does_not_read_lowers_a_sure_answer(hesitant,
                                                                                       demo_sqlite_url) -> None:
    hesitant(first="```sql\nSELECT count(DISTINCT city) FROM departments\n```")
    ans = Assistant(generation_cache=False, few_shot=0).ask("In how many cities do the customers live?",
                                                            demo_sqlite_url)
    assert ans.ok and ans.confidence.level == "medium"
    assert str(ans.confidence) == "the question names customers; the query does not read it"
    assert unread_tables("How many orders?", "SELECT count(*) FROM orders", "sqlite", ["orders", "order_items"]) == []
    assert unread_tables("How many orders?", "SELECT (", "sqlite", ["orders"]) == []  # does not parse
    assert unread_tables("List the customers in descending order of name", "SELECT name FROM customers ORDER BY "
                         "name DESC", "sqlite", ["customers", "orders"]) == []  # "order": a word of the analysis


def _confidence(hesitant, url: str, question: str, sql: str) -> Confidence:
    """The confidence of the answer to ``question`` when the model, sure of each token, writes ``sql``."""
    hesitant(first=f"```sql\n{sql}\n```")
    answer = Assistant(generation_cache=False, few_shot=0).ask(question, url)
    assert answer.ok
    return answer.confidence


def test_a_year_the_query_never_uses_lowers_a_sure_answer(hesitant, demo_sqlite_url) -> None:
    """"Which month of 2023…" answered over every year: the model did not hesitate, the answer is not sure."""
    month = "SELECT strftime('%Y-%m', order_date) AS month FROM orders {}GROUP BY month ORDER BY COUNT(*) DESC LIMIT 1"
    question = "Which month of 2023 had the most orders?"
    unsure = _confidence(hesitant, demo_sqlite_url, question, month.format(""))
    assert unsure.level == "medium" and str(unsure) == "the question names 2023; the query never uses it"
    year = "WHERE order_date >= '2023-01-01' AND order_date < '2024-01-01' "
    assert _confidence(hesitant, demo_sqlite_url, question, month.format(year)).level == "high"


@pytest.mark.parametrize("question, sql, said", [
    ("orders per month with a running total", "SELECT m, COUNT(*) AS n, COUNT(*) AS total FROM o GROUP BY m",
     "the question asks for a running total; the query computes none (no window function or subquery)"),
    ("cumulative revenue by year", "SELECT y, SUM(SUM(a)) OVER (ORDER BY y) FROM p GROUP BY y", ""),
    ("cumulative revenue by year", "SELECT y, (SELECT SUM(a) FROM p AS q WHERE q.y <= p.y) FROM p GROUP BY y", ""),
    ("revenue in the 1990s", "SELECT SUM(a) FROM p", ""),  # a decade, not a year
    ("What is the 2011 % of each region?", 'SELECT "2011 %" FROM t', ""),  # the year names a column
    ("signups in Q4 2022", "SELECT COUNT(*) FROM c WHERE signup_date >= '2022-10-01'", ""),
    ("orders between 2022 and 2024", "SELECT COUNT(*) FROM o WHERE y BETWEEN 2022 AND 2023",
     "the question names 2024; the query never uses it"),
    ("Which month of 2023 had the most orders?", "SELECT (", ""),  # does not parse: nothing to say
    ("For each election round, how many ballot records are there?", "SELECT count(*) FROM voting_record",
     "the question asks for a figure per election; the query computes one over all rows (no GROUP BY)"),
    ("For each election round, how many ballot records are there?",
     "SELECT cycle, count(*) FROM voting_record GROUP BY cycle", ""),
    ("For every singer, how many concerts?", "SELECT name, (SELECT count(*) FROM c WHERE c.s = s.id) FROM s", ""),
    ("What is the average miles per gallon of cars with 4 cylinders?", "SELECT AVG(mpg) FROM cars", ""),  # a rate
    ("In each year, list the names", "SELECT name FROM t", ""),  # nothing aggregated
    ("studios that worked with both Meyer and Hill", "SELECT studio FROM film WHERE director IN ('Meyer', 'Hill')",
     "the question asks for both; the query accepts either of two values (IN or OR)"),
    ("studios that worked with both Meyer and Hill",
     "SELECT studio FROM film WHERE director = 'Meyer' OR (director = 'Hill')",
     "the question asks for both; the query accepts either of two values (IN or OR)"),
    ("studios that worked with both Meyer and Hill", "SELECT studio FROM film WHERE director = 'Meyer' INTERSECT "
     "SELECT studio FROM film WHERE director = 'Hill'", ""),
    ("studios that worked with both Meyer and Hill", "SELECT studio FROM film WHERE director IN ('Meyer', 'Hill') "
     "GROUP BY studio HAVING COUNT(DISTINCT director) = 2", ""),
    ("Find the zip codes whose max dew point never reached 70.",
     "SELECT DISTINCT zip_code FROM weather WHERE max_dew_point_f < 70",
     "the question says never; the query only filters rows one by one (no NOT IN, EXCEPT, NOT EXISTS or HAVING)"),
    ("Find the zip codes whose max dew point never reached 70.", "SELECT DISTINCT zip_code FROM weather EXCEPT "
     "SELECT DISTINCT zip_code FROM weather WHERE max_dew_point_f >= 70", ""),
    ("Which customers have never placed an order?",
     "SELECT name FROM customers WHERE customer_id NOT IN (SELECT customer_id FROM orders)", ""),
    ("Which customers have never placed an order?", "SELECT c.name FROM customers c LEFT JOIN orders o "
     "ON o.customer_id = c.customer_id WHERE o.order_id IS NULL", ""),
    ("Which zip codes always stayed below 70?",
     "SELECT zip_code FROM weather GROUP BY zip_code HAVING MAX(dew) < 70", ""),
    ("Show both the name and the age of singers older than 30 or from France",
     "SELECT name, age FROM singer WHERE age > 30 OR country = 'France'", ""),  # OR of two columns
])
def test_unmet_asks(question: str, sql: str, said: str) -> None:
    assert unmet_asks(question, sql, "sqlite") == said
