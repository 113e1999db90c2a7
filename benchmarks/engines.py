"""The GGUF engines side by side on one machine: load time, memory, cold schema prefill, per-question latency,
decode speed and the SQL each writes, for the same demo-database questions through the same pipeline.

Each engine runs in its own fresh process (a new kernel's view), the engines alternating for ``--rounds`` rounds so
that a machine getting busier or quieter affects all alike; the figures are medians over the rounds and the
ratios are against the xllamacpp engine measured in the same run.  ``ik_llama.cpp/repack-at-load`` is
ik_llama.cpp as it loaded before its repacked copy was kept in the cache (weights repacked in memory at every
load); ``ik_llama.cpp/no-guess`` is ik_llama.cpp without lookup decoding (``NL2SQL_DRAFT_TOKENS=0``).  No prefix
state is shared with the user's cache (each process gets an empty folder, and with it no remembered replies to
guess from), so the first question's schema prefill is the cold one.

    python -m benchmarks.engines [--rounds 2] [--out benchmarks/results/engines]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ENGINES = ("ik_llama.cpp", "ik_llama.cpp/no-guess", "ik_llama.cpp/repack-at-load", "llama.cpp")
BASELINE = "llama.cpp"
DISTRIBUTIONS = {"ik_llama.cpp": "ik-llama-cpp-python", "llama.cpp": "xllamacpp"}
AT_LOAD = "/repack-at-load"
NO_GUESS = "/no-guess"
QUESTIONS = (
    "How many customers are there?",
    "Which city has the most customers?",
    "List the five most expensive products.",
    "How many orders were placed in each month of 2024?",
    "What is the total revenue per product category?",
    "Which customers have never placed an order?",
    "How many employees work in each department?",
    "What is the average unit price of products in each category?",
)


def _child(engine: str, out: Path) -> None:
    """One engine in this process: load, warm the demo schema (cold), then every question (generate only)."""
    import psutil

    from jupyter_nl2sql.pipeline.assistant import Assistant

    if engine.endswith(AT_LOAD):
        from jupyter_nl2sql.models import ikllama_backend

        ikllama_backend.REPACK_FILE_MIN_BYTES = 2**62  # no file is big enough: repacked in memory
    if engine.endswith(NO_GUESS):
        os.environ["NL2SQL_DRAFT_TOKENS"] = "0"
    t0 = time.perf_counter()
    a = Assistant(backend=_engine(engine), generation_cache="off")
    backend, _ = a.backend()
    load = time.perf_counter() - t0
    rss_loaded = psutil.Process().memory_info().rss
    warm = a.warm("demo")
    rows = []
    for q in QUESTIONS:
        t1 = time.perf_counter()
        ans = a.ask(q, "demo", generate_only=True)
        st = ans.stats
        rows.append({"question": q, "sql": ans.sql, "seconds": time.perf_counter() - t1,
                     "generate_seconds": st.generation_seconds, "prefill_tokens": st.tokens_in - st.tokens_reused,
                     "prefill_seconds": st.prefill_seconds, "decode_tokens": st.tokens_out,
                     "decode_seconds": st.decode_seconds, "guessed_tokens": st.tokens_guessed})
    out.write_text(json.dumps({
        "engine": engine, "provenance": backend.provenance, "load_seconds": load, "rss_loaded": rss_loaded,
        "rss_peak": psutil.Process().memory_info().rss, "schema_tokens": warm.tokens,
        "schema_seconds": warm.seconds, "schema_source": warm.source, "questions": rows}, indent=1))


def _engine(variant: str) -> str:
    """The backend a variant of :data:`ENGINES` runs."""
    return variant.split("/")[0]


def _installed_bytes(dist: str) -> int:
    """Bytes of the files a distribution installed (its wheel, unpacked)."""
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        d = distribution(dist)
    except PackageNotFoundError:
        return 0
    total = 0
    for f in d.files or ():
        try:
            total += Path(d.locate_file(f)).stat().st_size
        except OSError:
            pass
    return total


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def summarise(runs: list[dict]) -> dict:
    """Medians per engine over rounds and questions, ratios against :data:`BASELINE`, and how often the engines'
    SQL agrees question by question."""
    per: dict[str, dict] = {}
    for engine in ENGINES:
        mine = [r for r in runs if r["engine"] == engine]
        qs = [q for r in mine for q in r["questions"]]
        decoded = sum(q["decode_tokens"] for q in qs)
        per[engine] = {
            "load_seconds": _median([r["load_seconds"] for r in mine]),
            "rss_loaded_mb": _median([r["rss_loaded"] / 2**20 for r in mine]),
            "schema_tokens": mine[0]["schema_tokens"] if mine else 0,
            "schema_prefill_seconds": _median([r["schema_seconds"] for r in mine]),
            "schema_prefill_tok_s": _median([r["schema_tokens"] / r["schema_seconds"] for r in mine
                                             if r["schema_seconds"]]),
            "question_seconds": _median([q["seconds"] for q in qs]),
            "question_prefill_seconds": _median([q["prefill_seconds"] for q in qs if q["prefill_seconds"] is not None]),
            "decode_tok_s": _median([q["decode_tokens"] / q["decode_seconds"] for q in qs if q["decode_seconds"]]),
            "guessed_share": sum(q.get("guessed_tokens") or 0 for q in qs) / decoded if decoded else 0.0,
            "installed_mb": _installed_bytes(DISTRIBUTIONS[_engine(engine)]) / 2**20,
            "engine": mine[0]["provenance"].get("engine") if mine else None,
        }
    base = per[BASELINE]
    ratios = {e: {k: (v / base[k] if isinstance(v, float) and base.get(k) else None)
                  for k, v in per[e].items() if isinstance(v, float)} for e in ENGINES if e != BASELINE}
    first = {e: next(r for r in runs if r["engine"] == e) for e in ENGINES if any(r["engine"] == e for r in runs)}
    same = {e: sum(1 for a, b in zip(first[e]["questions"], first[BASELINE]["questions"]) if a["sql"] == b["sql"])
            for e in first if e != BASELINE and BASELINE in first}
    return {"engines": per, "ratios_vs_" + BASELINE: ratios,
            "same_sql_as_" + BASELINE: {e: f"{n} of {len(QUESTIONS)}" for e, n in same.items()}}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.engines", description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=2, help="rounds of all engines, alternating (default 2)")
    p.add_argument("--out", default="benchmarks/results/engines", help="folder of the result JSON")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--child-out", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        _child(args.child, Path(args.child_out))
        return 0
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for rnd in range(args.rounds):
            for engine in ENGINES:
                name = engine.replace("/", "-")
                out = Path(tmp) / f"{rnd}-{name}.json"
                env = {**os.environ, "NL2SQL_PREFIX_STATE_DIR": str(Path(tmp) / f"states-{rnd}-{name}"),
                       "NL2SQL_GENERATION_CACHE": "off"}
                subprocess.run([sys.executable, "-m", "benchmarks.engines", "--child", engine, "--child-out",
                                str(out)], check=True, env=env, stdout=subprocess.DEVNULL)
                runs.append(json.loads(out.read_text()))
                print(f"round {rnd + 1}: {engine} done", file=sys.stderr)
    summary = summarise(runs)
    from benchmarks.report import machine_info
    from benchmarks.runner import _git_commit
    from jupyter_nl2sql.models.device import cpu_flags

    commit = _git_commit()
    path = Path(args.out) / f"{time.strftime('%Y-%m-%d')}-{(commit.get('commit') or 'nogit')[:7]}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    machine = {**machine_info(), "avx512": "avx512f" in cpu_flags(), "amx": "amx_int8" in cpu_flags()}
    path.write_text(json.dumps({"machine": machine, "git": commit, "rounds": args.rounds, **summary, "runs": runs},
                               indent=1))
    print(json.dumps({k: summary[k] for k in summary}, indent=1))
    print(f"written {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
