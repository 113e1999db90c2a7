"""Caches: model replies keyed by everything that determines them.

:class:`GenerationCache` maps ``(model identity, exact prompt, decoding settings)`` to the model's reply, in
memory (LRU) and on disk (one JSON file per key), so a repeated question costs no model time, also after a kernel
restart.

Where replies are kept (the ``generation_cache`` setting, :func:`jupyter_nl2sql.caches.open_cache`):
``NL2SQL_GENERATION_CACHE`` = ``disk`` (the default: memory plus ``generations/`` under the cache root,
:func:`jupyter_nl2sql.paths.generations_dir`), ``memory`` (this process only), ``off``, or a Redis URL
(:mod:`jupyter_nl2sql.caches.redis_store`).  Only models with a
content identity (a GGUF's sha256 or a Hub revision: :func:`model_identity`) are written to disk, so a model
folder edited in place, or a test double, never gets a stale reply from an earlier process.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any, Mapping

from ..errors import Cancelled, ConfigError
from ..paths import generations_dir
from .base import Counted, cache_key  # noqa: F401  (cache_key: re-exported)

logger = logging.getLogger("jupyter_nl2sql")

GENERATION_CACHE_ENV = "NL2SQL_GENERATION_CACHE"
CACHE_MODES = ("off", "memory", "disk")
#: the model-provenance fields that decide what a model writes for a prompt under greedy decoding
IDENTITY_FIELDS = ("model_id", "sha256", "revision", "backend", "dtype", "device")


def model_identity(provenance: Mapping[str, Any]) -> dict[str, Any]:
    """What identifies a model's replies: its files' content (GGUF sha256 or Hub revision), the backend that runs
    it, dtype and device (path, thread counts, load times and library versions do not enter).

    >>> model_identity({"model_id": "m", "sha256": "ab", "backend": "llama.cpp", "dtype": "q4_k_m",
    ...                 "device": "cpu", "path": "/x", "n_threads": 2})["backend"]
    'llama.cpp'
    """
    ident = {k: provenance.get(k) for k in IDENTITY_FIELDS}
    if ident["device"] and str(ident["device"]).startswith("cuda"):
        ident["device"] = "cuda"  # cuda:0 and cuda:1 compute the same
    return ident


def persistent_identity(identity: Mapping[str, Any]) -> bool:
    """Whether replies of this model may be kept on disk: its files have a content hash or a revision."""
    return bool(identity.get("sha256") or identity.get("revision"))


def parse_cache_mode(value: str) -> str:
    """``"off"``, ``"memory"`` or ``"disk"`` from a setting (a few spellings accepted).

    >>> parse_cache_mode("Memory"), parse_cache_mode("0"), parse_cache_mode("true")
    ('memory', 'off', 'disk')
    """
    text = str(value).strip().lower()
    aliases = {"0": "off", "false": "off", "no": "off", "none": "off", "mem": "memory", "1": "disk", "true": "disk",
               "on": "disk", "yes": "disk"}
    text = aliases.get(text, text)
    if text not in CACHE_MODES:
        raise ConfigError(f"the generation cache must be off, memory or disk (or a redis:// URL), not {value!r} "
                          f"(setting or ${GENERATION_CACHE_ENV})")
    return text


def generation_cache_mode(default: str = "disk") -> str:
    """``$NL2SQL_GENERATION_CACHE`` (off, memory or disk), else ``default``."""
    return parse_cache_mode(os.environ.get(GENERATION_CACHE_ENV, "").strip() or default)


#: Where the disk store lives by default.
default_generation_dir = generations_dir


class InFlight:
    """Prompts being generated right now, so that concurrent callers with the same prompt wait for one reply.

    With a generation cache, a hundred users asking the same new question at once would otherwise all miss the
    cache and all generate; with this, the first generates and the others wait, then read its reply from the cache
    (a cache hit).  The caller that :meth:`claim` returned True to must :meth:`release` the key when done (also on
    failure: the waiters then generate themselves).
    """

    POLL_SECONDS = 0.05

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._keys: dict[str, threading.Event] = {}

    def claim(self, key: str, cancel: threading.Event | None = None) -> bool:
        """True: the caller generates ``key``; False: another caller did meanwhile (look in the cache again).

        Raises :class:`~jupyter_nl2sql.errors.Cancelled` when ``cancel`` is set while waiting.
        """
        with self._lock:
            done = self._keys.get(key)
            if done is None:
                self._keys[key] = threading.Event()
                return True
        while not done.wait(self.POLL_SECONDS):
            if cancel is not None and cancel.is_set():
                raise Cancelled("cancelled")
        return False

    def release(self, key: str) -> None:
        """The claimed generation of ``key`` is over (its reply, if any, is in the cache)."""
        with self._lock:
            done = self._keys.pop(key, None)
        if done is not None:
            done.set()

    def __len__(self) -> int:
        with self._lock:
            return len(self._keys)


class GenerationCache(Counted):
    """LRU memory cache with an optional on-disk store; thread-safe; counts hits and misses.

    The disk store holds at most ``max_disk_items`` files (the least recently written go first).  A disk that
    cannot be written only costs the persistence: a warning once, and the cache goes on in memory.
    """

    def __init__(self, max_items: int = 512, directory: str | os.PathLike | None = None,
                 max_disk_items: int = 20_000) -> None:
        self.max_items = max_items
        self.directory = Path(directory).expanduser() if directory else None
        self.max_disk_items = max_disk_items
        self._items: OrderedDict[str, dict] = OrderedDict()
        self._lock = threading.Lock()
        self._puts = 0
        self._init_counts()

    def _path(self, key: str) -> Path | None:
        return self.directory / key[:2] / f"{key}.json" if self.directory else None

    def get(self, key: str, *, persist: bool = True) -> dict | None:
        """The stored value for ``key``, or None (``persist=False``: memory only); the lookup is counted."""
        return self._counted(self.lookup(key, persist=persist))

    def lookup(self, key: str, *, persist: bool = True) -> dict | None:
        """:meth:`get` without counting (for a cache that keeps its own count in front of this one)."""
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
        path = self._path(key) if persist else None
        if value is None and path is not None and path.is_file():
            try:
                value = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                value = None
            if value is not None:
                self._remember(key, value)
        return value

    def put(self, key: str, value: dict, *, persist: bool = True) -> None:
        """Store ``value`` (a JSON-able dict) under ``key``; on disk too unless ``persist=False``."""
        self._remember(key, value)
        path = self._path(key) if persist else None
        if path is None:
            return
        tmp = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps(value), encoding="utf-8")
            os.replace(tmp, path)
        except OSError as exc:
            logger.warning("generation cache: cannot write %s (%s); keeping replies in memory only", path, exc)
            try:
                tmp.unlink(missing_ok=True)
            except OSError:
                pass
            self.directory = None
            return
        with self._lock:
            self._puts += 1
            prune = self._puts % 256 == 0
        if prune:
            self.prune()

    def prune(self) -> int:
        """Delete the oldest disk entries beyond ``max_disk_items``; return how many were deleted."""
        if self.directory is None or not self.directory.is_dir():
            return 0
        files = list(self.directory.glob("*/*.json"))
        extra = len(files) - self.max_disk_items
        if extra <= 0:
            return 0
        files.sort(key=lambda p: p.stat().st_mtime if p.exists() else 0)
        for p in files[:extra]:
            p.unlink(missing_ok=True)
        return extra

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
        self._reset_counts()
