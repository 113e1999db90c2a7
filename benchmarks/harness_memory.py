"""Memory of the harness without a model: ``python -m benchmarks.harness_memory [--questions 1000]``.

Everything of :meth:`Assistant.ask` except the model runs for real, in a fresh process, with the default settings
plus the Spider train pool for few-shot retrieval (not a default: loaded here so that its index counts too):
schema introspection and rendering, the value index, few-shot retrieval, checking,
name repair, execution through the pooled engine into a DataFrame, the in-memory generation cache and the history.
The model's place is taken by a stand-in that replays each question's *gold* SQL (plumbing only: it says nothing
about accuracy), so that the queries and DataFrames are the real ones.  Questions are Spider dev's scorable ones in
order, cycled up to ``--questions``.

What it prints (and writes to ``--json``): RSS after the imports, after the first question, after question 100
and after the last one; the peak; the growth between question 100 and the last; with ``--questions`` beyond one
pass (972), also the growth over the second pass, once every database's schema, value index and engine exist and
the caches hold every question (the budget: < 5 % over 1,000 questions); whether
torch was imported (it must not be, for the llama.cpp path).  The model's own memory (weights, llama.cpp's
repacked copy, KV cache) is measured apart by ``tests/performance/measure_backends.py``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from benchmarks.runner import default_data_dir


def rss_mb() -> dict[str, float]:
    """This process's memory from ``/proc/self/status`` in MiB: ``VmRSS``, ``RssAnon``, ``RssFile``, ``VmHWM``."""
    out = {}
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "RssAnon", "RssFile", "VmHWM"):
                out[key] = int(value.split()[0]) / 1024
    return out


def emit(result: dict[str, Any], json_path: Path | None) -> None:
    """Print ``result`` as JSON and, with ``json_path``, write it there too."""
    text = json.dumps(result, indent=1)
    print(text)
    if json_path:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(text + "\n", encoding="utf-8")


def measure(data_dir: Path, questions: int) -> dict[str, Any]:
    """See the module docstring."""
    t0 = time.perf_counter()
    from jupyter_nl2sql.pipeline.assistant import Assistant
    from jupyter_nl2sql.connections import ConnectionManager
    from jupyter_nl2sql.models.testing import StandInBackend

    import_s = time.perf_counter() - t0
    after_import = rss_mb()
    spider = data_dir / "spider"
    dev = json.loads((spider / "dev.json").read_text(encoding="utf-8"))
    items = [(ex["question"].strip(), ex["query"], spider / "database" / ex["db_id"] / f"{ex['db_id']}.sqlite")
             for ex in dev]
    items = [it for it in items if it[2].exists()]
    gold = {q: sql for q, sql, _ in items}

    @dataclass(kw_only=True)
    class GoldReplay(StandInBackend):
        """Stand-in model: replies with the gold SQL of the question in the prompt (plumbing only)."""

        model_id: str = "gold-replay-stand-in"
        calls: list = field(default_factory=list)

        def reply(self, messages: list[dict]) -> str:
            self.calls.clear()  # keep nothing per call: growth must be the harness's own
            question = messages[-1]["content"].rsplit("Question: ", 1)[-1].strip()
            return f"```sql\n{gold.get(question, 'SELECT 1')}\n```"

    backend = GoldReplay()
    assistant = Assistant(connections=ConnectionManager(), generation_cache="memory",
                          example_pool=str(spider / "train_spider_compact.json"))
    assistant.backend = lambda: (backend, None)  # type: ignore[method-assign]
    marks: dict[str, dict[str, float]] = {}
    errors = 0
    t0 = time.perf_counter()
    for n in range(1, questions + 1):
        question, _, db = items[(n - 1) % len(items)]
        answer = assistant.ask(question, f"sqlite:///file:{db}?mode=ro&uri=true")
        errors += answer.error is not None
        if n in (1, 100, len(items)):
            marks[f"q{n}"] = rss_mb()
    seconds = time.perf_counter() - t0
    end = rss_mb()
    growth = 100 * (end["VmRSS"] - marks["q100"]["VmRSS"]) / marks["q100"]["VmRSS"]
    first_pass = marks.get(f"q{len(items)}")
    second = None  # after every database and question has been seen once: what a long session adds
    if first_pass is not None and questions >= len(items) + 100:
        second = round(100 * (end["VmRSS"] - first_pass["VmRSS"]) / first_pass["VmRSS"], 2)
    return {
        "questions": questions, "distinct_questions": min(questions, len(items)), "errors": errors,
        "seconds": round(seconds, 1), "ms_per_question": round(1000 * seconds / questions, 1),
        "import_s": round(import_s, 2), "rss_after_import_mb": round(after_import["VmRSS"], 1),
        "rss_after_first_mb": round(marks["q1"]["VmRSS"], 1), "rss_q100_mb": round(marks["q100"]["VmRSS"], 1),
        "rss_end_mb": round(end["VmRSS"], 1), "rss_end_anon_mb": round(end["RssAnon"], 1),
        "peak_rss_mb": round(end["VmHWM"], 1), "growth_q100_to_end_pct": round(growth, 2),
        "rss_first_pass_end_mb": round(first_pass["VmRSS"], 1) if first_pass else None,
        "growth_second_pass_pct": second,
        "budget_mb": 512, "within_budget": end["VmHWM"] < 512, "torch_imported": "torch" in sys.modules,
    }


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", type=Path, default=None, help="folder holding spider/ (default: ../shared/data)")
    p.add_argument("--questions", type=int, default=1000, help="questions to ask (Spider dev, cycled; ≥ 100)")
    p.add_argument("--json", type=Path, default=None, help="also write the result here")
    args = p.parse_args(argv)
    if args.questions < 100:
        p.error("--questions must be at least 100 (growth is measured from question 100)")
    emit(measure((args.data_dir or default_data_dir()).resolve(), args.questions), args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
