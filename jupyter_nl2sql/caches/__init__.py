"""Caches: model replies (:mod:`.generation`: memory and disk), the same and more shared through Redis
(:mod:`.redis_store`: replies, query results, introspected schemas), and what they share (:mod:`.base`).

:func:`open_cache` is the one constructor from a setting; :class:`CacheSet` keeps one cache per setting so that
questions asked with different settings (a cell's, the panel's) each find theirs without rebuilding it.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from ..paths import generations_dir
from .base import ReplyCache, is_redis_setting
from .generation import GenerationCache, generation_cache_mode, parse_cache_mode
from .redis_store import RedisGenerationCache, RedisSchemaCache, ResultCache

KINDS = ("generation", "result", "schema")


def open_cache(kind: str, setting: Any, directory: str | os.PathLike | None = None) -> Any:
    """The cache a setting names, or None when it is off.

    ``kind``: ``"generation"`` (model replies; ``setting`` None or True: ``$NL2SQL_GENERATION_CACHE``, default
    disk; False or ``"off"``: none; ``"memory"``, ``"disk"``; a Redis URL), ``"result"`` or ``"schema"`` (None: none;
    a Redis URL with options after ``#``).  ``directory``: where the disk store of replies lives (default
    :func:`jupyter_nl2sql.paths.generations_dir`); an explicit directory is used unless the mode is off.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
    if kind != "generation":
        if not setting:
            return None
        return (ResultCache if kind == "result" else RedisSchemaCache).from_setting(setting)
    if setting is False:
        return None
    text = os.environ.get("NL2SQL_GENERATION_CACHE", "").strip() if setting in (None, True) else str(setting).strip()
    if is_redis_setting(text):
        return RedisGenerationCache.from_setting(text)
    mode = generation_cache_mode() if setting in (None, True) else parse_cache_mode(text)
    if mode == "off":
        return None
    if directory is not None:
        return GenerationCache(directory=directory)
    return GenerationCache(directory=None if mode == "memory" else generations_dir())


def make_generation_cache(enabled: bool | str | None = True, directory: str | os.PathLike | None = None
                          ) -> ReplyCache | None:
    """``open_cache("generation", enabled, directory)``."""
    return open_cache("generation", enabled, directory)


class CacheSet:
    """One cache per ``(kind, setting, directory)``, built on first use (thread-safe)."""

    def __init__(self) -> None:
        self._caches: dict[tuple[str, Any, Any], Any] = {}
        self._lock = threading.Lock()

    def get(self, kind: str, setting: Any, directory: Any = None) -> Any:
        """:func:`open_cache` of these arguments, the same object every time."""
        key = (kind, setting, directory)
        with self._lock:
            if key not in self._caches:
                self._caches[key] = open_cache(kind, setting, directory)
            return self._caches[key]

    def put(self, kind: str, setting: Any, directory: Any, cache: Any) -> None:
        """Use ``cache`` for these arguments from now on."""
        with self._lock:
            self._caches[(kind, setting, directory)] = cache


__all__ = ["open_cache", "make_generation_cache", "CacheSet", "ReplyCache", "GenerationCache",
           "RedisGenerationCache", "ResultCache", "RedisSchemaCache"]
