"""Errors the user can act on.

Every error raised for something the user can fix derives from :class:`Nl2SqlError`.  Its message is one line
that says what went wrong and what to do; the magic turns it into an IPython ``UsageError`` (no traceback), the
command line prints it and exits 2, the widget shows it inline.  Passwords never appear in these messages:
build them with :func:`jupyter_nl2sql.connections.redact` when they mention a URL.
"""

from __future__ import annotations


class Nl2SqlError(Exception):
    """Base class: a problem the user can fix, with a one-line message saying how."""


class QuestionError(Nl2SqlError, ValueError):
    """The question is empty or unusable."""


class ConnectionFailed(Nl2SqlError):
    """No database, a bad URL, an unreachable server, wrong credentials."""


class ModelError(Nl2SqlError):
    """The model id does not exist, its files are missing or corrupted, or it failed to load."""


class SQLCheckError(Nl2SqlError):
    """The SQL does not parse, is not a single statement, names unknown tables/columns, or would write."""


class WriteRefused(SQLCheckError):
    """The SQL would change the database and writes were not allowed for this call."""


class ExecutionError(Nl2SqlError):
    """The database rejected or timed out the query."""


class ConfigError(Nl2SqlError, ValueError):
    """An option or configuration value is invalid."""


class Cancelled(Nl2SqlError):
    """The user stopped the call (Stop button, ``cancel`` event) before it finished."""
