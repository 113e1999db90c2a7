"""Every option of jupyter-nl2sql, defined once: :class:`Settings`.

Each option is one field of a frozen dataclass with its type, default, help and check (:class:`Option`).  The
front ends are built from it: the ``%config Nl2SqlMagics`` traits (:mod:`jupyter_nl2sql.frontends.magics`), the
command line's flags (:mod:`jupyter_nl2sql.frontends.cli`) and the README's option list (a test compares them).

>>> s = Settings(backend="hf", dtype="bf16")
>>> s.backend, s.dtype, s.row_cap
('transformers', 'bfloat16', 1000)
>>> s.replace(row_cap=50).row_cap
50
>>> s.replace(row_cap=-5)
Traceback (most recent call last):
...
jupyter_nl2sql.errors.ConfigError: row_cap must be a whole number ≥ 1, not -5

Values are checked and normalised when a :class:`Settings` is made, so every spelling the models accept
(``hf``, ``llamacpp``, ``bf16``, ``fp16``, ``auto``) is accepted everywhere, and a refused value raises
:class:`~jupyter_nl2sql.errors.ConfigError` with one line, before anything is loaded or asked.  Per-call changes
go through :meth:`Settings.replace`, which checks them the same way; a :class:`Settings` never changes, so a
question being answered in one thread never sees another thread's changes.
"""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from .caches.base import REDIS_SCHEMES
from .caches.generation import parse_cache_mode
from .errors import ConfigError
from .models.device import normalize_dtype
from .models.registry import BACKENDS, normalize_backend
from .pipeline.prompting import LAYOUTS

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


@dataclass(frozen=True)
class Option:
    """How one setting is described and checked."""

    name: str
    type: type
    """``int``, ``float``, ``bool`` or ``str``: the value's type (after the check)."""
    default: Any
    help: str
    check: Callable[[str, Any], Any]
    """``check(name, value)`` → the normalised value, or raises :class:`ConfigError` with one line."""
    nullable: bool = False
    """Whether None is a value (it means "automatic" or "off", as ``help`` says)."""
    group: str = "pipeline"
    """``"model"``, ``"pipeline"``, ``"cache"``, ``"display"`` (the magic's own display options) or ``"output"``
    (how every front end shows an answer: the magic, the panel and the command line's flag)."""
    flags: tuple[str, ...] = ()
    """Extra command-line spellings (``-l``, ``--limit``), besides ``--name-with-dashes``."""

    def from_text(self, text: str) -> Any:
        """The value of a setting written as text (a command-line flag): converted to :attr:`type`, then checked.

        >>> OPTIONS["row_cap"].from_text("50"), OPTIONS["fix_names"].from_text("no")
        (50, False)
        """
        value: Any = text
        try:
            if self.type is bool:
                value = {**dict.fromkeys(_TRUE, True), **dict.fromkeys(_FALSE, False)}[text.strip().lower()]
            elif self.type is int:
                value = int(text)
            elif self.type is float:
                value = float(text)
        except (KeyError, ValueError):
            pass  # the check says what is expected
        return self.check(self.name, value)

    @property
    def flag(self) -> str:
        """The command-line flag: ``--row-cap`` for ``row_cap``."""
        return "--" + self.name.replace("_", "-")


# -- checks ------------------------------------------------------------------------------------------------------
def _int(minimum: int) -> Callable[[str, Any], int]:
    def check(name: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ConfigError(f"{name} must be a whole number ≥ {minimum}, not {value!r}")
        return value

    return check


def _bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{name} must be True or False, not {value!r}")
    return value


def _text(name: str, value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str):
        raise ConfigError(f"{name} must be text, not {value!r}")
    return value.strip() or None


def _timeout(name: str, value: Any) -> float | None:
    if value is None:
        return None
    seconds = float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else float("nan")
    if not seconds >= 0:  # also NaN
        raise ConfigError(f"{name} must be ≥ 0 seconds, not {value!r} (0: no limit)")
    return seconds or None


def _fraction(name: str, value: Any) -> float:
    number = float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else float("nan")
    if not 0 < number <= 1:  # also NaN
        raise ConfigError(f"{name} must be a number above 0 and at most 1, not {value!r}")
    return number


def _backend(name: str, value: Any) -> str:
    return normalize_backend(value)


def _dtype(name: str, value: Any) -> str | None:
    return normalize_dtype(value)


_DEVICE = re.compile(r"(auto|cpu|mps|gpu|cuda(:\d+)?)")


def _device(name: str, value: Any) -> str | None:
    text = (_text(name, value) or "auto").lower()
    if not _DEVICE.fullmatch(text):
        raise ConfigError(f"unknown device {value!r}: use auto, cpu, cuda, cuda:N or mps")
    return None if text == "auto" else text


def _layout(name: str, value: Any) -> str:
    if value not in LAYOUTS:
        raise ConfigError(f"{name} must be one of {', '.join(LAYOUTS)}, not {value!r}")
    return value


def _redis_url(name: str, value: Any) -> str | None:
    text = _text(name, value)
    if text is not None and not text.lower().startswith(REDIS_SCHEMES):
        raise ConfigError(f"{name} must be a Redis URL (redis://host:6379/0#ttl=60), not {value!r}")
    return text


def _generation_cache(name: str, value: Any) -> str | None:
    """None (``$NL2SQL_GENERATION_CACHE``, default disk), ``off``, ``memory``, ``disk`` or a Redis URL."""
    if value is None or value is True:
        return None
    if value is False:
        return "off"
    text = _text(name, value)
    if text is None or text.lower().startswith(REDIS_SCHEMES):
        return text
    return parse_cache_mode(text)


#: The values of ``plot``: the natural chart of a result, a forced kind, or none.
PLOT_KINDS = ("auto", "bar", "line", "scatter", "none")


def _plot(name: str, value: Any) -> str:
    text = value.strip().lower() if isinstance(value, str) else value
    if text not in PLOT_KINDS:
        raise ConfigError(f"{name} must be one of {', '.join(PLOT_KINDS)}, not {value!r}")
    return text


def option(default: Any, help: str, check: Callable[[str, Any], Any], *, type: type | None = None,
           nullable: bool = False, group: str = "pipeline", flags: tuple[str, ...] = ()) -> Any:
    """A :class:`Settings` field described by an :class:`Option` (its ``name`` is filled in by the class)."""
    spec = dict(type=type or builtin_type(default), default=default, help=help, check=check, nullable=nullable,
                group=group, flags=flags)
    return field(default=default, metadata={"option": spec})


def builtin_type(default: Any) -> type:
    """``int``, ``float``, ``bool`` or ``str`` for a default value."""
    return bool if isinstance(default, bool) else (type(default) if default is not None else str)


@dataclass(frozen=True)
class Settings:
    """Every option, checked (see the module docstring and :data:`OPTIONS`)."""

    # -- the model
    model: str | None = option(
        None, "Model: a Hugging Face id, a local directory or a .gguf file; None: the default "
              "(Qwen/Qwen2.5-Coder-1.5B-Instruct, from the offline packages when installed).",
        _text, nullable=True, group="model", flags=("-m",))
    device: str | None = option(None, "'cpu', 'cuda', 'cuda:1', 'mps'; None: CUDA if available, else the CPU.",
                                _device, nullable=True, group="model")
    dtype: str | None = option(None, "'bfloat16' ('bf16'), 'float16' ('fp16') or 'float32'; None: automatic for "
                                     "the device.", _dtype, nullable=True, group="model")
    backend: str = option("auto", f"{', '.join(repr(b) for b in BACKENDS)}: 'auto' takes, for a .gguf on the CPU, "
                                  "ik_llama.cpp (the fastest here), else llama.cpp (xllamacpp), whichever runs on "
                                  "this machine; else transformers ('hf').", _backend, group="model")
    max_new_tokens: int = option(256, "Most tokens the model may generate per answer.", _int(1), group="model")
    # -- the pipeline
    row_cap: int = option(1000, "Most rows fetched per query; the rest are not read.", _int(1), flags=("-l", "--limit"))
    max_result_bytes: int = option(256 * 1024 * 1024, "Most bytes of values one query's result may hold in memory; "
                                   "reading stops there with a note.", _int(1))
    timeout: float | None = option(30.0, "Statement timeout in seconds (0: none).", _timeout, type=float,
                                   nullable=True)
    repair_rounds: int = option(1, "How many times the model may fix SQL that failed a check or a run.", _int(0))
    sample_rows: int = option(3, "Sample rows per table shown to the model.", _int(0))
    max_schema_chars: int = option(12_000, "Above this many characters of schema, only the tables the question "
                                           "needs are shown in full.", _int(1))
    prompt_layout: str = option("sql", "'sql': the prompt is a SQL script (schema, sample rows, the task, -- "
                                       "Question: last); 'chat': a system message and labelled sections.", _layout)
    column_values: int = option(0, "Distinct values shown next to each text column (0: none).", _int(0))
    schema_linking: bool = option(True, "For schemas over max_schema_chars: the linked tables and their join paths "
                                        "in full, the others as one line (False: always everything).", _bool)
    value_retrieval: bool = option(True, "Tell the model how the database spells the values the question "
                                         "mentions.", _bool)
    synonym_linking: bool = option(False, "Tell the model which table or column a question word means when it is "
                                          "a synonym of the name or one step more specific or general in WordNet, "
                                          "or a word of its comment (\"instructors\": table teacher).", _bool)
    few_shot: int = option(3, "Worked examples shown: the ones taught for this database first, then the most "
                              "similar of example_pool.", _int(0))
    example_pool: str | None = option(None, "A JSON file of {question, query, db_id} examples from other "
                                            "databases; None: taught examples only.", _text, nullable=True)
    repair_empty: bool = option(True, "One more round when a query finds no rows although the question names "
                                      "values.", _bool)
    candidates: int = option(1, "Queries written from varied prompts; the result most of them agree on is kept, a "
                                "tie going to the reply the model scored highest (at most 3 without examples).",
                             _int(1))
    alternatives: int = option(0, "Where the model hesitated over a token of its SQL (see unsure_below), continue "
                                  "its reply from up to this many such places with its second choice, run each "
                                  "query and keep the result most agree on (the prompt is not evaluated again); the "
                                  "answer's confidence says how many agree. 0: off.", _int(0))
    unsure_below: float = option(0.5, "A token of the model's SQL whose probability is below this is a "
                                      "hesitation (see alternatives).", _fraction, type=float)
    fix_names: bool = option(True, "Correct a table or column name the schema has exactly once, or join the table "
                                   "a column belongs to along the foreign keys, without asking the model again.",
                             _bool)
    refuse_missing: bool = option(True, "Answer \"can't answer that from this database\" (with a did-you-mean), "
                                        "without asking the model, when the question names a table (\"the zoo "
                                        "table\") unlike every table and column the database has, or asks about a "
                                        "thing or an attribute (\"How many unicorns...\", \"the average salary of "
                                        "the astronauts\": a person, animal, object, place, document or sum of money "
                                        "one keeps, not an act, a group or money computed from prices) that no name, "
                                        "comment, value or WordNet relative of one in the database is like.", _bool)
    refuse_invented: bool = option(True, "Answer \"can't answer that from this database\" instead of repairing the "
                                         "query when the model's first query looks for a table or column no name "
                                         "of the database has, named after a word of the question that no name, "
                                         "comment, value or WordNet relative of one is like (asked \"How severe is "
                                         "each allergy?\", it looked for Severity).", _bool)
    refuse_ungrounded: bool = option(True, "Answer \"can't answer that from this database\" instead of running "
                                           "the model's first query when the question asks about a thing or an "
                                           "attribute that no name, comment or value of the database is close to "
                                           "(spelling, plural or a close WordNet sense) and the tables and columns "
                                           "the query reads are not like it either (asked \"How many gates does each "
                                           "airport have?\", it counted routes).", _bool)
    keep_conditions: bool = option(True, "In a follow-up that reads as one, add back a condition of the previous "
                                         "query that the new query dropped although the question did not widen it "
                                         "(\"now just the cancelled ones\" keeps 2024), and say so.", _bool)
    drop_unasked_limit: bool = option(True, "In a follow-up, run the query without a LIMIT the question did not ask "
                                            "for (\"highest first\", \"with their prices too\") when the previous "
                                            "query had none, and say so.", _bool)
    round_as_asked: bool = option(True, "When the question asks for N decimals (\"rounded to 1 decimal\", \"2 decimal "
                                        "places\"), round the query's fractional columns (divisions, averages) that "
                                        "the model left unrounded, and say so.", _bool)
    top_per_group: bool = option(True, "When the question asks for the top rows of each group (\"the 2 biggest "
                                       "spenders in each country\") and the model's query ranks all rows together, "
                                       "keep the top rows of each group instead, and say so.", _bool)
    fix_values: bool = option(True, "When a query finds nothing, use the database's spelling of a value that "
                                    "differs only in case, accents or dashes.", _bool)
    # -- caches and files
    generation_cache: str | None = option(
        None, "Where model replies are remembered: 'off', 'memory', 'disk' or a Redis URL "
              "(redis://host:6379/0#ttl=86400); None: $NL2SQL_GENERATION_CACHE, default disk.",
        _generation_cache, nullable=True, group="cache")
    cache_dir: str | None = option(None, "Folder of the disk store of model replies; None: generations/ under "
                                         "$NL2SQL_CACHE_DIR (default ~/.cache/jupyter_nl2sql).", _text,
                                   nullable=True, group="cache")
    examples_dir: str | None = option(None, "Folder of the taught examples; None: examples/ under "
                                            "$NL2SQL_CACHE_DIR.", _text, nullable=True, group="cache")
    result_cache: str | None = option(None, "Opt-in: a Redis URL (redis://host:6379/0#ttl=60) where results of "
                                            "read-only queries are shared for the TTL; None: every query runs.",
                                      _redis_url, nullable=True, group="cache")
    schema_cache: str | None = option(None, "A Redis URL (redis://host:6379/0#ttl=600) where introspected schemas "
                                            "are shared by kernels; None: each process introspects.", _redis_url,
                                      nullable=True, group="cache")
    # -- what the magic shows
    explain: bool = option(False, "Show under the SQL what it does in plain English, made from the SQL itself "
                                  "(Answer.explanation).", _bool, group="output")
    show_sql: bool = option(True, "Show the SQL above the result.", _bool, group="display")
    show_stats: bool = option(True, "Show timing and memory stats below the result.", _bool, group="display")
    plot: str = option("auto", "Chart under the result: 'auto' draws its natural one (a category and a number: bar; "
                               "a date/time and numbers: line; two numbers: scatter; else none), or 'bar', 'line', "
                               "'scatter', 'none'.", _plot, group="display")
    default_connection: str | None = option(None, "Connection used when a cell names none and none was used yet "
                                                  "(URL, alias or Engine variable).", _text, nullable=True,
                                            group="display")

    def __post_init__(self) -> None:
        for name, spec in OPTIONS.items():
            value = getattr(self, name)
            if value is None and spec.nullable:
                continue
            object.__setattr__(self, name, spec.check(name, value))

    @classmethod
    def from_options(cls, options: Mapping[str, Any] | None = None, /, **more: Any) -> Settings:
        """Settings from option names and values; an unknown name is a :class:`ConfigError`."""
        values = {**(options or {}), **more}
        _known(values)
        return cls(**values)

    def replace(self, **changes: Any) -> Settings:
        """A copy with ``changes`` applied, checked like the constructor's values (this one is unchanged)."""
        _known(changes)
        return dataclasses.replace(self, **changes) if changes else self

    def as_dict(self) -> dict[str, Any]:
        """Option name → value."""
        return {name: getattr(self, name) for name in OPTIONS}

    def changed(self) -> dict[str, Any]:
        """The options whose value differs from the default."""
        return {name: value for name, value in self.as_dict().items() if value != OPTIONS[name].default}


def _known(values: Mapping[str, Any]) -> None:
    unknown = [name for name in values if name not in OPTIONS]
    if unknown:
        raise ConfigError(f"unknown option{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}: "
                          f"use {', '.join(OPTIONS)}")


#: Option name → :class:`Option`, in the order of the fields.
OPTIONS: dict[str, Option] = {f.name: Option(name=f.name, **f.metadata["option"])
                              for f in dataclasses.fields(Settings)}

#: The options the pipeline uses (not the magic's display options).
PIPELINE_OPTIONS: tuple[str, ...] = tuple(name for name, spec in OPTIONS.items()
                                          if spec.group not in ("display", "output"))


def options_table() -> str:
    """The options as the Markdown table of the README's Configuration section (a test keeps them equal)."""
    rows = ["| option | default | what it does |", "| --- | --- | --- |"]
    rows += [f"| `{name}` | `{spec.default!r}` | {spec.help} |" for name, spec in OPTIONS.items()]
    return "\n".join(rows)
