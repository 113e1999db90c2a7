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


def first_line(error: BaseException | str, limit: int = 200) -> str:
    """The first line of an error message, for one-line messages: the driver's own error of a SQLAlchemy error
    (``.orig``), blank lines and terminal colour codes skipped, spaces collapsed, at most ``limit`` characters; the
    exception's class name when its message is empty.

    >>> first_line(ValueError("\\n  bad   value\\nmore detail")), first_line(KeyError()), first_line("x" * 300, 5)
    ('bad value', 'KeyError', 'xxxx…')
    """
    source = getattr(error, "orig", None) or error
    text = str(source).replace("\x1b[4m", "").replace("\x1b[0m", "")
    line = next((" ".join(ln.split()) for ln in text.splitlines() if ln.strip()), "")
    if not line and isinstance(source, BaseException):
        line = type(source).__name__
    return line if len(line) <= limit else line[:limit - 1] + "…"
