"""``await``-able pipeline calls for servers and async notebooks: the pipeline runs in a thread pool, so the event
loop goes on serving other requests while a question is being answered.

>>> from jupyter_nl2sql.pipeline.aio import ask_async
>>> answer = await ask_async(assistant, "How many customers?", "demo")     # doctest: +SKIP

Cancelling the awaiting task (``task.cancel()``, a client that disconnects from an ASGI server, ``asyncio.timeout``)
sets the call's ``cancel`` event, so the model stops between tokens and the database statement is interrupted; the
worker thread is then free again.

Threads: a pool of its own (:func:`executor`), ``$NL2SQL_ASYNC_WORKERS`` threads (default
:data:`DEFAULT_WORKERS`), not the loop's default executor, so pipeline calls never starve ``loop.run_in_executor``
users and vice versa.  A local model runs one generation at a time whatever the number of threads (its backend holds
a lock); the other stages (schema, database, checks) and a model server (:mod:`jupyter_nl2sql.models.http_backend`,
which batches concurrent requests) do run concurrently.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import os
import threading
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import Any

WORKERS_ENV = "NL2SQL_ASYNC_WORKERS"
DEFAULT_WORKERS = 16

_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()


def executor() -> ThreadPoolExecutor:
    """The process-wide pool that runs pipeline calls (created on first use)."""
    global _executor
    with _executor_lock:
        if _executor is None:
            text = os.environ.get(WORKERS_ENV, "").strip()
            workers = int(text) if text.isdigit() and int(text) > 0 else DEFAULT_WORKERS
            _executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="nl2sql-async")
        return _executor


def shutdown_executor(wait: bool = True) -> None:
    """Stop the pool (a later call creates a new one)."""
    global _executor
    with _executor_lock:
        pool, _executor = _executor, None
    if pool is not None:
        pool.shutdown(wait=wait)


async def _run(fn: Any, *args: Any, cancel: threading.Event | None, pool: Executor | None, **kwargs: Any) -> Any:
    cancel = cancel if cancel is not None else threading.Event()
    loop = asyncio.get_running_loop()
    ctx = contextvars.copy_context()
    call = functools.partial(ctx.run, fn, *args, cancel=cancel, **kwargs)
    future = loop.run_in_executor(pool if pool is not None else executor(), call)
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        cancel.set()  # the pipeline stops at its next check; its outcome (Cancelled or an answer) is dropped
        future.add_done_callback(_consume)
        raise


def _consume(future: asyncio.Future) -> None:
    if not future.cancelled():
        future.exception()  # mark it retrieved: a Cancelled raised after the caller left is expected


async def ask_async(assistant: Any, question: str, connection: Any = None, *, cancel: threading.Event | None = None,
                    executor: Executor | None = None, **kwargs: Any) -> Any:
    """``await`` :meth:`~jupyter_nl2sql.pipeline.assistant.Assistant.ask` without blocking the event loop.

    Same arguments and result as ``assistant.ask``; ``cancel`` (optional) is passed through and also set when the
    awaiting task is cancelled.  ``executor``: run in this pool instead of :func:`executor`.
    """
    return await _run(assistant.ask, question, connection, cancel=cancel, pool=executor, **kwargs)


async def run_sql_async(assistant: Any, sql: str, connection: Any = None, *, cancel: threading.Event | None = None,
                        executor: Executor | None = None, **kwargs: Any) -> Any:
    """``await`` :meth:`~jupyter_nl2sql.pipeline.assistant.Assistant.run_sql` without blocking the event loop."""
    return await _run(assistant.run_sql, sql, connection, cancel=cancel, pool=executor, **kwargs)
