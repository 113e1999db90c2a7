"""Passwords in connection URLs never leave the URL.

With a PostgreSQL URL that carries a password (the seeded security database on the ``NL2SQL_TEST_PG_URL``
server), the password must not appear in an answer (provenance, stats, HTML, text, repr), in the error messages
for a wrong password, an unreachable server, a malformed URL or bad SQL, in ``ConnectionManager.aliases()``, in
``%nl2sql connections`` or ``%nl2sql connect`` output, in the magic's ``UsageError`` text, nor in any log record
of the ``jupyter_nl2sql`` and ``sqlalchemy`` loggers captured at DEBUG.  Wrong-password and unreachable cases use
:data:`CANARY`, a password nothing else could contain.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import sqlalchemy as sa
from IPython.core.error import UsageError
from IPython.utils.capture import capture_output

from jupyter_nl2sql.pipeline.assistant import Answer, Assistant
from jupyter_nl2sql.connections import ConnectionManager
from jupyter_nl2sql.errors import ConnectionFailed, ExecutionError, Nl2SqlError, SQLCheckError

#: A password no message, URL or log line could contain by accident.
CANARY = "Qv7-canary-pw-0xDEADBEEF"

#: Text that appears in outputs anyway: a password found in it would make the checks meaningless.
ORDINARY_TEXT = "postgresql+psycopg://***@127.0.0.1:5432 jupyter-nl2sql jupyter_nl2sql nl2sql_sec_ users orders notes"

SELECT_USERS = "SELECT name FROM users ORDER BY id"


def closed_port() -> int:
    """A loopback port nothing listens on (bound then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def with_password(url: str, password: str, **changes: Any) -> str:
    """``url`` with another password (and optionally another host, port or database), password kept visible."""
    return sa.make_url(url).set(password=password, **changes).render_as_string(hide_password=False)


@dataclass
class LeakCheck:
    """Collects secrets and asserts that texts and captured log records contain none of them."""

    caplog: pytest.LogCaptureFixture
    secrets: list[str] = field(default_factory=lambda: [CANARY])

    def add(self, password: str | None) -> str:
        """Watch ``password`` too (skips when it is missing or so ordinary that a check would mean nothing)."""
        if not password or len(password) < 6 or password in ORDINARY_TEXT:
            pytest.skip("NL2SQL_TEST_PG_URL needs a distinctive password (6+ characters) for the secrets tests")
        self.secrets.append(password)
        return password

    def texts(self, *texts: str) -> None:
        """Assert no secret in any of ``texts``."""
        for text in texts:
            for secret in self.secrets:
                assert secret not in text, f"password leaked into: {text[:300]!r}"

    def error(self, error: BaseException) -> None:
        """A user-facing error: one line, no secret."""
        assert "\n" not in str(error), str(error)
        self.texts(str(error), repr(error))

    def answer(self, answer: Answer) -> None:
        """Every rendering of an answer."""
        self.texts(json.dumps(answer.provenance, default=str), str(answer.stats), repr(answer.stats),
                   answer._repr_html_(), str(answer), repr(answer))

    def logs(self, *, expect_from: str = "sqlalchemy") -> None:
        """No secret in any captured record (message and traceback); ``expect_from`` proves the capture works."""
        records = self.caplog.records
        assert any(r.name.startswith(expect_from) for r in records), f"no {expect_from} records captured"
        formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
        self.texts(*(formatter.format(r) for r in records))


@pytest.fixture()
def leak(caplog: pytest.LogCaptureFixture) -> LeakCheck:
    """A LeakCheck with the ``jupyter_nl2sql`` and ``sqlalchemy`` loggers captured at DEBUG."""
    for name in ("jupyter_nl2sql", "sqlalchemy"):
        caplog.set_level(logging.DEBUG, logger=name)
    return LeakCheck(caplog)


@pytest.fixture()
def assistant() -> Iterator[Assistant]:
    """An Assistant with a connection manager of its own (closed afterwards)."""
    manager = ConnectionManager()
    yield Assistant(connections=manager, generation_cache=False, repair_rounds=0)
    manager.close_all()


def expect_nl2sql_error(call: Callable[[], Any], kind: type[Nl2SqlError]) -> Nl2SqlError:
    """The error ``call()`` raised (it must raise ``kind``)."""
    with pytest.raises(kind) as info:
        call()
    return info.value


@pytest.mark.postgres
@pytest.mark.parametrize("dialect", ["postgres"])
def test_answers_do_not_show_the_password(dialect: str, target: Any, assistant: Assistant, scripted: Any,
                                          leak: LeakCheck) -> None:
    leak.add(sa.make_url(target.url).password)
    scripted(SELECT_USERS)
    asked = assistant.ask("Who are the users?", target.url)
    assert asked.ok and asked.dataframe is not None and asked.provenance["connection"].endswith(target.url[-12:])
    leak.answer(asked)
    leak.answer(assistant.run_sql(SELECT_USERS, target.url))
    conn = assistant.connections.resolve(target.url, alias="secret_shop")
    leak.texts(json.dumps(assistant.connections.aliases()), repr(conn), str(conn.engine.url), conn.display_url,
               *(c.display_url for c in assistant.connections.connections()))
    leak.logs()


@pytest.mark.postgres
@pytest.mark.parametrize("dialect", ["postgres"])
def test_errors_do_not_show_the_password(dialect: str, target: Any, assistant: Assistant, scripted: Any,
                                         leak: LeakCheck) -> None:
    leak.add(sa.make_url(target.url).password)
    wrong = expect_nl2sql_error(lambda: assistant.run_sql(SELECT_USERS, with_password(target.url, CANARY)),
                                ConnectionFailed)
    assert "password authentication failed" in str(wrong)
    unreachable = expect_nl2sql_error(
        lambda: assistant.run_sql(SELECT_USERS, with_password(target.url, CANARY, port=closed_port())),
        ConnectionFailed)
    malformed = expect_nl2sql_error(
        lambda: assistant.run_sql(SELECT_USERS, f"postgresql+psycopg://u:{CANARY}@127.0.0.1:port/db"),
        ConnectionFailed)
    no_driver = expect_nl2sql_error(lambda: assistant.run_sql(SELECT_USERS, f"nodriver://u:{CANARY}@127.0.0.1/db"),
                                    ConnectionFailed)
    bad_sql = expect_nl2sql_error(lambda: assistant.run_sql("SELEC name FROM users", target.url), SQLCheckError)
    failing = expect_nl2sql_error(lambda: assistant.run_sql("SELECT CAST(name AS INTEGER) AS n FROM users",
                                                            target.url), ExecutionError)
    for error in (wrong, unreachable, malformed, no_driver, bad_sql, failing):
        leak.error(error)
    scripted("SELECT CAST(name AS INTEGER) AS n FROM users")  # the model's SQL fails in the database
    answer = assistant.ask("Users as numbers?", target.url)
    assert answer.error and "invalid input syntax" in answer.error
    leak.answer(answer)
    leak.logs()


def test_unreachable_server_error_without_a_server(assistant: Assistant, leak: LeakCheck) -> None:
    """Needs no PostgreSQL: nothing listens on the port."""
    url = f"postgresql+psycopg://nl2sql:{CANARY}@127.0.0.1:{closed_port()}/nowhere"
    error = expect_nl2sql_error(lambda: assistant.ask("How many users?", url), ConnectionFailed)
    assert "***" in str(error) and "running" in str(error)
    leak.error(error)
    leak.logs()


@pytest.mark.postgres
@pytest.mark.parametrize("dialect", ["postgres"])
def test_magic_output_does_not_show_the_password(dialect: str, target: Any, ip: Any, cell: Callable[[str], Any],
                                                 scripted: Any, leak: LeakCheck) -> None:
    leak.add(sa.make_url(target.url).password)
    scripted(SELECT_USERS)
    with capture_output() as connected:
        cell(f"%nl2sql connect {target.url} --alias secret_magic")
        listing = cell("%nl2sql connections")
        frame = cell("%%nl2sql -c secret_magic --no-stats\nWho are the users?")
    assert "Connected" in connected.stdout and frame is not None
    leak.texts(connected.stdout, connected.stderr, *(o.data.get("text/plain", "") for o in connected.outputs),
               *(o.data.get("text/html", "") for o in connected.outputs), listing.to_string(), listing.to_html())
    failures = [
        f"%%nl2sql -c {with_password(target.url, CANARY)}\nWho are the users?",
        f"%%nl2sql -c {with_password(target.url, CANARY, port=closed_port())}\nWho are the users?",
        f"%%nl2sql -c postgresql+psycopg://u:{CANARY}@127.0.0.1:port/db\nWho are the users?",
        f"%nl2sql connect {with_password(target.url, CANARY)} --alias wrong_pw",
    ]
    for source in failures:
        with capture_output() as shown, pytest.raises(UsageError) as info:
            cell(source)
        leak.error(info.value)
        leak.texts(shown.stdout, shown.stderr)
    scripted("SELECT CAST(name AS INTEGER) AS n FROM users")
    with pytest.raises(UsageError) as info:
        cell("%%nl2sql -c secret_magic --no-stats\nUsers as numbers?")
    assert "invalid input syntax" in str(info.value)
    leak.error(info.value)
    leak.logs()


# --- every form a URL can carry a password in (issue 18) -------------------------------------------------------

def _chain(error: BaseException) -> list[BaseException]:
    """The error and everything reachable through __cause__ and __context__."""
    seen: list[BaseException] = []
    while error is not None and error not in seen:
        seen.append(error)
        error = error.__cause__ or error.__context__  # type: ignore[assignment]
    return seen


@pytest.mark.parametrize("url", [
    f"postgresql+psycopg://nl2sql@127.0.0.1:{{port}}/db?password={CANARY}",
    f"postgresql+psycopg://nl2sql:{CANARY}@127.0.0.1:{{port}}/db?sslmode=disable&password={CANARY}",
    f"postgresql+psycopg://nl2sql:{CANARY[:6]}@{CANARY[6:]}@127.0.0.1:{{port}}/db",  # an unencoded '@'
    f"postgresql+psycopg://nl2sql:{CANARY}@127.0.0.1:{{port}}/db?application_name=x&sslpassword={CANARY}",
])
def test_password_forms_stay_out_of_errors_reprs_and_chains(url: str, assistant: Assistant,
                                                           leak: LeakCheck) -> None:
    url = url.replace("{port}", str(closed_port()))
    leak.secrets += [CANARY[:6], CANARY[6:]]
    error = expect_nl2sql_error(lambda: assistant.run_sql(SELECT_USERS, url), ConnectionFailed)
    leak.error(error)
    assert _chain(error) == [error], f"driver exceptions kept in the chain: {_chain(error)[1:]}"
    conn = next(iter(assistant.connections.connections()), None)
    if conn is not None:
        leak.texts(repr(conn), conn.key, conn.display_url, conn.name)
    leak.texts(json.dumps(assistant.connections.aliases()))


def test_redact_handles_query_parameters_at_signs_and_dsns() -> None:
    from jupyter_nl2sql.connections import redact

    assert redact(f"postgresql://u:{CANARY}@h/db?password={CANARY}&sslmode=require") == \
        "postgresql://u:***@h/db?password=***&sslmode=require"
    assert redact("postgresql://u:p@ss@word@h:5432/db") == "postgresql://u:***@h:5432/db"
    assert redact(f"host=h user=u password={CANARY} dbname=d") == "host=h user=u password=*** dbname=d"
    assert redact(f"host=h password='{CANARY} x' dbname=d") == "host=h password=*** dbname=d"
    assert CANARY not in redact(sa.make_url(f"postgresql://u@h/db?password={CANARY}"))


def test_connection_identity_holds_no_password_nor_its_hash() -> None:
    import hashlib

    manager = ConnectionManager()
    first = manager.resolve(f"postgresql+psycopg://u:{CANARY}@127.0.0.1:1/db", check=False)
    second = manager.resolve("postgresql+psycopg://u:other-password@127.0.0.1:1/db", check=False)
    assert first is not second  # two passwords, two pools
    assert first.key == second.key == "postgresql+psycopg://u:***@127.0.0.1:1/db"  # caches: password-free
    plain = hashlib.sha256(f"postgresql+psycopg://u:{CANARY}@127.0.0.1:1/db".encode()).hexdigest()
    for text in (first.key, first.registry_key, repr(first)):
        assert CANARY not in text and plain[:12] not in text
    manager.close_all()


def test_connect_args_password_stays_out_of_errors(assistant: Assistant, leak: LeakCheck) -> None:
    engine = sa.create_engine(f"postgresql+psycopg://nl2sql@127.0.0.1:{closed_port()}/db",
                              connect_args={"password": CANARY, "connect_timeout": 2})
    error = expect_nl2sql_error(lambda: assistant.run_sql(SELECT_USERS, engine), ConnectionFailed)
    leak.error(error)
    assert _chain(error) == [error]
    engine.dispose()


@pytest.mark.postgres
@pytest.mark.parametrize("dialect", ["postgres"])
def test_database_errors_carry_no_driver_objects(dialect: str, target: Any, assistant: Assistant,
                                                 leak: LeakCheck) -> None:
    leak.add(sa.make_url(target.url).password)
    for call, kind in [(lambda: assistant.run_sql("SELECT CAST(name AS INTEGER) AS n FROM users", target.url),
                        ExecutionError),
                       (lambda: assistant.run_sql(SELECT_USERS, with_password(target.url, CANARY)), ConnectionFailed)]:
        error = expect_nl2sql_error(call, kind)
        assert _chain(error) == [error], f"driver exceptions kept in the chain: {_chain(error)[1:]}"
        leak.error(error)


# --- the PostgreSQL server's own log (issue 18) ------------------------------------------------------------------

@pytest.mark.postgres
def test_the_server_log_holds_no_password(assistant: Assistant, pg_server_log: str) -> None:
    """Wrong passwords in every URL form reach the live server; its log must name none of them (nor a part)."""
    url = sa.make_url(os.environ["NL2SQL_TEST_PG_URL"])
    path = pg_server_log
    try:
        with open(path, "rb") as log:
            log.seek(0, 2)
            start = log.tell()
    except OSError as error:
        pytest.skip(f"the PostgreSQL server log {path} cannot be read here ({error.strerror})")
    base = f"postgresql+psycopg://{url.username}"
    at = f"{url.host}:{url.port or 5432}"
    forms = [
        with_password(url.render_as_string(hide_password=False), CANARY),
        f"{base}@{at}/{url.database}?password={CANARY}",
        f"{base}:{CANARY[:6]}@{CANARY[6:]}@{at}/{url.database}",  # an unencoded '@': the tail looks like a host
        f"{base}:{CANARY[:6]}@{at}/{CANARY[6:]}@{at}/{url.database}",  # ... or like a database name
    ]
    for form in forms:
        expect_nl2sql_error(lambda: assistant.run_sql(SELECT_USERS, form), ConnectionFailed)
    deadline, written = time.monotonic() + 10, ""
    while "password authentication failed" not in written and time.monotonic() < deadline:
        time.sleep(0.2)  # the server writes its log on its own schedule
        with open(path, "rb") as log:
            log.seek(start)
            written = log.read().decode("utf-8", "replace")
    assert "password authentication failed" in written, f"no failed login in {path}: is it the server's log?"
    for secret in (CANARY, CANARY[:6], CANARY[6:]):
        assert secret not in written, f"the server log holds the password: {written[-600:]!r}"

