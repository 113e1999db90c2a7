"""What every cache shares: keys, hit counting (in one place), the protocol of a reply store, and how a setting
names a Redis cache (``redis://host:6379/0#ttl=60&namespace=team-a``)."""

from __future__ import annotations

import hashlib
import json
import threading
import urllib.parse
from typing import Any, Protocol, runtime_checkable

from ..errors import ConfigError

REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


def cache_key(*parts: Any) -> str:
    """sha256 over the JSON of ``parts``."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def is_redis_setting(setting: Any) -> bool:
    """Whether a setting names a Redis server (``redis://``, ``rediss://``, ``unix://``)."""
    return isinstance(setting, str) and setting.strip().lower().startswith(REDIS_SCHEMES)


@runtime_checkable
class ReplyCache(Protocol):
    """Model replies by key: memory and disk (:class:`~jupyter_nl2sql.caches.generation.GenerationCache`) or Redis
    (:class:`~jupyter_nl2sql.caches.redis_store.RedisGenerationCache`).  ``persist=False``: this process only."""

    hits: int
    misses: int

    def get(self, key: str, *, persist: bool = True) -> dict | None: ...

    def put(self, key: str, value: dict, *, persist: bool = True) -> None: ...

    def clear(self) -> None: ...


class Counted:
    """Hit and miss counters of a cache (thread-safe); the only place lookups are counted."""

    def _init_counts(self) -> None:
        self._count_lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def _counted(self, value: Any) -> Any:
        """Count a lookup that found ``value`` (None: a miss) and return it."""
        with self._count_lock:
            if value is None:
                self.misses += 1
            else:
                self.hits += 1
        return value

    def _reset_counts(self) -> None:
        with self._count_lock:
            self.hits = self.misses = 0

    @property
    def hit_rate(self) -> float | None:
        """Hits over lookups, None before the first lookup."""
        total = self.hits + self.misses
        return self.hits / total if total else None


def parse_setting(setting: str, what: str, allowed: tuple[str, ...]) -> tuple[str, dict[str, str]]:
    """``(url, options)`` of ``redis://host:6379/0#ttl=60&namespace=x``; unknown options are a ConfigError.

    >>> parse_setting("redis://h:6379/0#ttl=60", "cache", ("ttl",))
    ('redis://h:6379/0', {'ttl': '60'})
    """
    url, _, fragment = str(setting).strip().partition("#")
    options = dict(urllib.parse.parse_qsl(fragment, keep_blank_values=True))
    unknown = set(options) - set(allowed)
    if unknown:
        raise ConfigError(f"unknown {what} option(s) {', '.join(sorted(unknown))}: use "
                          f"{', '.join(allowed[:-1])} or {allowed[-1]} after '#'")
    return url, options


def seconds(options: dict[str, str], what: str, **defaults: float | None) -> list[float | None]:
    """The options named in ``defaults`` as seconds (their default when absent)."""
    try:
        return [float(options[k]) if options.get(k) else d for k, d in defaults.items()]
    except ValueError:
        raise ConfigError(f"{' and '.join(defaults)} of the {what} are seconds, not "
                          f"{[options.get(k) for k in defaults]!r}") from None
