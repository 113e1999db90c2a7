"""How an answer looks, in HTML and in text: the one renderer of the notebook output (``Answer._repr_html_``), the
magic, the panel and the command line.

Each piece (SQL, prompt, warnings, error, table) has one HTML form and one text form here; the front ends only
choose which pieces to show and where.
"""

from __future__ import annotations

import html
from typing import Any, Iterable

#: Rows of a result shown in a notebook output or printed (the DataFrame keeps them all).
MAX_ROWS = 50

WARNING_MARK = "⚠"


def escape(text: Any) -> str:
    """HTML-escaped ``str(text)``."""
    return html.escape(str(text))


def sql_html(sql: str) -> str:
    """The SQL as a code block."""
    return f"<pre class='nl2sql-sql'><code>{escape(sql)}</code></pre>"


def explanation_text(explanation: str) -> str:
    """What the SQL does (``Answer.explanation``) as a line of text."""
    return f"-- {explanation}"


def explanation_html(explanation: str) -> str:
    """What the SQL does (``Answer.explanation``) as a small HTML line under the SQL."""
    return f"<div class='nl2sql-explanation' style='color:#555;font-size:90%'>{escape(explanation)}</div>"


def chart_note_text(note: str) -> str:
    """What a chart draws when it is not every row of the result (``Chart.note``), as a line of text."""
    return f"chart: {note}"


def chart_note_html(note: str) -> str:
    """What a chart draws when it is not every row of the result, as a small HTML line under the chart."""
    return f"<div class='nl2sql-chart-note' style='color:#555;font-size:90%'>chart: {escape(note)}</div>"


def prompt_html(prompt: str) -> str:
    """The prompt the model received, as preformatted text."""
    return f"<pre class='nl2sql-prompt'>{escape(prompt)}</pre>"


def warning_text(warning: str) -> str:
    """One warning as a line of text."""
    return f"{WARNING_MARK} {warning}"


def warning_html(warning: str) -> str:
    """One warning as an HTML line."""
    return f"<div class='nl2sql-warning' style='color:#a60'>{WARNING_MARK} {escape(warning)}</div>"


def warnings_html(warnings: Iterable[str]) -> str:
    """Every warning, one HTML line each."""
    return "".join(warning_html(w) for w in warnings)


#: How each confidence level is marked and coloured.
CONFIDENCE_STYLE = {"high": ("✓", "#2a7a2a"), "medium": ("~", "#a60"), "low": (WARNING_MARK, "#c00")}


def confidence_text(confidence: Any) -> str:
    """An answer's :class:`~jupyter_nl2sql.pipeline.confidence.Confidence` as one line, with the runner-up SQL when
    the candidates disagree.

    >>> from jupyter_nl2sql.pipeline.confidence import Confidence
    >>> confidence_text(Confidence.of_votes(1, 3, runner_up="SELECT 2"))
    '⚠ low confidence: 1 of 3 candidate queries agree on this result; the runner-up: SELECT 2'
    """
    mark = CONFIDENCE_STYLE.get(confidence.level, ("", ""))[0]
    line = f"{mark} {confidence.level} confidence: {confidence}"
    if confidence.hesitated:
        line += " on this result"
    if confidence.runner_up and confidence.level != "high":
        line += f"; the runner-up: {' '.join(confidence.runner_up.split())}"
    return line


def confidence_html(confidence: Any) -> str:
    """:func:`confidence_text` as an HTML line, coloured by level."""
    colour = CONFIDENCE_STYLE.get(confidence.level, ("", "#666"))[1]
    return f"<div class='nl2sql-confidence' style='color:{colour}'>{escape(confidence_text(confidence))}</div>"


def error_html(message: str) -> str:
    """An error message as an HTML line."""
    return f"<div class='nl2sql-error' style='color:#b00020;padding:4px 0'>{WARNING_MARK} {escape(message)}</div>"


def table_html(frame: Any, *, max_rows: int | None = MAX_ROWS) -> str:
    """A DataFrame as an HTML table (NULL for missing values, at most ``max_rows`` rows)."""
    return frame.to_html(max_rows=max_rows, index=False, border=0, na_rep="NULL", escape=True)


def table_text(frame: Any, *, max_rows: int | None = MAX_ROWS) -> str:
    """A DataFrame as text (at most ``max_rows`` rows)."""
    return frame.to_string(max_rows=max_rows, index=False)


def answer_html(answer: Any, *, show_sql: bool = True, show_stats: bool = True, max_rows: int | None = MAX_ROWS,
                show_explanation: bool = False) -> str:
    """An answer as HTML: the SQL (and what it does, with ``show_explanation``), the error, the table, the
    warnings, the stats line."""
    parts = []
    if show_sql and answer.sql:
        parts.append(sql_html(answer.sql))
    if show_explanation and getattr(answer, "explanation", None):
        parts.append(explanation_html(answer.explanation))
    if answer.error:
        parts.append(error_html(answer.error))
    if getattr(answer, "confidence", None) is not None and not answer.error:
        parts.append(confidence_html(answer.confidence))
    if answer.dataframe is not None:
        parts.append(table_html(answer.dataframe, max_rows=max_rows))
    parts.append(warnings_html(answer.warnings))
    if show_stats and answer.stats is not None:
        parts.append(answer.stats._repr_html_())
    return "\n".join(p for p in parts if p)


def answer_text(answer: Any, *, show_sql: bool = True, show_stats: bool = True, show_error: bool = True,
                max_rows: int | None = MAX_ROWS, show_explanation: bool = False) -> str:
    """An answer as text: the SQL (and what it does, with ``show_explanation``), the error, the table, the
    warnings, the stats line (blank lines between)."""
    parts = []
    if show_sql and answer.sql:
        parts.append(answer.sql)
    if show_explanation and getattr(answer, "explanation", None):
        parts.append(explanation_text(answer.explanation))
    if show_error and answer.error:
        parts.append(f"error: {answer.error}")
    if getattr(answer, "confidence", None) is not None and not answer.error:
        parts.append(confidence_text(answer.confidence))
    if answer.dataframe is not None:
        parts.append(table_text(answer.dataframe, max_rows=max_rows))
    if answer.warnings:
        parts.append("\n".join(warning_text(w) for w in answer.warnings))
    if show_stats and answer.stats is not None:
        parts.append(str(answer.stats))
    return "\n\n".join(parts)


#: What each stage of ``Assistant.ask`` / ``Assistant.warm`` is doing, as the progress displays say it.
PROGRESS_TEXT = {
    "schema": "reading the schema",
    "values": "looking up the values the question names",
    "load": "loading the model",
    "prefill": "evaluating the schema",
    "generate": "writing the SQL",
    "execute": "running the query",
}


def progress_text(stage: str, info: Any = None) -> str:
    """One line saying what a progress report means (the magic, the panel and the command line show it).

    >>> progress_text("prefill", {"done": 412, "total": 860})
    'evaluating the schema: 412/860 tokens'
    >>> progress_text("load", {})
    'loading the model'
    """
    text = PROGRESS_TEXT.get(stage, stage)
    done, total = (info or {}).get("done"), (info or {}).get("total")
    if done is not None and total:
        text += f": {done}/{total} tokens"
    return text


def size_text(size: int) -> str:
    """A byte count for people.

    >>> size_text(0), size_text(2048), size_text(3 * 1024 ** 3)
    ('0 B', '2.0 KiB', '3.0 GiB')
    """
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"  # pragma: no cover


def cleared_text(part: str, root: Any, size: int, count: int) -> str:
    """What ``cache --clear PART`` removed, as one line."""
    return f"Removed {part} from {root}: {count} file(s), {size_text(size)}"
