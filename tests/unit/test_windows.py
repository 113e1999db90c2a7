"""Window aggregates over groups (pipeline/windows.py): refused by the checker, mended before any repair round.

The Assistant test uses a scripted backend (prepared replies): it checks the plumbing, not the model."""

from __future__ import annotations

import pytest

from jupyter_nl2sql import Assistant
from jupyter_nl2sql.errors import SQLCheckError
from jupyter_nl2sql.pipeline.sqlcheck import check_sql
from jupyter_nl2sql.pipeline.windows import nest_windows, ungrouped_windows

RUNNING = "SELECT m, SUM(a) AS total, SUM(a) OVER (ORDER BY m) AS so_far FROM t GROUP BY m"


@pytest.mark.parametrize("sql", [
    "SELECT m, SUM(SUM(a)) OVER (ORDER BY m) FROM t GROUP BY m",  # already over the groups' sums
    "SELECT m, SUM(m) OVER (ORDER BY m) FROM t GROUP BY m",  # over the grouped column
    "SELECT a, SUM(a) OVER (ORDER BY a) FROM t",  # no grouping: over rows, as written
    "SELECT m, COUNT(*) OVER () FROM t GROUP BY m",  # no column read
])
def test_windows_that_read_one_value_a_group(sql: str) -> None:
    assert ungrouped_windows(sql, "sqlite") == [] and nest_windows(sql, "sqlite") is None


def test_a_window_over_an_ungrouped_column_is_refused_and_nested() -> None:
    with pytest.raises(SQLCheckError, match="runs after GROUP BY"):
        check_sql(RUNNING)
    nested = nest_windows(RUNNING, "sqlite")
    assert nested == "SELECT m, SUM(a) AS total, SUM(SUM(a)) OVER (ORDER BY m) AS so_far FROM t GROUP BY m"
    check_sql(nested)


def test_an_average_is_not_guessed() -> None:
    sql = "SELECT m, AVG(a) OVER (ORDER BY m) FROM t GROUP BY m"  # the average of the sums, or of the rows?
    assert ungrouped_windows(sql, "sqlite") and nest_windows(sql, "sqlite") is None


def test_assistant_nests_a_running_total_without_another_model_call(scripted, demo_sqlite_url) -> None:
    backend = scripted("SELECT strftime('%Y', order_date) AS year, COUNT(*) AS orders, "
                       "COUNT(order_id) OVER (ORDER BY strftime('%Y', order_date)) AS so_far "
                       "FROM orders GROUP BY year",
                       "SELECT strftime('%Y', order_date) AS year, COUNT(*) AS orders FROM orders GROUP BY year")
    answer = Assistant(generation_cache=False, few_shot=0).ask("orders a year with a running count", demo_sqlite_url)
    # COUNT over the groups is not nested (a running count of rows or of groups?): the repair round is told
    assert answer.ok and len(backend.calls) == 2 and "runs after GROUP BY" in backend.calls[1][-1]["content"]

    backend = scripted("SELECT strftime('%Y', order_date) AS year, SUM(unit_price * quantity) AS revenue, "
                       "SUM(unit_price * quantity) OVER (ORDER BY strftime('%Y', order_date)) AS so_far "
                       "FROM order_items JOIN orders USING (order_id) GROUP BY year")
    answer = Assistant(generation_cache=False, few_shot=0).ask("revenue a year with a running total",
                                                               demo_sqlite_url)
    assert answer.ok and len(backend.calls) == 1
    frame = answer.dataframe
    assert list(frame["so_far"]) == pytest.approx(list(frame["revenue"].cumsum()))
    assert any("SUM(SUM(x)) OVER" in w for w in answer.warnings)
