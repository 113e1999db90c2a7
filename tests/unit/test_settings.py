"""Settings: every option defined once, checked once, the same from Python, the command line and the README; and
the package's import graph has no cycles (the magic's and the panel's refusals: test_magics.py, test_widget.py)."""

from __future__ import annotations

import argparse
import ast
import re
import threading
from pathlib import Path

import pytest

from jupyter_nl2sql.errors import ConfigError
from jupyter_nl2sql.frontends import cli
from jupyter_nl2sql.models.registry import BACKEND_ALIASES
from jupyter_nl2sql.models.device import DTYPE_ALIASES
from jupyter_nl2sql.pipeline.assistant import Assistant
from jupyter_nl2sql.settings import OPTIONS, Settings, options_table

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "jupyter_nl2sql"

#: The bad settings of issue 20, and the start of the one line that refuses each.
BAD = [({"row_cap": -5}, "row_cap must be a whole number ≥ 1, not -5"),
       ({"row_cap": 0}, "row_cap must be a whole number ≥ 1, not 0"),
       ({"prompt_layout": "xml"}, "prompt_layout must be one of sql, chat, not 'xml'"),
       ({"backend": "bogus"}, "unknown backend 'bogus'"),
       ({"dtype": "bogus"}, "unknown dtype 'bogus'")]


def test_every_option_has_type_default_help_and_check() -> None:
    for name, spec in OPTIONS.items():
        assert spec.name == name and spec.help.strip() and callable(spec.check), name
        assert spec.type in (int, float, bool, str), name
        assert getattr(Settings(), name) == spec.check(name, spec.default) if spec.default is not None else True
    assert set(OPTIONS) == {f for f in Settings.__dataclass_fields__}


def test_the_models_aliases_are_accepted() -> None:
    """Every spelling the models package accepts is accepted by Settings (and only those)."""
    for alias, name in BACKEND_ALIASES.items():
        assert Settings(backend=alias).backend == name
    for alias, name in DTYPE_ALIASES.items():
        assert Settings(dtype=alias.upper()).dtype == name
    assert Settings(dtype="auto").dtype is None and Settings(device="CUDA:1").device == "cuda:1"


@pytest.mark.parametrize("change, message", BAD)
def test_bad_settings_are_refused_in_one_line(change, message) -> None:
    for make in (lambda: Settings(**change), lambda: Settings().replace(**change), lambda: Assistant(**change)):
        with pytest.raises(ConfigError) as info:
            make()
        assert str(info.value).startswith(message) and "\n" not in str(info.value)


@pytest.mark.parametrize("change, message", BAD)
def test_per_call_overrides_are_refused_before_any_model_call(scripted, demo_sqlite_url, change, message) -> None:
    backend = scripted("SELECT 1")
    assistant = Assistant(generation_cache=False)
    with pytest.raises(ConfigError, match=re.escape(message)):
        assistant.ask("How many customers?", demo_sqlite_url, **change)
    with pytest.raises(ConfigError, match=re.escape(message)):
        assistant.run_sql("SELECT 1", demo_sqlite_url, **change)
    assert backend.calls == [] and assistant.history == type(assistant.history)(maxlen=200)


def test_unknown_options_and_wrong_types_are_refused() -> None:
    with pytest.raises(ConfigError, match="unknown option 'row_kap'"):
        Settings().replace(row_kap=5)
    with pytest.raises(ConfigError, match="unknown option"):
        Assistant(row_kap=5)
    for change in ({"fix_names": "yes"}, {"timeout": -1}, {"timeout": "soon"}, {"result_cache": "http://x"},
                   {"generation_cache": "sometimes"}, {"device": "tpu"}, {"candidates": 1.5}):
        with pytest.raises(ConfigError):
            Settings(**change)


def test_settings_are_frozen_and_replace_copies() -> None:
    s = Settings()
    with pytest.raises(AttributeError):
        s.row_cap = 5  # type: ignore[misc]
    t = s.replace(row_cap=5, timeout=0)
    assert (s.row_cap, t.row_cap, t.timeout) == (1000, 5, None) and t.changed() == {"row_cap": 5, "timeout": None}
    a = Assistant(row_cap=7)
    assert a.row_cap == 7 == a.settings.row_cap
    with pytest.raises(AttributeError, match="do not change"):
        a.row_cap = 8


def test_a_call_never_changes_the_settings_another_thread_uses(scripted, demo_sqlite_url) -> None:
    """Questions with different per-call settings at once: each runs with its own; the assistant's stay."""
    scripted("SELECT customer_id FROM customers")
    assistant = Assistant(generation_cache=False, few_shot=0)
    results: dict[int, int] = {}

    def ask(cap: int) -> None:
        results[cap] = len(assistant.ask("Customer ids?", demo_sqlite_url, row_cap=cap).dataframe)

    threads = [threading.Thread(target=ask, args=(cap,)) for cap in (3, 7, 11, 13)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert results == {3: 3, 7: 7, 11: 11, 13: 13} and assistant.settings.row_cap == 1000


# -- the command line ------------------------------------------------------------------------------------------
def test_cli_flags_are_the_settings() -> None:
    sub = next(a for a in cli._parser()._actions if isinstance(a, argparse._SubParsersAction))  # noqa: SLF001
    ask = sub.choices["ask"]
    dests = {a.dest: a for a in ask._actions}  # noqa: SLF001
    for name, spec in OPTIONS.items():
        if spec.group == "display":
            assert name not in dests
            continue
        assert spec.flag in dests[name].option_strings and spec.help in dests[name].help, name
    args = ask.parse_args(["q", "-l", "5", "--no-fix-names", "--backend", "hf", "--timeout", "0"])
    assert cli.settings_from_args(args) == Settings(row_cap=5, fix_names=False, backend="transformers", timeout=0)


@pytest.mark.parametrize("argv, message", [(["-l", "-5"], "row_cap must be a whole number ≥ 1, not -5"),
                                           (["--limit", "0"], "row_cap must be a whole number ≥ 1, not 0"),
                                           (["--prompt-layout", "xml"], "prompt_layout must be one of sql, chat"),
                                           (["--backend", "bogus"], "unknown backend 'bogus'"),
                                           (["--dtype", "bogus"], "unknown dtype 'bogus'"),
                                           (["--row-cap", "many"], "row_cap must be a whole number ≥ 1"),
                                           (["--max-rows", "-3"], "max_rows must be a whole number ≥ 1, not -3"),
                                           (["--max-rows", "0"], "max_rows must be a whole number ≥ 1, not 0"),
                                           (["--max-rows", "x"], "max_rows must be a whole number ≥ 1, not x")])
def test_cli_refuses_bad_settings_with_exit_2_and_one_line(capsys, monkeypatch, argv, message) -> None:
    def no_model(*args, **kwargs):
        raise AssertionError("the model was asked for")

    monkeypatch.setattr(Assistant, "backend", no_model)
    assert cli.main(["ask", "How many customers?", *argv]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith(f"error: {message}") and err.count("\n") == 1


# -- the README ------------------------------------------------------------------------------------------------
def test_readme_lists_every_option() -> None:
    """The README's Configuration section holds the option table made from Settings, as it is now."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    assert options_table() in section, "README out of date: paste jupyter_nl2sql.settings.options_table()"
    names = re.findall(r"^\| `(\w+)` \|", section, flags=re.M)
    assert names == list(OPTIONS)


# -- no import cycles ------------------------------------------------------------------------------------------
def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Module → the package modules it imports, at module level or inside functions (``TYPE_CHECKING`` too)."""
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                targets = [base] + [f"{base}.{a.name}" for a in node.names]
            for target in targets:
                # the module itself, else the package that holds the imported name
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    deps.add(target)
        graph[name] = deps
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles() -> None:
    """No two modules import each other, directly or through others, whether the import is at the top of the file
    or inside a function (a package's ``__init__`` counts as importing what it re-exports)."""
    graph = import_graph()
    assert "jupyter_nl2sql.caches.redis_store" in graph["jupyter_nl2sql.caches"]
    assert cycles(graph) == []


def test_the_cycle_check_can_fail() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
