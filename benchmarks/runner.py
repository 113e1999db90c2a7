"""The question loop shared by ``python -m benchmarks.spider`` and ``python -m benchmarks.wikisql``.

A :class:`Benchmark` loads the items of a split, names the SQLite file each question runs on and scores a
predicted SQL string; a predictor turns (question, connection URL) into SQL plus stats — the pipeline
(:class:`AssistantPredictor`, ``Assistant(**options).ask``) or the plain-prompt baseline
(:class:`benchmarks.raw.RawPredictor`, ``--raw``).  :func:`run` draws the reproducible sample, skips the questions
already in the output directory, appends one JSON line per question as it goes, shows a progress bar with the running
accuracy, and writes the reports of :mod:`benchmarks.report` at the end (also after Ctrl-C).

Output directory layout::

    run.json         configuration, selected indices, skipped counts, one entry per session (command, date, git)
    results.jsonl    one record per question (see :func:`make_record`)
    summary.json     summary.md   accuracy_by_<breakdown>.png   latency_hist.png
"""

from __future__ import annotations

import abc
import argparse
import datetime as _dt
import json
import os
import random
import shlex
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Protocol, Sequence

from benchmarks.scoring import Score

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS_FILE = "results.jsonl"
META_FILE = "run.json"
#: run.json keys that must agree for a rerun to add to an existing output directory.
_CONFIG_KEYS = ("benchmark", "split", "model", "raw", "options", "scoring", "timeout", "order", "prefix_states",
                "process_per_question", "environment")
#: What a run.json written before a key existed means by its absence.
_CONFIG_ABSENT: dict[str, Any] = {"environment": {}}
#: Environment settings that change how the engine answers or how fast it does, recorded in run.json (and so in the
#: run's name); those ``--prefix-states`` sets (the states' folder and memory, the guesses' history) are said by it.
ENGINE_ENVIRONMENT = ("NL2SQL_DRAFT_TOKENS", "NL2SQL_REPACKED_COPY", "NL2SQL_LLAMA_THREADS", "NL2SQL_LLAMA_N_CTX")


def engine_environment() -> dict[str, str]:
    """The :data:`ENGINE_ENVIRONMENT` settings this process has (set and not blank)."""
    return {key: os.environ[key].strip() for key in ENGINE_ENVIRONMENT if os.environ.get(key, "").strip()}


# ---------------------------------------------------------------------------------------------------------------
# Data model
# ---------------------------------------------------------------------------------------------------------------
@dataclass
class Item:
    """One benchmark question."""

    index: int
    db_id: str
    question: str
    gold: str
    hardness: str | None = None
    skip_reason: str | None = None
    payload: Any = field(default=None, repr=False)


class Benchmark(abc.ABC):
    """A dataset with a scorer.  Subclasses set ``name`` and the breakdown the report groups by."""

    name: str = "benchmark"
    #: what ``Item.hardness`` holds, for the report ("hardness" for Spider)
    breakdown: str = "hardness"
    #: the breakdown's levels in display order (others are appended)
    breakdown_levels: tuple[str, ...] = ()

    @abc.abstractmethod
    def load(self, data_dir: Path, split: str) -> list[Item]:
        """Every item of the split, in file order, with ``skip_reason`` set for the unscorable ones."""

    @abc.abstractmethod
    def database_path(self, item: Item) -> Path:
        """The SQLite file the question is asked against."""

    @abc.abstractmethod
    def score(self, item: Item, pred_sql: str | None, *, timeout: float = 60.0) -> Score:
        """Execute and compare ``pred_sql`` against the item's gold."""

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """Add this benchmark's own command-line options (none by default)."""

    def configure(self, args: argparse.Namespace) -> dict[str, Any]:
        """Apply this benchmark's options; return the scoring settings that results depend on (for run.json)."""
        return {}

    def pipeline_options(self, args: argparse.Namespace, data_dir: Path) -> dict[str, Any]:
        """``Assistant`` options this benchmark sets by default (``--set`` overrides them); none by default."""
        return {}

    def connection_url(self, item: Item) -> str:
        """Read-only SQLAlchemy URL of the item's database."""
        return sqlite_readonly_url(self.database_path(item))

    def predictor_factory(self, args: argparse.Namespace, options: Mapping[str, Any],
                          process_per_question: bool = False) -> Callable[[], Predictor]:
        """What answers the questions (default: :func:`default_predictor_factory`)."""
        return default_predictor_factory(args, options, process_per_question)


def sqlite_readonly_url(path: Path) -> str:
    """``sqlite:///file:PATH?mode=ro&uri=true``: SQLAlchemy opens the file read-only through SQLite's URI mode."""
    return f"sqlite:///file:{Path(path).resolve()}?mode=ro&uri=true"


@dataclass
class Prediction:
    """A predictor's answer: the SQL (None when it produced none), an error message, the call's stats as a dict
    shaped like :meth:`jupyter_nl2sql.pipeline.stats.Stats.to_dict`, and warnings."""

    sql: str | None
    error: str | None = None
    stats: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    candidates: list[str] = field(default_factory=list)
    """Every SQL the model wrote for the question, in order (first try, repairs, other candidates)."""
    score: float | None = None
    """The model's score of the reply behind ``sql`` (mean token log-probability), when the backend reports it."""
    confidence: dict[str, Any] | None = None
    """The answer's confidence (``Confidence.to_dict()``: level, agree, of, lowest, runner_up), when it has one."""
    wall_seconds: float | None = None
    """Wall time of a question asked in a process of its own (start, imports, model load, answer), else None."""


class Predictor(Protocol):
    """Turns a question about a database into SQL."""

    def prepare(self) -> float | None:
        """Load what is slow to load (the model); return its load seconds, or None if it was already loaded."""

    def predict(self, question: str, url: str) -> Prediction:
        """Answer one question against the database at ``url``."""

    def describe(self) -> dict[str, Any]:
        """Provenance for run.json (model id, revision, device, options)."""

    def release(self) -> None:
        """Close what was opened for the previous database (the loop moves on to another one)."""


class AssistantPredictor:
    """The product pipeline: ``Assistant(model=..., **options).ask(question, url)``."""

    def __init__(self, model: str | None, options: Mapping[str, Any]) -> None:
        from jupyter_nl2sql.pipeline.assistant import Assistant  # the pipeline; imported late so --help stays fast
        from jupyter_nl2sql.connections import ConnectionManager
        from jupyter_nl2sql.errors import Nl2SqlError

        self.options = dict(options)
        kwargs: dict[str, Any] = {"connections": ConnectionManager(), **self.options}
        if model is not None:
            kwargs["model"] = model
        try:
            self.assistant = Assistant(**kwargs)
        except TypeError as exc:
            raise SystemExit(f"error: Assistant does not accept these options ({exc}); check --set keys") from exc
        except Nl2SqlError as exc:
            raise SystemExit(f"error: {exc}") from exc
        self.model = model
        self._provenance: dict[str, Any] = {}

    def prepare(self) -> float | None:
        """Load the model now (``Assistant.backend()``), so that no question pays for it."""
        backend, seconds = self.assistant.backend()
        self._provenance = dict(getattr(backend, "provenance", {}) or {})
        return seconds

    def predict(self, question: str, url: str, **how: Any) -> Prediction:
        """One ``ask`` (``how``: its keyword arguments, e.g. ``follow_up``): its SQL, stats and warnings; an
        ``Nl2SqlError`` becomes the prediction's error."""
        from jupyter_nl2sql.errors import Nl2SqlError

        try:
            answer = self.assistant.ask(question, url, **how)
        except Nl2SqlError as exc:
            stats = getattr(exc, "stats", None)
            return Prediction(None, f"{type(exc).__name__}: {exc}", _stats_dict(stats))
        if answer.provenance and not self._provenance:
            self._provenance = dict(answer.provenance)
        return Prediction(answer.sql or None, answer.error, _stats_dict(answer.stats), list(answer.warnings or []),
                          list(getattr(answer, "candidates", None) or []), getattr(answer, "score", None),
                          confidence=answer.confidence.to_dict() if getattr(answer, "confidence", None) else None)

    def describe(self) -> dict[str, Any]:
        """Model provenance as reported by the backend / the answers, and the options."""
        return {"kind": "assistant", "model": self.model, "options": self.options, "provenance": self._provenance}

    def release(self) -> None:
        """Dispose the pooled engines of the databases asked so far (WikiSQL has one database per table)."""
        self.assistant.connections.close_all()


def _stats_dict(stats: Any) -> dict[str, Any]:
    if stats is None:
        return {}
    if isinstance(stats, Mapping):
        return dict(stats)
    to_dict = getattr(stats, "to_dict", None)
    return to_dict() if callable(to_dict) else {}


# ---------------------------------------------------------------------------------------------------------------
# Sampling, records, resume
# ---------------------------------------------------------------------------------------------------------------
def select_items(items: Sequence[Item], limit: int | None, seed: int, databases: int | None = None) -> list[Item]:
    """The scorable items, or ``random.Random(seed).sample`` of ``limit`` of them, sorted by index.

    ``databases``: first keep the questions of that many databases drawn at random (same seed), as a user asks
    several questions of one database (the model backends reuse the schema part of the prompt between them;
    a sample spread over a hundred databases would measure only cold prompts)."""
    scorable = [it for it in items if it.skip_reason is None]
    if databases is not None:
        names = sorted({it.db_id for it in scorable})
        chosen = set(random.Random(seed).sample(names, min(databases, len(names))))
        scorable = [it for it in scorable if it.db_id in chosen]
    if limit is None or limit >= len(scorable):
        return sorted(scorable, key=lambda it: it.index)
    return sorted(random.Random(seed).sample(scorable, limit), key=lambda it: it.index)


def shuffled_order(items: Sequence[Item], seed: int) -> list[Item]:
    """``items`` in a random order (``seed``) in which consecutive questions are on different databases wherever
    the mix allows it: the cold path a person meets when each question goes to another database than the one before.

    >>> its = [Item(i, db, "q", "g") for i, db in enumerate("aaabbc")]
    >>> order = [it.db_id for it in shuffled_order(its, 0)]
    >>> sorted(order) == list("aaabbc") and all(x != y for x, y in zip(order, order[1:]))
    True
    """
    rng = random.Random(seed)
    by_db: dict[str, list[Item]] = {}
    for it in sorted(items, key=lambda it: it.index):
        by_db.setdefault(it.db_id, []).append(it)
    for queue in by_db.values():
        rng.shuffle(queue)
    order: list[Item] = []
    previous = None
    while by_db:
        # the database with most questions left goes first (so the last ones are not all one database), ties random
        names = [n for n in by_db if n != previous] or list(by_db)
        rng.shuffle(names)
        name = max(names, key=lambda n: len(by_db[n]))
        order.append(by_db[name].pop())
        if not by_db[name]:
            del by_db[name]
        previous = name
    return order


def make_record(item: Item, pred: Prediction, score: Score, scoring_seconds: float) -> dict[str, Any]:
    """The JSONL record of one question.

    ``latency_s`` is the pipeline's end-to-end time without model loading; ``stages`` its per-stage seconds;
    ``generation_s`` the model's decode time; ``peak_rss`` the process peak during the call (bytes).
    """
    st = pred.stats or {}
    load = st.get("model_load_seconds") or 0.0
    total = st.get("total_seconds")
    stages = {k: (v.get("seconds") if isinstance(v, Mapping) else v) for k, v in (st.get("stages") or {}).items()}
    error = pred.error or score.pred_error
    return {
        "index": item.index,
        "db_id": item.db_id,
        "question": item.question,
        "gold": item.gold,
        "pred": pred.sql,
        "correct": bool(score.correct),
        "error": error,
        "pipeline_error": pred.error,
        "exec_failed": score.exec_failed,
        "gold_error": score.gold_error,
        "hardness": item.hardness,
        "latency_s": None if total is None else max(float(total) - float(load), 0.0),
        "stages": stages,
        "generation_s": st.get("generation_seconds"),
        "model_load_s": st.get("model_load_seconds"),
        "tokens_in": st.get("tokens_in"),
        "tokens_out": st.get("tokens_out"),
        "tokens_per_s": st.get("tokens_per_second"),
        "peak_rss": st.get("rss_peak"),
        "gpu_peak": st.get("gpu_peak"),
        "cache_hit": st.get("cache_hit"),
        "prefix": st.get("prefix"),
        "prefix_s": st.get("prefix_seconds"),
        "prefill_s": st.get("prefill_seconds"),
        "decode_s": st.get("decode_seconds"),
        "tokens_reused": st.get("tokens_reused"),
        "tokens_guessed": st.get("tokens_guessed"),
        "process_wall_s": pred.wall_seconds,
        "warnings": pred.warnings,
        "candidates": pred.candidates,
        "score": pred.score,
        "confidence": pred.confidence,
        "scoring_s": scoring_seconds,
        "load_avg_1m": _load_average(),
        "pred_rows": score.pred_rows,
        "gold_rows": score.gold_rows,
    }


def _load_average() -> float | None:
    """The 1-minute system load average (other processes competing for the CPUs skew latencies)."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def load_records(path: Path, *, repair: bool = False) -> list[dict[str, Any]]:
    """Records of a results.jsonl; a torn last line (killed mid-write) is ignored, and cut off when ``repair``."""
    if not path.exists():
        return []
    data = path.read_bytes()
    if repair and data and not data.endswith(b"\n"):
        cut = data.rfind(b"\n") + 1
        with path.open("r+b") as fh:
            fh.truncate(cut)
        data = data[:cut]
    records = []
    for line in data.decode("utf-8", errors="replace").splitlines():
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def append_record(path: Path, record: Mapping[str, Any]) -> None:
    """Append one record and flush it to disk, so an interrupted run loses at most the question in flight."""
    with path.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


# ---------------------------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------------------------
def parse_set(values: Iterable[str]) -> dict[str, Any]:
    """``--set key=value`` pairs as a dict; a value is parsed as JSON when it can be, else kept as a string.

    >>> parse_set(["repair_rounds=0", "model=Qwen/X", "few_shot=true", "stop=[1, 2]"])
    {'repair_rounds': 0, 'model': 'Qwen/X', 'few_shot': True, 'stop': [1, 2]}
    """
    out: dict[str, Any] = {}
    for pair in values:
        key, sep, raw = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise argparse.ArgumentTypeError(f"--set expects key=value, got {pair!r}")
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError:
            out[key] = raw
    return out


def default_data_dir() -> Path:
    """``$NL2SQL_BENCH_DATA``, else ``../shared/data`` next to the repository."""
    env = os.environ.get("NL2SQL_BENCH_DATA")
    return Path(env) if env else (REPO_ROOT / ".." / "shared" / "data").resolve()


def _positive(text: str) -> int:
    """An argparse type: an integer ≥ 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, not {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def build_parser(name: str) -> argparse.ArgumentParser:
    """The options every benchmark runner accepts."""
    p = argparse.ArgumentParser(
        prog=f"python -m benchmarks.{name}",
        description=f"Execution accuracy, latency and memory of jupyter-nl2sql on {name} (resumable).")
    p.add_argument("--data-dir", type=Path, default=None,
                   help="folder holding spider/ and wikisql/ (default: $NL2SQL_BENCH_DATA or ../shared/data)")
    p.add_argument("--split", default="dev", help="dataset split (default: dev)")
    p.add_argument("--limit", type=int, default=None, help="score a random sample of N scorable questions")
    p.add_argument("--seed", type=int, default=0, help="seed of the --limit sample (default 0)")
    p.add_argument("--databases", type=_positive, default=None, metavar="N",
                   help="only the questions of N databases drawn at random (--seed), then the --limit sample")
    p.add_argument("--model", default=None, help="model id, local directory or .gguf file (default: the pipeline's)")
    p.add_argument("--out", type=Path, default=None, help=f"output directory (default: benchmarks/results/{name})")
    p.add_argument("--raw", action="store_true",
                   help="baseline: same model, plain prompt (CREATE TABLEs + 3 rows), greedy, no checks or repair")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="pipeline option passed as Assistant(KEY=VALUE); VALUE parsed as JSON when possible; "
                        "repeatable (e.g. --set repair_rounds=0 --set sample_rows=5)")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds a scored query may run (default 60)")
    p.add_argument("--overwrite", action="store_true", help="discard earlier results in the output directory")
    p.add_argument("--fail-fast", action="store_true", help="stop on the first unexpected pipeline exception")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--order", choices=("grouped", "shuffled"), default="grouped",
                   help="grouped: questions in file order, database by database (the warm path); shuffled: each "
                        "question on another database than the one before (--seed), the cold path")
    p.add_argument("--prefix-states", choices=("shared", "fresh", "off"), default="shared",
                   help="the model's saved schema states: shared (the user cache, as the product runs), fresh (a "
                        "new folder in --out: the first question on each database computes its state) or off "
                        "(none kept, on disk or in memory: every new database prompt is evaluated in full)")
    p.add_argument("--process-per-question", action="store_true",
                   help="ask each question in a new Python process (start, imports, model load, answer), as a "
                        "one-shot command line or a new kernel does; its wall time is recorded as process_wall_s")
    return p


def _git_commit() -> dict[str, Any]:
    import subprocess

    def git(*args: str) -> str | None:
        try:
            res = subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return res.stdout.strip() if res.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


def session_info(argv: Sequence[str]) -> dict[str, Any]:
    """Who ran what, where and when: command line, date, git commit, machine."""
    from benchmarks.report import machine_info

    return {
        "command": " ".join(shlex.quote(a) for a in [Path(sys.executable).name, "-m", *argv]),
        "started": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "git": _git_commit(),
        "machine": machine_info(),
    }


def _check_compatible(meta_path: Path, config: Mapping[str, Any]) -> dict[str, Any] | None:
    if not meta_path.exists():
        return None
    old = json.loads(meta_path.read_text(encoding="utf-8"))
    diffs = [k for k in _CONFIG_KEYS if old.get(k, _CONFIG_ABSENT.get(k)) != config.get(k)]
    if diffs:
        detail = ", ".join(f"{k}: {old.get(k)!r} -> {config.get(k)!r}" for k in diffs)
        raise SystemExit(f"error: {meta_path.parent} holds results of another configuration ({detail}); "
                         "pass --overwrite or choose another --out")
    return old


# ---------------------------------------------------------------------------------------------------------------
# The loop
# ---------------------------------------------------------------------------------------------------------------
def run(benchmark: Benchmark, args: argparse.Namespace, argv: Sequence[str],
        predictor_factory: Callable[[], Predictor] | None = None) -> Path:
    """Run (or resume) a benchmark as configured by ``args``; return the output directory."""
    from benchmarks import report

    data_dir = (args.data_dir or default_data_dir()).resolve()
    out = (args.out or (REPO_ROOT / "benchmarks" / "results" / benchmark.name)).resolve()
    options = parse_set(args.sets)
    if not args.raw:
        # replies must be generated, not remembered, for latencies to mean anything (``--set generation_cache=true``
        # turns the pipeline's cache back on)
        options = {"generation_cache": False, **benchmark.pipeline_options(args, data_dir), **options}
    scoring = benchmark.configure(args)
    items = benchmark.load(data_dir, args.split)
    selected = select_items(items, args.limit, args.seed, getattr(args, "databases", None))
    skipped: dict[str, int] = {}
    for it in items:
        if it.skip_reason:
            skipped[it.skip_reason] = skipped.get(it.skip_reason, 0) + 1

    order = getattr(args, "order", "grouped")
    if order == "shuffled":
        selected = shuffled_order(selected, args.seed)
    config = {"benchmark": benchmark.name, "split": args.split, "model": args.model, "raw": bool(args.raw),
              "options": options, "scoring": scoring, "timeout": args.timeout, "order": order,
              "prefix_states": getattr(args, "prefix_states", "shared"),
              "process_per_question": bool(getattr(args, "process_per_question", False)),
              "environment": engine_environment()}
    out.mkdir(parents=True, exist_ok=True)
    results_path, meta_path = out / RESULTS_FILE, out / META_FILE
    if args.overwrite:
        for f in (results_path, meta_path):
            if f.exists():
                f.unlink()
    _prefix_state_environment(config["prefix_states"], out, fresh=args.overwrite)
    old_meta = _check_compatible(meta_path, config) or {}
    meta: dict[str, Any] = {
        **config,
        "data_dir": str(data_dir),
        "limit": args.limit, "seed": args.seed, "databases": getattr(args, "databases", None),
        "breakdown": benchmark.breakdown, "breakdown_levels": list(benchmark.breakdown_levels),
        "n_items": len(items), "n_scorable": len(items) - sum(skipped.values()), "skipped": skipped,
        "selected_indices": [it.index for it in selected],
        "sessions": list(old_meta.get("sessions", [])),
    }
    session = session_info(argv)
    earlier = [s.get("git", {}).get("commit") for s in meta["sessions"]]
    if meta["sessions"] and (session["git"].get("dirty") or any(c != session["git"].get("commit") for c in earlier)):
        print(f"[benchmarks] note: {out} holds results of earlier sessions; the code may have changed since "
              f"(commits {sorted({str(c) for c in earlier})} -> {session['git'].get('commit')}, "
              f"dirty={session['git'].get('dirty')}); use --overwrite for a clean run", file=sys.stderr)
    meta["sessions"].append(session)

    records = load_records(results_path, repair=True)
    done = {r["index"] for r in records}
    todo = [it for it in selected if it.index not in done]
    wanted = set(meta["selected_indices"])
    tally = [sum(1 for r in records if r["index"] in wanted and r["correct"]),
             sum(1 for r in records if r["index"] in wanted)]

    def save_meta() -> None:
        meta_path.write_text(json.dumps(meta, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")

    save_meta()
    interrupted = False
    if todo:
        if predictor_factory is None:
            predictor_factory = benchmark.predictor_factory(args, options, config["process_per_question"])
        predictor = predictor_factory()
        t_load = time.perf_counter()
        load_seconds = predictor.prepare()
        session["model_load_s"] = load_seconds
        session["prepare_s"] = time.perf_counter() - t_load
        session["predictor"] = predictor.describe()
        save_meta()
        bar = _progress(len(selected), len(selected) - len(todo), benchmark.name, args.no_progress)
        t_run = time.perf_counter()
        release = getattr(predictor, "release", None)
        current_db: str | None = None
        try:
            for it in todo:
                if it.db_id != current_db and current_db is not None and callable(release):
                    release()
                current_db = it.db_id
                url = benchmark.connection_url(it)
                try:
                    # a predictor that needs more than the question (a follow-up's conversation) takes the item
                    predict_item = getattr(predictor, "predict_item", None)
                    pred = predict_item(it, url) if callable(predict_item) else predictor.predict(it.question, url)
                except KeyboardInterrupt:
                    raise
                except Exception as exc:  # a pipeline bug must not end a long run; it is recorded instead
                    if args.fail_fast:
                        raise
                    pred = Prediction(None, f"crash: {type(exc).__name__}: {exc}")
                    print(f"\n[benchmarks] question {it.index}: {traceback.format_exc(limit=3)}", file=sys.stderr)
                t0 = time.perf_counter()
                score = benchmark.score(it, pred.sql, timeout=args.timeout)
                record = make_record(it, pred, score, time.perf_counter() - t0)
                append_record(results_path, record)
                tally[0] += record["correct"]
                tally[1] += 1
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix_str(f"EX {100 * tally[0] / tally[1]:.1f}% ({tally[0]}/{tally[1]})")
        except KeyboardInterrupt:
            interrupted = True
        finally:
            if bar is not None:
                bar.close()
            session["run_seconds"] = time.perf_counter() - t_run
            session["finished"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
            session["interrupted"] = interrupted
            save_meta()
    summary = report.write_reports(out)
    print(report.console_summary(summary))
    if interrupted:
        print(f"interrupted: {tally[1]}/{len(selected)} done; rerun the same command to resume", file=sys.stderr)
        raise SystemExit(130)
    return out


def _progress(total: int, initial: int, name: str, disabled: bool) -> Any:
    if disabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=name, unit="q", dynamic_ncols=True)


def _prefix_state_environment(mode: str, out: Path, fresh: bool) -> None:
    """Point the model's saved schema states where ``--prefix-states`` says (read when the model loads)."""
    if mode == "fresh":
        folder = out / "prefix-states"
        if fresh and folder.exists():
            import shutil

            shutil.rmtree(folder)
        os.environ["NL2SQL_PREFIX_STATE_DIR"] = str(folder)
    elif mode == "shared":
        # the states are the user's, but not the replies remembered for lookup decoding: those of an earlier run of
        # the same questions would be guessed right, a speed no user asking new questions gets
        os.environ["NL2SQL_DRAFT_HISTORY"] = "0"
    elif mode == "off":
        os.environ["NL2SQL_PREFIX_CACHE_MB"] = "0"
        os.environ["NL2SQL_LLAMA_RAM_CACHE_MB"] = "0"


def default_predictor_factory(args: argparse.Namespace, options: Mapping[str, Any],
                              process_per_question: bool = False) -> Callable[[], Predictor]:
    """The raw baseline when ``--raw``, else the Assistant pipeline (each question in a new process when
    ``process_per_question``)."""
    if process_per_question:
        if args.raw:
            raise SystemExit("error: --process-per-question measures the pipeline; it does not go with --raw")
        from benchmarks.one_question import ProcessPredictor

        return lambda: ProcessPredictor(args.model, options)
    if args.raw:
        from benchmarks.raw import RawPredictor

        return lambda: RawPredictor(model=args.model, **options)
    return lambda: AssistantPredictor(args.model, options)


def main(benchmark: Benchmark, argv: Sequence[str] | None = None) -> int:
    """Command-line entry point used by the benchmark modules."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(benchmark.name)
    benchmark.add_arguments(parser)
    args = parser.parse_args(argv)
    run(benchmark, args, [f"benchmarks.{benchmark.name}", *argv])
    return 0


__all__ = ["Benchmark", "Item", "Score", "Prediction", "Predictor", "AssistantPredictor", "select_items",
           "make_record", "load_records", "append_record", "parse_set", "run", "main", "sqlite_readonly_url"]
