"""DataFrames and data files as a database: what ``-c df``, ``-c df1,df2``, ``-c frames`` and ``-c sales.csv`` name.

A *frame source* is one table of such a database: a pandas DataFrame (named after its variable) or a CSV, TSV,
Parquet or JSON file (named after the file's stem, made a valid identifier; a glob such as ``data/*.csv`` is one
table over every file it matches).  :func:`sources_from_token` reads the text after ``-c`` against the notebook's
namespace, :func:`sources_from_value` what :meth:`~jupyter_nl2sql.pipeline.assistant.Assistant.ask` was given from
Python (a DataFrame, a ``{name: DataFrame}`` dict, a path).  :class:`FrameSet` is the whole set, with the
:attr:`~FrameSet.signature` that names its shape: the identity, columns and dtypes of each DataFrame, the size and
modification time of each file.  A cache keyed by it never serves the schema of a frame whose columns changed.

Nothing is copied: :mod:`jupyter_nl2sql.frames_duckdb` serves the set as views of an in-memory DuckDB database
(DuckDB scans the DataFrames' arrays and reads the files where they are).

``frames`` is a keyword of ``-c``: every DataFrame in the namespace (names starting with ``_``, IPython's output
history, are left out).  An alias or a variable named ``frames`` wins over the keyword, as with ``demo``.
"""

from __future__ import annotations

import glob
import hashlib
import keyword
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd

from .errors import ConnectionFailed

#: The ``-c`` keyword for every DataFrame in the namespace.
ALL_FRAMES = "frames"

#: The DuckDB function that reads each supported file type (a compression suffix such as ``.gz`` may follow).
FILE_READERS = {".csv": "read_csv_auto", ".tsv": "read_csv_auto", ".txt": "read_csv_auto",
                ".parquet": "read_parquet", ".pq": "read_parquet",
                ".json": "read_json_auto", ".jsonl": "read_json_auto", ".ndjson": "read_json_auto"}

#: Suffixes of compressed files DuckDB reads directly (``sales.csv.gz``).
COMPRESSION_SUFFIXES = (".gz", ".zst")

#: Table name of a DataFrame given from Python without a name (``Assistant().ask(question, df)``).
DEFAULT_FRAME_NAME = "df"

_GLOB_CHARS = "*?["


def is_frame(value: Any) -> bool:
    """Whether ``value`` is a pandas DataFrame."""
    return isinstance(value, pd.DataFrame)


def is_frame_mapping(value: Any) -> bool:
    """Whether ``value`` is a non-empty ``{name: DataFrame}`` mapping."""
    return isinstance(value, Mapping) and bool(value) and all(isinstance(k, str) and is_frame(v)
                                                             for k, v in value.items())


def table_name(text: str) -> str:
    """``text`` made a plain SQL identifier: runs of other characters become ``_``, a leading digit gets ``t_``.

    >>> table_name("sales 2024-Q1"), table_name("2024"), table_name("***")
    ('sales_2024_Q1', 't_2024', 'data')
    """
    name = re.sub(r"\W+", "_", text, flags=re.ASCII).strip("_") or "data"
    return f"t_{name}" if name[0].isdigit() else name


def file_reader(path: str | Path) -> str | None:
    """The DuckDB reader of a file by its suffix (``.csv.gz`` as ``.csv``), or None when the type is not supported.

    >>> file_reader("a/b.parquet"), file_reader("x.CSV.gz"), file_reader("shop.db")
    ('read_parquet', 'read_csv_auto', None)
    """
    suffixes = [s.lower() for s in Path(path).suffixes]
    if suffixes and suffixes[-1] in COMPRESSION_SUFFIXES:
        suffixes = suffixes[:-1]
    return FILE_READERS.get(suffixes[-1]) if suffixes else None


def _file_stem(path: str | Path) -> str:
    """The file's name without its type and compression suffixes (``sales.csv.gz`` → ``sales``)."""
    name = Path(path).name
    for suffix in reversed(Path(path).suffixes):
        if suffix.lower() in FILE_READERS or suffix.lower() in COMPRESSION_SUFFIXES:
            name = name[: -len(suffix)]
        else:
            break
    return name


def looks_like_path(token: str) -> bool:
    """Whether ``-c`` text names a file rather than a variable, alias or ``connections.ini`` section: it has a
    folder separator, a glob character or a file type suffix (and is not a URL).

    >>> [looks_like_path(t) for t in ("sales.csv", "data/x", "*.parquet", "sales", "sqlite:///a.db")]
    [True, True, True, False, False]
    """
    if "://" in token:
        return False
    return (any(sep in token for sep in ("/", os.sep)) or any(c in token for c in _GLOB_CHARS)
            or bool(Path(token).suffix))


@dataclass(frozen=True)
class Source:
    """One table: a DataFrame (``frame``) or the files of one path or glob (``files``, read by ``reader``)."""

    name: str
    frame: pd.DataFrame | None = field(default=None, repr=False, compare=False)
    files: tuple[Path, ...] = ()
    reader: str | None = None
    label: str = ""  # how the source is written in the connection's URL: the variable, or the path as given

    @property
    def signature(self) -> tuple:
        """What the table's shape depends on: the DataFrame's identity, columns and dtypes; or each file's path, size
        and modification time."""
        if self.frame is not None:
            return (self.name, "frame", id(self.frame), tuple(map(str, self.frame.columns)),
                    tuple(map(str, self.frame.dtypes)))
        stats = []
        for path in self.files:
            try:
                st = path.stat()
            except OSError as exc:
                raise ConnectionFailed(f"cannot read {path}: {exc.strerror or type(exc).__name__}") from None
            stats.append((str(path), st.st_size, st.st_mtime_ns))
        return (self.name, "files", self.reader, tuple(stats))

    @property
    def nbytes(self) -> int:
        """Memory of the DataFrame (numbers and strings, deep), or the files' size on disk."""
        if self.frame is not None:
            return int(self.frame.memory_usage(deep=True).sum())
        return sum(p.stat().st_size for p in self.files)


@dataclass(frozen=True)
class FrameSet:
    """The tables of one frames connection, in order, with unique names."""

    sources: tuple[Source, ...]
    spec: str | None = None  # the -c text they were read from (None: objects given from Python)
    signature: str = ""
    """A digest of every source's :attr:`Source.signature` when the set was made (16 hex digits): another digest
    when a DataFrame is replaced, its columns or dtypes change (in place too), or a file is rewritten."""

    def __post_init__(self) -> None:
        if not self.signature:
            text = repr([s.signature for s in self.sources])
            object.__setattr__(self, "signature", hashlib.sha256(text.encode()).hexdigest()[:16])

    @property
    def names(self) -> list[str]:
        """The table names."""
        return [s.name for s in self.sources]

    @property
    def display_url(self) -> str:
        """How the connection is shown: ``frames:sales,orders=data/orders.csv``."""
        parts = [s.name if s.label in ("", s.name) else f"{s.name}={s.label}" for s in self.sources]
        return "frames:" + ",".join(parts)


def frame_set(sources: Sequence[Source], spec: str | None = None) -> FrameSet:
    """A :class:`FrameSet` with unique table names (a repeated name gets ``_2``, ``_3``…)."""
    seen: set[str] = set()
    unique = []
    for source in sources:
        name, n = source.name, 1
        while name.lower() in seen:
            n += 1
            name = f"{source.name}_{n}"
        seen.add(name.lower())
        unique.append(source if name == source.name else
                      Source(name, source.frame, source.files, source.reader, source.label))
    return FrameSet(tuple(unique), spec)


def file_source(path_text: str | os.PathLike[str]) -> Source:
    """A source for a file (or a glob of files of one type), checked: the type is supported, the files exist and are
    files.  Anything else: one-line :class:`ConnectionFailed`."""
    text = os.fspath(path_text)
    reader = file_reader(text)
    if reader is None:
        kinds = ", ".join(sorted(FILE_READERS))
        hint = f"; for a SQLite database write sqlite:///{text}" if Path(text).suffix.lower() in (".db", ".sqlite",
                                                                                                 ".sqlite3") else ""
        raise ConnectionFailed(f"cannot ask {text}: unsupported file type '{Path(text).suffix or text}' "
                               f"(supported: {kinds}, optionally .gz or .zst){hint}")
    expanded = Path(text).expanduser()
    if any(c in text for c in _GLOB_CHARS):
        files = tuple(Path(p).resolve() for p in sorted(glob.glob(str(expanded))) if Path(p).is_file())
        if not files:
            raise ConnectionFailed(f"no file matches {text}")
        stem = _file_stem(text).translate({ord(c): None for c in _GLOB_CHARS + "]"})
        name = table_name(stem) if re.sub(r"\W", "", stem) else table_name(expanded.parent.name)
    else:
        if not expanded.exists():
            raise ConnectionFailed(f"no such file: {text}")
        if not expanded.is_file():
            raise ConnectionFailed(f"{text} is not a file")
        if not os.access(expanded, os.R_OK):
            raise ConnectionFailed(f"cannot read {text}: permission denied")
        files, name = (expanded.resolve(),), table_name(_file_stem(text))
    return Source(name, files=files, reader=reader, label=text)


def frame_source(name: str, value: Any) -> Source:
    """A source for the DataFrame ``value`` under ``name``; one-line :class:`ConnectionFailed` for anything else."""
    if not is_frame(value):
        raise ConnectionFailed(f"'{name}' is a {type(value).__name__}, not a pandas DataFrame")
    return Source(table_name(name), frame=value, label=name)


def sources_from_value(value: Any) -> FrameSet | None:
    """The frame set of an object given from Python, or None when it is not one: a DataFrame (the table ``df``), a
    ``{name: DataFrame}`` mapping, or a :class:`os.PathLike` path of a data file."""
    if is_frame(value):
        return frame_set([frame_source(DEFAULT_FRAME_NAME, value)])
    if is_frame_mapping(value):
        return frame_set([frame_source(name, frame) for name, frame in value.items()])
    if isinstance(value, os.PathLike):
        return frame_set([file_source(value)])
    return None


def all_frames(namespace: Mapping[str, Any]) -> list[Source]:
    """Every DataFrame variable of ``namespace`` (names starting with ``_`` left out), in name order."""
    return [frame_source(name, value) for name, value in sorted(namespace.items())
            if not name.startswith("_") and is_frame(value)]


def sources_from_token(token: str, namespace: Mapping[str, Any] | None) -> FrameSet | None:
    """The frame set ``-c`` text names, or None when it names none (a URL, an alias, an Engine variable, a
    ``connections.ini`` section: for the connection manager to resolve).

    ``frames`` (every DataFrame of the namespace), a DataFrame variable (or a ``{name: DataFrame}`` one), a file
    path or glob, or a comma-separated list of DataFrame variables and files.  A list that names something else
    (an unknown variable, a variable that is not a DataFrame, a missing or unsupported file) and ``frames`` with no
    DataFrame: one-line :class:`ConnectionFailed`.
    """
    token = token.strip()
    namespace = namespace or {}
    if "://" in token:
        return None
    value = namespace.get(token)
    if is_frame_mapping(value):
        return frame_set([frame_source(name, frame) for name, frame in value.items()], spec=token)
    if token == ALL_FRAMES and not is_frame(value):
        found = all_frames(namespace)
        if not found:
            raise ConnectionFailed(f"-c {ALL_FRAMES}: there is no pandas DataFrame in the notebook's namespace "
                                   "(names starting with _ are left out)")
        return frame_set(found, spec=token)
    parts = [part.strip() for part in token.split(",")]
    if len(parts) == 1:
        if is_frame(value):
            return frame_set([frame_source(token, value)], spec=token)
        is_file = file_reader(token) is not None or any(c in token for c in _GLOB_CHARS)
        if is_file or (looks_like_path(token) and Path(token).expanduser().exists()):
            return frame_set([file_source(token)], spec=token)
        return None
    if not all(parts):
        raise ConnectionFailed(f"-c {token}: an empty name in the list (write -c df1,df2 without spaces or quote it)")
    sources = []
    for part in parts:
        if part.isidentifier() and not keyword.iskeyword(part) and not looks_like_path(part):
            if part not in namespace:
                raise ConnectionFailed(f"-c {token}: no variable '{part}' in the notebook")
            sources.append(frame_source(part, namespace[part]))
        else:
            sources.append(file_source(part))
    return frame_set(sources, spec=token)
