"""The llama.cpp backend with the real model, in a fresh process: load time, memory, prefix reuse.

Marked ``model`` (loads the 1.1 GB default model).  Only what does not depend on the machine's load is asserted
(the backend chosen, torch left unimported, tokens generated); load time, memory and the timings are measured by ``tests/performance/measure_backends.py`` into ``benchmarks/results/speed/``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).with_name("measure_backends.py")


@pytest.mark.model
def test_llamacpp_runs_the_real_model_without_torch(tmp_path, gguf_cache_root):
    from jupyter_nl2sql.models import DEFAULT_MODEL, lookup_known, resolve

    known = lookup_known(DEFAULT_MODEL)
    if resolve.offline_part_paths(known)[1]:
        pytest.skip(f"the default model is not installed ({known.pip_hint})")
    out = tmp_path / "m.json"
    subprocess.run([sys.executable, str(SCRIPT), "--backend", "llama.cpp", "--demo", "--json", str(out)],
                   check=True, capture_output=True, timeout=900)
    m = json.loads(out.read_text())
    assert m["backend"] == "llama.cpp" and not m["torch_imported"]
    assert m["runs"] and all(r["tokens_out"] > 0 for r in m["runs"]), m
