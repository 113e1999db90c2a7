"""PostgreSQL goes away and comes back: questions fail fast with one clear line, then work again.

Needs ``NL2SQL_TEST_PG_URL`` and ``NL2SQL_TEST_PG_CTL`` (a command prefix such as ``pg_ctlcluster 15 main``: the
test runs ``$NL2SQL_TEST_PG_CTL stop`` and ``... start``, so it stops the whole server for a few seconds).

One stop/start cycle checks, in order: a question whose query is running when the server stops fails with
``ConnectionFailed`` ("lost the connection"; the model is not asked to repair SQL that was fine); the next
question (by alias, by URL, through ``run_sql`` and through the cell magic) fails with ``ConnectionFailed`` in
well under ten seconds, one line, no password, no traceback, nothing logged; after the restart the very next
question works on every route (the pool's pre-ping replaces the dead sessions) and nothing is left checked out or
idle in a transaction.  Run with ``-s`` to see the timings.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from IPython.core.error import UsageError

from jupyter_nl2sql.pipeline.assistant import Assistant
from jupyter_nl2sql.connections import ConnectionManager
from jupyter_nl2sql.errors import ConnectionFailed, Nl2SqlError

pytestmark = pytest.mark.postgres

QUESTION = "How many customers are there (restart test)?"
COUNT_SQL = "SELECT count(*) AS n FROM customers"
SLOW_QUESTION = "How many combinations of four orders are there (restart test)?"
#: Runs for minutes unless stopped (8.1 billion rows to count).
SLOW_SQL = "SELECT count(*) AS n FROM orders a CROSS JOIN orders b CROSS JOIN orders c CROSS JOIN orders d"
MAX_FAIL_SECONDS = 10.0
ALIAS = "restart_shop"


def assert_clear(error: BaseException, password: str) -> None:
    """One line, no password, no chained traceback."""
    message = str(error)
    assert isinstance(error, Nl2SqlError), repr(error)
    assert message and "\n" not in message, message
    assert password not in message
    assert error.__cause__ is None and (error.__context__ is None or error.__suppress_context__), \
        "the error carries a chained driver traceback"


def timed(call: Callable[[], Any]) -> tuple[Any, float]:
    """``call()``'s result (or the Nl2SqlError it raised) and the seconds it took."""
    t0 = time.perf_counter()
    try:
        result: Any = call()
    except Nl2SqlError as error:
        result = error
    return result, time.perf_counter() - t0


class SlowQuestion(threading.Thread):
    """Asks SLOW_QUESTION in the background; ``outcome`` is the error it ended with."""

    def __init__(self, assistant: Assistant, url: str) -> None:
        super().__init__(daemon=True, name="slow-question")
        self.assistant, self.url = assistant, url
        self.outcome: BaseException | None = None
        self.ended_at: float | None = None

    def run(self) -> None:
        try:
            self.assistant.ask(SLOW_QUESTION, self.url)
        except BaseException as error:  # noqa: BLE001 - the test inspects whatever it was
            self.outcome = error
        self.ended_at = time.perf_counter()


def test_server_restart(pg_ctl: Callable[[str], float], restartable_pg_url: str, scripted: Any,
                        manager: ConnectionManager, probes: Any, cell: Callable[[str], Any],
                        caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]) -> None:
    scripted(COUNT_SQL)  # cached by both assistants (the test's and the magic's) during the warm-up
    password = sa.make_url(restartable_pg_url).password or "<no password>"
    assistant = Assistant(connections=manager, generation_cache=True)
    manager.resolve(restartable_pg_url, alias=ALIAS)
    routes: dict[str, Callable[[], Any]] = {
        "ask by alias": lambda: assistant.ask(QUESTION, ALIAS),
        "ask by URL": lambda: assistant.ask(QUESTION, restartable_pg_url),
        "run_sql": lambda: assistant.run_sql(COUNT_SQL, restartable_pg_url),
    }
    magic = f"%%nl2sql -c {restartable_pg_url} --no-stats\n{QUESTION}"
    for route in routes.values():
        assert route().dataframe["n"].iat[0] == 60
    assert cell(magic)["n"].iat[0] == 60
    capsys.readouterr()
    caplog.set_level(logging.WARNING)

    slow_model = scripted(SLOW_SQL)
    slow = SlowQuestion(assistant, restartable_pg_url)
    slow.start()
    time.sleep(0.5)
    down: dict[str, float] = {}
    stopped_at = time.perf_counter()
    stop_seconds = pg_ctl("stop")
    try:
        slow.join(MAX_FAIL_SECONDS)
        assert not slow.is_alive(), "the running query did not end when the server stopped"
        assert isinstance(slow.outcome, ConnectionFailed), repr(slow.outcome)
        assert "lost the connection" in str(slow.outcome)
        assert len(slow_model.calls) == 1, "the model was asked to repair SQL that failed for want of a server"
        assert_clear(slow.outcome, password)
        down["running question"] = (slow.ended_at or 0) - stopped_at
        for name, route in routes.items():
            error, down[name] = timed(route)
            assert isinstance(error, ConnectionFailed), f"{name}: {error!r}"
            assert_clear(error, password)
        with pytest.raises(UsageError) as usage:
            down["cell magic"] = -time.perf_counter()
            cell(magic)
        down["cell magic"] += time.perf_counter()
        assert_clear(ConnectionFailed(str(usage.value)), password)
    finally:
        start_seconds = pg_ctl("start")
        ready_seconds = probes.wait_for_postgres(restartable_pg_url)

    up: dict[str, float] = {}
    for name, route in routes.items():
        answer, up[name] = timed(route)
        assert not isinstance(answer, Nl2SqlError), f"{name} after the restart: {answer}"
        assert answer.dataframe["n"].iat[0] == 60
    answer, up["cell magic"] = timed(lambda: cell(magic))
    assert answer["n"].iat[0] == 60

    output = capsys.readouterr()
    with capsys.disabled():
        print(f"\nrestart: stop {stop_seconds:.2f} s, start {start_seconds:.2f} s, "
              f"ready after {ready_seconds:.2f} s more")
        print("restart: failing while down: " + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in down.items()))
        print("restart: first call after start: " + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in up.items()))
        print(f"restart: message: {slow.outcome} | {usage.value}")
    assert "Traceback" not in output.out + output.err
    assert [line for line in output.err.splitlines() if line.strip()] == [f"UsageError: {usage.value}"]
    # the one warning expected here is the role check (the test role owns its database, so it may write)
    assert not [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING
                and not r.getMessage().startswith("the PostgreSQL role 'nl2sql' may write")]
    assert all(seconds < MAX_FAIL_SECONDS for seconds in down.values()), down
    assert all(n == 0 for n in probes.checked_out(manager).values())
    assert set(probes.pg_session_states(restartable_pg_url)) <= {"idle"}
