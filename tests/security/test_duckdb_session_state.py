"""DuckDB table functions that change session state (profiling, logging, checkpoints), run in a subprocess.

An attack run found that a sequence of such SELECTs passed the old deny-list, aborted the Python process
(``terminate called ... PermissionException``), left the pooled connection broken and, through a user-supplied
Engine, wrote a file.  Each scenario here runs in a child interpreter, so a crash fails this test instead of
killing the test session: the child must exit normally, report what happened as JSON, and write nothing into the
canary directory.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("duckdb_engine")

#: SQL that changes DuckDB session state or writes files; ``{tmp}`` is the canary directory.
SEQUENCE = [
    "SELECT * FROM enable_profiling()",
    "PRAGMA enable_profiling = 'json'",
    "SET profiling_output = '{tmp}/profile.json'",
    "SELECT * FROM enable_profiling(save_location = '{tmp}/profile.json', format = 'json')",
    "SELECT * FROM enable_logging(storage = 'file', storage_path = '{tmp}/logs')",
    "CALL enable_logging()",
    "SELECT * FROM duckdb_logs",
    "SELECT * FROM truncate_duckdb_logs()",
    "SELECT * FROM disable_logging()",
    "SELECT * FROM disable_profiling()",
    "SELECT * FROM checkpoint()",
    "SELECT * FROM force_checkpoint()",
    "CHECKPOINT",
    "EXPORT DATABASE '{tmp}/export'",
]

CHILD = textwrap.dedent("""
    import json, sys
    import sqlalchemy as sa
    from jupyter_nl2sql.connections import ConnectionManager
    from jupyter_nl2sql.errors import Nl2SqlError
    from jupyter_nl2sql.pipeline.assistant import Assistant

    path, mode, tmp = sys.argv[1], sys.argv[2], sys.argv[3]
    sequence = [s.replace("{tmp}", tmp) for s in json.loads(sys.argv[4])]
    manager = ConnectionManager()
    token = sa.create_engine(f"duckdb:///{path}") if mode == "user-engine" else f"duckdb:///{path}"
    conn = manager.resolve(token)
    outcomes = []
    for sql in sequence:
        try:
            if mode == "raw-session":  # as if the SQL check had a hole: straight to the library's session
                with conn.connect() as session:
                    session.exec_driver_sql(sql).fetchall()
            else:
                Assistant(connections=manager, generation_cache=False).run_sql(sql, token)
            outcomes.append([sql, "ran", ""])
        except Nl2SqlError as error:
            outcomes.append([sql, type(error).__name__, str(error)])
        except Exception as error:  # the engine refused (raw session)
            outcomes.append([sql, "engine:" + type(error).__name__, str(error).splitlines()[0]])
    answer = Assistant(connections=manager, generation_cache=False).run_sql("SELECT count(*) AS n FROM users", token)
    manager.close_all()
    print(json.dumps({"outcomes": outcomes, "users": int(answer.dataframe.iat[0, 0])}))
""")


def _run_child(target: Any, mode: str, canary: Path) -> dict[str, Any]:
    path = target.url.split("///", 1)[1]
    proc = subprocess.run([sys.executable, "-c", CHILD, path, mode, str(canary), json.dumps(SEQUENCE)],
                          capture_output=True, text=True, timeout=300, cwd=Path(__file__).resolve().parents[2])
    assert proc.returncode == 0, f"the child process died (rc {proc.returncode}): {proc.stderr[-2000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("dialect", ["duckdb"])
@pytest.mark.parametrize("mode", ["url", "user-engine"])
def test_session_state_functions_are_refused_and_nothing_breaks(dialect: str, mode: str, fresh_target: Any,
                                                                canary: Path) -> None:
    before = fresh_target.fingerprint()
    report = _run_child(fresh_target, mode, canary)
    for sql, outcome, message in report["outcomes"]:
        assert outcome in ("SQLCheckError", "WriteRefused"), f"{sql!r} was not refused by the check: {outcome}"
        assert "\n" not in message and message.startswith("refused: ")
    assert report["users"] == 3, "the pooled connection no longer answers"
    assert not list(canary.iterdir()), f"files were written: {list(canary.iterdir())}"
    assert fresh_target.fingerprint() == before


@pytest.mark.parametrize("dialect", ["duckdb"])
def test_raw_session_survives_the_sequence(dialect: str, fresh_target: Any, canary: Path) -> None:
    """Layer two alone (no SQL check): no crash, no file, and the pool still answers afterwards.

    DuckDB 1.5 runs ``enable_logging(storage='file')`` despite ``lock_configuration``; with file access disabled
    every later statement then fails and closing the connection aborts the process.  The library's DuckDB engines
    refuse its administration functions before they reach the connection (an engine-level guard, by name).
    """
    before = fresh_target.fingerprint()
    report = _run_child(fresh_target, "raw-session", canary)
    outcomes = {sql: (outcome, message) for sql, outcome, message in report["outcomes"]}
    assert outcomes[SEQUENCE[2].replace("{tmp}", str(canary))][0].startswith("engine:")  # SET: configuration locked
    for sql in SEQUENCE:
        if "enable_logging" in sql or "enable_profiling(" in sql:
            outcome, message = outcomes[sql.replace("{tmp}", str(canary))]
            assert outcome == "SQLCheckError" and message.startswith("refused: ") and "\n" not in message, sql
    assert report["users"] == 3
    assert not list(canary.iterdir()), f"files were written: {list(canary.iterdir())}"
    assert fresh_target.fingerprint() == before


@pytest.mark.parametrize("sql, name", [
    ("SELECT * FROM enable_logging(storage = 'file', storage_path = '/tmp/x')", "enable_logging"),
    ('SELECT * FROM system.main."enable_profiling"()', "enable_profiling"),
    ("CALL enable_logging()", "enable_logging"),
    ("SELECT 1; CALL force_checkpoint()", "force_checkpoint"),
    ("PRAGMA enable_profiling", "enable_profiling"),
    ("SELECT * FROM query('SELECT 1')", "query"),
    ("SELECT 'enable_logging()' AS text_only", None),
    ("PRAGMA table_info('users')", None),
    ("SELECT count(*) AS n, histogram(age) FROM users", None),
    ("SELECT * FROM duckdb_tables()", None),
])
def test_the_engine_guard_finds_administration_calls(sql: str, name: str | None) -> None:
    from jupyter_nl2sql.connections import duckdb_admin_call

    assert duckdb_admin_call(sql) == name
