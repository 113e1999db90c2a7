"""The accuracy features wired into Assistant.ask, with a ScriptedBackend (prepared replies; no model): value
hints, few-shot examples (pool and taught), the empty-result repair, candidates and voting, schema options."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd
import pytest

from jupyter_nl2sql.pipeline.assistant import Answer, Assistant, _found_nothing, vote
from jupyter_nl2sql.errors import ConfigError, ExecutionError, SQLCheckError, WriteRefused
from jupyter_nl2sql.frontends.magics import parse_teach

POOL = [
    {"question": "How many pilots are from \"Spain\"?", "query": "SELECT count(*) FROM pilot WHERE country = 'Spain'",
     "db_id": "aircraft"},
    {"question": "What is the average price of each category?",
     "query": "SELECT category, avg(price) FROM item GROUP BY category", "db_id": "store"},
    {"question": "Which city has the most customers?",
     "query": "SELECT city FROM client GROUP BY city ORDER BY count(*) DESC LIMIT 1", "db_id": "bank"},
    {"question": "List the names of singers ordered by age.", "query": "SELECT name FROM singer ORDER BY age",
     "db_id": "music"},
]


@pytest.fixture()
def pool_path(tmp_path: Path) -> str:
    path = tmp_path / "pool.json"
    path.write_text(json.dumps(POOL))
    return str(path)


@pytest.fixture()
def assistant(tmp_path: Path):
    def make(**kwargs) -> Assistant:
        return Assistant(generation_cache=False, examples_dir=str(tmp_path / "taught"), **kwargs)
    return make


def _prompt(backend, call: int = 0) -> str:
    """The first user message of a model call."""
    return next(m["content"] for m in backend.calls[call] if m["role"] == "user")


def test_value_hints_give_the_database_spelling(scripted, assistant, demo_sqlite_url: str) -> None:
    backend = scripted("SELECT count(*) AS n FROM customers WHERE country = 'United Kingdom'")
    ans = assistant().ask("How many customers are in the united kingdom?", demo_sqlite_url)
    assert "-- customers.country = 'United Kingdom'" in _prompt(backend)
    assert ans.provenance["context"]["values"] == ["customers.country = 'United Kingdom'"]
    assert "values" in ans.stats.stages
    backend = scripted("SELECT 1")
    assistant(value_retrieval=False).ask("How many customers are in the united kingdom?", demo_sqlite_url)
    assert "United Kingdom'" not in _prompt(backend).split("Question:")[-1]


def test_pool_examples_are_shown_most_similar_last(scripted, assistant, pool_path, demo_sqlite_url: str) -> None:
    backend = scripted("SELECT city FROM customers GROUP BY city ORDER BY count(*) DESC LIMIT 1")
    ans = assistant(example_pool=pool_path, few_shot=2).ask("Which city has the most customers?", demo_sqlite_url)
    prompt = _prompt(backend)
    assert prompt.count("-- Question: ") == 3  # two examples, then the question
    assert prompt.rindex("Which city has the most customers?\nSELECT") > prompt.index("Examples of questions")
    last_example = prompt.split("-- Question: ")[-2]
    assert last_example.startswith("Which city has the most customers?")  # the nearest example sits last
    assert len(ans.provenance["context"]["examples"]) == 2
    backend = scripted("SELECT 1")
    assistant(example_pool=pool_path, few_shot=0).ask("Which city has the most customers?", demo_sqlite_url)
    assert "Examples of questions" not in _prompt(backend)


def test_pool_with_the_asked_database_is_excluded(scripted, assistant, tmp_path: Path, demo_sqlite_url) -> None:
    path = tmp_path / "leaky.json"
    db_id = Path(demo_sqlite_url.split("///")[-1]).stem  # the pool's db_id is the SQLite file's name
    path.write_text(json.dumps([*POOL, {"question": "How many customers are there?",
                                        "query": "SELECT count(*) FROM customers", "db_id": db_id}]))
    backend = scripted("SELECT count(*) FROM customers")
    assistant(example_pool=str(path), few_shot=4).ask("How many customers are there?", demo_sqlite_url)
    assert "SELECT count(*) FROM customers\n```" not in _prompt(backend)  # the demo database's own example


def test_missing_pool_is_a_config_error(scripted, assistant, tmp_path: Path, demo_sqlite_url: str) -> None:
    scripted("SELECT 1")
    with pytest.raises(ConfigError, match="example pool"):
        assistant(example_pool=str(tmp_path / "nope.json")).ask("How many customers?", demo_sqlite_url)


def test_teach_checks_runs_saves_and_takes_priority(scripted, assistant, pool_path, demo_sqlite_url) -> None:
    a = assistant(example_pool=pool_path, few_shot=2)
    ex = a.teach("Which customers are big spenders?",
                 "SELECT c.name FROM customers c JOIN orders o ON o.customer_id = c.customer_id "
                 "GROUP BY c.name HAVING count(*) > 5;", demo_sqlite_url)
    assert [e.id for e in a.examples(demo_sqlite_url)] == [ex.id]
    with pytest.raises(SQLCheckError, match="did you mean|no column"):
        a.teach("Bad column?", "SELECT nme FROM customers", demo_sqlite_url)
    with pytest.raises(WriteRefused):
        a.teach("Delete all?", "DELETE FROM customers", demo_sqlite_url)
    with pytest.raises(ExecutionError):
        a.teach("Fails when run?", "SELECT json_extract(name, '$.a') FROM customers", demo_sqlite_url)
    assert len(a.examples(demo_sqlite_url)) == 1
    backend = scripted("SELECT 1")
    a.ask("Who are the big spenders among our customers?", demo_sqlite_url)
    shots = _prompt(backend).split("Examples of questions")[1]
    assert shots.rindex("big spenders?\nSELECT") > shots.index("-- Question: ")  # taught: nearest the question
    assert a.forget(ex.id[:5], demo_sqlite_url) and a.examples(demo_sqlite_url) == []
    assert not a.forget(ex.id, demo_sqlite_url)


def test_taught_examples_are_per_database(assistant, demo_sqlite_url: str, demo_copy_url: str) -> None:
    a = assistant()
    a.teach("How many customers?", "SELECT count(*) FROM customers", demo_sqlite_url)
    assert a.examples(demo_copy_url) == [] and len(a.examples(demo_sqlite_url)) == 1


def test_parse_teach() -> None:
    """The text of ``%nl2sql teach`` (the subcommands themselves: tests/unit/test_magics.py)."""
    with pytest.raises(ValueError, match="usage"):
        parse_teach("just a question")
    assert parse_teach("-c x", "Q?\nSELECT 1") == ("x", "Q?", "SELECT 1")


def test_empty_result_gets_one_round_with_the_value_spellings(scripted, assistant, demo_sqlite_url) -> None:
    backend = scripted("SELECT name FROM customers WHERE country = 'UK'",
                       "SELECT name FROM customers WHERE country = 'United Kingdom'")
    ans = assistant().ask("Names of customers in the united kingdom?", demo_sqlite_url)
    assert len(backend.calls) == 2 and "returned no rows" in backend.calls[1][-1]["content"]
    assert "'United Kingdom'" in backend.calls[1][-1]["content"]
    assert ans.ok and len(ans.dataframe) > 0 and "United Kingdom" in ans.sql
    assert any("no rows" in w for w in ans.warnings) and len(ans.candidates) == 2


def test_empty_count_counts_as_empty_and_a_useless_retry_is_dropped(scripted, assistant, demo_sqlite_url) -> None:
    backend = scripted("SELECT count(*) FROM customers WHERE country = 'UK'",
                       "SELECT count(*) FROM customers WHERE country = 'GB'")
    ans = assistant().ask("How many customers in the united kingdom?", demo_sqlite_url)
    assert len(backend.calls) == 2
    assert ans.sql == "SELECT count(*) FROM customers WHERE country = 'UK'" and ans.ok


def test_no_empty_retry_without_values_or_when_off(scripted, assistant, demo_sqlite_url: str) -> None:
    backend = scripted("SELECT name FROM customers WHERE 1 = 0")
    assistant().ask("Names of customers who never existed?", demo_sqlite_url)
    assert len(backend.calls) == 1
    backend = scripted("SELECT name FROM customers WHERE country = 'UK'")
    assistant(repair_empty=False).ask("Names of customers in the united kingdom?", demo_sqlite_url)
    assert len(backend.calls) == 1


def test_found_nothing() -> None:
    assert _found_nothing(pd.DataFrame({"a": []}))
    assert _found_nothing(pd.DataFrame({"n": [0]})) and _found_nothing(pd.DataFrame({"s": [None]}))
    assert not _found_nothing(pd.DataFrame({"n": [3]})) and not _found_nothing(pd.DataFrame({"n": [0, 0]}))
    assert not _found_nothing(None)


def _answer(rows: list[tuple] | None, error: str | None = None, score: float | None = None) -> Answer:
    frame = None if rows is None else pd.DataFrame(rows, columns=["a", "b"][:len(rows[0]) if rows else 1])
    return Answer(question="q", sql="s", dataframe=frame, error=error, score=score)


def test_vote_takes_the_majority_result_ties_to_the_first() -> None:
    first, second, third = _answer([(1, "x")]), _answer([("x", 1)]), _answer([(2, "y")])

    def pick(*tries: Answer) -> tuple[int, int]:
        best, votes, by_score = vote(list(tries))
        assert not by_score  # no scores here
        return next(i for i, t in enumerate(tries) if t is best), votes

    assert pick(third, first, second) == (1, 2)  # column order does not split a vote
    assert pick(first, third) == (0, 1)
    failed = _answer(None, "boom")
    assert pick(failed, third) == (1, 1) and pick(failed) == (0, 0)
    empty1, empty2 = _answer([]), _answer([])
    assert pick(empty1, empty2, third) == (0, 2)  # two empty results weigh like one real one; tie: the earlier
    assert pick(third, empty1, empty2) == (0, 1)
    assert pick(empty1, empty2, empty2, third) == (0, 3)


def test_vote_ties_go_to_the_higher_model_score() -> None:
    def pick(*tries: Answer) -> tuple[int, int, bool]:
        best, votes, by_score = vote(list(tries))
        return next(i for i, t in enumerate(tries) if t is best), votes, by_score

    sure, unsure = _answer([(2, "y")], score=-0.05), _answer([(1, "x")], score=-0.9)
    assert pick(unsure, sure) == (1, 1, True)
    assert pick(sure, unsure) == (0, 1, True)
    assert pick(unsure, _answer([(2, "y")], score=-2.0), sure) == (1, 2, False)  # a majority is never overruled
    assert pick(_answer([(1, "x")]), _answer([(2, "y")], score=-3.0)) == (1, 1, True)  # a score beats none
    assert pick(_answer([(1, "x")]), _answer([(2, "y")])) == (0, 1, False)  # no scores: the earlier prompt
    # two empty results tie one real one: the score decides
    assert pick(_answer([], score=-0.01), _answer([], score=-0.02), unsure) == (0, 2, True)
    assert pick(_answer([], score=-0.5), _answer([], score=-0.6), sure) == (2, 1, True)
    # a group's score is its best member's
    assert pick(_answer([(1, "x")], score=-1.0), _answer([(2, "y")], score=-0.5), _answer(None, "boom"),
                ) == (1, 1, True)


def test_candidates_come_from_other_examples_and_are_voted(scripted, assistant, pool_path, demo_sqlite_url) -> None:
    backend = scripted("SELECT count(*) FROM customers WHERE 1 = 0", "SELECT count(*) FROM customers",
                       "SELECT count(*) AS total FROM customers")
    ans = assistant(example_pool=pool_path, few_shot=1, candidates=3).ask("How many customers?", demo_sqlite_url)
    assert len(backend.calls) == 3
    shots = [_prompt(backend, i).split("Examples of questions")[1].split("Question: ")[1] for i in range(3)]
    assert len(set(shots)) == 3  # each candidate saw another example
    assert ans.sql == "SELECT count(*) FROM customers" and ans.dataframe.iloc[0, 0] == 60
    assert len(ans.candidates) == 3 and any("2 of them agree" in w for w in ans.warnings)


def test_candidates_that_all_disagree_go_to_the_surest_reply(scripted, assistant, demo_sqlite_url) -> None:
    backend = scripted("SELECT count(*) FROM customers", "SELECT count(*) FROM orders", "SELECT count(*) FROM products")
    backend.scores = [-0.9, -0.2, -0.6]
    ans = assistant(few_shot=0, candidates=3).ask("How many orders?", demo_sqlite_url)
    assert len(backend.calls) == 3 and ans.sql == "SELECT count(*) FROM orders" and ans.score == -0.2
    assert any("1 of them agree on this result; a tie, decided by the model's score" in w for w in ans.warnings)


def test_candidates_without_examples_vary_the_schema(scripted, assistant, demo_sqlite_url: str) -> None:
    backend = scripted("SELECT count(*) FROM customers")
    assistant(few_shot=0, candidates=4).ask("How many customers?", demo_sqlite_url)
    assert len(backend.calls) == 3  # two variants: the values listing instead of rows, the other layout
    assert "-- e.g." not in _prompt(backend, 0) and "-- e.g." in _prompt(backend, 1)
    assert [m["role"] for m in backend.calls[2]] == ["system", "user"] and "-- e.g." not in _prompt(backend, 2)


def test_generate_only_writes_one_candidate(scripted, assistant, demo_sqlite_url: str) -> None:
    backend = scripted("SELECT count(*) FROM customers")
    ans = assistant(few_shot=0, candidates=3).ask("How many customers?", demo_sqlite_url, generate_only=True)
    assert len(backend.calls) == 1 and ans.dataframe is None


def test_column_values_are_listed_in_the_schema(scripted, assistant, demo_sqlite_url: str) -> None:
    backend = scripted("SELECT 1")
    assistant(column_values=3, sample_rows=0).ask("How many customers?", demo_sqlite_url)
    prompt = _prompt(backend)
    assert "example rows" not in prompt
    line = next(ln for ln in prompt.splitlines() if ln.strip().startswith("country TEXT"))
    assert line.count("'") == 6 and "-- e.g." in line and line.split("--")[0].rstrip().endswith(",")


def test_bad_accuracy_options_are_config_errors() -> None:
    for kwargs in ({"few_shot": -1}, {"candidates": 0}, {"column_values": "3"}):
        with pytest.raises(ConfigError):
            Assistant(**kwargs)


def test_spider_runner_passes_train_pool_and_refuses_overlap(tmp_path: Path) -> None:
    from benchmarks.spider import SpiderBenchmark

    spider = tmp_path / "spider"
    spider.mkdir()
    (spider / "dev.json").write_text(json.dumps([{"db_id": "concert_singer", "question": "q", "query": "SELECT 1"}]))
    (spider / "train_spider_compact.json").write_text(json.dumps(POOL))
    args = argparse.Namespace(examples_pool="train", split="dev")
    opts = SpiderBenchmark().pipeline_options(args, tmp_path)
    assert opts == {"example_pool": str((spider / "train_spider_compact.json").resolve())}
    assert SpiderBenchmark().pipeline_options(argparse.Namespace(examples_pool="none", split="dev"), tmp_path) == {}
    # the default is Assistant()'s: no pool
    assert SpiderBenchmark().pipeline_options(argparse.Namespace(examples_pool=None, split="dev"), tmp_path) == {}
    (spider / "leak.json").write_text(json.dumps([{"db_id": "concert_singer", "question": "q", "query": "x"}]))
    with pytest.raises(SystemExit, match="leak"):
        SpiderBenchmark().pipeline_options(argparse.Namespace(examples_pool=str(spider / "leak.json"),
                                                              split="dev"), tmp_path)
    # questions from train itself (settings chosen without dev): allowed, each question's own database excluded
    train = argparse.Namespace(examples_pool="train", split="train_spider_compact")
    assert SpiderBenchmark().pipeline_options(train, tmp_path) == opts


def test_shared_spider_pool_is_disjoint_from_dev() -> None:
    from benchmarks.runner import default_data_dir  # the runner's rule: $NL2SQL_BENCH_DATA, else ../shared/data

    data = default_data_dir() / "spider"
    if not (data / "train_spider_compact.json").exists():
        pytest.skip("Spider data not present")
    train = {e["db_id"] for e in json.loads((data / "train_spider_compact.json").read_text())}
    dev = {e["db_id"] for e in json.loads((data / "dev.json").read_text())}
    assert train and dev and not train & dev


def test_repair_round_drops_the_examples(scripted, assistant, pool_path, demo_sqlite_url: str) -> None:
    backend = scripted("SELECT city FROM client", "SELECT city FROM customers")
    ans = assistant(example_pool=pool_path, few_shot=2).ask("Which city has the most customers?", demo_sqlite_url)
    assert ans.ok and len(backend.calls) == 2
    assert "Examples of questions" in _prompt(backend, 0)
    assert "Examples of questions" not in _prompt(backend, 1)  # names copied from examples: not again
    assert "no table client" in backend.calls[1][-1]["content"]


def test_repair_names_the_tables_that_have_the_missing_column(scripted, assistant, demo_sqlite_url: str) -> None:
    # employees is three foreign-key hops from products: too far for the join repair, so the model is asked
    backend = scripted("SELECT last_name FROM products", "SELECT last_name FROM employees")
    assistant().ask("Last names?", demo_sqlite_url)
    repair = backend.calls[1][-1]["content"]
    assert "did you mean name?" in repair and "a column of that name is in employees.last_name" in repair


def test_ablation_table_pairs_runs_by_question(tmp_path: Path) -> None:
    from benchmarks.ablation import table

    def write(name: str, correct: list[bool], latency: float) -> Path:
        d = tmp_path / name
        d.mkdir()
        with (d / "results.jsonl").open("w") as fh:
            for i, ok in enumerate(correct):
                fh.write(json.dumps({"index": i, "correct": ok, "latency_s": latency, "tokens_in": 100,
                                     "tokens_out": 10, "candidates": ["SELECT 1"], "load_avg_1m": 1.0}) + "\n")
        return d

    base = write("base", [True, False, False, True], 2.0)
    other = write("other", [True, True, False, False], 3.0)
    text = table([("base", base), ("other", other)])
    assert "| base | 50.0 % (2/4) |" in text and "| other | 50.0 % (2/4) | +0.0 | +1 / −1 | 3.0 |" in text
    short = write("short", [True], 1.0)
    with pytest.raises(SystemExit, match="different questions"):
        table([("base", base), ("short", short)])
