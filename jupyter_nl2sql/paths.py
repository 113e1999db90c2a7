"""Where jupyter-nl2sql keeps files: one cache root, and the folder of each thing under it.

The root is ``$NL2SQL_CACHE_DIR``, else ``$XDG_CACHE_HOME/jupyter_nl2sql``, else ``~/.cache/jupyter_nl2sql``.
Under it: model files (``gguf/``, ``converted/``, ``hashes/``, ``tokenizers/``: :mod:`jupyter_nl2sql.models.files`),
remembered model replies (``generations/``), taught examples (``examples/``) and the demo database.  Nothing is
created here; whoever writes a folder creates it.
"""

from __future__ import annotations

import os
from pathlib import Path

CACHE_DIR_ENV = "NL2SQL_CACHE_DIR"


def cache_root() -> Path:
    """The one cache root (see the module docstring); read from the environment at each call.

    >>> import os; os.environ["NL2SQL_CACHE_DIR"] = "/tmp/n2s"; str(cache_root())
    '/tmp/n2s'
    >>> del os.environ["NL2SQL_CACHE_DIR"]
    """
    env = os.environ.get(CACHE_DIR_ENV, "").strip()
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME", "").strip() or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "jupyter_nl2sql"


def generations_dir() -> Path:
    """Model replies remembered on disk (:mod:`jupyter_nl2sql.caches.generation`)."""
    return cache_root() / "generations"


def examples_dir() -> Path:
    """Taught examples, one JSON file per database (:mod:`jupyter_nl2sql.pipeline.examples`)."""
    return cache_root() / "examples"


#: What lives under the cache root, by part: the folders and file patterns of each (the rest is "other").
#: Introspected schemas are kept in memory or in Redis (``schema_cache``), not here.
CACHE_PARTS: dict[str, tuple[str, ...]] = {
    "models": ("gguf", "converted", "hashes", "tokenizers"),
    "prefix-states": ("prefix-states",),
    "generations": ("generations",),
    "examples": ("examples",),
    "demo": ("demo-v*.sqlite",),
}

#: The parts ``clear_cache`` removes (taught examples are the user's own work, and the demo is rebuilt in a second).
CLEARABLE = ("models", "prefix-states", "generations", "all")


def _part_paths(root: Path, part: str) -> list[Path]:
    return [p for pattern in CACHE_PARTS[part] for p in sorted(root.glob(pattern))]


def _tree_size(path: Path) -> tuple[int, int]:
    """(bytes, files) under ``path`` (a file or a folder); links are not followed."""
    if path.is_file():
        return path.stat().st_size, 1
    size = count = 0
    for p in path.rglob("*"):
        if p.is_file() and not p.is_symlink():
            size, count = size + p.stat().st_size, count + 1
    return size, count


def cache_usage(root: Path | None = None) -> list[tuple[str, int, int]]:
    """``(part, bytes, files)`` for each part of :data:`CACHE_PARTS` and ``other`` (whatever else is there)."""
    root = cache_root() if root is None else root
    rows, known = [], set()
    for part in CACHE_PARTS:
        size = count = 0
        for p in _part_paths(root, part) if root.is_dir() else []:
            known.add(p)
            s, c = _tree_size(p)
            size, count = size + s, count + c
        rows.append((part, size, count))
    size = count = 0
    for p in root.iterdir() if root.is_dir() else []:
        if p not in known:
            s, c = _tree_size(p)
            size, count = size + s, count + c
    rows.append(("other", size, count))
    return rows


def clear_cache(part: str, root: Path | None = None) -> tuple[int, int]:
    """Remove one part of the cache (``models``, ``prefix-states``, ``generations`` or ``all`` of these); the
    ``(bytes, files)`` removed.  A bad part name raises ValueError with one line."""
    import shutil

    if part not in CLEARABLE:
        raise ValueError(f"unknown cache part {part!r}: choose one of {', '.join(CLEARABLE)}")
    root = cache_root() if root is None else root
    parts = CLEARABLE[:-1] if part == "all" else (part,)
    size = count = 0
    for name in parts:
        for p in _part_paths(root, name) if root.is_dir() else []:
            s, c = _tree_size(p)
            size, count = size + s, count + c
            shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink(missing_ok=True)
    return size, count
