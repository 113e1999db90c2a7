"""Model backends: resolve the ``model`` setting to files, load them once per process, generate SQL.

>>> from jupyter_nl2sql.models import get_backend
>>> backend, load_seconds = get_backend()          # doctest: +SKIP
>>> backend.generate([{"role": "user", "content": "SQL for: how many users?"}]).text   # doctest: +SKIP

Importing this package is cheap: torch and transformers (or a llama.cpp engine) are imported only when a model is
loaded.  Three backends: ik_llama.cpp and llama.cpp (a GGUF on the CPU, through the prebuilt ``ik-llama-cpp-python``
and ``xllamacpp`` wheels; ik_llama.cpp is the default there) and transformers (everything else); see
:mod:`jupyter_nl2sql.models.registry`.
"""

from __future__ import annotations

from .base import Backend, Generation, Message, accepts_cancel
from .device import Hardware, choose_device_dtype
from .known import DEFAULT_MODEL, KNOWN_MODELS, KnownModel, lookup_known
from .registry import BACKENDS, DeferredBackend, choose_backend, clear_backends, defer_backend, get_backend, \
    llama_cpp_available, loaded_backends, normalize_backend, Preload, preload
from .resolve import ResolvedModel, resolve_model

__all__ = [
    "Backend", "Generation", "Message", "DEFAULT_MODEL", "KNOWN_MODELS", "KnownModel", "lookup_known",
    "get_backend", "defer_backend", "DeferredBackend", "clear_backends", "loaded_backends", "resolve_model",
    "ResolvedModel", "Hardware",
    "choose_device_dtype", "accepts_cancel", "BACKENDS", "choose_backend", "normalize_backend",
    "llama_cpp_available", "Preload", "preload",
]
