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

from .generation import GenerationCache, cache_key
from ..errors import ConfigError

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
                               self.what, str(exc).splitlines()[0] if str(exc) else type(exc).__name__,
                               self.retry_after)
            return default
        if self._warned:
            with self._lock:
                self._warned = False
            logger.info("%s: Redis is back", self.what)
        return result


class _Counted:
    """Hit and miss counters of a cache (thread-safe)."""

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

    def _counted_get(self, key: str, loads: Any) -> Any:
        """Read ``key`` from Redis (``self.client`` through ``self._guard``), decode it with ``loads`` (an entry that
        does not decode is a miss) and count the lookup."""
        raw = self._guard.call(self.client.get, key)
        try:
            value = None if raw is None else loads(raw)
        except (ValueError, KeyError, TypeError):
            value = None
        return self._counted(value)

    def _reset_counts(self) -> None:
        with self._count_lock:
            self.hits = self.misses = 0

    @property
    def hit_rate(self) -> float | None:
        """Hits over lookups, None before the first lookup."""
        total = self.hits + self.misses
        return self.hits / total if total else None


def _parse_setting(setting: str, what: str, allowed: tuple[str, ...]) -> tuple[str, dict[str, str]]:
    """``(url, options)`` of ``redis://host:6379/0#ttl=60&namespace=x``; unknown options are a ConfigError.

    >>> _parse_setting("redis://h:6379/0#ttl=60", "cache", ("ttl",))
    ('redis://h:6379/0', {'ttl': '60'})
    """
    import urllib.parse

    url, _, fragment = str(setting).strip().partition("#")
    options = dict(urllib.parse.parse_qsl(fragment, keep_blank_values=True))
    unknown = set(options) - set(allowed)
    if unknown:
        raise ConfigError(f"unknown {what} option(s) {', '.join(sorted(unknown))}: use "
                          f"{', '.join(allowed[:-1])} or {allowed[-1]} after '#'")
    return url, options


def _seconds(options: dict[str, str], what: str, **defaults: float | None) -> list[float | None]:
    """The options named in ``defaults`` as seconds (their default when absent)."""
    try:
        return [float(options[k]) if options.get(k) else d for k, d in defaults.items()]
    except ValueError:
        raise ConfigError(f"{' and '.join(defaults)} of the {what} are seconds, not "
                          f"{[options.get(k) for k in defaults]!r}") from None


class RedisGenerationCache(_Counted):
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

    @classmethod
    def from_setting(cls, setting: str) -> RedisGenerationCache:
        """The cache a setting names: a Redis URL with options after ``#``.

        ``redis://127.0.0.1:6379/0#ttl=86400&namespace=team-a&share=1`` (``share``: ``share_unversioned``).  This is
        what ``NL2SQL_GENERATION_CACHE=redis://...`` and ``Assistant(generation_cache="redis://...")`` build.
        """
        url, options = _parse_setting(setting, "Redis cache", ("ttl", "namespace", "share", "timeout"))
        ttl, timeout = _seconds(options, "Redis cache", ttl=None, timeout=0.5)
        share = options.get("share", "0").strip().lower() in ("1", "true", "yes", "on")
        return cls(url, namespace=options.get("namespace") or DEFAULT_NAMESPACE, ttl=ttl, timeout=timeout,
                   share_unversioned=share)

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
        value = None
        if self._shared(persist):
            raw = self._guard.call(self.client.get, self.key(key))
            if raw is not None:
                try:
                    value = json.loads(raw)
                except ValueError:
                    value = None
        else:
            value = self.local.get(key, persist=False)
        return self._counted(value)

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

    def purge(self) -> int:
        """Delete every shared entry of this namespace (for everyone); return how many were deleted."""
        return _purge(self.client, self.namespace, self._guard)

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
class ResultCache(_Counted):
    """Opt-in cache of query results, for dashboards and teams that ask the same thing of a slow database.

    The key is the connection's key (password-free URL; a digest when the URL carries a password), the schema
    fingerprint, the row cap and the exact SQL, so a schema change is a miss.  Entries expire after ``ttl`` seconds
    (default 300): data changes without the schema changing, so pick the staleness you accept.  Results larger than
    ``max_bytes`` are not stored.  Only read-only results belong here: :func:`cached_execute` never caches a write.
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
        self.setting: str | None = None
        """The setting this cache was built from (:meth:`from_setting`), if any."""

    @classmethod
    def from_setting(cls, setting: str) -> ResultCache:
        """The cache a setting names: ``redis://127.0.0.1:6379/0#ttl=60&namespace=team-a`` (TTL default 300 s).

        This is what ``Assistant(result_cache="redis://...")`` and ``%config Nl2SqlMagics.result_cache`` build.
        """
        url, options = _parse_setting(setting, "result cache", ("ttl", "namespace", "timeout"))
        ttl, timeout = _seconds(options, "result cache", ttl=300.0, timeout=0.5)
        cache = cls(url, ttl=ttl, timeout=timeout, namespace=options.get("namespace") or DEFAULT_RESULT_NAMESPACE)
        cache.setting = str(setting).strip()
        return cache

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

    def purge(self) -> int:
        """Delete every stored result of this namespace."""
        return _purge(self.client, self.namespace, self._guard)


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


def cached_execute(cache: ResultCache | None, connection: Any, sql: str, *, fingerprint: str,
                   row_cap: int = 1000, timeout: float | None = 30.0, allow_writes: bool = False,
                   cancel: threading.Event | None = None, stream: bool = False) -> Any:
    """:func:`jupyter_nl2sql.pipeline.execution.execute` through ``cache`` (None: straight through).

    Writes are never cached nor answered from the cache.  A cached result comes back as an
    :class:`~jupyter_nl2sql.pipeline.execution.ExecutionResult` whose ``execute_seconds`` is the Redis round trip and whose
    ``cached`` attribute is True.
    """
    from ..pipeline.execution import ExecutionResult, execute

    if cache is None or allow_writes:
        return execute(connection, sql, row_cap=row_cap, timeout=timeout, allow_writes=allow_writes, cancel=cancel,
                       stream=stream)
    t0 = time.perf_counter()
    hit = cache.get(connection.key, fingerprint, sql, row_cap)
    if hit is not None:
        result = ExecutionResult(hit["dataframe"], hit["truncated"], hit["rowcount"], time.perf_counter() - t0, 0.0)
        result.cached = True  # type: ignore[attr-defined]
        return result
    result = execute(connection, sql, row_cap=row_cap, timeout=timeout, allow_writes=False, cancel=cancel,
                     stream=stream)
    if result.dataframe is not None:
        cache.put(connection.key, fingerprint, sql, row_cap, result.dataframe, result.truncated, result.rowcount)
    result.cached = False  # type: ignore[attr-defined]
    return result


# -- introspected schemas ------------------------------------------------------------------------------------------
class RedisSchemaCache(_Counted):
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
        self.setting: str | None = None

    @classmethod
    def from_setting(cls, setting: str) -> RedisSchemaCache:
        """``redis://127.0.0.1:6379/0#ttl=600&namespace=team-a`` (what ``Assistant(schema_cache=...)`` builds)."""
        url, options = _parse_setting(setting, "schema cache", ("ttl", "namespace", "timeout"))
        ttl, timeout = _seconds(options, "schema cache", ttl=600.0, timeout=0.5)
        cache = cls(url, ttl=ttl, timeout=timeout, namespace=options.get("namespace") or DEFAULT_SCHEMA_NAMESPACE)
        cache.setting = str(setting).strip()
        return cache

    def key(self, connection_key: str, sample_rows: int) -> str:
        return f"{self.namespace}:{cache_key(connection_key, int(sample_rows))}"

    def get(self, connection_key: str, sample_rows: int) -> Any:
        """The shared :class:`~jupyter_nl2sql.pipeline.schema.Schema`, or None."""
        return self._counted_get(self.key(connection_key, sample_rows), _loads_schema)

    def put(self, connection_key: str, sample_rows: int, schema: Any) -> bool:
        """Share ``schema`` for the TTL; False when Redis is unavailable."""
        return bool(self._guard.call(self.client.set, self.key(connection_key, sample_rows), _dumps_schema(schema),
                                     ex=max(1, round(self.ttl))))

    def purge(self) -> int:
        """Delete every shared schema of this namespace."""
        return _purge(self.client, self.namespace, self._guard)


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
