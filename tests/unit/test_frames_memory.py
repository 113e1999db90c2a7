"""A DataFrame of 1 million rows is asked without being copied: the process's peak memory grows by less than 10 % of
the frame's size for connecting, reading the schema (with sample rows), building the value index and running
queries on it.

The measure runs in a child interpreter (so the peak RSS is its own).  The child first runs the same path once on a
ten-row frame of the same dtypes (so code and lazily imported modules are loaded), then resets its peak RSS
(``/proc/self/clear_refs``) and measures the path on the big frame: peak RSS (``VmHWM``) minus RSS before.  The same
meter then measures a copy of the frame into a DuckDB table, so the test shows the meter would see a copy.
The growth measured is a roughly fixed cost (a new DuckDB database and its query states, a few MB whatever the
frame's size), not a share of the frame; the frame has six columns (numbers, two text columns, a date).
A memory bound, not a timing.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("duckdb_engine")

ROWS = 1_000_000

CHILD = textwrap.dedent("""
    import ctypes, gc, json, sys
    from benchmarks.frames import sales_frame as frame
    from jupyter_nl2sql.connections import ConnectionManager
    from jupyter_nl2sql.pipeline.assistant import Assistant
    from jupyter_nl2sql.pipeline.values import ValueIndex

    def status(field):
        with open("/proc/self/status") as lines:
            return next(int(line.split()[1]) * 1024 for line in lines if line.startswith(field))

    def reset_peak():  # settle first: garbage freed and returned to the system, so RSS is not inflated by it
        gc.collect()
        ctypes.CDLL("libc.so.6").malloc_trim(0)
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")

    QUERIES = ["SELECT country, COUNT(*) AS n, SUM(amount) AS total FROM sales GROUP BY country ORDER BY total DESC",
               "SELECT * FROM sales WHERE day >= '2024-12-01' ORDER BY amount DESC LIMIT 10"]

    def ask(manager, assistant, sales):
        conn = manager.resolve("sales", {"sales": sales})
        schema = assistant.schemas.get(conn, sample_rows=3)
        ValueIndex.build(conn, schema)
        return [len(assistant.run_sql(sql, conn).dataframe) for sql in QUERIES]

    manager = ConnectionManager()
    assistant = Assistant(connections=manager)
    ask(manager, assistant, frame(10))  # warm-up: the same path on ten rows
    sales = frame(int(sys.argv[1]))
    size = int(sales.memory_usage(deep=True).sum())
    reset_peak()
    before = status("VmRSS")
    rows = ask(manager, assistant, sales)
    growth = status("VmHWM") - before
    reset_peak()
    before = status("VmRSS")
    import duckdb
    copied = duckdb.connect(":memory:")
    copied.register("sales", sales)
    copied.execute("CREATE TABLE copy AS SELECT * FROM sales")  # what a copy into DuckDB would cost
    copy_growth = status("VmHWM") - before
    print(json.dumps({"size": size, "growth": growth, "copy_growth": copy_growth, "rows": rows,
                      "dtypes": [str(t) for t in sales.dtypes]}))
""")


def test_a_million_row_dataframe_is_asked_without_a_copy() -> None:
    proc = subprocess.run([sys.executable, "-c", CHILD, str(ROWS)], capture_output=True, text=True, timeout=600,
                          cwd=Path(__file__).resolve().parents[2])
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    mb = 2 ** 20
    print(f"frame {report['size'] / mb:.1f} MB ({', '.join(report['dtypes'])}); peak RSS growth for connect + schema + "
          f"value index + 2 queries: {report['growth'] / mb:.1f} MB ({report['growth'] / report['size']:.1%}); "
          f"for a copy into a DuckDB table: {report['copy_growth'] / mb:.1f} MB")
    assert report["rows"] == [8, 10]
    assert report["copy_growth"] > 3 * 0.10 * report["size"], "the meter does not see a copy of the frame"
    assert report["growth"] < 0.10 * report["size"], (
        f"RSS grew by {report['growth'] / mb:.1f} MB for a {report['size'] / mb:.1f} MB frame")
