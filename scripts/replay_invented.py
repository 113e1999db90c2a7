#!/usr/bin/env python3
"""Replay the refusals that read the model's first query on stored benchmark runs: "the model looked for something
the database lacks" and "the query read nothing like what the question asks about".

    python scripts/replay_invented.py [--data-dir DIR] benchmarks/results/spider/2026-12-07-d7f5d0f-dev-defaults [RUN ...]

Each stored answer keeps the model's first SQL (``candidates[0]``).  The pipeline checks it as
:meth:`jupyter_nl2sql.pipeline.assistant.Assistant.ask` does (names mended by ``fix_names`` first); where the check
still fails, :func:`jupyter_nl2sql.pipeline.invented.invented_names` and
:func:`~jupyter_nl2sql.pipeline.invented.looked_for` decide whether the question would now be refused; where it
passes, :func:`jupyter_nl2sql.pipeline.grounding.ungrounded` does (``refuse_ungrounded``).  The model is
not asked, so the replay gives what a run with the refusal would have refused.  On answerable questions (Spider,
WikiSQL, the analyst suite, the paraphrases) every refusal is a false one; the stored answer's correctness says what
it would have cost.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Sequence

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.runner import REPO_ROOT, RESULTS_FILE, Benchmark  # noqa: E402
from jupyter_nl2sql.errors import SQLCheckError, WriteRefused  # noqa: E402
from jupyter_nl2sql.pipeline.assistant import Answer, Assistant  # noqa: E402
from jupyter_nl2sql.pipeline.stats import Stats  # noqa: E402
from replay_doubts import run_arguments  # noqa: E402  (scripts/, this script's folder)


def benchmark_of(name: str) -> Benchmark:
    """The benchmark a run.json names."""
    if name == "wikisql":
        from benchmarks.wikisql import WikiSQLBenchmark

        return WikiSQLBenchmark()
    if name == "analyst":
        from benchmarks.analyst import AnalystBenchmark

        return AnalystBenchmark()
    from benchmarks.spider import SpiderBenchmark

    return SpiderBenchmark()


def replay(run: Path, data_dir: Path, assistant: Assistant) -> list[str]:
    """One line per refusal the stored first SQLs would now get, and a summary line."""
    meta = json.loads((run / "run.json").read_text(encoding="utf-8"))
    bench = benchmark_of(meta["benchmark"])
    scoring = meta.get("scoring") or {}
    if scoring.get("questions"):  # a question file of the repository's (the paraphrases), in its wording
        bench.questions = REPO_ROOT / "benchmarks" / "data" / scoring["questions"]
        bench.wording = scoring.get("wording", "question")
    if meta["benchmark"] == "analyst" and scoring.get("data"):  # the analyst suite's own question file
        bench.data = REPO_ROOT / "benchmarks" / "data" / scoring["data"]
    items = {str(i.index): i for i in bench.load(data_dir, meta["split"])}
    records = [json.loads(line) for line in (run / RESULTS_FILE).read_text(encoding="utf-8").splitlines() if line]
    lines, refused, right = [], 0, 0
    settings = assistant.settings
    for record in records:
        first = (record.get("candidates") or [None])[0]
        item = items.get(str(record["index"]))
        if not first or item is None or item.question != record["question"]:
            continue
        state = assistant._start(settings, bench.connection_url(item), None, Stats().start())
        try:  # the first check, as ask makes it (names mended first)
            checked = assistant._check(Answer(question=record["question"], sql=None), state, first)
        except WriteRefused:
            continue
        except SQLCheckError:
            said = assistant._looked_for(record["question"], first, state, Stats())
        else:
            said = None if checked.is_write else assistant._ungrounded(record["question"], checked.sql, state,
                                                                       Stats())
        if said is None:
            continue
        refused += 1
        right += bool(record.get("correct"))
        lines.append(f"  {'right' if record.get('correct') else 'wrong'} [{record['db_id']}] {record['question']}"
                     f"\n      {first}\n      -> {said}")
    lines.append(f"{run.name}: {refused} of {len(records)} would be refused ({right} of them answered right as "
                 "stored)")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    args = run_arguments(__doc__, argv)
    assistant = Assistant()
    for run in args.runs:
        print("\n".join(replay(run, args.data_dir, assistant)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
