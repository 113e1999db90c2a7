"""How long it takes to get a usable connection: first connection and pooled checkout, per database.

``python -m benchmarks.connections`` measures, for SQLite (a Spider database opened read-only), DuckDB (a small
temporary file, through duckdb_engine) and PostgreSQL (``$NL2SQL_TEST_PG_URL``; skipped with a message when
unset), through the product's own connection layer (:class:`jupyter_nl2sql.connections.ConnectionManager`):

- **first**: ``resolve(url)`` in a fresh Python process — engine creation, the driver's import, the first
  connection and its ``SELECT 1`` (what the first ``%nl2sql -c URL`` of a kernel pays; SQLAlchemy itself is
  imported before the clock starts);
- **pooled**: ``with conn.connect(): SELECT 1`` afterwards — a checkout from the pool inside a read-only
  transaction — p50 / p95 / max over ``--iterations``.

Each is checked against the budget (``--budget-ms``, default 500 ms) and written as a table to
``--out`` (``connections.md`` and ``connections.json``).  ``--plain`` measures bare SQLAlchemy instead.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

from benchmarks.report import machine_info, percentile
from benchmarks.runner import REPO_ROOT, default_data_dir, sqlite_readonly_url

BUDGET_MS = 500.0
PG_ENV = "NL2SQL_TEST_PG_URL"


def _child(url: str, iterations: int, plain: bool) -> dict[str, Any]:
    """Runs in the fresh process: time the first connection, then pooled checkouts."""
    import sqlalchemy as sa  # noqa: F401 - imported before the clock, as a kernel already has it

    if plain:
        t0 = time.perf_counter()
        engine = sa.create_engine(url)
        with engine.connect() as c:
            c.exec_driver_sql("SELECT 1").fetchall()
        first = time.perf_counter() - t0

        def checkout() -> None:
            with engine.connect() as c:
                c.exec_driver_sql("SELECT 1").fetchall()
    else:
        from jupyter_nl2sql.connections import ConnectionManager

        manager = ConnectionManager()
        t0 = time.perf_counter()
        conn = manager.resolve(url)
        first = time.perf_counter() - t0

        def checkout() -> None:
            with conn.connect() as c:
                c.exec_driver_sql("SELECT 1").fetchall()
    times = []
    for _ in range(iterations):
        t0 = time.perf_counter()
        checkout()
        times.append(time.perf_counter() - t0)
    return {"first_s": first, "pooled_p50_s": percentile(times, 50), "pooled_p95_s": percentile(times, 95),
            "pooled_max_s": max(times) if times else None, "iterations": iterations}


def _measure(url: str, iterations: int, plain: bool, timeout: float) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "benchmarks.connections", "--child", url, "--iterations", str(iterations)]
    if plain:
        cmd.append("--plain")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=REPO_ROOT, env=env)
    except subprocess.TimeoutExpired:
        return {"error": f"no connection within {timeout:g} s"}
    if res.returncode != 0:
        lines = [ln for ln in (res.stderr or res.stdout).strip().splitlines() if ln.strip()]
        return {"error": lines[-1] if lines else f"exit code {res.returncode}"}
    return json.loads(res.stdout.strip().splitlines()[-1])


def _duckdb_file(tmp: Path) -> str | None:
    try:
        import duckdb
    except ImportError:
        return None
    path = tmp / "bench.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE t AS SELECT range AS id, 'row ' || range AS name FROM range(1000)")
    con.close()
    return f"duckdb:///{path}"


def _sqlite_url(data_dir: Path, tmp: Path) -> str:
    db = data_dir / "spider" / "database" / "concert_singer" / "concert_singer.sqlite"
    if not db.exists():
        import sqlite3

        db = tmp / "bench.sqlite"
        con = sqlite3.connect(db)
        con.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)")
        con.commit()
        con.close()
    return sqlite_readonly_url(db)


def markdown(rows: Sequence[dict[str, Any]], budget_ms: float, plain: bool) -> str:
    """The results as a Markdown table."""
    def ms(x: float | None) -> str:
        return "n/a" if x is None else (f"{1000 * x:.2f} ms" if x < 0.01 else f"{1000 * x:.1f} ms")

    lines = [f"# Connection establishment ({'plain SQLAlchemy' if plain else 'jupyter_nl2sql ConnectionManager'};"
             f" budget {budget_ms:.0f} ms)", "",
             "| database | first connection | pooled p50 | pooled p95 | pooled max | within budget |",
             "|---|---:|---:|---:|---:|---|"]
    for r in rows:
        if r.get("skipped"):
            lines.append(f"| {r['name']} | skipped: {r['skipped']} | | | | |")
        elif r.get("error"):
            lines.append(f"| {r['name']} | error: {r['error']} | | | | no |")
        else:
            lines.append(f"| {r['name']} | {ms(r['first_s'])} | {ms(r['pooled_p50_s'])} | {ms(r['pooled_p95_s'])} |"
                         f" {ms(r['pooled_max_s'])} | {'yes' if r['within_budget'] else '**no**'} |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m benchmarks.connections [--iterations N] [--budget-ms MS] [--out DIR] [--plain]``."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.connections", description=__doc__.split("\n\n")[0])
    p.add_argument("--iterations", type=int, default=50, help="pooled checkouts to time (default 50)")
    p.add_argument("--budget-ms", type=float, default=BUDGET_MS, help="budget per connection (default 500 ms)")
    p.add_argument("--data-dir", type=Path, default=None)
    p.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks" / "results" / "connections")
    p.add_argument("--plain", action="store_true", help="bare SQLAlchemy instead of the product's ConnectionManager")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds per database before giving up")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(_child(args.child, args.iterations, args.plain)))
        return 0

    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="nl2sql-conn-") as tmpdir:
        tmp = Path(tmpdir)
        targets: list[tuple[str, str | None, str | None]] = [
            ("SQLite (file, read-only)", _sqlite_url((args.data_dir or default_data_dir()).resolve(), tmp), None)]
        duck = _duckdb_file(tmp)
        targets.append(("DuckDB (file, duckdb_engine)", duck, None if duck else "duckdb is not installed"))
        pg = os.environ.get(PG_ENV)
        targets.append(("PostgreSQL", pg, None if pg else f"set {PG_ENV} to a PostgreSQL URL to measure it"))
        for name, url, skip in targets:
            if skip or url is None:
                rows.append({"name": name, "skipped": skip})
                print(f"{name}: skipped ({skip})", file=sys.stderr)
                continue
            r = {"name": name, **_measure(url, args.iterations, args.plain, args.timeout)}
            if "error" not in r:
                limit = args.budget_ms / 1000
                r["within_budget"] = r["first_s"] <= limit and (r["pooled_p95_s"] or 0) <= limit
            rows.append(r)
    text = markdown(rows, args.budget_ms, args.plain)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "connections.md").write_text(text, encoding="utf-8")
    (args.out / "connections.json").write_text(json.dumps(
        {"budget_ms": args.budget_ms, "plain": args.plain, "rows": rows, "machine": machine_info(),
         "date": time.strftime("%Y-%m-%dT%H:%M:%S%z")}, indent=2) + "\n", encoding="utf-8")
    return 0 if all(r.get("within_budget", True) and not r.get("error") for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
