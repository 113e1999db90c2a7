"""Issue 16, front ends: the background warm-up when a connection is made, progress while a question runs (cell,
panel, command line) and ``cache`` over the one cache root.

The warm-up tests run the real engine (xllamacpp) on the tiny random-weight GGUF of
:mod:`jupyter_nl2sql.models.testing` (plumbing only: its SQL is gibberish, so the questions are generate-only).
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from IPython.core.error import UsageError

from jupyter_nl2sql.connections import ConnectionManager
from jupyter_nl2sql.errors import Cancelled, ModelError
from jupyter_nl2sql.frontends import cli
from jupyter_nl2sql.frontends.magics import WIDGET_VIEW, CellProgress
from jupyter_nl2sql.frontends.warming import Warmer, warmer
from jupyter_nl2sql.frontends.widget import panel
from jupyter_nl2sql.models import registry
from jupyter_nl2sql.paths import cache_usage
from jupyter_nl2sql.pipeline.assistant import Assistant, get_assistant


@pytest.fixture()
def tiny_gguf(tmp_path, monkeypatch) -> Path:
    """The tiny random GGUF, with the cache root in ``tmp_path/cache`` and no model loaded before or after."""
    from jupyter_nl2sql.models.testing import make_tiny_random_gguf

    monkeypatch.setenv("NL2SQL_CACHE_DIR", str(tmp_path / "cache"))
    path = make_tiny_random_gguf(tmp_path / "tiny.gguf")
    registry.clear_backends()
    yield path
    warmer.cancel()
    assert warmer.wait(60)
    registry.clear_backends()


def state_files(tmp_path: Path) -> list[Path]:
    return list((tmp_path / "cache").rglob("prefix-states/*/*.bin"))


# -- background warm-up ---------------------------------------------------------------------------------------
def test_connect_warms_in_the_background_and_the_question_finds_the_prefix(ip, cell, tiny_gguf, tmp_path,
                                                                              demo_sqlite_url) -> None:
    traits = {"model": str(tiny_gguf), "backend": "llama.cpp", "device": "cpu", "max_new_tokens": 8,
              "repair_rounds": 0}
    try:
        for name, value in traits.items():
            ip.run_line_magic("config", f"Nl2SqlMagics.{name} = {value!r}")
        assert not state_files(tmp_path)
        cell(f"%nl2sql connect {demo_sqlite_url} --alias tinywarm")
        from jupyter_nl2sql.connections import manager

        job = warmer.job(manager.resolve("tinywarm"))
        assert job is not None and warmer.wait(60), "the warm-up did not finish"
        assert job.error is None and job.result.source == "computed" and job.result.tokens > 200
        assert job.stage == "prefill" and job.info["done"] == job.info["total"]
        assert len(state_files(tmp_path)) == 1  # the prefix state is on disk for every later process
        try:  # the random model's SQL rarely passes the checks: a one-line error then, after the question ran
            cell("%%nl2sql -c tinywarm -g --no-stats\nHow many customers are there?")
        except UsageError:
            pass
        answer = get_assistant().history[-1]
        assert answer.provenance["backend"] == "llama.cpp"
        assert answer.stats.prefix in ("resident", "restored")
    finally:  # the shell outlives the test: take the settings back out of its config
        for name in traits:
            ip.config.Nl2SqlMagics.pop(name, None)


def test_panel_warms_the_picked_connection(tiny_gguf, tmp_path, demo_sqlite_url) -> None:
    a = Assistant(str(tiny_gguf), device="cpu", backend="llama.cpp", connections=ConnectionManager(),
                  generation_cache="memory", max_new_tokens=8, repair_rounds=0)
    a.connections.resolve(demo_sqlite_url, alias="shop")
    p = panel("demo", assistant=a, namespace={})
    try:
        before = warmer.job(a.connections.resolve("shop"))  # (an earlier test's, on the same file)
        assert warmer.wait(60) and warmer.job(a.connections.resolve("shop")) is before  # opening warms nothing
        p.connection.value = "alias:shop"  # the user picks a database
        assert warmer.wait(60)
        job = warmer.job(a.connections.resolve("shop"))
        assert job is not None and job is not before and job is warmer.job("shop")
        assert job.result.source == "computed" and len(state_files(tmp_path)) == 1
        assert "Ready" in p.status.value and p.progress.layout.display == "none"
        p.question.value = "How many customers are there?"
        p.generate_button.click()
        assert p.wait(60)
        assert p.answer.stats.prefix in ("resident", "restored") and p.answer.provenance["backend"] == "llama.cpp"
    finally:
        p.close()
        a.connections.close_all()


class _SlowWarm:
    """Stands in for an Assistant whose warm-up runs until it is cancelled (or fails at once with ``fail``)."""

    class connections:  # noqa: N801 - the tokens are the connections
        @staticmethod
        def resolve(token, namespace=None):
            return token

    def __init__(self, fail: str | None = None) -> None:
        self.fail = fail
        self.started = threading.Event()

    def warm(self, connection, *, namespace=None, cancel=None, on_progress=None, settings=None):
        on_progress("load", {})
        self.started.set()
        if self.fail:
            raise ModelError(self.fail + "\nsecond line")
        if not cancel.wait(30):
            raise AssertionError("never cancelled")
        raise Cancelled()


def test_a_question_cancels_the_other_connections_warm_ups_only() -> None:
    w, slow = Warmer(), _SlowWarm()
    a, b = w.start(slow, "sqlite:///a.db"), w.start(slow, "sqlite:///b.db")
    assert w.start(slow, "sqlite:///a.db") is a  # one at a time per connection
    w.cancel(keep="sqlite:///a.db")
    b.thread.join(10)
    assert not b.alive() and b.cancel.is_set() and a.alive() and not a.cancel.is_set()
    w.cancel()  # what interpreter exit does
    assert w.wait(10) and a.error is None and b.error is None and w.pop_error() is None


def test_a_failed_warm_up_never_raises_and_is_shown_once(ip, cell, scripted, demo_sqlite_url, monkeypatch,
                                                         caplog) -> None:
    slow = _SlowWarm(fail="no model file at /nowhere.gguf")
    monkeypatch.setattr(Assistant, "warm", lambda self, connection, **kw: slow.warm(connection, **kw))
    shown = []
    monkeypatch.setattr(ip.display_pub, "publish", lambda data, **kw: shown.append(data.get("text/plain", "")))
    scripted("SELECT count(*) AS n FROM customers")
    cell(f"%nl2sql connect {demo_sqlite_url} --alias failwarm")  # does not raise
    assert warmer.wait(10)
    assert "background warm-up" in caplog.text and "no model file" in caplog.text
    assert cell("%%nl2sql -c failwarm --no-stats\nHow many customers?")["n"].iat[0] == 60
    failures = [t for t in shown if "warm-up" in t]
    assert len(failures) == 1 and "no model file at /nowhere.gguf" in failures[0] and "\n" not in failures[0]
    cell("%%nl2sql -c failwarm --no-stats\nHow many customers?")
    assert len([t for t in shown if "warm-up" in t]) == 1  # shown once, not at every cell


# -- progress -------------------------------------------------------------------------------------------------
def test_cell_progress_bar_follows_the_stages_and_is_removed(ip, monkeypatch) -> None:
    published = []
    monkeypatch.setattr(ip.display_pub, "publish",
                        lambda data, **kw: published.append((data, kw.get("update", False))))
    progress = CellProgress("widgets")
    progress("load", {})
    bar, label, box = progress._widgets
    assert label.value == "loading the model" and bar.bar_style == "info"
    progress("prefill", {"done": 412, "total": 860})
    assert label.value == "evaluating the schema: 412/860 tokens" and (bar.value, bar.max) == (412, 860)
    assert bar.bar_style == ""
    # one output, updated in place, with no text form (nbval compares none of it)
    assert published == [({WIDGET_VIEW: {"model_id": box.model_id, "version_major": 2, "version_minor": 0}},
                          False)]
    progress.close()
    assert progress._widgets is None and bar.comm is None and box.comm is None  # the widgets are closed
    assert published[-1] == ({}, True)  # and the output emptied
    progress("generate", {})
    assert len(published) == 2  # nothing after close


def test_the_magic_shows_progress_in_a_kernel_then_the_answer(ip, cell, scripted, demo_sqlite_url,
                                                               monkeypatch) -> None:
    monkeypatch.setattr(ip, "kernel", object(), raising=False)  # as in a notebook: widgets can be shown
    published = []
    monkeypatch.setattr(ip.display_pub, "publish",
                        lambda data, **kw: published.append((sorted(data), kw.get("update", False))))
    scripted("SELECT count(*) AS n FROM customers")
    assert cell(f"%%nl2sql -c {demo_sqlite_url} --no-stats --new\nHow many customers?")["n"].iat[0] == 60
    assert published[0] == ([WIDGET_VIEW], False)  # the bar, while the question runs
    assert published[-2:] == [([], True), (["text/html", "text/plain"], False)]  # emptied (no text); the SQL


def test_cell_progress_as_text_and_without_a_kernel(ip, monkeypatch) -> None:
    published = []
    monkeypatch.setattr(ip.display_pub, "publish",
                        lambda data, **kw: published.append((data.get("text/plain"), kw.get("update", False))))
    text = CellProgress("text")
    text("schema", {})
    text("prefill", {"done": 10, "total": 20})
    text.close()
    assert published == [("⏳ reading the schema", False), ("⏳ evaluating the schema: 10/20 tokens", True),
                         (None, True)]  # emptied: no text left
    assert CellProgress.for_shell(ip).mode is None  # the test shell has no kernel: nothing to update in place
    quiet = CellProgress(None)
    quiet("prefill", {"done": 1, "total": 2})
    quiet.close()
    assert quiet.text == "evaluating the schema: 1/2 tokens" and len(published) == 3


def test_panel_status_shows_the_prefill_with_a_bar(tmp_path, scripted, demo_sqlite_url) -> None:
    a = Assistant(connections=ConnectionManager(), generation_cache=False)
    p = panel(demo_sqlite_url, assistant=a, namespace={})
    reported, release = threading.Event(), threading.Event()

    def work(job):
        p._on_progress(job, "prefill", {"done": 412, "total": 860})
        reported.set()
        assert release.wait(10)
        return lambda: p._set_status("done")

    try:
        p._start("ask", "Asking…", work)
        assert reported.wait(10)
        assert "Evaluating the schema: 412/860 tokens" in p.status.value
        assert (p.progress.value, p.progress.max, p.progress.layout.display) == (412, 860, None)
        release.set()
        assert p.wait(10) and p.progress.layout.display == "none"
    finally:
        release.set()
        p.close()
        a.connections.close_all()


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_cli_progress_is_a_bar_on_a_terminal_and_lines_otherwise() -> None:
    steps = [("schema", {}), ("load", {}), ("prefill", {"done": 300, "total": 860}),
             ("prefill", {"done": 860, "total": 860}), ("generate", {})]
    plain = io.StringIO()
    progress = cli.TerminalProgress(plain)
    for stage, info in steps:
        progress(stage, info)
    assert plain.getvalue().splitlines() == ["… reading the schema", "… loading the model",
                                             "… evaluating the schema: 300/860 tokens",
                                             "… evaluating the schema: 860/860 tokens", "… writing the SQL"]
    term = _Terminal()
    progress = cli.TerminalProgress(term)
    for stage, info in steps[:3]:
        progress(stage, info)
    assert progress._bar is not None and progress._bar.n == 300 and progress._bar.total == 860
    progress(*steps[3])
    assert progress._bar.n == 860
    progress(*steps[4])
    assert progress._bar is None and "evaluating the schema" in term.getvalue() and "860" in term.getvalue()


# -- cache ----------------------------------------------------------------------------------------------------
@pytest.fixture()
def cache_root(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "root"
    monkeypatch.setenv("NL2SQL_CACHE_DIR", str(root))
    for name, size in {"gguf/m.gguf": 1000, "hashes/m.sha256": 10, "prefix-states/ab-x/k.bin": 300,
                       "prefix-states/ab-x/j.bin": 200, "generations/aa/b.json": 5, "examples/shop.json": 7,
                       "demo-v1.sqlite": 50, "stray.txt": 3}.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"x" * size)
    return root


def test_cache_usage_and_clear_in_the_magic(ip, cell, cache_root) -> None:
    usage = {part: (size, files) for part, size, files in cache_usage()}
    assert usage == {"models": (1010, 2), "prefix-states": (500, 2), "generations": (5, 1), "examples": (7, 1),
                     "demo": (50, 1), "other": (3, 1)}
    frame = cell("%nl2sql cache")
    assert dict(zip(frame["part"], frame["bytes"])) == {k: v[0] for k, v in usage.items()}
    assert frame.columns.name == str(cache_root)
    cell("%nl2sql cache --clear prefix-states")
    assert not (cache_root / "prefix-states").exists() and (cache_root / "gguf/m.gguf").exists()
    with pytest.raises(UsageError, match="unknown cache part 'bogus'.*models, prefix-states, generations, all"):
        cell("%nl2sql cache --clear bogus")
    with pytest.raises(UsageError, match="usage"):
        cell("%nl2sql cache --clean models")


def test_cache_in_the_command_line(cache_root, capsys) -> None:
    assert cli.main(["cache"]) == 0
    out = capsys.readouterr().out
    assert str(cache_root) in out and "prefix-states" in out and "500 B" in out
    assert cli.main(["cache", "--clear", "nothing"]) == 2 and "unknown cache part" in capsys.readouterr().err
    assert cli.main(["cache", "--clear", "models"]) == 2  # models take a minute to rebuild: --yes first
    assert "--yes" in capsys.readouterr().err and (cache_root / "gguf/m.gguf").exists()
    assert cli.main(["cache", "--clear", "all", "--yes"]) == 0
    assert "5 file(s)" in capsys.readouterr().out
    left = {p.relative_to(cache_root).as_posix() for p in cache_root.rglob("*") if p.is_file()}
    assert left == {"examples/shop.json", "demo-v1.sqlite", "stray.txt"}  # the user's examples stay


def test_the_command_ends_with_its_status_and_all_its_output(cache_root, tmp_path) -> None:
    """``python -m jupyter_nl2sql ask`` leaves without tearing a loaded model down (cli.leave): its exit status and
    its whole output, piped, still arrive; the other commands exit as usual."""
    env = {**os.environ, "NL2SQL_CACHE_DIR": str(cache_root)}
    missing = f"sqlite:///{tmp_path / 'nowhere' / 'x.db'}"
    done = subprocess.run([sys.executable, "-m", "jupyter_nl2sql", "ask", "--db", missing, "How many?"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 2 and done.stderr.rstrip().endswith("sqlite:////absolute/path.db)")
    done = subprocess.run([sys.executable, "-m", "jupyter_nl2sql", "cache", "--clear", "nothing"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 2 and "unknown cache part" in done.stderr
