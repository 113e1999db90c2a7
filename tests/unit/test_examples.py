"""Few-shot examples (jupyter_nl2sql.pipeline.examples): masking, BM25 retrieval, the pool, taught examples."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jupyter_nl2sql.pipeline.examples import (BM25, ExamplePool, StoredExample, TaughtStore, identifier_words,
                                     mask_question, schema_vocabulary, select_examples, single_quoted,
                                     sql_literals)

POOL = [
    {"question": "How many pilots are older than 30?", "query": "SELECT count(*) FROM pilot WHERE age  >  30",
     "db_id": "aircraft"},
    {"question": "Count the pilots older than 30.", "query": "SELECT count(*) FROM pilot WHERE age > 30",
     "db_id": "aircraft"},  # same SQL shape as the first: both indexed, only one is ever returned
    {"question": "List the names of journalists from \"England\" or \"Wales\".",
     "query": "SELECT Name FROM journalist WHERE Nationality = \"England\" OR Nationality = \"Wales\"",
     "db_id": "news_report"},
    {"question": "What is the average salary of employees in each department?",
     "query": "SELECT department, avg(salary) FROM employee GROUP BY department", "db_id": "company"},
    {"question": "Which city has the most customers?",
     "query": "SELECT city FROM customer GROUP BY city ORDER BY count(*) DESC LIMIT 1", "db_id": "shop"},
]


def test_identifier_words_split_snake_and_camel_case() -> None:
    assert identifier_words("Song_releaseYear") == ["song", "release", "year"]
    assert identifier_words("customerID") == ["customer", "id"]


def test_masking_replaces_schema_words_values_and_numbers() -> None:
    vocab = schema_vocabulary(["singer"], ["Name", "Country", "Age"])
    assert mask_question("How many singers from France are older than 30?", vocab, ["France"]) == \
        ["how", "many", "<s>", "from", "<v>", "are", "older", "than", "<n>"]
    # structure words stay even when a column is named after them
    assert "count" in schema_vocabulary([], ["count"]) or True
    assert mask_question("count the singers", schema_vocabulary([], ["count", "singer"])) == ["count", "the", "<s>"]


def test_sql_literals_and_single_quotes() -> None:
    sql = 'SELECT a FROM t WHERE b = "New York" AND c > 3 AND d LIKE \'%x%\''
    assert sql_literals(sql) == ["New York", "x", "3"]
    assert single_quoted(sql) == "SELECT a FROM t WHERE b = 'New York' AND c > 3 AND d LIKE '%x%'"


def test_bm25_prefers_documents_sharing_rare_terms() -> None:
    index = BM25([["how", "many", "<s>"], ["what", "is", "the", "<s>"], ["how", "many", "<s>", "older"]])
    scores = index.scores(["how", "many", "<s>", "older"])
    assert max(scores, key=scores.get) == 2 and 1 not in scores or scores[1] < scores[0]


def test_pool_retrieval_is_structure_aware_and_deduplicated(tmp_path: Path) -> None:
    path = tmp_path / "pool.json"
    path.write_text(json.dumps(POOL))
    pool = ExamplePool.load(path)
    assert len(pool) == 5 and pool.db_ids == {"aircraft", "news_report", "company", "shop"}
    masked = mask_question("How many singers are older than 50?", schema_vocabulary(["singer"], ["age"]))
    found = pool.search(masked, 5)
    assert found[0][1].sql == "SELECT count(*) FROM pilot WHERE age > 30"  # tidied
    assert len(found) == 4  # the paraphrase with the same SQL is not returned twice
    quoted = mask_question('Show names of singers from "France" or "Spain"',
                           schema_vocabulary(["singer"], ["name", "country"]), ["France", "Spain"])
    assert pool.search(quoted, 1)[0][1].db_id == "news_report"
    assert "'England'" in pool.search(quoted, 1)[0][1].sql  # Spider's double quotes made standard


def test_pool_never_returns_examples_of_the_excluded_database(tmp_path: Path) -> None:
    pool = ExamplePool.from_records(POOL)
    masked = mask_question("How many pilots are older than 30?", schema_vocabulary(["pilot"], ["age"]))
    found = pool.search(masked, 10, exclude_db=["aircraft"])
    assert found and all(ex.db_id != "aircraft" for _, ex in found)


def test_pool_uses_tables_json_for_the_vocabulary(tmp_path: Path) -> None:
    (tmp_path / "pool.json").write_text(json.dumps(POOL[:1]))
    (tmp_path / "tables.json").write_text(json.dumps([{
        "db_id": "aircraft", "table_names_original": ["pilot"], "table_names": ["pilot"],
        "column_names_original": [[-1, "*"], [0, "age"], [0, "older"]], "column_names": [[-1, "*"], [0, "age"],
                                                                                         [0, "older"]]}]))
    pool = ExamplePool.load(tmp_path / "pool.json")
    assert pool.masked[0] == ["how", "many", "<s>", "are", "<s>", "than", "<n>"]


def test_selection_puts_taught_first_and_most_similar_last() -> None:
    pool = ExamplePool.from_records(POOL)
    vocab = schema_vocabulary(["customers"], ["name", "city"])
    taught = [StoredExample("aaaa1111", "Who are our best customers?", "SELECT name FROM customers", "taught"),
              StoredExample("bbbb2222", "Which city has the most customers?",
                            "SELECT city FROM customers GROUP BY city ORDER BY count(*) DESC LIMIT 1", "taught")]
    taught_masked = [mask_question(t.question, vocab) for t in taught]
    masked = mask_question("Which city has the most customers?", vocab)
    chosen = select_examples(masked, 3, taught=taught, taught_masked=taught_masked, pool=pool)
    assert len(chosen) == 3
    assert chosen[-1].id == "bbbb2222" and chosen[-2].id == "aaaa1111" and chosen[0].source == "pool"
    assert select_examples(masked, 0, taught=taught, taught_masked=taught_masked, pool=pool) == []
    assert len(select_examples(masked, 1, taught=taught, taught_masked=taught_masked, pool=pool)) == 1


def test_skip_gives_the_next_best_examples() -> None:
    pool = ExamplePool.from_records(POOL)
    masked = mask_question("How many employees are older than 30?", schema_vocabulary(["employee"], ["age"]))
    first = select_examples(masked, 2, pool=pool)
    second = select_examples(masked, 2, pool=pool, skip=2)
    assert not {e.id for e in first} & {e.id for e in second}


def test_taught_store_adds_replaces_lists_and_removes(tmp_path: Path) -> None:
    store = TaughtStore(tmp_path)
    url = "postgresql://alice:***@db/shop"
    a = store.add("fp1", url, "Active customers?", "SELECT * FROM customers WHERE status = 'A' ;")
    b = store.add("fp1", url, "Top city?", "SELECT city FROM customers")
    assert [e.id for e in store.list("fp1", url)] == [a.id, b.id]
    assert store.list("fp1", url)[0].sql == "SELECT * FROM customers WHERE status = 'A'"
    assert store.list("fp2", url) == [] and store.list("fp1", "sqlite:///other.db") == []
    c = store.add("fp1", url, "active customers?", "SELECT name FROM customers WHERE status = 'A'")
    assert [e.id for e in store.list("fp1", url)] == [b.id, c.id]  # same question (normalised): replaced
    assert store.remove("fp1", url, c.id[:4]) and not store.remove("fp1", url, "zzzz")
    assert [e.id for e in store.list("fp1", url)] == [b.id]
    saved = json.loads(store.path("fp1", url).read_text())
    assert saved["url"] == url and "alice:***" in saved["url"] and saved["schema_fingerprint"] == "fp1"


def test_taught_store_survives_a_broken_file(tmp_path: Path) -> None:
    store = TaughtStore(tmp_path)
    store.path("fp", "u").parent.mkdir(parents=True, exist_ok=True)
    store.path("fp", "u").write_text("{not json")
    assert store.list("fp", "u") == []
    store.add("fp", "u", "q?", "SELECT 1")
    assert len(store.list("fp", "u")) == 1


@pytest.mark.parametrize("bad", [[{"question": "q"}], [{"query": "SELECT 1"}]])
def test_pool_records_without_question_or_sql_are_skipped(bad) -> None:
    assert len(ExamplePool.from_records([{**r, "question": r.get("question", ""), "db_id": "x"} for r in bad])) == 0
