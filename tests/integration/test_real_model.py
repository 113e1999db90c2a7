"""The real default model (Qwen2.5-Coder-1.5B-Instruct from the offline packages) through the magic, on the demo
database in SQLite and PostgreSQL: the returned DataFrames must be the right answers.

Each question's right answer is computed by a reference query written by hand; the model's result must equal it
as test-suite-sql-eval compares results (rows as a bag, or in order when the reference orders; columns in any
order).  These tests load the model once per session (marked ``model``).
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from benchmarks.scoring import results_equal

pytestmark = pytest.mark.model

# (question, reference SQL, ordered?)
QUESTIONS = [
    ("How many customers are there?", "SELECT count(*) FROM customers", False),
    ("How many orders have the status 'cancelled'?", "SELECT count(*) FROM orders WHERE status = 'cancelled'", False),
    ("List the names of all products in the 'Audio' category.",
     "SELECT name FROM products WHERE category = 'Audio'", False),
    ("How many customers are there in each country?",
     "SELECT country, count(*) FROM customers GROUP BY country", False),
    ("What is the name and unit price of the most expensive product?",
     "SELECT name, unit_price FROM products ORDER BY unit_price DESC LIMIT 1", False),
    ("What is the average salary of employees in each department? Show the department name.",
     "SELECT d.name, avg(e.salary) FROM employees e JOIN departments d ON d.department_id = e.department_id "
     "GROUP BY d.name", False),
]


@pytest.fixture(scope="module")
def warm_model():
    """Load the default model once (the first load in a fresh cache also joins and converts the GGUF)."""
    from jupyter_nl2sql.pipeline.assistant import get_assistant

    backend, load_seconds = get_assistant().backend()
    print(f"\nmodel {backend.model_id} on {backend.device} {backend.dtype}; load {load_seconds}")
    return backend


def _rows(df) -> list[tuple]:
    return [tuple(None if v != v else v for v in row) for row in df.itertuples(index=False, name=None)]


def _reference(url: str, sql: str) -> list[tuple]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as c:
            return [tuple(r) for r in c.exec_driver_sql(sql)]
    finally:
        engine.dispose()


def _ask_and_compare(cell, url: str, question: str, reference: str, ordered: bool) -> None:
    df = cell(f"%%nl2sql -c {url}\n{question}")
    expected = _reference(url, reference)
    got = _rows(df)
    assert results_equal(_float_rows(expected), _float_rows(got), ordered=ordered, float_digits=2), (
        f"{question}\nexpected {expected[:5]}\n     got {got[:5]}")


def _float_rows(rows: list[tuple]) -> list[tuple]:
    """Decimal (PostgreSQL AVG) and float compare as numbers."""
    from decimal import Decimal

    return [tuple(float(v) if isinstance(v, Decimal) else v for v in r) for r in rows]


@pytest.mark.parametrize("question, reference, ordered", QUESTIONS, ids=[q[0][:40] for q in QUESTIONS])
def test_sqlite_answers(warm_model, ip, cell, demo_sqlite_url, question, reference, ordered) -> None:
    _ask_and_compare(cell, demo_sqlite_url, question, reference, ordered)


@pytest.mark.postgres
@pytest.mark.parametrize("question, reference, ordered", QUESTIONS, ids=[q[0][:40] for q in QUESTIONS])
def test_postgres_answers(warm_model, ip, cell, demo_pg_url, question, reference, ordered) -> None:
    _ask_and_compare(cell, demo_pg_url, question, reference, ordered)


def test_question_about_missing_tables_is_a_clear_error(warm_model, ip, cell, demo_sqlite_url) -> None:
    from IPython.core.error import UsageError

    with pytest.raises(UsageError) as info:
        cell(f"%%nl2sql -c {demo_sqlite_url}\nList every spaceship in the spaceships table with its warp speed.")
    assert "\n" not in str(info.value)


def test_stats_report_real_generation(warm_model, demo_sqlite_url) -> None:
    from jupyter_nl2sql.pipeline.assistant import get_assistant

    ans = get_assistant().ask("How many products are there?", demo_sqlite_url)
    st = ans.stats
    assert ans.ok and ans.dataframe.iat[0, 0] == 20
    assert st.cache_hit or (st.tokens_in > 100 and st.tokens_out > 3 and st.tokens_per_second > 0)
    assert ans.provenance["sha256"] == "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
