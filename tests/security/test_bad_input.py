"""Bad input of every kind gets one line that says what to do, and the notebook keeps working.

Each test feeds the cell magic one kind of bad input (connections, questions, models, configuration values,
SQL), checks that the message is a single line naming the problem and the fix, then runs a good cell in the same
shell.  The model is a ScriptedBackend (plumbing only) except where a model id or file is the bad input.  SQL that
writes is checked against the fingerprints of :mod:`tests.security.conftest`.
"""

from __future__ import annotations

import logging
import os
import re
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from IPython.core.error import UsageError
from IPython.utils.capture import capture_output

from jupyter_nl2sql.pipeline.assistant import MAX_QUESTION_CHARS, Assistant
from jupyter_nl2sql.connections import ConnectionManager, manager as shared_manager
from jupyter_nl2sql.errors import ConfigError, SQLCheckError, WriteRefused

GOOD_QUESTION = "How many customers are there (bad-input check)?"
GOOD_SQL = "SELECT count(*) AS n FROM customers"
Cell = Callable[[str], Any]


def closed_port() -> int:
    """A loopback port nothing listens on."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def one_line(message: str, *patterns: str) -> str:
    """Assert ``message`` is one non-empty line matching every regex in ``patterns`` (case-insensitive)."""
    assert message.strip() and "\n" not in message, f"not one line: {message!r}"
    for pattern in patterns:
        assert re.search(pattern, message, re.IGNORECASE), f"{pattern!r} not in {message!r}"
    return message


@pytest.fixture()
def refused(cell: Cell) -> Callable[..., str]:
    """``refused(source, *patterns)``: the cell raises a one-line UsageError matching ``patterns``; its text."""

    def run(source: str, *patterns: str) -> str:
        with capture_output() as shown, pytest.raises(UsageError) as info:
            cell(source)
        assert "Traceback" not in shown.stdout + shown.stderr
        return one_line(str(info.value), *patterns)

    return run


@pytest.fixture()
def still_works(cell: Cell, scripted: Any, demo_sqlite_url: str) -> Callable[[], None]:
    """``still_works()``: a good question in the same shell returns its DataFrame."""

    def run() -> None:
        scripted(GOOD_SQL)
        frame = cell(f"%%nl2sql -c {demo_sqlite_url} --no-stats\n{GOOD_QUESTION}")
        assert frame["n"].iat[0] == 60

    return run


@pytest.fixture()
def no_current_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    """The shared manager starts without a current connection (as in a fresh kernel)."""
    monkeypatch.setattr(shared_manager, "current", None)


# -- connections ---------------------------------------------------------------------------------------------------
CONNECTIONS: dict[str, tuple[str, tuple[str, ...]]] = {
    "no database": ("", (r"no database", r"pass a connection|-c demo")),
    "bad URL": ("-c postgresql+psycopg://nl2sql@127.0.0.1:notaport/db",
                (r"not a valid SQLAlchemy URL", r"write e\.g\.")),
    "unknown driver": ("-c nodriver://127.0.0.1/db", (r"no SQLAlchemy driver", r"install")),
    "unreachable server": ("-c postgresql+psycopg://nl2sql:pw@127.0.0.1:{port}/db",
                           (r"cannot connect", r"check the host and port")),
    "missing SQLite file": ("-c sqlite:///{tmp}/no-such.db", (r"no SQLite database at", r"check the path")),
    "not an Engine": ("-c not_an_engine", (r"not_an_engine.* is of type int, neither a SQLAlchemy Engine nor a pandas DataFrame",
                                           r"pass an Engine")),
    "unknown name": ("-c nowhere_at_all", (r"unknown connection 'nowhere_at_all'", r"URL like")),
}


@pytest.mark.parametrize("case", list(CONNECTIONS))
def test_bad_connection(case: str, ip: Any, refused: Callable[..., str], still_works: Callable[[], None],
                        scripted: Any, tmp_path: Path, no_current_connection: None) -> None:
    options, patterns = CONNECTIONS[case]
    ip.user_ns["not_an_engine"] = 42
    scripted(GOOD_SQL)
    refused(f"%%nl2sql {options.format(port=closed_port(), tmp=tmp_path)}\nHow many customers?", *patterns)
    still_works()


@pytest.mark.postgres
def test_wrong_password(pg_admin_url: str, refused: Callable[..., str], still_works: Callable[[], None],
                        scripted: Any) -> None:
    url = sa.make_url(pg_admin_url).set(password="not-the-password").render_as_string(hide_password=False)
    scripted(GOOD_SQL)
    message = refused(f"%%nl2sql -c {url}\nHow many customers?", r"password authentication failed",
                      r"check the user name and password")
    assert "not-the-password" not in message
    still_works()


# -- questions -----------------------------------------------------------------------------------------------------
QUESTIONS: dict[str, tuple[str, tuple[str, ...]]] = {
    "empty cell": ("%%nl2sql -c demo\n", (r"empty", r"did you mean the line magic")),  # IPython's own check
    "whitespace": ("%%nl2sql -c demo\n   \n\t  \n", (r"question is empty", r"write what you want to know")),
    "empty line magic": ("%nl2sql -c demo", (r"question is empty", r"write what you want to know")),
    "too long": ("%%nl2sql -c demo\n" + "How many customers? " * (MAX_QUESTION_CHARS // 10),
                 (r"characters long", rf"keep it under {MAX_QUESTION_CHARS}")),
    # a thing the database has nowhere: refused before any model call, with what is missing and the tables
    "non-existent table": ("%%nl2sql -c demo --no-stats\nHow many spaceships are docked?",
                           (r"can't answer that from this database", r"no spaceships", r"its tables: customers")),
}


@pytest.mark.parametrize("case", list(QUESTIONS))
def test_bad_question(case: str, refused: Callable[..., str], still_works: Callable[[], None],
                      scripted: Any) -> None:
    source, patterns = QUESTIONS[case]
    backend = scripted("SELECT count(*) AS n FROM spaceships")
    refused(source, *patterns)
    assert not backend.calls, "the model was asked an empty, oversized or unanswerable question"
    still_works()


# -- models --------------------------------------------------------------------------------------------------------
def _damaged_gguf(path: Path) -> Path:
    path.write_bytes(b"GGUF" + (3).to_bytes(4, "little") + os.urandom(4096))  # right magic, garbage header
    return path


def _not_gguf(path: Path) -> Path:
    path.write_bytes(b"<html>404 Not Found</html>\n" * 40)  # what a failed download often leaves
    return path


MODELS: dict[str, tuple[Callable[[Path], str], tuple[str, ...]]] = {
    "non-existent model id": (lambda tmp: "no/such-model-xyz",
                              (r"no/such-model-xyz", r"pass a local \.gguf file or model folder")),
    "corrupted .gguf": (lambda tmp: str(_damaged_gguf(tmp / "damaged.gguf")),
                        (r"not a valid GGUF file", r"download it again")),
    "not a .gguf at all": (lambda tmp: str(_not_gguf(tmp / "page.gguf")),
                           (r"not a valid GGUF file", r"pass a \.gguf model file")),
}


@pytest.mark.parametrize("case", list(MODELS))
def test_bad_model(case: str, refused: Callable[..., str], still_works: Callable[[], None], tmp_path: Path,
                   monkeypatch: pytest.MonkeyPatch, demo_sqlite_url: str) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # never reach for the network: the Hub probe answers at once
    make_model, patterns = MODELS[case]
    refused(f"%%nl2sql -c {demo_sqlite_url} -m {make_model(tmp_path)}\nHow many customers?", *patterns)
    still_works()


# -- configuration -------------------------------------------------------------------------------------------------
CONFIG: dict[str, tuple[str, Any, tuple[str, ...]]] = {
    "negative row cap": ("row_cap", "-1", (r"row_cap must be a whole number ≥ 1, not -1",)),
    "unknown dtype": ("dtype", "'int3'", (r"unknown dtype 'int3': use auto, bfloat16, float16 or float32",)),
    "negative timeout": ("timeout", "-5", (r"timeout must be ≥ 0 seconds, not -5",)),
    "row cap not a number": ("row_cap", "'many'", (r"row_cap", r"expected an int")),
}


@pytest.fixture()
def magics(ip: Any) -> Any:
    """The shell's Nl2SqlMagics configurable."""
    from jupyter_nl2sql.frontends.magics import Nl2SqlMagics

    return next(c for c in ip.configurables if isinstance(c, Nl2SqlMagics))


@pytest.fixture()
def restore_config(ip: Any) -> Iterator[None]:
    """Put the shell's ``Nl2SqlMagics`` config section back as it was.

    ``%config`` merges the value into the shell's shared config even when the trait refuses it, so without this
    a refused value would be dropped (with a warning) at every later ``load_ext`` in the test session.
    """
    saved = dict(ip.config.Nl2SqlMagics)
    yield
    section = ip.config.Nl2SqlMagics
    for key in set(section) - set(saved):
        del section[key]
    section.update(saved)


@pytest.mark.parametrize("case", list(CONFIG))
def test_bad_config_value(case: str, ip: Any, magics: Any, caplog: pytest.LogCaptureFixture,
                          still_works: Callable[[], None], restore_config: None) -> None:
    trait, value, patterns = CONFIG[case]
    before = {name: getattr(magics, name) for name in magics.trait_names(config=True)}
    caplog.set_level(logging.ERROR)
    result = ip.run_cell(f"%config Nl2SqlMagics.{trait} = {value}")
    assert result.success, "a bad %config value must not raise into the cell"
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, errors
    one_line(errors[0], *patterns)
    assert {name: getattr(magics, name) for name in magics.trait_names(config=True)} == before
    still_works()


def test_refused_config_value_does_not_break_reloading(ip: Any, restore_config: None) -> None:
    """A refused value stays in the shell's config; reloading the extension drops it and still works."""
    ip.run_cell("%config Nl2SqlMagics.row_cap = -1")
    assert ip.run_cell("%reload_ext jupyter_nl2sql").success
    assert "row_cap" not in ip.config.Nl2SqlMagics


@pytest.mark.parametrize("option, value", [("row_cap", -1), ("max_new_tokens", 0), ("repair_rounds", -2),
                                           ("sample_rows", "3"), ("max_schema_chars", True)])
def test_bad_assistant_option(option: str, value: Any) -> None:
    """The API refuses the same values with a ConfigError (one line)."""
    with pytest.raises(ConfigError) as info:
        Assistant(**{option: value})
    one_line(str(info.value), rf"{option} must be a whole number")


# -- SQL -----------------------------------------------------------------------------------------------------------
SQL: dict[str, tuple[str, type[SQLCheckError], tuple[str, ...]]] = {
    "does not parse": ("SELEC name FROM users", SQLCheckError, (r"could not parse the SQL",)),
    "incomplete": ("SELECT name FROM users WHERE id >", SQLCheckError,
                   (r"could not parse the SQL \(\w+\): incomplete SQL \(an operand or clause is missing\)",)),
    "multiple statements": ("SELECT name FROM users; SELECT email FROM users", SQLCheckError,
                            (r"only one statement is allowed",)),
    "unknown column": ("SELECT nickname FROM users", SQLCheckError, (r"no column nickname", r"did you mean")),
    "write": ("DELETE FROM notes WHERE id = 1", WriteRefused, (r"refused: DELETE changes data", r"unless writes are allowed")),
}


@pytest.fixture()
def release(ip: Any) -> Callable[[str], None]:
    """``release(url)``: close the shared manager's engines on ``url`` (DuckDB lets one configuration hold a file)."""

    def run(url: str) -> None:
        shown = sa.make_url(url).render_as_string(hide_password=True)
        for conn in shared_manager.connections():
            if conn.display_url == shown:
                conn.close()

    return run


@pytest.mark.parametrize("dialect", ["sqlite", "duckdb", "postgres"])
@pytest.mark.parametrize("case", list(SQL))
def test_bad_sql(case: str, dialect: str, fresh_target: Any, refused: Callable[..., str],
                 still_works: Callable[[], None], scripted: Any, release: Callable[[str], None]) -> None:
    sql, kind, patterns = SQL[case]
    before = fresh_target.fingerprint()
    scripted(sql)  # the model wrote it
    refused(f"%%nl2sql -c {fresh_target.url} --no-stats\nQuestion leading to bad SQL ({case})?", *patterns,
            r"rephrase the question")
    manager = ConnectionManager()
    with pytest.raises(kind) as info:  # a person wrote it
        Assistant(connections=manager).run_sql(sql, fresh_target.url)
    manager.close_all()
    one_line(str(info.value), *patterns)
    release(fresh_target.url)
    assert fresh_target.fingerprint() == before, f"{dialect} database changed"
    still_works()


@pytest.mark.parametrize("dialect", ["sqlite", "duckdb", "postgres"])
def test_allowed_write_happens_and_says_so(dialect: str, fresh_target: Any, cell: Cell, scripted: Any,
                                           still_works: Callable[[], None], release: Callable[[str], None]) -> None:
    before = fresh_target.fingerprint()
    scripted("DELETE FROM notes WHERE id = 1")
    with capture_output() as shown:
        cell(f"%%nl2sql -c {fresh_target.url} --allow-writes --no-stats\nDelete the first note")
    texts = [o.data.get("text/plain", "") for o in shown.outputs]
    assert any("changes the database" in t and "writes were allowed" in t for t in texts), texts
    release(fresh_target.url)
    assert fresh_target.fingerprint() != before, "the allowed write did not happen"
    scripted("SELECT count(*) AS n FROM notes")
    assert cell(f"%%nl2sql -c {fresh_target.url} --no-stats\nHow many notes are left?")["n"].iat[0] == 5
    still_works()


@pytest.fixture()
def demo_copy_path(demo_copy_url: str) -> Iterator[Path]:
    """The private demo copy's file."""
    yield Path(sa.make_url(demo_copy_url).database or "")


def test_sqlite_write_refused_leaves_file_bytes_unchanged(demo_copy_url: str, demo_copy_path: Path,
                                                          refused: Callable[..., str], scripted: Any) -> None:
    """Belt and braces for the checksum: the file's bytes, not only its rows, stay the same."""
    import hashlib

    digest = hashlib.sha256(demo_copy_path.read_bytes()).hexdigest()
    scripted("DROP TABLE customers")
    refused(f"%%nl2sql -c {demo_copy_url} --no-stats\nDrop the customers table", r"refused")
    assert hashlib.sha256(demo_copy_path.read_bytes()).hexdigest() == digest
    with sqlite3.connect(demo_copy_path) as con:
        assert con.execute("SELECT count(*) FROM customers").fetchone()[0] == 60
