"""Caches: model replies keyed by everything that determines them.

:class:`GenerationCache` maps ``(model identity, exact prompt, decoding settings)`` to the model's reply, in
memory (LRU) and optionally on disk (one JSON file per key under the user cache directory), so a repeated
question costs no model time, also after a kernel restart.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any


def cache_key(*parts: Any) -> str:
    """sha256 over the JSON of ``parts``."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


class GenerationCache:
    """LRU memory cache with an optional on-disk store; thread-safe; counts hits and misses."""

    def __init__(self, max_items: int = 512, directory: str | os.PathLike | None = None) -> None:
        self.max_items = max_items
        self.directory = Path(directory) if directory else None
        self._items: OrderedDict[str, dict] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def _path(self, key: str) -> Path | None:
        return self.directory / key[:2] / f"{key}.json" if self.directory else None

    def get(self, key: str) -> dict | None:
        """The stored value for ``key``, or None."""
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
        path = self._path(key)
        if value is None and path is not None and path.is_file():
            try:
                value = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                value = None
            if value is not None:
                self._remember(key, value)
        with self._lock:
            if value is None:
                self.misses += 1
            else:
                self.hits += 1
        return value

    def put(self, key: str, value: dict) -> None:
        """Store ``value`` (a JSON-able dict) under ``key``."""
        self._remember(key, value)
        path = self._path(key)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(value), encoding="utf-8")
            os.replace(tmp, path)

    def _remember(self, key: str, value: dict) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.max_items:
                self._items.popitem(last=False)

    def clear(self) -> None:
        """Forget everything in memory (the disk store stays)."""
        with self._lock:
            self._items.clear()
            self.hits = self.misses = 0

    @property
    def hit_rate(self) -> float | None:
        """Hits over lookups, None before the first lookup."""
        total = self.hits + self.misses
        return self.hits / total if total else None
