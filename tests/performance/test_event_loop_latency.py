"""How late the event loop wakes up while ten ``ask_async`` calls run (pytest-benchmark; target ≤ 100 ms).

The model is a stand-in that sleeps 50 ms per reply without holding the GIL, as a real backend's native code
does; a ticker on the loop asks to wake every 10 ms and notes how late each wake-up is.  The largest lateness over
the ten concurrent asks is the figure, recorded in the benchmark's ``extra_info`` (``tests/unit/test_async.py``
checks that the loop runs at all; this measures how well).  What the test asserts is the median wake-up: an ask
that held the loop would make most wake-ups late, while one slow wake-up is the machine (a 2-core runner busy with
another process), not the code.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from jupyter_nl2sql.connections import ConnectionManager
from jupyter_nl2sql.models.testing import ScriptedBackend
from jupyter_nl2sql.pipeline import aio
from jupyter_nl2sql.pipeline.assistant import Assistant

TARGET_MS = 100.0


class SleepyBackend(ScriptedBackend):
    """Replies after 50 ms of releasing the GIL."""

    def generate(self, messages, max_new_tokens=256, **kwargs):
        time.sleep(0.05)
        return super().generate(messages, max_new_tokens)


@pytest.fixture()
def assistant(monkeypatch, demo_sqlite_url):
    backend = SleepyBackend(replies=["SELECT count(*) AS n FROM customers"])
    monkeypatch.setattr(Assistant, "backend", lambda self: (backend, None))
    a = Assistant(connections=ConnectionManager(), generation_cache=False)
    a.ask("How many customers?", demo_sqlite_url)  # schema and connection warm
    yield a
    a.connections.close_all()


def test_loop_lateness_during_ten_asks(benchmark, assistant, demo_sqlite_url) -> None:
    worst: list[float] = []
    typical: list[float] = []

    async def scenario() -> None:
        done = asyncio.Event()
        lateness = [0.0]

        async def tick() -> None:
            while not done.is_set():
                t0 = time.perf_counter()
                await asyncio.sleep(0.01)
                lateness.append(time.perf_counter() - t0 - 0.01)

        ticker = asyncio.create_task(tick())
        answers = await asyncio.gather(*(aio.ask_async(assistant, f"How many customers? {i}", demo_sqlite_url)
                                         for i in range(10)))
        done.set()
        await ticker
        assert all(a.ok for a in answers)
        worst.append(max(lateness))
        typical.append(sorted(lateness)[len(lateness) // 2])

    benchmark.pedantic(lambda: asyncio.run(scenario()), rounds=5, iterations=1)
    worst_ms, median_ms = max(worst) * 1000, max(typical) * 1000
    benchmark.extra_info.update({"target_ms": TARGET_MS, "worst_lateness_ms": worst_ms,
                                 "median_lateness_ms": median_ms})
    if benchmark.stats is not None:  # measured (not --benchmark-disable)
        assert median_ms <= TARGET_MS, (f"the event loop's median wake-up was {median_ms:.0f} ms late (target "
                                        f"{TARGET_MS:g} ms; worst {worst_ms:.0f} ms)")
