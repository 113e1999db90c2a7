"""Date parts written in another engine's words, said in the database's own: no model call.

Models trained mostly on MySQL write ``YEAR(order_date)``, ``MONTH(d)`` or ``EXTRACT(YEAR FROM d)`` whatever the
database; SQLite has none of them ("no such function: YEAR") and PostgreSQL has no ``YEAR()``.  The query means
one thing only, so :func:`portable_date_parts` writes it as the engine says it (sqlglot reads and writes the SQL) and
the model is not asked to repair it:

>>> portable_date_parts("SELECT COUNT(*) FROM orders WHERE YEAR(order_date) = 2024", "sqlite").sql
"SELECT COUNT(*) FROM orders WHERE CAST(STRFTIME('%Y', order_date) AS INTEGER) = 2024"
>>> portable_date_parts("SELECT MONTH(d) FROM t", "postgres").sql
'SELECT EXTRACT(MONTH FROM d) FROM t'
>>> portable_date_parts("SELECT YEAR(d) FROM t", "duckdb") is None  # DuckDB has YEAR()
True

SQLite's ``strftime`` has no quarter, though models write ``%q`` for one; it becomes the quarter's number:

>>> portable_date_parts("SELECT strftime('%Y-Q%q', d) FROM t", "sqlite").sql
"SELECT STRFTIME('%Y-Q', d) || ((CAST(STRFTIME('%m', d) AS INTEGER) + 2) / 3) FROM t"

Parts whose numbering differs between engines (the day of the week, the week of the year) are left as written.
"""

from __future__ import annotations

from typing import NamedTuple

from sqlglot import exp

from .sqltree import parse_or_none

__all__ = ["PortedSQL", "portable_date_parts"]

#: sqlglot's date-part functions → the unit's name.
_PARTS: dict[type[exp.Expr], str] = {exp.Year: "YEAR", exp.Month: "MONTH", exp.Day: "DAY", exp.DayOfMonth: "DAY",
                                     exp.Quarter: "QUARTER", exp.Hour: "HOUR", exp.Minute: "MINUTE",
                                     exp.Second: "SECOND", exp.DayOfYear: "DOY"}
#: The units of ``EXTRACT(unit FROM d)`` ported, by the names engines give them.
_UNITS = {"YEAR": "YEAR", "MONTH": "MONTH", "DAY": "DAY", "QUARTER": "QUARTER", "HOUR": "HOUR", "MINUTE": "MINUTE",
          "SECOND": "SECOND", "DOY": "DOY", "DAYOFYEAR": "DOY"}
#: SQLite's ``strftime`` letter of each unit (the quarter is computed from the month).
_SQLITE_LETTERS = {"YEAR": "%Y", "MONTH": "%m", "DAY": "%d", "HOUR": "%H", "MINUTE": "%M", "SECOND": "%S",
                   "DOY": "%j"}
#: The engines whose words are known here; others keep the SQL as written.
DIALECTS = ("sqlite", "postgres")


class PortedSQL(NamedTuple):
    """The query in the engine's words, and each change (``YEAR(d) → CAST(STRFTIME('%Y', d) AS INTEGER)``)."""

    sql: str
    changes: list[str]


def portable_date_parts(sql: str, dialect: str) -> PortedSQL | None:
    """``sql`` with its date parts in ``dialect``'s words (see the module docstring), or None when nothing needed
    porting (or the SQL does not parse, which the checker reports)."""
    if dialect not in DIALECTS:
        return None
    tree = parse_or_none(sql, dialect)
    if tree is None:
        return None
    changes: list[str] = []

    def port(node: exp.Expr) -> exp.Expr:
        part = _part(node)
        if part is None:
            new = _sqlite_quarters(node) if dialect == "sqlite" else None
        else:
            unit, date = part
            new = _sqlite_part(unit, date) if dialect == "sqlite" else _postgres_part(unit, date, node)
        if new is None:
            return node
        # as written (sqlglot writes PostgreSQL's YEAR(d) as EXTRACT already: its own words there), and as run
        changes.append(f"{node.sql(dialect) if dialect == 'sqlite' else node.sql()} → {new.sql(dialect)}")
        return new

    ported = tree.transform(port, copy=True)
    return PortedSQL(ported.sql(dialect), changes) if changes else None


def _sqlite_quarters(node: exp.Expr) -> exp.Expr | None:
    """``strftime('%Y-%q', d)`` as ``strftime('%Y-', d) || <quarter>``; None for a format without ``%q``."""
    fmt = node.args.get("format") if isinstance(node, exp.TimeToStr) else None
    if not (isinstance(fmt, exp.Literal) and fmt.is_string and isinstance(node.this, exp.Expr)):
        return None
    pieces, text, i = [], "", 0
    while i < len(fmt.this):
        code = fmt.this[i:i + 2]
        if code == "%q":
            if text:
                pieces.append(_formatted(text, node.this))
            pieces.append(_sqlite_part("QUARTER", node.this))
            text, i = "", i + 2
        else:
            step = 2 if code == "%%" else 1  # an escaped percent sign is kept as it is
            text, i = text + fmt.this[i:i + step], i + step
    if len(pieces) == 0:
        return None
    if text:
        pieces.append(_formatted(text, node.this))
    joined = pieces[0]
    for piece in pieces[1:]:
        joined = exp.DPipe(this=joined, expression=piece)
    return joined


def _formatted(text: str, date: exp.Expr) -> exp.Expr:
    """``strftime(text, date)``, or ``text`` itself when it has no ``%`` code."""
    if "%" not in text:
        return exp.Literal.string(text)
    return exp.TimeToStr(this=date.copy(), format=exp.Literal.string(text))


def _part(node: exp.Expr) -> tuple[str, exp.Expr] | None:
    """(unit, date) of a date-part call (``YEAR(d)``, ``EXTRACT(YEAR FROM d)``), or None."""
    if type(node) in _PARTS and isinstance(node.this, exp.Expr):
        return _PARTS[type(node)], node.this
    if isinstance(node, exp.Extract) and isinstance(node.expression, exp.Expr):
        unit = _UNITS.get(node.this.name.upper()) if isinstance(node.this, (exp.Var, exp.Identifier)) else None
        return (unit, node.expression) if unit else None
    return None


def _sqlite_part(unit: str, date: exp.Expr) -> exp.Expr:
    """``CAST(strftime('%Y', d) AS INTEGER)``; the quarter as ``(month + 2) / 3`` (integer division)."""
    letter = _SQLITE_LETTERS["MONTH" if unit == "QUARTER" else unit]
    number = exp.cast(exp.TimeToStr(this=date.copy(), format=exp.Literal.string(letter)),
                      exp.DataType.build("INTEGER"))
    if unit != "QUARTER":
        return number
    return exp.Paren(this=exp.Div(this=exp.Paren(this=exp.Add(this=number, expression=exp.Literal.number(2))),
                                  expression=exp.Literal.number(3), typed=True))


def _postgres_part(unit: str, date: exp.Expr, node: exp.Expr) -> exp.Expr | None:
    """``EXTRACT(YEAR FROM d)`` for a function PostgreSQL does not have (None for an EXTRACT already)."""
    if isinstance(node, exp.Extract):
        return None
    return exp.Extract(this=exp.Var(this=unit), expression=date.copy())
