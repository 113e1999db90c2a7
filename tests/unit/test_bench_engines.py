"""``python -m benchmarks.engines``: the summary of its runs (no model: the runs are written here)."""

from __future__ import annotations

import pytest

from benchmarks import engines


def _run(engine: str, load: float, decode_seconds: float, sql: str, guessed: int = 0) -> dict:
    questions = [{"question": q, "sql": sql if i == 0 else f"SELECT {i}", "seconds": 1.0, "generate_seconds": 0.9,
                  "prefill_tokens": 15, "prefill_seconds": 0.2, "decode_tokens": 10, "decode_seconds": decode_seconds,
                  "guessed_tokens": guessed} for i, q in enumerate(engines.QUESTIONS)]
    return {"engine": engine, "provenance": {"engine": engine}, "load_seconds": load, "rss_loaded": 2**30,
            "rss_peak": 2**30, "schema_tokens": 830, "schema_seconds": 8.3, "schema_source": "computed",
            "questions": questions}


def test_every_variant_is_summarised_against_xllamacpp():
    runs = [_run("ik_llama.cpp", 0.3, 0.4, "SELECT a", guessed=4), _run("ik_llama.cpp/no-guess", 0.3, 0.5, "SELECT b"),
            _run("ik_llama.cpp/repack-at-load", 2.0, 0.5, "SELECT a"), _run("llama.cpp", 1.0, 0.8, "SELECT a")]
    out = engines.summarise(runs)
    assert set(out["engines"]) == set(engines.ENGINES)
    ik = out["engines"]["ik_llama.cpp"]
    assert ik["decode_tok_s"] == pytest.approx(25.0) and ik["guessed_share"] == pytest.approx(0.4)
    assert out["engines"]["ik_llama.cpp/no-guess"]["guessed_share"] == 0.0
    ratios = out["ratios_vs_llama.cpp"]
    assert ratios["ik_llama.cpp"]["load_seconds"] == pytest.approx(0.3)
    assert ratios["ik_llama.cpp/repack-at-load"]["decode_tok_s"] == pytest.approx(1.6)
    n = len(engines.QUESTIONS)
    assert out["same_sql_as_llama.cpp"] == {"ik_llama.cpp": f"{n} of {n}", "ik_llama.cpp/no-guess": f"{n - 1} of {n}",
                                            "ik_llama.cpp/repack-at-load": f"{n} of {n}"}
    assert engines._engine("ik_llama.cpp/no-guess") == "ik_llama.cpp"
