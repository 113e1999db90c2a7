"""One parse for the modules that rewrite model SQL on its syntax tree (sqlglot)."""

from __future__ import annotations

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

__all__ = ["compares_itself", "parse_or_none"]


def parse_or_none(sql: str | exp.Expr, dialect: str) -> exp.Expr | None:
    """``sql`` parsed as one statement of ``dialect`` (a tree is returned as it is), None when sqlglot cannot read
    it (an error of sqlglot's, or nesting deeper than Python's recursion limit): a rewrite then leaves the SQL to the
    checker, which says why ("the SQL is nested too deeply to check")."""
    if isinstance(sql, exp.Expr):
        return sql
    try:
        return sqlglot.parse_one(sql, read=dialect)
    except (SqlglotError, ValueError, RecursionError):
        return None


def compares_itself(eq: exp.EQ) -> bool:
    """Whether ``eq`` compares a column with itself (``o.id = o.id``, true on every row).

    >>> compares_itself(sqlglot.parse_one("o.id = O.ID")), compares_itself(sqlglot.parse_one("o.id = c.id"))
    (True, False)
    """
    left, right = eq.this, eq.expression
    return (isinstance(left, exp.Column) and isinstance(right, exp.Column)
            and left.sql().casefold() == right.sql().casefold())
