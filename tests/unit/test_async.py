"""ask_async: the pipeline in a thread pool, concurrent calls, a responsive event loop, cancellation."""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time

import pytest

from jupyter_nl2sql.pipeline import aio
from jupyter_nl2sql.pipeline.assistant import Assistant
from jupyter_nl2sql.errors import Cancelled, QuestionError
from jupyter_nl2sql.models.testing import ScriptedBackend

SQL = "```sql\nSELECT count(*) AS n FROM customers\n```"


def install(monkeypatch, backend) -> None:
    monkeypatch.setattr(Assistant, "backend", lambda self: (backend, None))


def test_ten_concurrent_asks_run_at_once_and_the_loop_stays_responsive(monkeypatch, demo_sqlite_url):
    """All ten asks are inside the model together (a barrier of ten), and the event loop runs while they are: the
    model calls finish only after the loop has ticked five times with all ten inside.  (The loop's latency while
    asks run is measured in tests/performance/test_event_loop_latency.py.)"""
    backend = ScriptedBackend(replies=[SQL])
    gate: dict = {"barrier": None}  # then a Barrier(10): passes only when all ten are inside generate together
    inside: list[str] = []
    ticks: list[int] = []
    release = threading.Event()  # set by the event loop once it has ticked with all ten asks inside
    scripted_generate = backend.generate

    def generate(messages, max_new_tokens=256, **kw):
        if gate["barrier"] is not None:
            inside.append(threading.current_thread().name)
            gate["barrier"].wait()
            assert release.wait(20), "the event loop did not run while the asks were in the model"
        return scripted_generate(messages, max_new_tokens, **kw)

    backend.generate = generate
    install(monkeypatch, backend)
    assistant = Assistant(generation_cache="off", few_shot=0)
    assistant.ask("How many customers?", demo_sqlite_url)  # warm the schema cache and the connection
    gate["barrier"] = threading.Barrier(10, timeout=20)

    async def watch() -> None:
        while len(inside) < 10:
            await asyncio.sleep(0.005)
        for _ in range(5):
            await asyncio.sleep(0.01)
            ticks.append(len(inside))
        release.set()

    async def main():
        watcher = asyncio.create_task(watch())
        answers = await asyncio.gather(*(aio.ask_async(assistant, f"How many customers? ({i})", demo_sqlite_url)
                                         for i in range(10)))
        await watcher
        return answers

    answers = asyncio.run(main())
    assert [a.dataframe["n"].tolist() for a in answers] == [[60]] * 10
    assert len(set(inside)) == 10 and all(name.startswith("nl2sql-async") for name in inside)
    assert ticks == [10] * 5


def test_cancelling_the_task_cancels_the_pipeline(monkeypatch, demo_sqlite_url):
    backend = ScriptedBackend(replies=[SQL])
    entered, seen = threading.Event(), {}

    def generate(messages, max_new_tokens=256, cancel=None, **kw):
        seen["cancel"] = cancel
        entered.set()
        if cancel is not None and cancel.wait(10):
            seen["stopped"] = time.perf_counter()
            raise Cancelled("cancelled")
        raise AssertionError("never cancelled")

    backend.generate = generate
    install(monkeypatch, backend)
    assistant = Assistant(generation_cache="off", few_shot=0)

    async def main():
        task = asyncio.create_task(aio.ask_async(assistant, "How many customers?", demo_sqlite_url))
        while not entered.is_set():
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    deadline = time.monotonic() + 5
    while "stopped" not in seen and time.monotonic() < deadline:
        time.sleep(0.01)
    # the backend's wait (10 s) ended by the cancel event, not by running out: the pipeline was cancelled
    assert seen["cancel"].is_set() and "stopped" in seen


def test_a_given_cancel_event_is_passed_through(monkeypatch, demo_sqlite_url):
    backend = ScriptedBackend(replies=[SQL])
    install(monkeypatch, backend)
    cancel = threading.Event()
    cancel.set()
    seen = {}
    original = Assistant.ask

    def ask(self, question, connection=None, **kw):
        seen.update(kw)
        return original(self, question, connection, **kw)

    monkeypatch.setattr(Assistant, "ask", ask)
    asyncio.run(aio.ask_async(Assistant(generation_cache="off", few_shot=0), "How many customers?",
                              demo_sqlite_url, cancel=cancel, row_cap=5))
    assert seen["cancel"] is cancel and seen["row_cap"] == 5


def test_errors_propagate_and_run_sql_works(monkeypatch, demo_sqlite_url):
    install(monkeypatch, ScriptedBackend(replies=[SQL]))
    assistant = Assistant(generation_cache="off", few_shot=0)

    async def main():
        with pytest.raises(QuestionError):
            await aio.ask_async(assistant, "  ", demo_sqlite_url)
        return await aio.run_sql_async(assistant, "SELECT 7 AS seven", demo_sqlite_url)

    assert asyncio.run(main()).dataframe["seven"].tolist() == [7]


def test_context_variables_reach_the_worker_and_a_custom_pool(monkeypatch, demo_sqlite_url):
    from concurrent.futures import ThreadPoolExecutor

    request_id = contextvars.ContextVar("request_id", default=None)
    seen = {}
    backend = ScriptedBackend(replies=[SQL])
    scripted_generate = backend.generate

    def generate(messages, max_new_tokens=256, **kw):
        seen["request_id"], seen["thread"] = request_id.get(), threading.current_thread().name
        return scripted_generate(messages, max_new_tokens, **kw)

    backend.generate = generate
    install(monkeypatch, backend)
    pool = ThreadPoolExecutor(1, thread_name_prefix="mine")

    async def main():
        request_id.set("req-42")
        return await aio.ask_async(Assistant(generation_cache="off", few_shot=0), "How many customers?",
                                   demo_sqlite_url, executor=pool)

    assert asyncio.run(main()).ok
    assert seen == {"request_id": "req-42", "thread": seen["thread"]} and seen["thread"].startswith("mine")
    pool.shutdown()


def test_worker_count_from_the_environment(monkeypatch):
    aio.shutdown_executor()
    monkeypatch.setenv("NL2SQL_ASYNC_WORKERS", "3")
    try:
        assert aio.executor()._max_workers == 3
    finally:
        aio.shutdown_executor()
    monkeypatch.delenv("NL2SQL_ASYNC_WORKERS")
    assert aio.executor()._max_workers == aio.DEFAULT_WORKERS


def test_assistant_ask_async_method(monkeypatch, demo_sqlite_url):
    install(monkeypatch, ScriptedBackend(replies=[SQL]))
    assistant = Assistant(generation_cache="off", few_shot=0)
    answer = asyncio.run(assistant.ask_async("How many customers?", demo_sqlite_url, row_cap=3))
    assert answer.dataframe["n"].tolist() == [60]
