"""Refusals before any model call, counted without a model: false ones on answerable questions, and how many of
the unanswerable ones are refused with the missing thing named.

``python -m benchmarks.refusals --out /tmp/refusals.json`` asks :meth:`Assistant.unanswerable
<jupyter_nl2sql.pipeline.assistant.Assistant.unanswerable>` — the check :meth:`~jupyter_nl2sql.pipeline.assistant.
Assistant.ask` makes first, with the schema and value index it would read — about

- every Spider dev question whose database is in the shared data (972 of 1034: wta_1's file is missing) and every
  Spider train question (``train_spider_compact.json``), and the hand-written paraphrases of train questions
  (``benchmarks/data/paraphrases_train.json``), and the analyst suite's questions (``benchmarks/data/analyst.json``,
  on the demo and the streaming database): each refusal there is a false one;
- ``benchmarks/data/unanswerable.json`` (``tune``, ``check``, ``holdout`` … ``holdout10``): each should be
  refused, naming its missing thing.

It prints and writes the counts and every false refusal.  ``--model`` (unanswerable sets only) asks the model the
questions the check before it lets through, as :meth:`Assistant.ask` would, and counts the refusals of
:mod:`jupyter_nl2sql.pipeline.invented` too.  ``--sets`` picks some of them (``dev`` is the held-out
check: look at its false refusals only at the end).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from benchmarks.analyst import database_file, load_questions
from benchmarks.analyst_db import NAME as STREAMING
from benchmarks.runner import REPO_ROOT, default_data_dir, sqlite_readonly_url
from jupyter_nl2sql.pipeline.assistant import Assistant
from jupyter_nl2sql.pipeline.examples import stem
from jupyter_nl2sql.pipeline.values import normalize

#: The databases the analyst suite asks about (built or bundled, not in the shared data).
ANALYST_DATABASES = ("demo", STREAMING)
UNANSWERABLE = REPO_ROOT / "benchmarks" / "data" / "unanswerable.json"
PARAPHRASES = REPO_ROOT / "benchmarks" / "data" / "paraphrases_train.json"
#: Every set, in the order they run: (name, should it be refused).
SETS = {"train": False, "paraphrases": False, "analyst": False, "dev": False, "tune": True, "check": True,
        "holdout": True, "holdout2": True, "holdout3": True, "holdout4": True,
        "holdout5": True, "holdout6": True, "holdout7": True, "holdout8": True, "holdout9": True,
        "holdout10": True}


def load_sets(data_dir: Path, names: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
    """The questions of each set in ``names``: dicts with ``db_id``, ``question`` and, for the unanswerable ones,
    ``missing``."""
    spider = data_dir / "spider"
    sources = {"train": lambda: json.loads((spider / "train_spider_compact.json").read_text(encoding="utf-8")),
               "dev": lambda: json.loads((spider / "dev.json").read_text(encoding="utf-8")),
               "paraphrases": lambda: json.loads(PARAPHRASES.read_text(encoding="utf-8")),
               "analyst": lambda: [{"db_id": q["database"], "question": q["question"]} for q in load_questions()]}
    unanswerable = json.loads(UNANSWERABLE.read_text(encoding="utf-8"))["questions"]
    out = {}
    for name in names:
        rows = [q for q in unanswerable if q["split"] == name] if SETS[name] else sources[name]()
        out[name] = [{"db_id": q["db_id"], "question": q["question"], **({"missing": q["missing"]} if SETS[name]
                                                                          else {})} for q in rows]
    return out


def database_url(db_id: str, data_dir: Path) -> str | None:
    """The read-only URL of ``db_id`` (``demo``: the bundled demo database, ``streaming``: the analyst suite's), or
    None when its file is missing."""
    if db_id in ANALYST_DATABASES:
        return sqlite_readonly_url(database_file(db_id))
    path = data_dir / "spider" / "database" / db_id / f"{db_id}.sqlite"
    return sqlite_readonly_url(path) if Path(path).is_file() else None


def named(line: str, missing: str) -> bool:
    """Whether the refusal ``line`` names ``missing`` (each of its words, up to a plural) before its table list.

    >>> named("can't answer that from this database: it has no unicorns; its tables: zoo", "unicorn")
    True
    >>> named("can't answer that from this database: it has no libraries; its tables: zoo", "library")
    True
    """
    said = {form for w in normalize(line.split("; its tables:")[0]).split()
            for form in (w, stem(w), w[:-1], w[:-2], w[:-3] + "y")}
    return all(w in said for w in normalize(missing).split())


def run(sets: dict[str, list[dict[str, Any]]], data_dir: Path, assistant: Assistant,
        model: bool = False) -> dict[str, Any]:
    """Ask ``assistant`` about every question; the counts per set, its refusals and (unanswerable sets) misses.

    ``model``: an unanswerable question the check before the model lets through is asked in full
    (:meth:`Assistant.ask`), and counts as refused when the answer is a ``MissingFromSchema`` refusal naming the
    missing thing (``refuse_invented``: the model looked for what the database lacks); ``by_model`` counts those."""
    report: dict[str, Any] = {}
    for name, rows in sets.items():
        refused, missed, skipped, seconds, by_model = [], [], 0, 0.0, 0
        for row in rows:
            url = database_url(row["db_id"], data_dir)
            if url is None:
                skipped += 1
                continue
            assistant.unanswerable(row["question"], url)  # schema, value index and lexicon read before the clock
            t0 = time.perf_counter()
            line = assistant.unanswerable(row["question"], url)
            seconds += time.perf_counter() - t0
            if model and SETS[name] and not line:
                answer = assistant.ask(row["question"], url)
                line = answer.error if answer.error_kind == "MissingFromSchema" else None
                by_model += bool(line and named(line, row["missing"]))
            if line and (not SETS[name] or named(line, row["missing"])):
                refused.append({**row, "refusal": line})
            elif SETS[name]:
                missed.append({**row, "refusal": line})
        asked = len(rows) - skipped
        report[name] = {"questions": asked, "skipped": skipped, "refused": len(refused),
                        "share": round(len(refused) / asked, 4) if asked else None,
                        "ms_per_question": round(1000 * seconds / asked, 2) if asked else None,
                        "refusals": refused, **({"missed": missed} if SETS[name] else {}),
                        **({"by_model": by_model} if model and SETS[name] else {})}
    return report


def summary(report: dict[str, Any]) -> str:
    """One line a set, then each false refusal and each miss."""
    lines = []
    for name, r in report.items():
        kind = "refused with the missing thing named" if SETS[name] else "false refusals"
        model = f", {r['by_model']} of them once the model was asked" if "by_model" in r else ""
        lines.append(f"{name}: {r['refused']} of {r['questions']} {kind}{model} ({100 * (r['share'] or 0):.1f} %; "
                     f"{r['skipped']} skipped, database missing; {r['ms_per_question']} ms a question)")
    for name, r in report.items():
        for row in ([] if SETS[name] else r["refusals"]) + r.get("missed", []):
            lines.append(f"  {name} {'miss' if SETS[name] else 'false'} [{row['db_id']}] {row['question']} -> "
                         f"{row['refusal']}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.refusals", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, help="write the report here (JSON)")
    parser.add_argument("--sets", nargs="+", choices=list(SETS), default=list(SETS), help="which sets (default: all)")
    parser.add_argument("--data", type=Path, default=default_data_dir(), help="the shared data folder")
    parser.add_argument("--model", action="store_true",
                        help="ask the default model the unanswerable questions the check before it lets through (its "
                             "first query may show it looked for what the database lacks); minutes, not seconds")
    args = parser.parse_args(argv)
    if args.model and any(not SETS[name] for name in args.sets):
        parser.error("--model asks the unanswerable sets only (false refusals: scripts/replay_invented.py replays "
                     "stored benchmark runs)")
    report = run(load_sets(args.data, args.sets), args.data, Assistant(), model=args.model)
    print(summary(report))
    if args.out:
        args.out.write_text(json.dumps(report, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
