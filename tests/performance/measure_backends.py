"""Load time, memory and prefix reuse of a model backend, measured in a fresh process.

    python tests/performance/measure_backends.py --backend llama.cpp [--json out.json]
    python tests/performance/measure_backends.py --backend transformers [--prompt-lookup 10]

What it prints (one JSON object):

- ``load_s``: ``get_backend`` in a fresh process (resolution, sha256 check from its stamp, weights mapped or read);
- ``rss_*_mb`` after loading and after answering: total, anonymous (the process's own memory: Python, libraries,
  KV cache, buffers; for transformers also the de-quantised weights) and file-backed (llama.cpp's memory-mapped
  GGUF, shared with the page cache);
- ``harness_mb``: RSS minus the weights (llama.cpp: its anonymous RSS, since the weights are file-backed;
  transformers: RSS minus the size of its parameters);
- ``first_s`` / ``second_s`` / ``third_s``: ``Assistant.ask`` end to end for three different questions on one
  Spider database (the first evaluates the whole schema; later ones reuse it where the backend keeps its cache),
  with the generation's tokens in/out;
- ``repeat_ms``: the first question asked again (generation cache hit), end to end;
- ``load_avg``: the 1-minute load average at the end (other processes competing for the CPU skew timings).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository: benchmarks/
from benchmarks.harness_memory import emit, rss_mb  # noqa: E402

DB = "concert_singer"
QUESTIONS = ["How many singers do we have?",
             "What is the average, minimum, and maximum age of all singers from France?",
             "Show the name and the release year of the song by the youngest singer."]
DEMO_QUESTIONS = ["How many customers are there?",
                  "What is the average unit price of products in each category?",
                  "Which 3 customers placed the most orders?"]


def measure(backend_name: str, data_dir: Path | None, prompt_lookup: int | None = None) -> dict:
    """See the module docstring; ``data_dir`` None: the bundled demo database and its questions."""
    os.environ.setdefault("NL2SQL_GENERATION_CACHE", "memory")
    t0 = time.perf_counter()
    from jupyter_nl2sql.pipeline.assistant import Assistant
    from jupyter_nl2sql.connections import ConnectionManager

    import_s = time.perf_counter() - t0
    rss_import = rss_mb()
    a = Assistant(backend=backend_name, connections=ConnectionManager(), generation_cache="memory")
    t0 = time.perf_counter()
    backend, _ = a.backend()
    load_s = time.perf_counter() - t0
    if prompt_lookup:
        backend.decoding_options["prompt_lookup_num_tokens"] = prompt_lookup
    rss_loaded = rss_mb()
    if data_dir is None:
        from jupyter_nl2sql.demo import demo_url

        url, questions = demo_url(), DEMO_QUESTIONS
    else:
        db = data_dir / "spider" / "database" / DB / f"{DB}.sqlite"
        url, questions = f"sqlite:///file:{db}?mode=ro&uri=true", QUESTIONS
    runs = []
    for q in questions:
        t0 = time.perf_counter()
        ans = a.ask(q, url)
        runs.append({"question": q, "seconds": time.perf_counter() - t0, "sql": ans.sql,
                     "tokens_in": ans.stats.tokens_in, "tokens_out": ans.stats.tokens_out,
                     "generation_s": ans.stats.generation_seconds, "tokens_per_s": ans.stats.tokens_per_second})
    t0 = time.perf_counter()
    again = a.ask(questions[0], url)
    repeat_ms = (time.perf_counter() - t0) * 1000
    assert again.stats.cache_hit
    rss_end = rss_mb()
    weights_mb = None
    if backend.provenance.get("backend") == "transformers":
        weights_mb = sum(p.numel() * p.element_size() for p in backend.model.parameters()) / 2**20
        harness = rss_end["VmRSS"] - weights_mb
    else:
        harness = rss_end["RssAnon"]
    return {
        "backend": backend.provenance.get("backend"), "dtype": backend.dtype, "device": backend.device,
        "prompt_lookup_num_tokens": prompt_lookup, "import_s": import_s, "load_s": load_s,
        "loaded_from": backend.provenance.get("loaded_from"),
        "rss_after_import_mb": rss_import["VmRSS"], "rss_loaded_mb": rss_loaded["VmRSS"],
        "rss_loaded_anon_mb": rss_loaded["RssAnon"], "rss_loaded_file_mb": rss_loaded["RssFile"],
        "rss_end_mb": rss_end["VmRSS"], "rss_end_anon_mb": rss_end["RssAnon"], "rss_end_file_mb": rss_end["RssFile"],
        "peak_rss_mb": rss_end["VmHWM"], "weights_in_anon_mb": weights_mb, "harness_mb": harness,
        "first_s": runs[0]["seconds"], "second_s": runs[1]["seconds"], "third_s": runs[2]["seconds"],
        "repeat_ms": repeat_ms, "runs": runs, "load_avg": os.getloadavg()[0],
        "torch_imported": "torch" in sys.modules,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backend", default="auto", help="auto, transformers or llama.cpp")
    p.add_argument("--data-dir", type=Path,
                   default=Path(os.environ.get("NL2SQL_BENCH_DATA") or Path(__file__).resolve().parents[3]
                                / "shared" / "data"))
    p.add_argument("--demo", action="store_true", help="the bundled demo database instead of Spider's " + DB)
    p.add_argument("--prompt-lookup", type=int, default=None,
                   help="transformers only: prompt_lookup_num_tokens (prompt-lookup decoding)")
    p.add_argument("--json", type=Path, default=None, help="also write the result here")
    args = p.parse_args(argv)
    emit(measure(args.backend, None if args.demo else args.data_dir, args.prompt_lookup), args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
