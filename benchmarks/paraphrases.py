"""The paraphrase set: Spider *train* questions as someone who does not know the schema would ask them.

``benchmarks/data/paraphrases_train.json`` holds 132 questions: 22 Spider train databases drawn at random
(:func:`draw`, seed 17, among the train databases whose SQLite file is in the shared data), then 6 questions of
each drawn at random with the same generator — chosen by the seed alone, before any model saw them.  Each was
rewritten by hand with everyday words for the table and column names ("pupils" for students, "aviators" for
pilots, "doctors" for physicians, "surname" for last name, "built" for a construction year), keeping its meaning and
every value as written; ``original_question`` is Spider's wording, ``query`` the gold SQL unchanged, ``index`` the
question's position in ``spider/train_spider_compact.json``.  The set was written before any model run and is
measured, never tuned on (it is Spider train: dev stays held out).

Run it with the Spider runner (both wordings, the original one being the baseline of the same commit)::

    python -m benchmarks.spider --questions benchmarks/data/paraphrases_train.json --out /tmp/para
    python -m benchmarks.spider --questions benchmarks/data/paraphrases_train.json --wording original_question \\
        --out /tmp/para-original

``python -m benchmarks.paraphrases`` checks that the file is still the draw it says it is (same questions, gold SQL
and databases as Spider train) and prints how many questions and databases it has.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path
from typing import Any, Sequence

from benchmarks.runner import REPO_ROOT, default_data_dir

#: The committed set.
PARAPHRASES = REPO_ROOT / "benchmarks" / "data" / "paraphrases_train.json"
#: How it was drawn.
SEED, DATABASES, PER_DATABASE = 17, 22, 6


def draw(data_dir: Path, seed: int = SEED, databases: int = DATABASES, per_database: int = PER_DATABASE
         ) -> list[dict[str, Any]]:
    """The questions the set was drawn as: ``databases`` Spider train databases (with their SQLite file, none of
    dev's) drawn with ``random.Random(seed)``, then ``per_database`` questions of each with the same generator, as
    ``{db_id, index, original_question, query}`` in database order."""
    spider = Path(data_dir) / "spider"
    train = json.loads((spider / "train_spider_compact.json").read_text(encoding="utf-8"))
    dev = {ex["db_id"] for ex in json.loads((spider / "dev.json").read_text(encoding="utf-8"))}
    present = {p.name for p in (spider / "database").iterdir() if (p / f"{p.name}.sqlite").is_file()}
    names = sorted({ex["db_id"] for ex in train if ex["db_id"] in present and ex["db_id"] not in dev})
    rng = random.Random(seed)
    picked: list[int] = []
    for name in sorted(rng.sample(names, databases)):
        picked += sorted(rng.sample([i for i, ex in enumerate(train) if ex["db_id"] == name], per_database))
    return [{"db_id": train[i]["db_id"], "index": i, "original_question": train[i]["question"],
             "query": train[i]["query"]} for i in picked]


def check(path: Path = PARAPHRASES, data_dir: Path | None = None) -> list[str]:
    """What differs between the set at ``path`` and :func:`draw` (empty when it is the draw, each question
    reworded: its ``question`` not Spider's)."""
    rows = json.loads(Path(path).read_text(encoding="utf-8"))
    expected = draw(data_dir or default_data_dir())
    problems = [] if len(rows) == len(expected) else [f"{len(rows)} questions, the draw has {len(expected)}"]
    for row, want in zip(rows, expected):
        for key, value in want.items():
            if row.get(key) != value:
                problems.append(f"index {row.get('index')}: {key} is {row.get(key)!r}, the draw has {value!r}")
        if not row.get("question") or row["question"] == row.get("original_question"):
            problems.append(f"index {row.get('index')}: not reworded")
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m benchmarks.paraphrases [--data-dir DIR] [FILE]``."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.paraphrases", description=__doc__.split("\n\n")[0])
    parser.add_argument("file", nargs="?", type=Path, default=PARAPHRASES)
    parser.add_argument("--data-dir", type=Path, default=None, help="folder holding spider/ (default: the runner's)")
    args = parser.parse_args(argv)
    problems = check(args.file, args.data_dir)
    for line in problems:
        print(line, file=sys.stderr)
    rows = json.loads(args.file.read_text(encoding="utf-8"))
    print(f"{len(rows)} questions on {len({r['db_id'] for r in rows})} databases; "
          f"{'the seeded draw' if not problems else f'{len(problems)} differences from the seeded draw'}")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
