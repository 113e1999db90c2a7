"""Model backends: resolve the ``model`` setting to files, load them once per process, generate SQL.

>>> from jupyter_nl2sql.models import get_backend
>>> backend, load_seconds = get_backend()          # doctest: +SKIP
>>> backend.generate([{"role": "user", "content": "SQL for: how many users?"}]).text   # doctest: +SKIP

Importing this package is cheap: torch and transformers are imported only when a model is loaded.
"""

from __future__ import annotations

from .base import Backend, Generation, Message
from .device import Hardware, choose_device_dtype
from .known import DEFAULT_MODEL, KNOWN_MODELS, KnownModel, lookup_known
from .registry import clear_backends, get_backend, loaded_backends
from .resolve import ResolvedModel, resolve_model

__all__ = [
    "Backend", "Generation", "Message", "DEFAULT_MODEL", "KNOWN_MODELS", "KnownModel", "lookup_known",
    "get_backend", "clear_backends", "loaded_backends", "resolve_model", "ResolvedModel", "Hardware",
    "choose_device_dtype",
]
