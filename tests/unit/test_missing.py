"""Unit tests for :mod:`jupyter_nl2sql.pipeline.missing`: a question that names a table the database lacks is
refused before the model is asked, with what is missing; Spider dev's questions are (almost) never refused."""

from __future__ import annotations

import json

import pytest

from benchmarks.runner import default_data_dir
from jupyter_nl2sql.pipeline.assistant import Assistant
from jupyter_nl2sql.pipeline.missing import missing_tables, refusal

SPIDER = default_data_dir() / "spider"  # $NL2SQL_BENCH_DATA, else ../shared/data next to the repository
DEMO_TABLES = ["departments", "employees", "customers", "products", "orders", "order_items"]
DEMO_COLUMNS = ["department_id", "name", "city", "employee_id", "first_name", "last_name", "manager_id",
                "hire_date", "salary", "customer_id", "email", "country", "signup_date", "product_id", "category",
                "unit_price", "order_id", "order_date", "status", "quantity"]


@pytest.mark.parametrize("question, missing", [
    ("How many unicorns are in the zoo table?", ["zoo"]),
    ("List everything from the unicorns table", ["unicorns"]),
    ("What is in the `invoices` table?", ["invoices"]),
    ("Count the rows of a table called shipments", ["shipments"]),
    ("Total revenue in the sales table by month", ["sales"]),
])
def test_named_tables_the_schema_lacks_are_found(question: str, missing: list[str]) -> None:
    assert [name for name, _ in missing_tables(question, DEMO_TABLES, DEMO_COLUMNS)] == missing


@pytest.mark.parametrize("question", [
    "How many rows are in the orders table?", "List the customer table", "Quantities in the order items table",
    "the Order-Items table", "Salaries in the same table", "How many customers are there?",
    "Which product category has the highest total quantity sold?", "the employee salary table",
    "List the final tables made by poker players",
])
def test_names_like_the_schemas_are_not_refused(question: str) -> None:
    assert missing_tables(question, DEMO_TABLES, DEMO_COLUMNS) == []


def test_refusal_names_what_is_missing_with_did_you_mean() -> None:
    text = refusal(missing_tables("Rows of the emps table?", DEMO_TABLES, []), DEMO_TABLES)
    assert text == ("can't answer that from this database: it has no table emps (did you mean employees?); its "
                    "tables: customers, departments, employees, order_items, orders, products")
    assert missing_tables("Rows of the deprtmentz table?", DEMO_TABLES, []) == []  # a misspelling is not refused


def test_assistant_refuses_without_the_model_and_runs_nothing(scripted, demo_sqlite_url) -> None:
    backend = scripted("SELECT count(*) FROM employees")
    assistant = Assistant(generation_cache=False, few_shot=0)
    answer = assistant.ask("How many unicorns are in the zoo table?", demo_sqlite_url)
    assert answer.error.startswith("can't answer that from this database: it has no table zoo")
    assert answer.error_kind == "MissingFromSchema" and answer.sql is None and not answer.executed
    assert backend.calls == []
    answer = assistant.ask("How many unicorns are in the zoo table?", demo_sqlite_url, refuse_missing=False)
    assert answer.ok and len(backend.calls) == 1  # switched off: the model is asked


def test_false_refusals_on_spider_dev_are_at_most_one_percent() -> None:
    """Every Spider dev question (1034), against its own database's table and column names."""
    if not (SPIDER / "dev.json").is_file():
        pytest.skip(f"Spider data not found under {SPIDER}")
    schemas = {d["db_id"]: d for d in json.loads((SPIDER / "tables.json").read_text(encoding="utf-8"))}
    questions = json.loads((SPIDER / "dev.json").read_text(encoding="utf-8"))
    refused = []
    for q in questions:
        db = schemas[q["db_id"]]
        columns = [name for table, name in db["column_names_original"] if table >= 0]
        if missing_tables(q["question"], db["table_names_original"], columns):
            refused.append(q["question"])
    assert len(questions) == 1034
    assert len(refused) <= len(questions) // 100, refused
