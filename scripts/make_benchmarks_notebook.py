"""Write notebooks/benchmarks.ipynb, which renders the committed records under benchmarks/results/ (run.json +
results.jsonl of each run; the summaries and plots are computed in the notebook, from the records alone)."""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

LOAD = '''import sys
from pathlib import Path

sys.path.insert(0, str(Path("..").resolve()))  # the repository's benchmarks/ package

import pandas as pd
from IPython.display import Image, Markdown, display

from benchmarks.index import RESULTS_ROOT, find_runs
from benchmarks.report import load_run, markdown, plot, summarize

runs = {}
for folder in find_runs(RESULTS_ROOT):
    meta, records = load_run(folder)
    runs[str(folder.relative_to(RESULTS_ROOT))] = (summarize(records, meta), records)
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

table = pd.DataFrame([row(n, s) for n, (s, _) in runs.items()]).set_index("run")
table'''

PLOTS = '''import tempfile

with tempfile.TemporaryDirectory() as tmp:
    for name, (summary, records) in runs.items():
        folder = Path(tmp) / name.replace("/", "_")
        folder.mkdir()
        for png in plot(summary, records, folder):
            display(Markdown(f"**{name}** — `{png.name}`"), Image(filename=str(png)))'''

cells = [
    new_markdown_cell("# Benchmark results\n\nRenders the records committed under `benchmarks/results/` "
                      "(`run.json` + `results.jsonl` of each run; see `benchmarks/README.md` for the commands that "
                      "produced them and `benchmarks/results/README.md` for the index). Nothing is re-run here: "
                      "the summaries and plots are computed from the records."),
    new_code_cell(LOAD),
    new_code_cell(TABLE),
    new_markdown_cell("Each run's full table, with the command, machine and date:"),
    new_code_cell("for name, (summary, _) in runs.items():\n    display(Markdown(markdown(summary)))"),
    new_code_cell("# NBVAL_IGNORE_OUTPUT\n" + PLOTS),
]
nb = new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                        "language": "python"}})
out = Path(__file__).resolve().parent.parent / "notebooks" / "benchmarks.ipynb"
nbformat.write(nb, out)
print(out)
