"""Caches shared by a team through Redis: model replies (:class:`RedisGenerationCache`) and, opt-in, query results
(:class:`ResultCache`).

:class:`RedisGenerationCache` has the interface of :class:`jupyter_nl2sql.caches.generation.GenerationCache` (``get``,
``put``, ``hits``, ``misses``, ``hit_rate``, ``clear``), so an :class:`~jupyter_nl2sql.pipeline.assistant.Assistant` can use
it in its place: one user's question answers the same question for everyone on the same model and schema.  Keys are
the pipeline's own (sha256 of model identity, exact prompt and decoding settings) under a namespace prefix
(``nl2sql:gen:``); values are JSON; ``ttl`` (seconds) lets entries expire.

What goes to Redis: replies of models with a content identity (a GGUF's sha256, a Hub revision: the pipeline's
``persist=True``).  Replies of models without one (a model server, whose model could change under the same name;
test doubles) stay in this process's memory unless ``share_unversioned=True``.

Redis is an optimisation, never a dependency of an answer: when it cannot be reached, lookups are misses and writes
are dropped, a warning is logged once, and Redis is left alone for ``retry_after`` seconds before it is tried again.

Needs the ``redis`` client (``pip install 'jupyter-nl2sql[serve]'``).  The URL: ``redis://127.0.0.1:6379/0``,
``rediss://`` for TLS, ``unix:///run/redis.sock``; ``$NL2SQL_REDIS_URL`` is the default.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from typing import Any

from ..errors import ConfigError, first_line
from .base import Counted, cache_key, parse_setting, seconds
from .generation import GenerationCache

logger = logging.getLogger("jupyter_nl2sql")

REDIS_URL_ENV = "NL2SQL_REDIS_URL"
DEFAULT_NAMESPACE = "nl2sql:gen"
DEFAULT_RESULT_NAMESPACE = "nl2sql:result"
DEFAULT_SCHEMA_NAMESPACE = "nl2sql:schema"


def _client(url_or_client: Any, timeout: float) -> Any:
    """A ``redis.Redis`` for a URL (short timeouts: a cache must not hang the pipeline), or the client given."""
    if url_or_client is not None and not isinstance(url_or_client, str):
        return url_or_client
    url = url_or_client or os.environ.get(REDIS_URL_ENV, "").strip()
    if not url:
        raise ConfigError(f"no Redis URL: pass one (redis://127.0.0.1:6379/0) or set ${REDIS_URL_ENV}")
    try:
        import redis
    except ImportError:
        raise ConfigError("the Redis cache needs the redis client: pip install 'jupyter-nl2sql[serve]'") from None
    try:
        return redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout,
                                    health_check_interval=30)
    except ValueError as exc:
        raise ConfigError(f"cannot use the Redis URL {_redact(url)!r}: {exc}") from None


def _redact(url: str) -> str:
    """A Redis URL with its password hidden.

    >>> _redact("redis://:s3cret@127.0.0.1:6379/0"), _redact("redis://127.0.0.1:6379")
    ('redis://:***@127.0.0.1:6379/0', 'redis://127.0.0.1:6379')
    """
    if "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in creds else url


class _Guard:
    """Runs Redis calls; after a failure, skips Redis for ``retry_after`` seconds (one warning per outage)."""

    def __init__(self, what: str, retry_after: float) -> None:
        self.what = what
        self.retry_after = retry_after
        self.down_until = 0.0
        self.failures = 0
        self._warned = False
        self._lock = threading.Lock()

    def available(self) -> bool:
        return time.monotonic() >= self.down_until

    def call(self, fn: Any, *args: Any, default: Any = None, **kwargs: Any) -> Any:
        import redis

        if not self.available():
            return default
        try:
            result = fn(*args, **kwargs)
        except (redis.RedisError, OSError) as exc:
            with self._lock:
                self.failures += 1
                self.down_until = time.monotonic() + self.retry_after
                warn = not self._warned
                self._warned = True
            if warn:
                logger.warning("%s: Redis unavailable (%s); going on without it, trying again every %g s",
                               self.what, first_line(exc),
                               self.retry_after)
            return default
        if self._warned:
            with self._lock:
                self._warned = False
            logger.info("%s: Redis is back", self.what)
        return result


class _RedisCache(Counted):
    """What the Redis caches share: one way to be built from a setting (:meth:`from_setting`)."""

    WHAT = "Redis cache"
    OPTIONS: tuple[str, ...] = ("ttl", "namespace", "timeout")
    DEFAULT_TTL: float | None = None
    DEFAULT_NAMESPACE = DEFAULT_NAMESPACE
    client: Any
    _guard: _Guard
    setting: str | None = None
    """The setting this cache was built from (:meth:`from_setting`), if any."""

    @classmethod
    def from_setting(cls, setting: str) -> Any:
        """The cache a setting names: a Redis URL with options after ``#``, e.g.
        ``redis://127.0.0.1:6379/0#ttl=60&namespace=team-a`` (``ttl`` and ``timeout`` in seconds).

        This is what the ``generation_cache``, ``result_cache`` and ``schema_cache`` settings build.
        """
        url, options = parse_setting(setting, cls.WHAT, cls.OPTIONS)
        ttl, timeout = seconds(options, cls.WHAT, ttl=cls.DEFAULT_TTL, timeout=0.5)
        extra = cls._options(options)
        cache = cls(url, ttl=ttl, timeout=timeout, namespace=options.get("namespace") or cls.DEFAULT_NAMESPACE,
                    **extra)
        cache.setting = str(setting).strip()
        return cache

    @classmethod
    def _options(cls, options: dict[str, str]) -> dict[str, Any]:
        """Constructor arguments from options other than ttl, namespace and timeout."""
        return {}

    def _counted_get(self, key: str, loads: Any) -> Any:
        """Read ``key`` from Redis (through the guard), decode it with ``loads`` (an entry that does not decode is a
        miss) and count the lookup."""
        return self._counted(self._read(key, loads))

    def _read(self, key: str, loads: Any) -> Any:
        """:meth:`_counted_get` without counting."""
        raw = self._guard.call(self.client.get, key)
        try:
            return None if raw is None else loads(raw)
        except (ValueError, KeyError, TypeError):
            return None

    def purge(self) -> int:
        """Delete every shared entry of this namespace (for everyone); return how many were deleted."""
        return _purge(self.client, self.namespace, self._guard)


class RedisGenerationCache(_RedisCache):
    """Model replies in Redis, shared by every process that uses the same server and namespace.

    ``url``: a Redis URL (default ``$NL2SQL_REDIS_URL``) or a ``redis.Redis`` client.  ``namespace``: key prefix
    (one per team or deployment).  ``ttl``: seconds an entry lives (None: until Redis evicts it; give the server a
    ``maxmemory`` and an ``allkeys-lru`` policy).  ``timeout``: seconds a Redis call may take.  ``local_items``:
    size of the in-process store for replies that are not shared (see the module docstring).
    """

    def __init__(self, url: Any = None, *, namespace: str = DEFAULT_NAMESPACE, ttl: float | None = None,
                 timeout: float = 0.5, retry_after: float = 30.0, share_unversioned: bool = False,
                 local_items: int = 512) -> None:
        if ttl is not None and ttl <= 0:
            raise ConfigError(f"the cache TTL must be a number of seconds > 0, not {ttl!r}")
        self.client = _client(url, timeout)
        self.namespace = namespace.rstrip(":")
        self.ttl = ttl
        self.share_unversioned = share_unversioned
        self.local = GenerationCache(max_items=local_items)
        self._guard = _Guard("generation cache", retry_after)
        self._init_counts()

    OPTIONS = ("ttl", "namespace", "share", "timeout")

    @classmethod
    def _options(cls, options: dict[str, str]) -> dict[str, Any]:
        """``share=1``: ``share_unversioned``."""
        return {"share_unversioned": options.get("share", "0").strip().lower() in ("1", "true", "yes", "on")}

    def __repr__(self) -> str:
        kwargs = self.client.connection_pool.connection_kwargs
        where = kwargs.get("path") or f"{kwargs.get('host')}:{kwargs.get('port')}/{kwargs.get('db', 0)}"
        return f"<RedisGenerationCache {where} {self.namespace}: ttl={self.ttl}>"

    def key(self, key: str) -> str:
        """The Redis key for a cache key: ``namespace:key``."""
        return f"{self.namespace}:{key}"

    def _shared(self, persist: bool) -> bool:
        return persist or self.share_unversioned

    def get(self, key: str, *, persist: bool = True) -> dict | None:
        """The stored value for ``key``, or None (a miss; also when Redis is unavailable)."""
        return self._counted(self.lookup(key, persist=persist))

    def lookup(self, key: str, *, persist: bool = True) -> dict | None:
        """:meth:`get` without counting."""
        if not self._shared(persist):
            return self.local.lookup(key, persist=False)
        return self._read(self.key(key), json.loads)

    def put(self, key: str, value: dict, *, persist: bool = True) -> None:
        """Store ``value`` (a JSON-able dict) under ``key``, with the TTL (dropped when Redis is unavailable)."""
        if not self._shared(persist):
            self.local.put(key, value, persist=False)
            return
        data = json.dumps(value)
        if self.ttl is not None:
            self._guard.call(self.client.set, self.key(key), data, ex=max(1, round(self.ttl)))
        else:
            self._guard.call(self.client.set, self.key(key), data)

    def clear(self) -> None:
        """Reset this process's counters and in-process store; the shared entries stay (see :meth:`purge`)."""
        self.local.clear()
        self._reset_counts()

    @property
    def available(self) -> bool:
        """False while Redis is being left alone after a failure."""
        return self._guard.available()

    def ping(self) -> bool:
        """Whether Redis answers now (for health checks)."""
        return bool(self._guard.call(self.client.ping, default=False))


def _purge(client: Any, namespace: str, guard: _Guard) -> int:
    def run() -> int:
        n = 0
        batch: list[bytes] = []
        for k in client.scan_iter(match=f"{namespace}:*", count=500):
            batch.append(k)
            if len(batch) >= 500:
                n += client.unlink(*batch)
                batch = []
        if batch:
            n += client.unlink(*batch)
        return n

    return int(guard.call(run, default=0))


# -- query results -------------------------------------------------------------------------------------------------
class ResultCache(_RedisCache):
    """Opt-in cache of query results, for dashboards and teams that ask the same thing of a slow database.

    The key is the connection's key (password-free URL; a digest when the URL carries a password), the schema
    fingerprint, the row cap and the exact SQL, so a schema change is a miss.  Entries expire after ``ttl`` seconds
    (default 300): data changes without the schema changing, so pick the staleness you accept.  Results larger than
    ``max_bytes`` are not stored.  Only read-only results belong here: the pipeline
(:meth:`~jupyter_nl2sql.pipeline.assistant.Assistant`) asks it for read-only queries only and never stores a write.
    """

    def __init__(self, url: Any = None, *, ttl: float = 300.0, namespace: str = DEFAULT_RESULT_NAMESPACE,
                 max_bytes: int = 8 * 1024 * 1024, timeout: float = 0.5, retry_after: float = 30.0) -> None:
        if not ttl or ttl <= 0:
            raise ConfigError(f"the result cache needs a TTL in seconds > 0, not {ttl!r}")
        self.client = _client(url, timeout)
        self.ttl = ttl
        self.namespace = namespace.rstrip(":")
        self.max_bytes = max_bytes
        self._guard = _Guard("result cache", retry_after)
        self._init_counts()

    WHAT = "result cache"
    DEFAULT_TTL = 300.0
    DEFAULT_NAMESPACE = DEFAULT_RESULT_NAMESPACE

    def key(self, connection_key: str, fingerprint: str, sql: str, row_cap: int) -> str:
        """The Redis key for one result."""
        return f"{self.namespace}:{cache_key(connection_key, fingerprint, int(row_cap), sql.strip())}"

    def get(self, connection_key: str, fingerprint: str, sql: str, row_cap: int) -> dict | None:
        """``{"dataframe", "truncated", "rowcount"}`` stored for this query, or None."""
        return self._counted_get(self.key(connection_key, fingerprint, sql, row_cap), _loads_result)

    def put(self, connection_key: str, fingerprint: str, sql: str, row_cap: int, dataframe: Any,
            truncated: bool, rowcount: int) -> bool:
        """Store a result; False when it was not stored (too large, not serialisable, Redis unavailable)."""
        try:
            data = _dumps_result(dataframe, truncated, rowcount)
        except (ValueError, TypeError, OverflowError) as exc:
            logger.debug("result cache: cannot serialise a result (%s)", exc)
            return False
        if len(data) > self.max_bytes:
            return False
        done = self._guard.call(self.client.set, self.key(connection_key, fingerprint, sql, row_cap), data,
                                ex=max(1, round(self.ttl)))
        return bool(done)


def _dumps_result(frame: Any, truncated: bool, rowcount: int) -> bytes:
    """The rows as JSON, values tagged where JSON has no type of its own (dates, times, decimals, bytes, UUIDs), so
    that :func:`_loads_result` rebuilds the frame exactly as :func:`~jupyter_nl2sql.pipeline.execution.execute` built it.
    Never pickle: a shared server would turn it into a way to run code in every kernel.  A value of another type
    raises TypeError (the result is then not cached)."""
    payload: dict[str, Any] = {"v": 2, "truncated": bool(truncated), "rowcount": int(rowcount)}
    if frame is not None:
        payload["columns"] = [str(c) for c in frame.columns]
        payload["rows"] = [[_tag(v) for v in row] for row in frame.itertuples(index=False, name=None)]
    return json.dumps(payload, allow_nan=True).encode()


def _tag(v: Any) -> Any:
    import base64
    import datetime as dt
    import decimal
    import uuid

    import numpy as np
    import pandas as pd

    if isinstance(v, np.generic):
        v = v.item()
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    if v is pd.NaT:
        return None
    if isinstance(v, pd.Timestamp):
        v = v.to_pydatetime()
    if isinstance(v, pd.Timedelta):
        v = v.to_pytimedelta()
    if isinstance(v, dt.datetime):
        return {"$dt": v.isoformat()}
    if isinstance(v, dt.date):
        return {"$d": v.isoformat()}
    if isinstance(v, dt.time):
        return {"$t": v.isoformat()}
    if isinstance(v, dt.timedelta):
        return {"$td": [v.days, v.seconds, v.microseconds]}
    if isinstance(v, decimal.Decimal):
        return {"$dec": str(v)}
    if isinstance(v, (bytes, bytearray, memoryview)):
        return {"$b": base64.b64encode(bytes(v)).decode("ascii")}
    if isinstance(v, uuid.UUID):
        return {"$uuid": str(v)}
    raise TypeError(f"cannot cache a {type(v).__name__} value")


def _untag(obj: dict) -> Any:
    import base64
    import datetime as dt
    import decimal
    import uuid

    if len(obj) == 1:
        (tag, value), = obj.items()
        if tag == "$dt":
            return dt.datetime.fromisoformat(value)
        if tag == "$d":
            return dt.date.fromisoformat(value)
        if tag == "$t":
            return dt.time.fromisoformat(value)
        if tag == "$td":
            return dt.timedelta(days=value[0], seconds=value[1], microseconds=value[2])
        if tag == "$dec":
            return decimal.Decimal(value)
        if tag == "$b":
            return base64.b64decode(value)
        if tag == "$uuid":
            return uuid.UUID(value)
    return obj


def _loads_result(raw: bytes) -> dict:
    import pandas as pd

    obj = json.loads(raw, object_hook=_untag)
    if obj.get("v") != 2:
        raise ValueError("unknown result format")
    frame = None
    if "columns" in obj:
        frame = pd.DataFrame.from_records([tuple(r) for r in obj["rows"]], columns=obj["columns"])
    return {"dataframe": frame, "truncated": obj["truncated"], "rowcount": obj["rowcount"]}


# -- introspected schemas ------------------------------------------------------------------------------------------
class RedisSchemaCache(_RedisCache):
    """Introspected schemas shared through Redis: a team's kernels, and a restarted one, skip reading a big
    database's catalogue (and its sample rows) again.

    The key is the connection's key (password-free URL, or a digest of it) and the number of sample rows.  Entries
    expire after ``ttl`` seconds (default 600): a schema change is seen within the TTL, or at once by whoever asks
    for a refresh (``%nl2sql connect ... --refresh``/``SchemaCache.get(refresh=True)``), which overwrites the shared
    entry.  An entry whose stored fingerprint does not match its content is ignored.  Values are JSON (never
    pickle); sample values of types JSON lacks are tagged like cached results, others kept as text.
    """

    def __init__(self, url: Any = None, *, ttl: float = 600.0, namespace: str = DEFAULT_SCHEMA_NAMESPACE,
                 timeout: float = 0.5, retry_after: float = 30.0) -> None:
        if not ttl or ttl <= 0:
            raise ConfigError(f"the schema cache needs a TTL in seconds > 0, not {ttl!r}")
        self.client = _client(url, timeout)
        self.ttl = ttl
        self.namespace = namespace.rstrip(":")
        self._guard = _Guard("schema cache", retry_after)
        self._init_counts()

    WHAT = "schema cache"
    DEFAULT_TTL = 600.0
    DEFAULT_NAMESPACE = DEFAULT_SCHEMA_NAMESPACE

    def key(self, connection_key: str, sample_rows: int) -> str:
        return f"{self.namespace}:{cache_key(connection_key, int(sample_rows))}"

    def get(self, connection_key: str, sample_rows: int) -> Any:
        """The shared :class:`~jupyter_nl2sql.pipeline.schema.Schema`, or None."""
        return self._counted_get(self.key(connection_key, sample_rows), _loads_schema)

    def put(self, connection_key: str, sample_rows: int, schema: Any) -> bool:
        """Share ``schema`` for the TTL; False when Redis is unavailable."""
        return bool(self._guard.call(self.client.set, self.key(connection_key, sample_rows), _dumps_schema(schema),
                                     ex=max(1, round(self.ttl))))


def _tag_or_text(v: Any) -> Any:
    try:
        return _tag(v)
    except TypeError:
        return str(v)


def _dumps_schema(schema: Any) -> bytes:
    from dataclasses import asdict

    tables = []
    for t in schema.tables:
        d = asdict(t)
        d["sample_rows"] = [[_tag_or_text(v) for v in row] for row in t.sample_rows]
        tables.append(d)
    return json.dumps({"v": 1, "dialect": schema.dialect, "fingerprint": schema.fingerprint, "tables": tables},
                      allow_nan=True).encode()


def _loads_schema(raw: bytes) -> Any:
    from ..pipeline.schema import Column, ForeignKey, Schema, Table

    obj = json.loads(raw, object_hook=_untag)
    if obj.get("v") != 1:
        raise ValueError("unknown schema format")
    tables = [Table(name=t["name"], columns=[Column(**c) for c in t["columns"]],
                    foreign_keys=[ForeignKey(**fk) for fk in t["foreign_keys"]],
                    sample_rows=[tuple(r) for r in t["sample_rows"]], comment=t["comment"], schema=t["schema"])
              for t in obj["tables"]]
    schema = Schema(dialect=obj["dialect"], tables=tables)
    if schema.fingerprint != obj["fingerprint"]:
        raise ValueError("schema entry does not match its fingerprint")
    return schema
