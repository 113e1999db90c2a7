"""Background warm-up: when a connection is made, :meth:`Assistant.warm` runs in a daemon thread while the user
types, so the first question finds the model loaded and the schema part of its prompt evaluated.

One warm-up at a time per connection.  A new question cancels the warm-ups of *other* connections (they would
hold the model); the one of its own connection keeps going, since it is doing the work the question needs next.
Nothing raised in the background reaches the user's cell: it is logged, and :meth:`Warmer.pop_error` gives it as one
line for the next cell to show.  The process-wide :data:`warmer` is cancelled at interpreter exit (kernel shutdown).
"""

from __future__ import annotations

import atexit
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import Cancelled, first_line

logger = logging.getLogger("jupyter_nl2sql")

ProgressCallback = Callable[[str, Mapping[str, Any]], None]


@dataclass
class WarmJob:
    """One background warm-up: its thread, its cancel event, its last progress report and its outcome."""

    key: str
    cancel: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None
    stage: str | None = None
    info: Mapping[str, Any] = field(default_factory=dict)
    result: Any = None
    error: str | None = None

    def alive(self) -> bool:
        """Whether the warm-up is still running."""
        return self.thread is not None and self.thread.is_alive()


def connection_key(connection: Any) -> str:
    """The key a connection is warmed under: a Connection's own key, else the token as given."""
    return str(getattr(connection, "key", None) or getattr(connection, "display_url", None) or connection)


class Warmer:
    """Starts, tracks and cancels background warm-ups (see the module docstring)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: dict[str, WarmJob] = {}
        self._errors: list[str] = []

    def start(self, assistant: Any, connection: Any, *, namespace: Mapping[str, Any] | None = None,
              settings: Any = None, on_progress: ProgressCallback | None = None,
              on_done: Callable[[WarmJob], None] | None = None) -> WarmJob:
        """Warm ``connection`` in a daemon thread (or return the warm-up already running for it); ``on_done(job)``
        is called in that thread when it ends (its ``result`` or ``error`` set)."""
        key = connection_key(connection)
        with self._lock:
            job = self._jobs.get(key)
            if job is not None and job.alive():
                return job
            job = self._jobs[key] = WarmJob(key)

        def progress(stage: str, info: Mapping[str, Any]) -> None:
            job.stage, job.info = stage, dict(info)
            if on_progress is not None:
                on_progress(stage, info)

        def work() -> None:
            try:
                conn = assistant.connections.resolve(connection, namespace)  # a token: known by its Connection too
                with self._lock:
                    other = self._jobs.get(connection_key(conn))
                    if other is not None and other is not job and other.alive():
                        return  # already being warmed under another name
                    self._jobs[connection_key(conn)] = job
                job.result = assistant.warm(conn, namespace=namespace, cancel=job.cancel,
                                            on_progress=progress, settings=settings)
            except Cancelled:
                pass
            except Exception as exc:  # noqa: BLE001 - never raised into the user's cell: logged, shown once
                job.error = first_line(exc) or type(exc).__name__
                logger.warning("background warm-up of %s failed: %s", key, job.error)
                with self._lock:
                    self._errors.append(f"the background warm-up of {key} failed: {job.error}")
            finally:
                if on_done is not None:
                    try:
                        on_done(job)
                    except Exception as exc:  # noqa: BLE001 - a display callback must not kill the thread
                        logger.warning("after the warm-up of %s: %s", key, first_line(exc))

        job.thread = threading.Thread(target=work, daemon=True, name=f"nl2sql-warm-{key[:40]}")
        job.thread.start()
        return job

    def job(self, connection: Any) -> WarmJob | None:
        """The last warm-up of ``connection`` (running or finished), if any."""
        with self._lock:
            return self._jobs.get(connection_key(connection))

    def cancel(self, *, keep: Any = None) -> None:
        """Cancel the running warm-ups, except the one of ``keep`` (a connection) when given."""
        with self._lock:
            kept = self._jobs.get(connection_key(keep)) if keep is not None else None
            for job in self._jobs.values():
                if job is not kept and job.alive():
                    job.cancel.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for every warm-up to finish; True when none is running."""
        with self._lock:
            threads = [j.thread for j in self._jobs.values() if j.thread is not None]
        for thread in threads:
            thread.join(timeout)
        return not any(t.is_alive() for t in threads)

    def pop_error(self) -> str | None:
        """The oldest failure not shown yet, as one line (and forget every other: one line at most)."""
        with self._lock:
            errors, self._errors = self._errors, []
        return errors[0] if errors else None


#: The process-wide warmer of the magic and the panel.
warmer = Warmer()
atexit.register(warmer.cancel)
