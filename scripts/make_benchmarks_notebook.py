"""Write notebooks/benchmarks.ipynb, which renders the committed results under benchmarks/results/."""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

LOAD = '''import json
from pathlib import Path

import pandas as pd
from IPython.display import Image, Markdown, display

RESULTS = Path("../benchmarks/results")
runs = {}
for summary in sorted(RESULTS.glob("**/summary.json")):
    runs[str(summary.parent.relative_to(RESULTS))] = json.loads(summary.read_text())
sorted(runs)'''

TABLE = '''def pct(x):
    return None if x is None else round(100 * x, 1)

def row(name, s):
    e2e = (s.get("latency") or {}).get("end_to_end") or {}
    out = {"run": name, "questions": s["n"], "EX %": pct(s.get("ex")),
           "exec failed %": pct(s.get("exec_failure_share")), "p50 s": e2e.get("p50"), "p95 s": e2e.get("p95"),
           "peak RSS GB": round(s["peak_rss_bytes"] / 2**30, 2) if s.get("peak_rss_bytes") else None,
           "tok/s": round(s["tokens_per_second"], 1) if s.get("tokens_per_second") else None}
    for level, acc in (s.get("by_hardness") or {}).items():
        out[f"EX {level} %"] = pct(acc.get("ex")) if isinstance(acc, dict) else acc
    return out

table = pd.DataFrame([row(n, s) for n, s in runs.items()]).set_index("run")
table'''

PLOTS = '''for name in runs:
    for png in sorted((RESULTS / name).glob("*.png")):
        display(Markdown(f"**{name}** — `{png.name}`"), Image(filename=str(png)))'''

cells = [
    new_markdown_cell("# Benchmark results\n\nRenders the results committed under `benchmarks/results/` "
                      "(see `benchmarks/README.md` for the commands that produced them). Nothing is re-run here."),
    new_code_cell(LOAD),
    new_code_cell(TABLE),
    new_markdown_cell("Each run's `summary.md` holds the full table, with the command, machine and date:"),
    new_code_cell("for name in runs:\n    md = RESULTS / name / 'summary.md'\n    if md.is_file():\n"
                  "        display(Markdown(md.read_text()))"),
    new_code_cell("# NBVAL_IGNORE_OUTPUT\n" + PLOTS),
]
nb = new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                        "language": "python"}})
out = Path(__file__).resolve().parent.parent / "notebooks" / "benchmarks.ipynb"
nbformat.write(nb, out)
print(out)
