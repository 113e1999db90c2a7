"""One question in a process of its own: what a one-shot command line or a fresh kernel pays.

``python -m benchmarks.one_question`` reads ``{"model", "options", "question", "url"}`` as JSON on standard input,
answers with a new :class:`~jupyter_nl2sql.pipeline.assistant.Assistant` (model loaded from nothing, the schema state
restored when an earlier process saved it) and prints the prediction as one JSON line.  :class:`ProcessPredictor`
runs it for every question of a benchmark and records the whole wall time, interpreter start included.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import asdict
from typing import Any, Mapping

from benchmarks.runner import REPO_ROOT, AssistantPredictor, Prediction

TIMEOUT_S = 600.0
"""Most seconds one question's process may take (model load included)."""


class ProcessPredictor:
    """Each ``predict`` starts ``python -m benchmarks.one_question`` and waits for its answer."""

    def __init__(self, model: str | None, options: Mapping[str, Any]) -> None:
        self.model = model
        self.options = dict(options)
        self._provenance: dict[str, Any] = {}

    def prepare(self) -> float | None:
        """Nothing is loaded in this process: every question loads the model in its own."""
        return None

    def predict(self, question: str, url: str) -> Prediction:
        """The answer of a new process, with its wall time (start to exit) in ``wall_seconds``."""
        request = json.dumps({"model": self.model, "options": self.options, "question": question, "url": url})
        t0 = time.perf_counter()
        try:
            done = subprocess.run([sys.executable, "-m", "benchmarks.one_question"], input=request, text=True,
                                  capture_output=True, cwd=REPO_ROOT, timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            return Prediction(None, f"crash: the question's process took over {TIMEOUT_S:.0f} s",
                              wall_seconds=time.perf_counter() - t0)
        wall = time.perf_counter() - t0
        lines = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
        if done.returncode != 0 or not lines:
            tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
            return Prediction(None, f"crash: exit {done.returncode}: {tail}", wall_seconds=wall)
        data = json.loads(lines[-1])
        self._provenance = data.pop("provenance", None) or self._provenance
        return Prediction(**data, wall_seconds=wall)

    def describe(self) -> dict[str, Any]:
        """Model provenance as the processes report it, and the options."""
        return {"kind": "process-per-question", "model": self.model, "options": self.options,
                "provenance": self._provenance}

    def release(self) -> None:
        """Nothing stays open between questions."""


def main() -> int:
    """Answer the question on standard input; print the prediction as JSON."""
    request = json.loads(sys.stdin.read())
    predictor = AssistantPredictor(request.get("model"), request.get("options") or {})
    pred = predictor.predict(request["question"], request["url"])
    out = {k: v for k, v in asdict(pred).items() if k != "wall_seconds"}
    out["provenance"] = predictor.describe().get("provenance")
    print(json.dumps(out, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
