"""One loaded model per (files, device, dtype) per process, shared by every caller.

A kernel loads the model once; every later ``%%nl2sql`` cell, widget click or ``Assistant`` reuses it.  A lock
serialises loads, so two threads asking at once load once (and two different models never load side by side,
which would double the memory needed).
"""

from __future__ import annotations

import gc
import os
import threading
import time
from typing import Any

from .base import Backend
from .device import choose_device_dtype
from .known import DEFAULT_MODEL
from .resolve import resolve_model

_LOCK = threading.RLock()
_BY_REQUEST: dict[tuple[str, str, str], Backend] = {}
_BY_FILES: dict[tuple[str, str, str], Backend] = {}


def _request_key(model: Any, device: Any, dtype: Any) -> tuple[str, str, str]:
    """The settings as given, normalised just enough that repeated identical calls hit the cache."""
    name = (os.fspath(model).strip() if model is not None else "") or DEFAULT_MODEL
    return name, str(device or "auto").strip().lower(), str(dtype or "auto").strip().lower()


def get_backend(model: Any = None, device: Any = None, dtype: Any = None, progress: bool = True
                ) -> tuple[Backend, float | None]:
    """The backend for ``model`` on ``device`` in ``dtype``, loading it on first use.

    ``model``: None (the default model), a Hub id or known alias, a local folder, or a ``.gguf`` file.
    ``device``/``dtype``: None or ``"auto"`` to choose automatically, else e.g. ``"cpu"``, ``"cuda:0"``,
    ``"bfloat16"``.  Returns ``(backend, load_seconds)`` where ``load_seconds`` is None when the backend was
    already loaded.  Raises :class:`~jupyter_nl2sql.errors.ModelError` or
    :class:`~jupyter_nl2sql.errors.ConfigError` with a one-line message.
    """
    request = _request_key(model, device, dtype)
    with _LOCK:
        if request in _BY_REQUEST:
            return _BY_REQUEST[request], None
        t0 = time.perf_counter()
        chosen_device, chosen_dtype = choose_device_dtype(device, dtype)
        resolved = resolve_model(model, progress=progress)
        files = (str(resolved.path), chosen_device, chosen_dtype)
        backend = _BY_FILES.get(files)
        load_seconds = None
        if backend is None:
            from .transformers_backend import TransformersBackend

            backend = TransformersBackend.load(resolved, chosen_device, chosen_dtype, progress=progress)
            _BY_FILES[files] = backend
            load_seconds = time.perf_counter() - t0
        _BY_REQUEST[request] = backend
        return backend, load_seconds


def loaded_backends() -> list[Backend]:
    """The backends loaded in this process, oldest first."""
    with _LOCK:
        return list(_BY_FILES.values())


def clear_backends() -> None:
    """Forget every loaded backend (tests; freeing memory).  Callers holding one keep it alive."""
    with _LOCK:
        had_any = bool(_BY_FILES)
        _BY_REQUEST.clear()
        _BY_FILES.clear()
    if had_any:
        gc.collect()
