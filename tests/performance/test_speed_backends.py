"""The llama.cpp backend with the real model, in a fresh process: load time, memory, prefix reuse.

Marked ``model`` (loads the 1.1 GB default model).  Bounds are generous (a busy machine must not fail them);
the numbers themselves are in ``benchmarks/results/speed/`` (``tests/performance/measure_backends.py``).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).with_name("measure_backends.py")


@pytest.mark.model
def test_llamacpp_loads_fast_stays_small_and_reuses_the_schema(tmp_path):
    pytest.importorskip("llama_cpp")
    from jupyter_nl2sql.models import DEFAULT_MODEL, lookup_known, resolve

    known = lookup_known(DEFAULT_MODEL)
    if resolve.offline_part_paths(known)[1]:
        pytest.skip(f"the default model is not installed ({known.pip_hint})")
    out = tmp_path / "m.json"
    subprocess.run([sys.executable, str(SCRIPT), "--backend", "llama.cpp", "--demo", "--json", str(out)],
                   check=True, capture_output=True, timeout=900)
    m = json.loads(out.read_text())
    assert m["backend"] == "llama.cpp" and not m["torch_imported"]
    assert m["load_s"] <= 10, m
    assert m["harness_mb"] < 512, m  # everything but the memory-mapped weights
    assert m["repeat_ms"] < 100, m
    first, second = m["runs"][0], m["runs"][1]
    # the second question pays for its own tokens only: much less than the first's whole prompt
    assert second["generation_s"] / max(second["tokens_out"], 1) < first["generation_s"] / max(first["tokens_out"], 1)
