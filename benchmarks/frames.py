"""A question on a 1-million-row DataFrame against a question on the demo database, same model, same process.

``python -m benchmarks.frames [--model small] [--rows 1000000] [--repeat 3]`` loads the model, warms both
connections (schema read and value index built, timed as ``first_contact_seconds``; the schema's prompt state
evaluated), then asks each question
``--repeat`` times with the generation cache off and prints the median seconds of each stage, one JSON line per
source.  It answers "is a DataFrame question about as fast as a database question?": the stages that touch the data
(schema, values, execute, fetch) on the frame next to the same stages on the demo database, and the totals.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

import numpy as np
import pandas as pd

from jupyter_nl2sql.connections import ConnectionManager
from jupyter_nl2sql.demo import demo_url
from jupyter_nl2sql.pipeline.assistant import Assistant

#: The stages reported (the others take about a millisecond on either source).
STAGES = ("schema", "values", "prompt", "generate", "check", "execute", "fetch")

#: (source, question) pairs: an aggregate per category on each.
QUESTIONS = {"dataframe": "What is the total amount per country?",
             "demo": "How many customers are there in each country?"}


def sales_frame(rows: int, *, seed: int = 0) -> pd.DataFrame:
    """A sales table of ``rows`` rows: id, amount, quantity, country and product (text), day."""
    rng = np.random.default_rng(seed)
    countries = np.array(["France", "Spain", "Italy", "Peru", "Japan", "Kenya", "Chile", "Norway"])
    products = np.array([f"product {i}" for i in range(50)])
    return pd.DataFrame({"id": np.arange(rows), "amount": rng.random(rows) * 100,
                         "quantity": rng.integers(1, 20, rows, dtype="int32"),
                         "country": pd.array(countries[rng.integers(0, len(countries), rows)], dtype="str"),
                         "product": pd.array(products[rng.integers(0, len(products), rows)], dtype="str"),
                         "day": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 365, rows), unit="D")})


def measure(model: str, rows: int, repeat: int) -> list[dict[str, Any]]:
    """Median stage seconds of each source's question (see the module docstring)."""
    manager = ConnectionManager()
    assistant = Assistant(model, connections=manager, generation_cache="off")
    sources = {"dataframe": {"sales": sales_frame(rows)}, "demo": demo_url()}
    try:
        first = {}
        for name, source in sources.items():  # first contact: connect, read the schema, build the value index
            t0 = time.perf_counter()
            conn = manager.resolve(source)
            assistant.value_indexes.get(conn, assistant.schemas.get(conn))
            first[name] = time.perf_counter() - t0
            assistant.warm(source)
        out = []
        for name, source in sources.items():
            answers = [assistant.ask(QUESTIONS[name], source) for _ in range(repeat)]
            med = {stage: statistics.median(a.stats.seconds(stage) for a in answers) for stage in STAGES}
            out.append({"source": name, "question": QUESTIONS[name], "rows": rows if name == "dataframe" else None,
                        "model": model, "repeat": repeat, "sql": answers[-1].sql, "error": answers[-1].error,
                        "total_seconds": statistics.median(a.stats.total_seconds for a in answers),
                        "first_contact_seconds": first[name],
                        "data_seconds": sum(med[s] for s in ("schema", "values", "execute", "fetch")),
                        "stages": med})
        return out
    finally:
        manager.close_all()


def main(argv: list[str] | None = None) -> None:
    """Command line: print one JSON line per source."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="small", help="model id or alias (default: small, the 0.5B model)")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    for row in measure(args.model, args.rows, args.repeat):
        print(json.dumps(row))


if __name__ == "__main__":
    main()
