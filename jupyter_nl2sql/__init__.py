"""jupyter-nl2sql: ask a database questions in plain English from Jupyter, answered by a local model.

``%load_ext jupyter_nl2sql`` registers the ``%nl2sql`` / ``%%nl2sql`` magics.  From Python::

    from jupyter_nl2sql import Assistant
    answer = Assistant().ask("How many customers are there?", "sqlite:///shop.db")
    answer.dataframe, answer.sql, answer.stats

Importing this package (and loading the extension) does not import torch or transformers; the model is
loaded on the first question.
"""

from __future__ import annotations

from typing import Any

from .errors import Nl2SqlError
from .version import __version__


def __getattr__(name: str) -> Any:
    # Lazy re-exports keep ``import jupyter_nl2sql`` and ``%load_ext`` light.
    if name in ("Assistant", "Answer", "get_assistant"):
        from .pipeline import assistant

        return getattr(assistant, name)
    if name == "panel":
        from .frontends.widget import panel

        return panel
    raise AttributeError(f"module 'jupyter_nl2sql' has no attribute {name!r}")


def load_ipython_extension(ipython: Any) -> None:
    """Register the magics (``%load_ext jupyter_nl2sql``) and the input transformer that lets a line magic's
    question end in ``?`` (:mod:`jupyter_nl2sql.frontends.input_transform`)."""
    from .frontends import input_transform
    from .frontends.magics import Nl2SqlMagics

    magics = Nl2SqlMagics(shell=ipython)
    ipython.register_magics(magics)
    if magics not in ipython.configurables:
        ipython.configurables.append(magics)
    input_transform.register(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """Forget the magics' configurable and the input transformer (``%unload_ext jupyter_nl2sql``)."""
    from .frontends import input_transform

    ipython.configurables[:] = [c for c in ipython.configurables if type(c).__name__ != "Nl2SqlMagics"]
    input_transform.unregister(ipython)


__all__ = ["Assistant", "Answer", "Nl2SqlError", "get_assistant", "panel", "load_ipython_extension",
           "unload_ipython_extension", "__version__"]
