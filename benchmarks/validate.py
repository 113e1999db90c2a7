"""Check the scorers on the gold queries themselves (no model involved).

``python -m benchmarks.validate`` runs:

- Spider: every scorable dev gold query scored against itself — must be 100 %; then, as a check that the scorer
  can say no, each gold against the next *different* gold query on the same database — only queries whose
  results happen to coincide (or that are equivalent rewrites) may score as correct;
- WikiSQL: a reproducible sample (``--wikisql-sample``, default 500, seed 0) of gold logical forms executed with
  dbengine semantics on dev.db, against the equivalent SQL (:func:`benchmarks.wikisql.logical_form_to_sql`) run on
  the real-header table database — must be 100 %.

It prints the numbers and exits 1 when a gold-vs-gold score is below 100 %.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any, Sequence

from benchmarks.runner import Benchmark, default_data_dir, select_items
from benchmarks.scoring import has_top_level_order_by
from benchmarks.spider import SpiderBenchmark
from benchmarks.wikisql import WikiSQLBenchmark


def gold_vs_gold(benchmark: Benchmark, items: Sequence[Any], timeout: float) -> dict[str, Any]:
    """Score each item's gold SQL as if it were the prediction."""
    t0 = time.perf_counter()
    failures = []
    for it in items:
        s = benchmark.score(it, it.gold, timeout=timeout)
        if not s.correct:
            failures.append({"index": it.index, "db_id": it.db_id, "gold": it.gold,
                             "pred_error": s.pred_error, "gold_error": s.gold_error})
    n = len(items)
    return {"n": n, "correct": n - len(failures), "ex": (n - len(failures)) / n if n else None,
            "failures": failures[:20], "seconds": time.perf_counter() - t0}


def spider_negatives(benchmark: SpiderBenchmark, items: Sequence[Any], timeout: float) -> dict[str, Any]:
    """Each gold scored against the next different gold on the same database (should mostly be wrong)."""
    by_db: dict[str, list[Any]] = {}
    for it in items:
        by_db.setdefault(it.db_id, []).append(it)
    def norm(sql: str) -> str:
        return " ".join(sql.lower().replace(";", " ").split())

    n = matched = 0
    examples = []
    for group in by_db.values():
        for i, a in enumerate(group):
            # Spider asks most queries twice (two phrasings): take the next question with a different gold text
            b = next((x for x in group[i + 1:] if norm(x.gold) != norm(a.gold)), None)
            if b is None:
                continue
            n += 1
            if benchmark.score(a, b.gold, timeout=timeout).correct:
                matched += 1
                examples.append({"gold": a.gold, "other": b.gold})
    return {"pairs": n, "judged_equal": matched, "share": matched / n if n else None, "examples": examples[:10]}


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m benchmarks.validate [--data-dir D] [--wikisql-sample N] [--seed S] [--json FILE]``."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.validate", description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", type=Path, default=None)
    p.add_argument("--wikisql-sample", type=int, default=500)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--timeout", type=float, default=60.0)
    p.add_argument("--cache-dir", type=Path, default=None, help="where the WikiSQL real-header tables are built")
    p.add_argument("--json", type=Path, default=None, help="write the numbers here")
    args = p.parse_args(argv)
    data_dir = (args.data_dir or default_data_dir()).resolve()

    spider = SpiderBenchmark()
    items = spider.load(data_dir, "dev")
    scorable = select_items(items, None, 0)
    out: dict[str, Any] = {"spider": gold_vs_gold(spider, scorable, args.timeout)}
    out["spider"]["skipped"] = len(items) - len(scorable)
    out["spider"]["order_by_only_in_subquery"] = sum(
        1 for it in scorable if "order by" in it.gold.lower() and not has_top_level_order_by(it.gold))
    out["spider_negatives"] = spider_negatives(spider, scorable, args.timeout)

    wikisql = WikiSQLBenchmark(cache_dir=args.cache_dir)
    witems = wikisql.load(data_dir, "dev")
    sample = select_items(witems, args.wikisql_sample, args.seed)
    out["wikisql"] = gold_vs_gold(wikisql, sample, args.timeout)
    out["wikisql"]["gold_non_null"] = sum(1 for it in sample if any(v is not None for v in wikisql.gold_values(it)))

    s, w, neg = out["spider"], out["wikisql"], out["spider_negatives"]
    print(f"Spider dev gold vs gold: {s['correct']}/{s['n']} = {100 * s['ex']:.2f}% "
          f"({s['skipped']} skipped: database missing; {s['seconds']:.1f} s; "
          f"{s['order_by_only_in_subquery']} golds have ORDER BY only inside a subquery)")
    print(f"Spider gold vs the next different gold on the same db: {neg['judged_equal']}/{neg['pairs']} judged equal "
          f"({100 * (neg['share'] or 0):.1f}%)")
    print(f"WikiSQL dev gold logical form vs equivalent SQL on real headers: {w['correct']}/{w['n']} = "
          f"{100 * w['ex']:.2f}% (sample seed {args.seed}; {w['gold_non_null']} with a non-NULL gold value; "
          f"{w['seconds']:.1f} s)")
    for name in ("spider", "wikisql"):
        for f in out[name]["failures"]:
            print(f"  {name} failure: {json.dumps(f)}")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    return 0 if s["ex"] == 1.0 and w["ex"] == 1.0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
