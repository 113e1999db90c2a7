"""What evaluating k tokens in one batch costs against one, on the default model through ik_llama.cpp: the figure
lookup decoding rests on.  A prompt of ``--prompt`` tokens is evaluated, then batches of k tokens (all with logits,
as lookup decoding asks) are evaluated at its end and taken out of the cache again; the best of ``--rounds`` per k.

    python scripts/batch_cost.py [--prompt 850] [--rounds 3]
"""

from __future__ import annotations

import argparse
import time

from jupyter_nl2sql.models import ikllama_backend as ik
from jupyter_nl2sql.models.resolve import resolve_model

SIZES = (1, 2, 3, 4, 6, 8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prompt", type=int, default=850)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    backend = ik.IkLlamaBackend.load(resolve_model(None, join=False), progress=False)
    text = "CREATE TABLE singer (id int, name text, age int, country text);\n"
    tokens = backend.tokenize(text * (args.prompt // 10 + 1))[:args.prompt]
    backend._evaluate(tokens, None, None, logits_last=True)
    best: dict[int, float] = {}
    for _ in range(args.rounds):
        for k in SIZES:
            batch = backend._batch.fill(tokens[100:100 + k], len(tokens), True, logits_all=True)
            t0 = time.perf_counter()
            backend._decode(batch, k)
            seconds = time.perf_counter() - t0
            ik._seq_rm(backend._ctx, 0, len(tokens), -1)
            best[k] = min(best.get(k, seconds), seconds)
    for k in SIZES:
        print(f"{k} tokens: {best[k] * 1000:.1f} ms ({best[k] / best[1]:.2f}x one token)")


if __name__ == "__main__":
    main()
