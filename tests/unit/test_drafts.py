"""Lookup decoding's drafter (n-gram guesses of a reply's next tokens) and its use by the ik_llama.cpp engine.

The drafter tests use characters as tokens (no model).  The engine tests load a 2-layer random-weight GGUF through
the real ik_llama.cpp engine (gibberish replies by design): they check that guessing changes the number of steps,
never the reply.
"""

from __future__ import annotations

import json

import pytest

from jupyter_nl2sql.errors import ConfigError
from jupyter_nl2sql.models import drafts
from jupyter_nl2sql.models.drafts import Drafter


def _chars(text: str) -> list[int]:
    return [ord(c) for c in text]


def _text(tokens: list[int]) -> str:
    return "".join(map(chr, tokens))


def test_guesses_what_followed_the_same_context_before():
    d = Drafter(_chars, None, max_tokens=4)
    d.first_hits = 1.0  # its guesses have been right: it guesses as many as it may
    d.finish("SELECT count(*) FROM singer")
    d.start(_chars("Question: how many singers?\n"))
    d.extend(_chars("SELECT co"))
    assert _text(d.propose()) == "unt("
    assert d.proposed == 4


def test_the_live_prompt_outweighs_the_history_and_unsure_contexts_give_nothing():
    d = Drafter(_chars, None, max_tokens=3)
    for name in ("FROM abc", "FROM abd", "FROM abe"):
        d.finish(name)
    d.start(_chars("tables: xyz"))
    d.extend(_chars("FROM ab"))
    assert d.propose() == []  # c, d and e each a third: under MIN_SHARE
    d.start(_chars("table abq; abq; abq"))
    d.extend(_chars("FROM ab"))
    assert _text(d.propose(limit=1)) == "q"  # the prompt's own n-grams count LIVE_WEIGHT times


def test_guesses_fewer_tokens_while_first_guesses_miss():
    d = Drafter(_chars, None, max_tokens=3)
    assert d.budget() == 2  # no evidence yet: two guesses a step
    for _ in range(20):
        d.record(1, 1)
    assert d.budget() == 3
    for _ in range(30):
        d.record(3, 0)
    budgets = [d.budget() for _ in range(2 * drafts.PROBE_EVERY)]
    assert budgets.count(1) == 2 and budgets.count(0) == len(budgets) - 2  # only the probes guess
    d.finish("SELECT name FROM singer")
    d.start([])
    d.extend(_chars("SELECT na"))
    assert len(d.propose()) <= 1
    d.record(0, 0)  # a step without guesses says nothing about them
    assert d.first_hits < 0.25


def test_no_guess_when_turned_off_or_nothing_seen():
    d = Drafter(_chars, None, max_tokens=0)
    assert not d.enabled
    d = Drafter(_chars, None, max_tokens=4)
    d.start([])
    d.extend(_chars("zy"))
    assert d.propose() == []


def test_history_is_kept_on_disk_bounded_and_read_back(tmp_path, monkeypatch):
    monkeypatch.setattr(drafts, "HISTORY", 3)
    path = tmp_path / "states" / drafts.HISTORY_FILE
    d = Drafter(_chars, path, max_tokens=4)
    d.start([])
    for i in range(5):
        d.finish(f"SELECT {i}\nFROM t{i}")
    lines = path.read_text().splitlines()
    assert [json.loads(x) for x in lines] == [f"SELECT {i}\nFROM t{i}" for i in (2, 3, 4)]
    path.write_text(path.read_text() + "not json\n" + json.dumps(["a list"]) + "\n")
    again = Drafter(_chars, path, max_tokens=4)
    again.start(_chars("q"))
    again.extend(_chars("FROM t"))
    assert _text(again.propose(limit=1)) in "234"  # from the file, the broken lines skipped
    assert again._history.get((ord("0"),)) is None  # the replies beyond HISTORY were forgotten with their n-grams


def test_an_unwritable_history_does_not_fail_the_reply(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    d = Drafter(_chars, blocker / "sub" / drafts.HISTORY_FILE, max_tokens=4)
    d.start([])
    d.finish("SELECT 1")  # no exception: the parent is a file
    assert not (blocker / "sub").exists()


def test_the_history_can_be_kept_in_memory_only(tmp_path, monkeypatch):
    monkeypatch.delenv("NL2SQL_DRAFT_HISTORY", raising=False)
    assert drafts.drafter_for(_chars, tmp_path)._file == tmp_path / drafts.HISTORY_FILE
    assert drafts.drafter_for(_chars, None)._file is None
    monkeypatch.setenv("NL2SQL_DRAFT_HISTORY", "0")
    d = drafts.drafter_for(_chars, tmp_path)
    d.start([])
    d.finish("SELECT 1")
    assert d._file is None and not list(tmp_path.iterdir()) and len(d._replies) == 1


def test_draft_tokens_setting(monkeypatch):
    monkeypatch.delenv("NL2SQL_DRAFT_TOKENS", raising=False)
    assert drafts.draft_tokens() == drafts.DEFAULT_DRAFT_TOKENS
    monkeypatch.setenv("NL2SQL_DRAFT_TOKENS", "0")
    assert drafts.draft_tokens() == 0
    monkeypatch.setenv("NL2SQL_DRAFT_TOKENS", "many")
    with pytest.raises(ConfigError, match="NL2SQL_DRAFT_TOKENS must be a whole number"):
        drafts.draft_tokens()
    with pytest.raises(ConfigError, match="NL2SQL_DRAFT_TOKENS"):
        drafts.check_settings()
    monkeypatch.setenv("NL2SQL_DRAFT_TOKENS", "2")
    monkeypatch.setenv("NL2SQL_DRAFT_HISTORY", "-1")
    with pytest.raises(ConfigError, match="NL2SQL_DRAFT_HISTORY must be a whole number"):
        drafts.check_settings()


def test_a_bad_setting_fails_before_the_weights_load(tmp_path, monkeypatch):
    pytest.importorskip("ik_llama_cpp")
    from jupyter_nl2sql.models import ikllama_backend as ik
    from test_llamacpp import _load_tiny

    loads = []
    real = ik._load_weights
    monkeypatch.setattr(ik, "_load_weights", lambda *a: loads.append(a) or real(*a))
    monkeypatch.setenv("NL2SQL_DRAFT_TOKENS", "lots")
    with pytest.raises(ConfigError, match="NL2SQL_DRAFT_TOKENS"):
        _load_tiny(tmp_path, "ik_llama.cpp")
    assert loads == []


def test_the_stats_line_says_how_many_tokens_were_guessed():
    from jupyter_nl2sql.models.base import Generation
    from jupyter_nl2sql.pipeline.stats import Stats

    stats = Stats()
    with stats.stage("generate"):
        pass
    stats.add_generation(Generation("x", 850, 14, 1.0, tokens_reused=807, prefill_seconds=0.3, decode_seconds=0.7,
                                    tokens_guessed=6))
    assert stats.tokens_guessed == 6 and stats.to_dict()["tokens_guessed"] == 6
    assert "decode 14 tok, 20.0 tok/s (6 guessed)" in str(stats)
    stats.add_generation(Generation("y", 10, 2, 0.1, prefill_seconds=0.05, decode_seconds=0.05))
    assert "(6 guessed)" in str(stats)
    plain = Stats()
    with plain.stage("generate"):
        pass
    plain.add_generation(Generation("y", 10, 2, 0.1, prefill_seconds=0.05, decode_seconds=0.05))
    assert "guessed" not in str(plain)


# -- through the real ik_llama.cpp engine, on a tiny random GGUF --------------------------------------------------
MESSAGES = [{"role": "system", "content": "You write SQLite."},
            {"role": "user", "content": "Database schema:\nCREATE TABLE users (id INTEGER, name TEXT);\n\n"
                                        "Question: how many users?"}]


def test_guessed_tokens_never_change_the_greedy_reply(tmp_path):
    pytest.importorskip("ik_llama_cpp")
    from test_llamacpp import _load_tiny

    b = _load_tiny(tmp_path, "ik_llama.cpp")
    try:
        b.drafter.max_tokens = 0
        plain = b.generate(MESSAGES, max_new_tokens=24)
        assert plain.tokens_out == 24
        b.drafter.max_tokens = 4
        b.drafter.finish(plain.text)  # the reply is in the history: most guesses will be right
        guessed = b.generate(MESSAGES, max_new_tokens=24)
        assert guessed.tokens_guessed == b.drafter.accepted > 0
        assert guessed.text == plain.text and guessed.tokens_out == plain.tokens_out
        assert guessed.logprob == pytest.approx(plain.logprob, abs=1e-3)  # the same tokens, scored alike
        # wrong guesses are taken out of the cache: the next reply is still the greedy one
        b.drafter.finish(plain.text[::-1])
        b.drafter.finish("Question: how many users? " * 3)
        assert b.generate(MESSAGES, max_new_tokens=24).text == plain.text
        assert (tmp_path / "states").is_dir()
    finally:
        b.close()
