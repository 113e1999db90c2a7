"""The pipeline's plumbing with a ScriptedBackend (prepared replies; no claims about a real model)."""

from __future__ import annotations

import sqlite3

import pytest
import sqlalchemy as sa

from jupyter_nl2sql.pipeline.assistant import Assistant
from jupyter_nl2sql.errors import ConfigError, QuestionError, SQLCheckError, WriteRefused


def _count(url: str, table: str) -> int:
    return sqlite3.connect(sa.make_url(url).database).execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def test_answer_has_dataframe_stats_and_provenance(scripted, demo_sqlite_url: str) -> None:
    scripted("```sql\nSELECT count(*) AS n FROM customers;\n```")
    ans = Assistant().ask("How many customers?", demo_sqlite_url)
    assert ans.ok and ans.dataframe["n"].tolist() == [60]
    assert ans.sql == "SELECT count(*) AS n FROM customers"
    for stage in ("schema", "prompt", "generate", "check", "execute", "fetch"):
        assert stage in ans.stats.stages
    assert ans.stats.rss_peak >= ans.stats.rss_end > 0
    assert ans.provenance["schema_fingerprint"] and ans.provenance["model_id"] == "scripted-test-backend"
    assert "total" in str(ans.stats) and "<table" in ans._repr_html_()


def test_repair_round_feeds_the_error_back(scripted, demo_sqlite_url: str) -> None:
    backend = scripted("SELECT nme FROM customers LIMIT 1", "SELECT name FROM customers ORDER BY name LIMIT 1")
    ans = Assistant().ask("First customer name?", demo_sqlite_url)
    assert ans.ok and ans.dataframe.columns.tolist() == ["name"]
    assert len(backend.calls) == 2 and "nme" in backend.calls[1][-1]["content"]
    assert any("repair" in w for w in ans.warnings)


def test_a_repair_that_drops_what_the_question_asked_is_told(scripted, demo_sqlite_url: str) -> None:
    scripted("SELECT count(*) FROM order_history WHERE status = 'cancelled'", "SELECT count(*) FROM orders")
    ans = Assistant().ask("How many orders were cancelled?", demo_sqlite_url)
    assert ans.ok and ans.sql == "SELECT count(*) FROM orders"  # shown, not refused: such a repair may be right
    assert any("no longer has the value 'cancelled'" in w for w in ans.warnings)
    assert ans.confidence.level == "low" and "'cancelled'" in str(ans.confidence)
    scripted("SELECT count(*) FROM order_history WHERE status = 'cancelled'",
             "SELECT count(*) FROM orders WHERE status = 'cancelled'")
    ans = Assistant().ask("How many orders were cancelled?", demo_sqlite_url)
    assert ans.ok and not any("no longer has" in w for w in ans.warnings)
    assert ans.confidence is None or ans.confidence.level != "low"


def test_a_mended_or_empty_answer_is_not_high_confidence(scripted, demo_sqlite_url: str) -> None:
    backend = scripted("SELECT count(*) AS n FROM customers")
    backend.scores = [-0.1]
    ans = Assistant().ask("How many customers?", demo_sqlite_url)
    assert ans.ok and ans.confidence.level == "high" and not ans.confidence.reason
    backend = scripted("SELECT nme FROM customers LIMIT 1", "SELECT name FROM customers ORDER BY name LIMIT 1")
    backend.scores = [-0.1]
    ans = Assistant().ask("First customer name?", demo_sqlite_url)
    assert ans.ok and ans.confidence.level == "medium" and "needed mending: first SQL failed" in str(ans.confidence)
    backend = scripted("SELECT name FROM customers WHERE city = 'Atlantis'")
    backend.scores = [-0.1]
    ans = Assistant(repair_empty=False).ask("Which customers live in Atlantis?", demo_sqlite_url)
    assert ans.ok and ans.confidence.level == "medium" and str(ans.confidence) == "the query found nothing"
    backend = scripted("SELECT name FROM customers")
    backend.scores = [-0.1]
    ans = Assistant(row_cap=5).ask("List every customer's name.", demo_sqlite_url)
    assert ans.ok and ans.truncated and ans.confidence.level == "high"  # a row cap says nothing against the query


def test_unfixable_sql_is_an_error_not_a_wrong_answer(scripted, demo_sqlite_url: str) -> None:
    scripted("SELECT * FROM spaceships")
    ans = Assistant(repair_rounds=1).ask("List the spaceships", demo_sqlite_url)
    assert not ans.ok and "spaceships" in ans.error and ans.dataframe is None


def test_model_written_write_is_refused_and_db_unchanged(scripted, demo_copy_url: str) -> None:
    scripted("DROP TABLE customers")
    ans = Assistant().ask("Remove the customers", demo_copy_url)
    assert not ans.ok and ans.dataframe is None
    assert _count(demo_copy_url, "customers") == 60


def test_generate_only_does_not_execute(scripted, demo_sqlite_url: str) -> None:
    scripted("SELECT name FROM products")
    ans = Assistant().ask("Products?", demo_sqlite_url, generate_only=True)
    assert ans.ok and ans.sql == "SELECT name FROM products" and ans.dataframe is None and not ans.executed


def test_generation_cache_makes_repeats_free(scripted, demo_sqlite_url: str) -> None:
    backend = scripted("SELECT count(*) FROM orders")
    a = Assistant()
    a.ask("How many orders?", demo_sqlite_url)
    again = a.ask("How many orders?", demo_sqlite_url)
    assert len(backend.calls) == 1 and again.stats.cache_hit
    assert a.cache.hits == 1


@pytest.mark.parametrize("question", ["", "   ", None, "x" * 5000])
def test_bad_questions(scripted, demo_sqlite_url: str, question) -> None:
    scripted("SELECT 1")
    with pytest.raises(QuestionError):
        Assistant().ask(question, demo_sqlite_url)


@pytest.mark.parametrize("kwargs", [{"row_cap": 0}, {"repair_rounds": -1}, {"max_new_tokens": "many"}])
def test_bad_configuration(kwargs) -> None:
    with pytest.raises(ConfigError):
        Assistant(**kwargs)


def test_run_sql_applies_the_same_layers(demo_copy_url: str) -> None:
    a = Assistant()
    assert a.run_sql("SELECT count(*) FROM products", demo_copy_url).dataframe.iat[0, 0] == 20
    with pytest.raises(WriteRefused):
        a.run_sql("DELETE FROM products", demo_copy_url)
    with pytest.raises(SQLCheckError):
        a.run_sql("SELECT 1; DROP TABLE products", demo_copy_url)
    assert _count(demo_copy_url, "products") == 20
    ans = a.run_sql("DELETE FROM order_items WHERE order_id = 1", demo_copy_url, allow_writes=True)
    assert ans.executed and _count(demo_copy_url, "order_items") < 750


def test_history_and_listeners_are_shared(scripted, demo_sqlite_url: str) -> None:
    scripted("SELECT 1 AS one")
    a, seen = Assistant(), []
    a.on_answer(seen.append)
    ans = a.ask("One?", demo_sqlite_url)
    assert list(a.history) == [ans] and seen == [ans]


def test_one_renderer_for_every_front_end(scripted, demo_sqlite_url: str) -> None:
    """Answer's HTML and text, the magic's outputs and the panel's warnings are the pieces of frontends/render.py."""
    from jupyter_nl2sql.frontends import render

    scripted("SELECT nme FROM customers", "SELECT name FROM customers WHERE customer_id < 3")
    ans = Assistant(generation_cache=False, repair_rounds=1).ask("Two names?", demo_sqlite_url)
    assert ans.warnings
    page = ans._repr_html_()
    assert render.sql_html(ans.sql) in page and render.warnings_html(ans.warnings) in page
    assert render.warning_html(ans.warnings[0]) == (
        f"<div class='nl2sql-warning' style='color:#a60'>⚠ {render.escape(ans.warnings[0])}</div>")
    text = str(ans)
    assert text.startswith(ans.sql) and render.warning_text(ans.warnings[0]) in text and str(ans.stats) in text
    assert render.answer_text(ans, show_sql=False, show_stats=False).startswith(render.table_text(ans.dataframe))
