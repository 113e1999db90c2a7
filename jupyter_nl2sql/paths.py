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
