"""RedisGenerationCache and the query-result cache against a real redis-server on a loopback port.

The server is started by the fixture (tests/service/loopback_servers.py) in a temporary folder; without the
``redis-server`` binary (Debian: ``apt-get install -y redis-server``) the tests skip and say so.
"""

from __future__ import annotations

import doctest
import logging
import time

import pandas as pd
import pytest

redis = pytest.importorskip("redis", reason="the redis client is not installed (pip install redis)")

from jupyter_nl2sql.caches import redis_store as redis_cache  # noqa: E402
from jupyter_nl2sql.pipeline.assistant import Assistant  # noqa: E402
from jupyter_nl2sql.caches.generation import GenerationCache  # noqa: E402
from jupyter_nl2sql.connections import ConnectionManager  # noqa: E402
from jupyter_nl2sql.errors import ConfigError  # noqa: E402
from jupyter_nl2sql.caches.redis_store import RedisGenerationCache, ResultCache  # noqa: E402


import loopback_servers as servers  # tests/service, put on sys.path by tests/conftest.py  # noqa: E402


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory):
    if servers.redis_server_binary() is None:
        pytest.skip("redis-server is not installed (Debian: apt-get install -y redis-server)")
    with servers.redis_server(tmp_path_factory.mktemp("redis")) as url:
        yield url


@pytest.fixture()
def raw(redis_url):
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    yield client
    client.close()


def test_doctests():
    result = doctest.testmod(redis_cache)
    assert result.attempted > 0 and result.failed == 0


def test_same_interface_as_the_generation_cache(redis_url, raw):
    """Both stores answer the same calls the same way: a miss, a put, a hit, the hit rate, a clear (which resets
    this process's counters; the shared Redis entries stay until ``purge``)."""
    memory, shared = GenerationCache(), RedisGenerationCache(redis_url, namespace="same-interface")
    for cache in (memory, shared):
        assert cache.get("k") is None and cache.hit_rate == 0.0
        cache.put("k", {"text": "SELECT 1", "tokens_out": 2})
        assert cache.get("k") == {"text": "SELECT 1", "tokens_out": 2}
        assert cache.hit_rate == 0.5, type(cache).__name__
        cache.clear()
        assert cache.hit_rate is None, type(cache).__name__
    assert memory.get("k") is None
    assert shared.get("k") == {"text": "SELECT 1", "tokens_out": 2}
    assert shared.purge() == 1 and shared.get("k") is None


def test_get_put_counts_and_namespace(redis_url, raw):
    cache = RedisGenerationCache(redis_url, namespace="team-a")
    assert cache.hit_rate is None
    assert cache.get("k1") is None
    cache.put("k1", {"text": "SELECT 1", "tokens_in": 3, "tokens_out": 2})
    assert cache.get("k1") == {"text": "SELECT 1", "tokens_in": 3, "tokens_out": 2}
    assert (cache.hits, cache.misses, cache.hit_rate) == (1, 1, 0.5)
    assert raw.keys("*") == [b"team-a:k1"] and raw.ttl("team-a:k1") == -1  # no TTL: kept until evicted
    assert RedisGenerationCache(redis_url, namespace="team-b").get("k1") is None  # namespaces do not mix
    cache.clear()  # this process's counters; the shared entry stays
    assert (cache.hits, cache.misses) == (0, 0) and cache.get("k1") is not None


def test_ttl_expires_entries(redis_url, raw):
    cache = RedisGenerationCache(redis_url, ttl=1)
    cache.put("short", {"text": "x"})
    assert 0 < raw.pttl(cache.key("short")) <= 1000
    time.sleep(1.2)
    assert cache.get("short") is None
    with pytest.raises(ConfigError):
        RedisGenerationCache(redis_url, ttl=0)


def test_purge_deletes_only_its_namespace(redis_url, raw):
    mine, theirs = RedisGenerationCache(redis_url, namespace="mine"), RedisGenerationCache(redis_url, namespace="x")
    for i in range(1200):
        mine.put(f"k{i}", {"text": str(i)})
    theirs.put("k0", {"text": "kept"})
    assert mine.purge() == 1200
    assert raw.dbsize() == 1 and theirs.get("k0") == {"text": "kept"}


def test_unversioned_replies_stay_local_unless_shared(redis_url, raw):
    cache = RedisGenerationCache(redis_url)
    cache.put("k", {"text": "local"}, persist=False)
    assert raw.dbsize() == 0 and cache.get("k", persist=False) == {"text": "local"}
    shared = RedisGenerationCache(redis_url, share_unversioned=True)
    shared.put("k", {"text": "shared"}, persist=False)
    assert raw.dbsize() == 1 and RedisGenerationCache(redis_url, share_unversioned=True).get(
        "k", persist=False) == {"text": "shared"}


def test_two_assistants_share_replies(redis_url, raw, scripted, demo_sqlite_url):
    backend = scripted("```sql\nSELECT count(*) AS n FROM customers\n```")
    first, second = Assistant(few_shot=0), Assistant(few_shot=0)
    for a in (first, second):  # what make_generation_cache("redis://...") would build
        a.cache = RedisGenerationCache(redis_url, share_unversioned=True)
    a1 = first.ask("How many customers?", demo_sqlite_url)
    a2 = second.ask("How many customers?", demo_sqlite_url)
    assert len(backend.calls) == 1 and a2.stats.cache_hit and not a1.stats.cache_hit
    assert a1.dataframe.equals(a2.dataframe)
    assert (second.cache.hits, second.cache.misses) == (1, 0)


def test_redis_down_is_a_miss_with_one_warning(caplog):
    caplog.set_level(logging.INFO, logger="jupyter_nl2sql")
    cache = RedisGenerationCache(f"redis://127.0.0.1:{servers.free_port()}/0", retry_after=60)
    t0 = time.perf_counter()
    for _ in range(20):
        cache.put("k", {"text": "x"})
        assert cache.get("k") is None
    assert time.perf_counter() - t0 < 2  # one failed connect, then Redis is left alone
    assert cache.misses == 20 and not cache.available and not cache.ping()
    assert len([r for r in caplog.records if "Redis unavailable" in r.getMessage()]) == 1


def test_redis_that_stops_and_comes_back(tmp_path, caplog, scripted, demo_sqlite_url):
    if servers.redis_server_binary() is None:
        pytest.skip("redis-server is not installed")
    scripted("```sql\nSELECT count(*) AS n FROM customers\n```")
    assistant = Assistant(few_shot=0)
    with servers.redis_server(tmp_path) as url:
        assistant.cache = RedisGenerationCache(url, share_unversioned=True, retry_after=0.2)
        assert assistant.ask("How many customers?", demo_sqlite_url).ok
    # the server is gone: answers still come, from the model
    ans = assistant.ask("How many customers?", demo_sqlite_url)
    assert ans.ok and not ans.stats.cache_hit
    assert "Redis unavailable" in caplog.text


def test_no_url_is_a_config_error(monkeypatch):
    monkeypatch.delenv("NL2SQL_REDIS_URL", raising=False)
    with pytest.raises(ConfigError, match="NL2SQL_REDIS_URL"):
        RedisGenerationCache()
    with pytest.raises(ConfigError):
        RedisGenerationCache("http://not-redis")


def test_from_setting_reads_options_after_the_hash(redis_url, raw):
    cache = RedisGenerationCache.from_setting(f"{redis_url}#ttl=60&namespace=team-z&share=1")
    assert (cache.ttl, cache.namespace, cache.share_unversioned) == (60.0, "team-z", True)
    cache.put("k", {"text": "x"}, persist=False)
    assert raw.keys("*") == [b"team-z:k"] and 0 < raw.ttl("team-z:k") <= 60
    assert "team-z" in repr(cache)
    for bad in ("#colour=red", "#ttl=soon"):
        with pytest.raises(ConfigError):
            RedisGenerationCache.from_setting(redis_url + bad)


def test_the_generation_cache_setting_selects_redis(redis_url, raw, monkeypatch):
    assistant = Assistant(generation_cache=f"{redis_url}#namespace=picked&ttl=30")
    assert isinstance(assistant.cache, RedisGenerationCache) and assistant.cache.namespace == "picked"
    monkeypatch.setenv("NL2SQL_GENERATION_CACHE", redis_url)
    assert isinstance(Assistant().cache, RedisGenerationCache)
    assert isinstance(Assistant(generation_cache="memory").cache, GenerationCache)


def test_url_from_the_environment(redis_url, raw, monkeypatch):
    monkeypatch.setenv("NL2SQL_REDIS_URL", redis_url)
    assert RedisGenerationCache().ping()


# -- query results ------------------------------------------------------------------------------------------------
SQL = ("SELECT c.name, c.signup_date, o.order_date, o.status, sum(i.quantity * i.unit_price) AS total, "
       "NULL AS missing FROM customers c JOIN orders o USING (customer_id) JOIN order_items i USING (order_id) "
       "GROUP BY o.order_id ORDER BY o.order_id")


@pytest.fixture()
def demo_conn(demo_sqlite_url):
    manager = ConnectionManager()
    yield manager.resolve(demo_sqlite_url)
    manager.close_all()


def test_result_serialisation_keeps_types_and_refuses_the_unknown():
    import datetime as dt
    import decimal
    import uuid

    rows = [(1, 2.5, "a", None, dt.date(2024, 1, 2), dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc),
             decimal.Decimal("1.10"), b"\x00\x01", uuid.uuid4(), dt.timedelta(hours=1), True, dt.time(12, 30)),
            (None, float("nan"), None, None, None, None, None, None, None, None, False, None)]
    frame = pd.DataFrame.from_records(rows, columns=list("abcdefghijkl"))
    back = redis_cache._loads_result(redis_cache._dumps_result(frame, True, 2))
    pd.testing.assert_frame_equal(frame, back["dataframe"])
    assert (back["truncated"], back["rowcount"]) == (True, 2)
    with pytest.raises(TypeError):
        redis_cache._dumps_result(pd.DataFrame({"j": [{"a": 1}]}), False, 1)


def _run_sql(cache, url, sql, **kwargs):
    """Run ``sql`` through the pipeline (``Assistant.run_sql``) with ``cache`` as its result cache."""
    assistant = Assistant(generation_cache=False, connections=ConnectionManager())
    assistant.results = cache
    try:
        return assistant.run_sql(sql, url, **kwargs)
    finally:
        assistant.connections.close_all()


def test_result_cache_round_trip(redis_url, raw, demo_sqlite_url):
    cache = ResultCache(redis_url, ttl=60)
    first = _run_sql(cache, demo_sqlite_url, SQL, row_cap=50)
    second = _run_sql(cache, demo_sqlite_url, SQL, row_cap=50)
    assert (first.stats.result_cache_hit, second.stats.result_cache_hit) == (False, True)
    pd.testing.assert_frame_equal(first.dataframe, second.dataframe)  # same values, same dtypes
    assert (second.truncated, second.rowcount) == (first.truncated, first.rowcount) == (True, 50)
    keys = raw.keys("nl2sql:result:*")
    assert len(keys) == 1 and 0 < raw.ttl(keys[0]) <= 60
    assert (cache.hits, cache.misses) == (1, 1)  # each lookup counted once


def test_result_cache_keys_on_schema_row_cap_and_sql(redis_url, raw, demo_conn):
    cache = ResultCache(redis_url)
    frame = pd.DataFrame({"n": [60]})
    assert cache.put(demo_conn.key, "fp1", "SELECT count(*) AS n FROM customers", 1000, frame, False, 1)
    for fingerprint, row_cap in (("fp2", 1000), ("fp1", 10)):
        assert cache.get(demo_conn.key, fingerprint, "SELECT count(*) AS n FROM customers", row_cap) is None
    assert cache.get(demo_conn.key, "fp1", "SELECT count(*) AS m FROM customers", 1000) is None
    hit = cache.get(demo_conn.key, "fp1", "SELECT count(*) AS n FROM customers ", 1000)
    assert hit is not None and hit["dataframe"].equals(frame)


def test_result_cache_skips_writes_and_large_results(redis_url, raw, demo_copy_url):
    cache = ResultCache(redis_url, max_bytes=200)
    big = _run_sql(cache, demo_copy_url, "SELECT * FROM customers")
    assert big.stats.result_cache_hit is False and raw.dbsize() == 0  # over max_bytes
    write = _run_sql(cache, demo_copy_url, "UPDATE customers SET city = city", allow_writes=True)
    assert write.stats.result_cache_hit is None and raw.dbsize() == 0 and cache.misses == 1
    with pytest.raises(ConfigError):
        ResultCache(redis_url, ttl=0)


def test_result_cache_without_redis_runs_the_query(demo_sqlite_url):
    cache = ResultCache(f"redis://127.0.0.1:{servers.free_port()}/0")
    answer = _run_sql(cache, demo_sqlite_url, "SELECT 1 AS one")
    assert answer.dataframe["one"].tolist() == [1] and answer.stats.result_cache_hit is False


def test_the_pipeline_uses_the_opt_in_result_cache(redis_url, raw, scripted, demo_copy_url):
    """Assistant(result_cache=...): the second asker's query is answered from Redis; writes never are."""
    scripted("```sql\nSELECT count(*) AS n FROM customers\n```")
    first = Assistant(few_shot=0, generation_cache=False, connections=ConnectionManager(),
                      result_cache=f"{redis_url}#ttl=60&namespace=t-results")
    second = Assistant(few_shot=0, generation_cache=False, connections=ConnectionManager(),
                       result_cache=f"{redis_url}#ttl=60&namespace=t-results")
    a1 = first.ask("How many customers?", demo_copy_url)
    a2 = second.ask("How many customers?", demo_copy_url)
    assert (a1.stats.result_cache_hit, a2.stats.result_cache_hit) == (False, True)
    assert a1.dataframe.equals(a2.dataframe) and "(cached result)" in str(a2.stats)
    assert second.results.hit_rate == 1.0 and 0 < raw.ttl(next(iter(raw.scan_iter("t-results:*")))) <= 60
    w = second.run_sql("UPDATE customers SET country = country WHERE 1 = 0", demo_copy_url, allow_writes=True)
    assert w.stats.result_cache_hit is None and second.results.hits == 1
    assert Assistant(generation_cache=False).results is None  # off by default
    with pytest.raises(ConfigError, match="unknown result cache option"):
        Assistant(result_cache=f"{redis_url}#tll=60")


def test_introspected_schemas_are_shared_through_redis(redis_url, raw, scripted, demo_sqlite_url):
    """A second kernel takes the schema from Redis (same tables, keys, sample rows, fingerprint); refresh overwrites."""
    from jupyter_nl2sql.caches.redis_store import RedisSchemaCache, _dumps_schema
    from jupyter_nl2sql.pipeline.schema import introspect

    scripted("```sql\nSELECT count(*) AS n FROM customers\n```")
    setting = f"{redis_url}#ttl=120&namespace=t-schema"
    first = Assistant(few_shot=0, generation_cache=False, schema_cache=setting, connections=ConnectionManager())
    second = Assistant(few_shot=0, generation_cache=False, schema_cache=setting, connections=ConnectionManager())
    a1 = first.ask("How many customers?", demo_sqlite_url)
    assert (first.schemas.shared.hits, first.schemas.shared.misses) == (0, 1)
    a2 = second.ask("How many customers?", demo_sqlite_url)
    assert (second.schemas.shared.hits, second.schemas.shared.misses) == (1, 0)
    assert a1.provenance["schema_fingerprint"] == a2.provenance["schema_fingerprint"]
    conn = second.connections.resolve(demo_sqlite_url)
    shared = second.schemas.get(conn)
    local = introspect(conn)
    assert shared == local  # dataclass equality: tables, columns, keys, sample rows (dates and decimals too)
    key = next(iter(raw.scan_iter("t-schema:*")))
    assert 0 < raw.ttl(key) <= 120
    raw.set(key, _dumps_schema(local).replace(b'"customers"', b'"clients"', 1))  # tampered: fingerprint differs
    assert RedisSchemaCache(redis_url, namespace="t-schema").get(conn.key, 3) is None
    assert Assistant(generation_cache=False).schemas.shared is None  # off by default
    with pytest.raises(ConfigError, match="unknown schema cache option"):
        Assistant(schema_cache=f"{redis_url}#tl=1")
