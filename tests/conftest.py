"""Shared fixtures: demo databases on SQLite, DuckDB and PostgreSQL, an IPython shell, a scripted backend.

PostgreSQL: ``NL2SQL_TEST_PG_URL`` (set by ``.ci/run``) names a server and a role that may create databases;
each test session creates its own database there and drops it afterwards.  Without it, PostgreSQL tests skip.

``NL2SQL_TEST_NO_SKIP=1`` (set by ``.ci/run``, which provides every suite: the models, PostgreSQL, Redis, the
browser, the load test's Ray, the benchmark data) turns every skip into a failure that gives the skip's reason, so a
suite cannot drop out of CI unnoticed.  Tests find the benchmark data as the runner does
(``benchmarks.runner.default_data_dir``: ``$NL2SQL_BENCH_DATA``, else ``../shared/data``).
"""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path
from typing import Any, Iterator

import pytest

# The loopback servers (chat completions, Redis) of tests/service serve the unit tests too.
sys.path.insert(0, str(Path(__file__).with_name("service")))

os.environ.setdefault("NL2SQL_CACHE_DIR", str(Path.home() / ".cache" / "jupyter_nl2sql"))
# Tests that claim model behaviour must see the model run, not replies remembered on disk by an earlier run
# (kernels started by nbval inherit this too).
os.environ.setdefault("NL2SQL_GENERATION_CACHE", "memory")

NO_SKIP_ENV = "NL2SQL_TEST_NO_SKIP"


def _no_skip() -> bool:
    return os.environ.get(NO_SKIP_ENV, "").strip().lower() in ("1", "true", "yes")


def _fail_skip(report: pytest.BaseReport) -> None:
    """Turn a skip report into a failure naming the skip's reason (xfail outcomes are left alone)."""
    if not report.skipped or hasattr(report, "wasxfail"):
        return
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    report.outcome = "failed"
    report.longrepr = f"skipped where {NO_SKIP_ENV}=1 (CI provides this suite): {reason}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    """With ``NL2SQL_TEST_NO_SKIP=1``, a skipped test fails."""
    outcome = yield
    if _no_skip():
        _fail_skip(outcome.get_result())


_skipped_modules: list[str] = []


def pytest_collectreport(report: pytest.CollectReport) -> None:
    """Note the modules skipped at import (``importorskip``); with ``NL2SQL_TEST_NO_SKIP=1`` they fail the session
    at its end (a collection error would stop every other test)."""
    if report.skipped:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        _skipped_modules.append(f"{report.nodeid}: {reason}")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """List the modules skipped at import as failures when ``NL2SQL_TEST_NO_SKIP=1``."""
    if _no_skip() and _skipped_modules:
        terminalreporter.section(f"modules skipped at import, failed by {NO_SKIP_ENV}=1", red=True)
        for line in _skipped_modules:
            terminalreporter.line(f"FAILED {line}")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """A module skipped at import fails the run when ``NL2SQL_TEST_NO_SKIP=1``."""
    if _no_skip() and _skipped_modules and exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED



@pytest.fixture(scope="session")
def demo_sqlite_url() -> str:
    """URL of the bundled demo database (SQLite)."""
    from jupyter_nl2sql.demo import demo_url

    return demo_url()


@pytest.fixture()
def demo_copy_url(tmp_path: Path) -> str:
    """A private, writable copy of the demo database (SQLite) for tests that check it stays unchanged."""
    from jupyter_nl2sql.demo import build_demo_db

    return f"sqlite:///{build_demo_db(tmp_path / 'demo.sqlite')}"


@pytest.fixture(scope="session")
def demo_duckdb_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The demo data in a DuckDB file."""
    pytest.importorskip("duckdb_engine")
    from jupyter_nl2sql.demo import copy_demo

    url = f"duckdb:///{tmp_path_factory.mktemp('duck') / 'demo.duckdb'}"
    copy_demo(url)
    return url


@pytest.fixture(scope="session")
def pg_admin_url() -> str:
    """The PostgreSQL server given by NL2SQL_TEST_PG_URL (skips when unset)."""
    url = os.environ.get("NL2SQL_TEST_PG_URL")
    if not url:
        pytest.skip("NL2SQL_TEST_PG_URL is not set (.ci/run starts PostgreSQL and sets it)")
    return url


@pytest.fixture(scope="session")
def demo_pg_url(pg_admin_url: str) -> Iterator[str]:
    """A fresh PostgreSQL database holding the demo data, dropped after the session."""
    import sqlalchemy as sa
    from jupyter_nl2sql.demo import copy_demo

    name = f"nl2sql_test_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(pg_admin_url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    with admin.connect() as c:
        c.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = sa.make_url(pg_admin_url).set(database=name).render_as_string(hide_password=False)
    copy_demo(url)
    yield url
    from jupyter_nl2sql.connections import manager

    for conn in manager.connections():
        if conn.engine.url.database == name:
            conn.engine.dispose()
    with admin.connect() as c:
        c.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


@pytest.fixture()
def scripted(monkeypatch: pytest.MonkeyPatch):
    """Make every Assistant use a ScriptedBackend (prepared replies; plumbing only):
    ``backend = scripted("SELECT 1", ...)``."""
    from jupyter_nl2sql.pipeline.assistant import Assistant
    from jupyter_nl2sql.models.testing import ScriptedBackend

    def install(*replies: str) -> ScriptedBackend:
        backend = ScriptedBackend(replies=list(replies))
        monkeypatch.setattr(Assistant, "backend", lambda self: (backend, None))
        return backend

    return install


@pytest.fixture()
def gguf_cache_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A cache root of the test's own, for a test that loads the default model on an engine reading its GGUF itself
    (llama.cpp): the model's parts are joined there and deleted with the test, so the user's cache keeps the one
    copy the default engine left (its repacked weights)."""
    root = tmp_path / "cache"
    monkeypatch.setenv("NL2SQL_CACHE_DIR", str(root))
    return root


@pytest.fixture()
def offline_packages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Make a known model carried by fake installed 'packages' (modules with ``get_part_path()``, as the
    offline model packages have): ``known = offline_packages("fake", data, aliases=("fake-coder",))`` splits
    ``data`` into three parts and registers the model as ``test-org/<name>`` in ``KNOWN_MODELS``."""
    import hashlib
    import types

    from jupyter_nl2sql.models.known import KNOWN_MODELS, KnownModel

    def install(name: str, data: bytes, aliases: tuple[str, ...] = ()) -> KnownModel:
        folder = tmp_path / "site-packages" / name
        folder.mkdir(parents=True)
        cut = [0, len(data) // 3, 2 * len(data) // 3, len(data)]
        prefix = f"fake_{name.replace('-', '_')}_part"
        for i in range(1, 4):
            part = folder / f"part{i:02d}.bin"
            part.write_bytes(data[cut[i - 1]:cut[i]])
            module = types.ModuleType(f"{prefix}{i}")
            module.get_part_path = lambda part=part: str(part)  # type: ignore[attr-defined]
            monkeypatch.setitem(sys.modules, module.__name__, module)
        known = KnownModel(hub_id=f"test-org/{name}", gguf_repo=f"test-org/{name}-GGUF", gguf_file=f"{name}.gguf",
                           size=len(data), sha256=hashlib.sha256(data).hexdigest(), package_prefix=prefix, parts=3,
                           pip_extra=name, aliases=aliases)
        monkeypatch.setitem(KNOWN_MODELS, known.hub_id, known)
        return known

    return install


@pytest.fixture()
def ip():
    """An IPython shell with the extension loaded; ``ip.run_cell`` results re-raise errors via ``run``."""
    from IPython.testing.globalipapp import get_ipython, start_ipython

    shell = start_ipython() or get_ipython()
    shell.run_line_magic("load_ext", "jupyter_nl2sql")
    yield shell
    shell.run_line_magic("unload_ext", "jupyter_nl2sql")
    from jupyter_nl2sql.connections import manager

    manager.current = None


def run(shell, cell: str):
    """Run a cell and return its result, re-raising the exception it raised."""
    result = shell.run_cell(cell)
    if result.error_before_exec:
        raise result.error_before_exec
    if result.error_in_exec:
        raise result.error_in_exec
    return result.result


@pytest.fixture()
def cell(ip):
    """``cell("%%nl2sql ...\\nquestion")`` runs a cell in the test shell and returns its result (errors raise)."""
    return lambda source: run(ip, source)


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The redis-server named by ``NL2SQL_TEST_REDIS_URL`` (``.ci/run`` starts one), else a private one on a free
    loopback port (skips when the binary is missing).  Tests keep to namespaces of their own."""
    pytest.importorskip("redis", reason="the redis client is not installed (pip install redis)")
    given = os.environ.get("NL2SQL_TEST_REDIS_URL", "").strip()
    if given:
        import redis

        client = redis.Redis.from_url(given, socket_connect_timeout=2)
        try:
            client.ping()
        except redis.RedisError as exc:
            pytest.fail(f"NL2SQL_TEST_REDIS_URL={given} does not answer: {exc}")
        finally:
            client.close()
        yield given
        return
    from loopback_servers import redis_server, redis_server_binary

    if redis_server_binary() is None:
        pytest.skip("redis-server is not installed (Debian: apt-get install -y redis-server)")
    with redis_server(tmp_path_factory.mktemp("redis-service")) as url:
        yield url
