"""Follow-up questions (issue 19, item 3): a conversation per connection, its turns in the prompt after the schema.

Plumbing only: the ScriptedBackend's replies are prepared, and the tiny random-weight GGUF
(:mod:`jupyter_nl2sql.models.testing`) exercises the real engine's chat template and prefix state, not what a model
would write.  The accuracy on follow-ups is measured by ``python -m benchmarks.followups``.
"""

from __future__ import annotations

import json
import sqlite3

import pytest
from IPython.core.error import UsageError

from jupyter_nl2sql.connections import ConnectionManager
from jupyter_nl2sql.errors import QuestionError
from jupyter_nl2sql.pipeline.assistant import Assistant, get_assistant
from jupyter_nl2sql.pipeline.conversation import (CONTEXT_TURNS, NO_EARLIER_QUESTION, Conversation, Conversations,
                                                  Turn)
from jupyter_nl2sql.pipeline.prompting import (NO_QUERY, build_messages, follow_up_message, follow_up_messages,
                                               prompt_head)

COUNTRIES = "SELECT c.country, count(*) AS n FROM orders o JOIN customers c ON c.customer_id = o.customer_id " \
            "GROUP BY c.country"
IN_2024 = "SELECT c.country, count(*) AS n FROM orders o JOIN customers c ON c.customer_id = o.customer_id " \
          "WHERE o.order_date >= '2024-01-01' GROUP BY c.country"


def _content(messages: list[dict]) -> str:
    return "\n".join(m["content"] for m in messages)


# -- the prompt -----------------------------------------------------------------------------------------------------
def test_a_follow_up_is_the_next_message_of_the_first_prompt(scripted, demo_sqlite_url) -> None:
    backend = scripted(COUNTRIES, IN_2024)
    a = Assistant(connections=ConnectionManager())
    first = a.ask("How many orders were placed in each country?", demo_sqlite_url)
    second = a.ask("and only for 2024?", demo_sqlite_url, follow_up=True)
    assert (first.turn, first.follow_up, second.turn, second.follow_up) == (1, False, 2, True)
    assert second.context_turns == 1 and second.provenance["context"]["turns"] == 1
    before, after = backend.calls[0], backend.calls[1]
    assert after[:len(before)] == before  # the first prompt, unchanged: the engine's cache covers it
    reply, asked = after[len(before):]
    assert reply == {"role": "assistant", "content": f"```sql\n{COUNTRIES}\n```"}
    assert asked["role"] == "user" and asked["content"].startswith("-- Follow-up question: and only for 2024?")
    assert "CREATE TABLE" not in asked["content"]
    assert second.dataframe["n"].sum() < first.dataframe["n"].sum()


def test_a_third_turn_continues_the_second_prompt(scripted, demo_sqlite_url) -> None:
    backend = scripted(COUNTRIES, IN_2024, IN_2024)
    a = Assistant(connections=ConnectionManager())
    a.ask("How many orders were placed in each country?", demo_sqlite_url)
    a.ask("and only for 2024?", demo_sqlite_url, follow_up=True)
    third = a.ask("now just the cancelled ones", demo_sqlite_url, follow_up=True)
    second, last = backend.calls[1], backend.calls[2]
    assert third.turn == 3 and last[:len(second)] == second
    assert [m["role"] for m in last[len(second):]] == ["assistant", "user"]


@pytest.mark.parametrize("layout", ["sql", "chat"])
def test_the_schema_prefix_is_the_same_bytes_with_and_without_history(layout) -> None:
    from jupyter_nl2sql.models.testing import StandInBackend

    render = StandInBackend().render_prompt
    schema = "CREATE TABLE orders (order_id INTEGER, order_date DATE);\n/* 3 rows */"
    opening = build_messages("How many orders?", schema, "sqlite", (), "", layout)
    alone = render(build_messages("and in 2024?", schema, "sqlite", (), "", layout))
    follow = render(follow_up_messages([(opening, "SELECT count(*) FROM orders"), ([follow_up_message(
        "and failed?", "", layout)], None)], "and in 2024?", "", layout))
    head = prompt_head(render, schema, "sqlite", layout)
    assert schema in head and alone.startswith(head) and follow.startswith(head)
    assert follow.startswith(render(opening)[:len(render(opening)) - 40])
    assert "How many orders?" in follow[len(head):] and "SELECT count(*) FROM orders" in follow[len(head):]
    assert NO_QUERY in follow and "How many orders?" not in alone


def test_failed_turns_show_their_question_without_their_sql(scripted, demo_sqlite_url) -> None:
    backend = scripted("SELECT nothing FROM nowhere", "SELECT count(*) FROM orders")
    a = Assistant(connections=ConnectionManager(), repair_rounds=0, fix_names=False)
    assert not a.ask("How many gizmos?", demo_sqlite_url).ok
    a.ask("then orders", demo_sqlite_url, follow_up=True)
    shown = _content(backend.calls[-1])
    assert "-- Question: How many gizmos?" in shown and "nowhere" not in shown and NO_QUERY in shown


# -- starting over, connections, limits -----------------------------------------------------------------------------
def test_a_question_without_follow_up_starts_over(scripted, demo_sqlite_url) -> None:
    backend = scripted("SELECT count(*) FROM orders")
    a = Assistant(connections=ConnectionManager())
    a.ask("How many orders?", demo_sqlite_url)
    fresh = a.ask("How many customers?", demo_sqlite_url)  # the Python default: follow_up=False
    assert fresh.turn == 1 and "How many orders?" not in _content(backend.calls[-1])
    auto = a.ask("and products?", demo_sqlite_url, follow_up=None)  # None: continues when there is one
    assert auto.turn == 2 and "How many customers?" in _content(backend.calls[-1])
    assert a.new_conversation(demo_sqlite_url) and not a.new_conversation(demo_sqlite_url)
    assert a.ask("and products?", demo_sqlite_url, follow_up=None).turn == 1


def test_by_default_only_a_question_that_reads_as_a_follow_up_continues(scripted, demo_sqlite_url) -> None:
    backend = scripted("SELECT count(*) FROM orders")
    a = Assistant(connections=ConnectionManager())
    a.ask("How many orders were placed in each country?", demo_sqlite_url)
    own = a.ask("Which product has the highest unit price?", demo_sqlite_url, follow_up=None)
    assert own.turn == 1 and "each country" not in _content(backend.calls[-1])  # stands alone: a new conversation
    follow = a.ask("and the lowest?", demo_sqlite_url, follow_up=None)
    assert follow.turn == 2 and "highest unit price" in _content(backend.calls[-1])
    forced = a.ask("Which customers are from Spain?", demo_sqlite_url, follow_up=True)  # --follow insists
    assert forced.turn == 3 and "and the lowest?" in _content(backend.calls[-1])


def test_each_connection_has_its_own_conversation(scripted, demo_sqlite_url, demo_copy_url) -> None:
    backend = scripted("SELECT count(*) FROM orders")
    a = Assistant(connections=ConnectionManager())
    a.ask("How many orders on the first one?", demo_sqlite_url)
    other = a.ask("and here?", demo_copy_url, follow_up=None)
    assert other.turn == 1 and "first one" not in _content(backend.calls[-1])
    assert a.new_conversation(demo_copy_url)  # ends the copy's conversation only
    with pytest.raises(QuestionError):
        a.ask("go on", demo_copy_url, follow_up=True)
    assert a.ask("and then?", demo_sqlite_url, follow_up=True).turn == 2
    assert "first one" in _content(backend.calls[-1]) and "and here?" not in _content(backend.calls[-1])


def test_the_prompt_shows_the_first_turn_and_the_last_ones(scripted, demo_sqlite_url) -> None:
    backend = scripted("SELECT count(*) FROM orders")
    a = Assistant(connections=ConnectionManager())
    for i in range(CONTEXT_TURNS + 2):
        a.ask(f"question number {i}?", demo_sqlite_url, follow_up=i > 0)
    last = a.ask("and the next?", demo_sqlite_url, follow_up=True)
    shown = _content(backend.calls[-1])
    kept = [i for i in range(CONTEXT_TURNS + 2) if f"question number {i}?" in shown]
    # the first (its prompt holds the schema) and the newest: CONTEXT_TURNS in all
    assert kept == [0, *range(CONTEXT_TURNS + 3 - CONTEXT_TURNS, CONTEXT_TURNS + 2)]
    assert last.context_turns == CONTEXT_TURNS and shown.count("CREATE TABLE orders") == 1
    assert last.turn == CONTEXT_TURNS + 3  # the thread goes on; only the prompt is bounded


def test_the_context_keeps_to_its_character_budget() -> None:
    talk = Conversation()
    for i in range(3):
        talk.turns.append(Turn(f"q{i}", "SELECT " + "x, " * 400 + "y FROM t", True))
    shown = talk.context(max_turns=3, max_chars=1500)
    # one turn is about 1,200 characters: the middle one is left out, the first is cut to what is left
    assert [t.question for t in shown] == ["q0", "q2"] and sum(t.chars() for t in shown) <= 1500
    cut = talk.context(max_turns=3, max_chars=100)
    assert [t.question for t in cut] == ["q0", "q2"] and cut[1].chars() <= 100 and cut[0].sql is None


# -- no earlier question ---------------------------------------------------------------------------------------------
def test_a_follow_up_with_no_earlier_question_is_one_clear_error(scripted, demo_sqlite_url) -> None:
    backend = scripted("SELECT 1")
    a = Assistant(connections=ConnectionManager())
    with pytest.raises(QuestionError, match="no earlier question"):
        a.ask("and only for 2024?", demo_sqlite_url, follow_up=True)
    assert not backend.calls and not a.history  # nothing was asked nor recorded
    assert Conversations().context("x", None) == []


def test_the_magic_follows_up_by_default_and_new_starts_over(ip, cell, scripted, demo_sqlite_url,
                                                              monkeypatch) -> None:
    shown = []
    monkeypatch.setattr(ip.display_pub, "publish", lambda data, **kw: shown.append(data.get("text/plain", "")))
    backend = scripted(COUNTRIES, IN_2024, COUNTRIES)
    cell(f"%%nl2sql -c {demo_sqlite_url} --new --no-stats\nHow many orders were placed in each country?")
    frame = cell(f"%%nl2sql -c {demo_sqlite_url} --no-stats\nand only for 2024?")
    assert "How many orders were placed in each country?" in _content(backend.calls[-1])
    assert frame["n"].sum() < 300 and "↳ follow-up (turn 2); --new starts a new conversation" in shown
    cell(f"%%nl2sql -c {demo_sqlite_url} --new --no-stats\nHow many orders per country?")
    assert "and only for 2024?" not in _content(backend.calls[-1])
    history = cell("%nl2sql history")
    assert history["turn"].tolist()[-3:] == [1, 2, 1]


def test_the_magic_says_in_one_line_when_there_is_nothing_to_follow(ip, cell, scripted, demo_copy_url) -> None:
    scripted("SELECT 1")
    get_assistant().new_conversation(demo_copy_url)
    with pytest.raises(UsageError) as err:
        cell(f"%%nl2sql -c {demo_copy_url} --follow\nand only for 2024?")
    assert str(err.value) == NO_EARLIER_QUESTION and "\n" not in str(err.value)
    with pytest.raises(UsageError, match="give one of them"):
        cell(f"%%nl2sql -c {demo_copy_url} --follow --new\nand only for 2024?")


def test_the_panel_marks_follow_ups_and_starts_over(scripted, demo_sqlite_url) -> None:
    from jupyter_nl2sql.frontends.widget import Nl2SqlPanel

    backend = scripted(COUNTRIES, IN_2024, COUNTRIES)
    a = Assistant(connections=ConnectionManager())
    p = Nl2SqlPanel(demo_sqlite_url, assistant=a)
    try:
        for question in ("How many orders were placed in each country?", "and only for 2024?"):
            p.question.value = question
            p.sql.value = ""
            p.run_button.click()
            assert p.wait(30)
        labels = [label for label, _ in p.history.options]
        assert labels[0].startswith("↳ 2. and only for 2024?") and labels[0].endswith("· follow-up (turn 2)")
        assert not labels[1].startswith("↳")
        p.new_conversation_button.click()
        assert "New conversation" in p.status.value
        p.question.value = "How many orders per country?"
        p.sql.value = ""
        p.run_button.click()
        assert p.wait(30)
        assert "and only for 2024?" not in _content(backend.calls[-1])
        assert not p.history.options[0][0].startswith("↳")
    finally:
        p.close()


# -- the real engine: the schema's evaluated state survives the history --------------------------------------------
def test_a_follow_up_reuses_the_schema_state_on_the_tiny_model(tmp_path, monkeypatch, demo_sqlite_url) -> None:
    from jupyter_nl2sql.models import registry
    from jupyter_nl2sql.models.testing import make_tiny_random_gguf

    monkeypatch.setenv("NL2SQL_CACHE_DIR", str(tmp_path / "cache"))
    path = make_tiny_random_gguf(tmp_path / "tiny.gguf")
    registry.clear_backends()
    try:
        a = Assistant(str(path), backend="llama.cpp", device="cpu", max_new_tokens=8, repair_rounds=0,
                      connections=ConnectionManager())
        first = a.ask("How many orders were placed in each country?", demo_sqlite_url, generate_only=True)
        second = a.ask("and only for 2024?", demo_sqlite_url, generate_only=True, follow_up=True)
        (head,) = a._heads.values()
        assert first.prompt.startswith(head) and second.prompt.startswith(head)
        assert "How many orders were placed in each country?" in second.prompt[len(head):]
        assert second.stats.prefix in ("resident", "restored") and second.stats.tokens_reused > 0
    finally:
        registry.clear_backends()


# -- the follow-up set and its runner --------------------------------------------------------------------------------
def test_the_follow_up_set_is_well_formed() -> None:
    from benchmarks.followups import DEFAULT_DATA, FollowupBenchmark
    from jupyter_nl2sql.demo import demo_path

    conversations = json.loads(DEFAULT_DATA.read_text(encoding="utf-8"))["conversations"]
    assert len(conversations) >= 40 and {len(c["turns"]) for c in conversations} == {2, 3}
    db = sqlite3.connect(f"file:{demo_path()}?mode=ro", uri=True)
    for conv in conversations:  # every gold runs and finds something
        for turn in conv["turns"]:
            rows = db.execute(turn["gold"]).fetchall()
            assert rows and rows != [(None,)], (conv["id"], turn["question"])
    items = FollowupBenchmark().load(DEFAULT_DATA.parent, "demo")
    assert [it.payload[1] for it in items[:3]] == [1, 2, 3] and items[2].payload[2] == (items[0].question,
                                                                                         items[1].question)


@pytest.mark.parametrize("name", ["followups_tune.json", "followups_check.json"])
def test_the_spider_train_follow_up_sets_are_well_formed(name: str) -> None:
    """The tuning set and the check set: conversations on a Spider *train* database, every gold runs there."""
    from benchmarks.followups import DEFAULT_DATA
    from benchmarks.runner import default_data_dir

    doc = json.loads((DEFAULT_DATA.parent / name).read_text(encoding="utf-8"))
    path = default_data_dir() / "spider" / "database" / doc["database"] / f"{doc['database']}.sqlite"
    if not path.is_file():
        pytest.skip(f"Spider data not found: {path}")
    assert len(doc["conversations"]) >= 20 and {len(c["turns"]) for c in doc["conversations"]} == {2, 3}
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    for conv in doc["conversations"]:
        for turn in conv["turns"]:
            rows = db.execute(turn["gold"]).fetchall()
            assert rows and rows != [(None,)], (conv["id"], turn["question"])


def test_the_runner_asks_follow_ups_in_context_and_replays_a_resumed_conversation(scripted,
                                                                                  demo_sqlite_url) -> None:
    from benchmarks.followups import ConversationPredictor, FollowupBenchmark

    backend = scripted(COUNTRIES)
    items = FollowupBenchmark().load(None, "demo")  # type: ignore[arg-type]
    predictor = ConversationPredictor(None, {}, history=True)
    predictor.predict_item(items[1], demo_sqlite_url)  # turn 2 first (a resumed run): turn 1 is asked again
    assert len(backend.calls) == 2 and items[0].question in _content(backend.calls[1])
    predictor.predict_item(items[2], demo_sqlite_url)  # turn 3 right after: no replay
    assert len(backend.calls) == 3 and items[1].question in _content(backend.calls[2])
    alone = ConversationPredictor(None, {}, history=False)
    alone.predict_item(items[2], demo_sqlite_url)
    assert len(backend.calls) == 4 and items[1].question not in _content(backend.calls[3])


def test_a_refused_follow_up_is_recorded_and_the_next_one_goes_on(scripted, demo_sqlite_url) -> None:
    backend = scripted(COUNTRIES, IN_2024)
    a = Assistant(connections=ConnectionManager())
    a.ask("How many orders were placed in each country?", demo_sqlite_url)
    refused = a.ask("and how many unicorns are in the zoo table?", demo_sqlite_url, follow_up=True)
    assert refused.error_kind == "MissingFromSchema" and refused.turn == 2 and len(backend.calls) == 1
    a.ask("and only for 2024?", demo_sqlite_url, follow_up=True)
    last = backend.calls[-1]
    assert last[:len(backend.calls[0])] == backend.calls[0] and NO_QUERY in _content(last)
    assert "-- Follow-up question: and how many unicorns are in the zoo table?" in _content(last)
