"""How close the model's greedy choices are: for each question, the reply the transformers backend writes and the
tokens where its top two logits were nearest, with both tokens.  A batch that moves the last bits of the logits
(bfloat16 on a CPU) can only flip a choice this close; the load test's comparison rests on these figures.

    python scripts/logit_margins.py --url postgresql+psycopg://... [--model qwen2.5-coder-0.5b] [--show 4] QUESTION...

The database is the one the questions are asked on (the load test uses the demo copied to PostgreSQL:
``jupyter_nl2sql.demo.copy_demo``); without ``--url``, the bundled demo SQLite database.
"""

from __future__ import annotations

import argparse

from jupyter_nl2sql.connections import ConnectionManager
from jupyter_nl2sql.demo import demo_url
from jupyter_nl2sql.pipeline.assistant import Assistant


def margins(assistant: Assistant, question: str, url: str) -> tuple[str, list[tuple[float, str, str, str]]]:
    """The greedy reply to ``question`` and, for each of its tokens, (top-two logit margin, the text before it, the
    top token, the second token)."""
    import torch

    answer = assistant.ask(question, url)
    backend, _ = assistant.backend()
    prompt = backend.render_prompt(answer.messages)
    reply = backend.generate(answer.messages).text
    tok = backend.tokenizer
    ids = tok(prompt + reply, return_tensors="pt", add_special_tokens=False)["input_ids"]
    start = len(tok(prompt, add_special_tokens=False)["input_ids"])
    with torch.inference_mode():
        logits = backend.model(ids).logits[0].float()
    rows = []
    for i in range(start - 1, ids.shape[1] - 1):
        top = torch.topk(logits[i], 2)
        rows.append((float(top.values[0] - top.values[1]), tok.decode(ids[0, max(0, i - 3):i + 1]),
                     tok.decode([int(top.indices[0])]), tok.decode([int(top.indices[1])])))
    return reply, sorted(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("questions", nargs="+")
    parser.add_argument("--url", help="the database (default: the bundled demo)")
    parser.add_argument("--model", default="qwen2.5-coder-0.5b")
    parser.add_argument("--show", type=int, default=4, help="closest choices shown per question")
    args = parser.parse_args()
    assistant = Assistant(args.model, backend="transformers", connections=ConnectionManager(), generation_cache=False)
    for question in args.questions:
        reply, rows = margins(assistant, question, args.url or demo_url())
        print(f"{question} | {' '.join(reply.split())}")
        for margin, before, first, second in rows[:args.show]:
            print(f"   {margin:.3f} after {before!r}: {first!r} over {second!r}")


if __name__ == "__main__":
    main()
