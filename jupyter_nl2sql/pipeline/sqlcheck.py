"""Check model-written SQL before it reaches a database.

The SQL a model writes is untrusted.  :func:`check_sql` parses it with sqlglot (never with regular expressions),
insists on exactly one statement, enforces a read-only policy unless writes were allowed, refuses functions and
statements that reach outside the database (files, network, other sessions), and, given the schema, verifies that
every table and column exists, with a "did you mean" hint the repair loop can feed back to the model.

The checker works on the parsed tree, not on the text, and refuses text the database could read differently from
sqlglot: control and invisible characters outside string literals, and compatibility look-alikes (fullwidth
letters and punctuation).  The database session is read-only as well (see :mod:`jupyter_nl2sql.connections`); this
module is the first of the two layers.
"""

from __future__ import annotations

import difflib
import functools
import string
import unicodedata
from collections.abc import Iterable, Iterator, Mapping
from contextlib import closing
from dataclasses import dataclass, field
from typing import Any

import sqlglot
from sqlglot import exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.errors import ParseError, SqlglotError, TokenError
from sqlglot.optimizer.qualify import qualify
from sqlglot.optimizer.scope import Scope, traverse_scope
from sqlglot.tokens import Token, TokenType

from ..errors import ConfigError, SQLCheckError, WriteRefused
from .conjunctions import contradictions
from .sqlfunctions import (ADMIN_FUNCTIONS, BUILTIN_QUALIFIERS, DENIED_FUNCTIONS, DIALECTS, DUCKDB_READ_PRAGMAS,
                           SQLITE_READ_PRAGMAS, SQLITE_SETTING_PRAGMAS, STATEMENT_KEYWORDS, WRITE_FUNCTIONS, Denied,
                           function_policy, relation_policy)
from .sqltree import compares_itself
from .windows import ungrouped_windows

Schema = Mapping[str, Mapping[str, str]]
"""``{"table": {"column": "TYPE"}}``; names are compared case-insensitively."""

MAX_SQL_CHARS = 100_000


@dataclass
class CheckedSQL:
    """SQL that passed :func:`check_sql`.

    ``sql`` is the text to execute: the input without trailing semicolons, whitespace and comments after the last
    semicolon.  ``kind`` is the statement type (``"select"``, ``"union"``, ``"explain"``, ``"insert"``...).
    ``tables`` lists the tables the statement reads or writes (CTE names excluded).  ``warnings`` say what could
    not be verified, in one line each.
    """

    sql: str
    kind: str
    is_write: bool
    tables: list[str]
    warnings: list[str] = field(default_factory=list)


# Statement types refused anywhere in the tree (a data-modifying CTE is an INSERT/UPDATE/DELETE inside a SELECT).
DENIED_STATEMENTS: dict[type[exp.Expr], Denied] = {
    exp.Insert: Denied("INSERT changes data"),
    exp.Update: Denied("UPDATE changes data"),
    exp.Delete: Denied("DELETE changes data"),
    exp.Merge: Denied("MERGE changes data"),
    exp.TruncateTable: Denied("TRUNCATE deletes every row"),
    exp.Drop: Denied("DROP deletes objects"),
    exp.Create: Denied("CREATE creates objects"),
    exp.Alter: Denied("ALTER changes objects"),
    exp.Into: Denied("SELECT ... INTO creates a table"),
    exp.Lock: Denied("FOR UPDATE/SHARE locks rows"),
    exp.Comment: Denied("COMMENT ON changes the catalog"),
    exp.Grant: Denied("GRANT changes privileges"),
    exp.Revoke: Denied("REVOKE changes privileges"),
    exp.Set: Denied("SET changes session settings"),
    exp.Use: Denied("USE switches databases"),
    exp.Transaction: Denied("BEGIN controls transactions"),
    exp.Commit: Denied("COMMIT controls transactions"),
    exp.Rollback: Denied("ROLLBACK controls transactions"),
        exp.Analyze: Denied("ANALYZE writes statistics"),
    exp.Refresh: Denied("REFRESH rewrites data"),
    exp.Cache: Denied("CACHE creates objects"),
    exp.Uncache: Denied("UNCACHE drops objects"),
    exp.Declare: Denied("DECLARE creates variables"),
    exp.Execute: Denied("EXECUTE runs stored code"),
    exp.Kill: Denied("KILL ends other sessions", escape=True),
    exp.Attach: Denied("ATTACH opens or creates another database file", escape=True),
    exp.Detach: Denied("DETACH changes the attached databases", escape=True),
    exp.Copy: Denied("COPY reads or writes files or programs", escape=True),
    exp.Install: Denied("INSTALL downloads extensions", escape=True),
    exp.LoadData: Denied("LOAD DATA reads files", escape=True),
    exp.Export: Denied("EXPORT writes files", escape=True),
}

# Columns every table has without declaring them.
SYSTEM_COLUMNS: dict[str, frozenset[str]] = {
    "sqlite": frozenset({"rowid", "oid", "_rowid_"}),
    "duckdb": frozenset({"rowid"}),
    "postgres": frozenset({"ctid", "xmin", "xmax", "cmin", "cmax", "tableoid"}),
}
_DUCKDB_PATH = Denied("DuckDB reads the file or URL named in FROM", escape=True)
#: How a refused write may still run (said after every refusal that allowing writes lifts).
WAY_OUT = ("only read-only queries run unless writes are allowed (--allow-writes in the magic, allow_writes=True in "
           "Python)")
_NO_WAY_OUT = "this stays refused with --allow-writes too"
# sqlglot's typed functions that write (the others are checked by their names, see _function_refusal).
_TYPED_WRITES = (exp.NextValueFor,)
_READ_ONLY_ROOTS = (exp.Select, exp.SetOperation, exp.Values, exp.Describe, exp.Summarize, exp.Show, exp.Pivot)
# What sqlglot returns for an unknown keyword followed by a name ("CHECKPOINT", "LISTEN x"): an expression.
_NOT_STATEMENTS = (exp.Condition, exp.Alias, exp.Tuple, exp.Identifier, exp.Star, exp.Var)
_EXPLAIN_OPTIONS = frozenset({"analyze", "analyse", "verbose", "query", "plan"})
#: sqlglot token types of string literals (their text is data, never a name).
STRING_TOKENS = frozenset({
    TokenType.STRING, TokenType.NATIONAL_STRING, TokenType.BYTE_STRING, TokenType.HEX_STRING,
    TokenType.BIT_STRING, TokenType.RAW_STRING, TokenType.HEREDOC_STRING, TokenType.UNICODE_STRING,
})
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Zs", "Co", "Cs", "Cn"})


def check_sql(sql: str, *, dialect: str = "sqlite", schema: Schema | None = None,
              allow_writes: bool = False) -> CheckedSQL:
    """Check one SQL statement written by a model; return what to execute or raise a one-line error.

    Raises :class:`~jupyter_nl2sql.errors.SQLCheckError` for empty, unparsable or multi-statement SQL, suspicious
    characters and unknown tables or columns (when ``schema`` is given), and
    :class:`~jupyter_nl2sql.errors.WriteRefused` for anything but a read-only query unless ``allow_writes``.
    Statements and functions that reach outside the database are refused even with ``allow_writes``.
    """
    try:
        Dialect.get_or_raise(dialect)
    except ValueError:
        raise ConfigError(f"unknown SQL dialect {dialect!r}; use a sqlglot dialect name such as sqlite, duckdb or "
                          "postgres") from None
    text, tokens = _prepare(sql, dialect)
    kind, is_write, root = _check_statement(text, tokens, dialect, allow_writes)
    if dialect == "sqlite":
        _check_date_formats(root)
    _check_join_conditions(root)
    both = contradictions(root, dialect)
    if both:
        raise SQLCheckError(f"{both[0]} can never hold on one row: for what has both values, intersect one query per "
                            f"value (INTERSECT), or group and keep the groups with both (HAVING COUNT(DISTINCT ...) = 2)")
    windows = ungrouped_windows(root, dialect)
    if windows:
        raise SQLCheckError(f"{windows[0]} runs after GROUP BY, where its column is no longer one value (SQLite "
                            f"takes one row's): aggregate inside it, e.g. SUM(SUM(x)) OVER (...) for a running total")
    warnings: list[str] = []
    query = _schema_query(root)
    if schema is not None and not is_write and query is not None:
        warnings = _check_schema(query, schema, dialect)
    return CheckedSQL(sql=text, kind=kind, is_write=is_write, tables=_tables(root), warnings=warnings)


@functools.cache
def sqlite_date_codes() -> frozenset[str]:
    """The ``strftime`` format letters this process's SQLite knows (it returns NULL for any other): asked of an
    in-memory database of the same library that runs the queries."""
    import sqlite3

    with closing(sqlite3.connect(":memory:")) as probe:
        return frozenset(c for c in string.ascii_letters
                         if probe.execute("SELECT strftime(?, '2024-05-06 10:11:12')", (f"%{c}",)).fetchone()[0]
                         is not None)


def _check_date_formats(root: exp.Expr) -> None:
    """Refuse an SQLite ``strftime`` whose literal format has a letter SQLite does not know: the query would run
    and give NULL where a date part was meant (a quarter, a month name), a silent wrong answer."""
    known = sqlite_date_codes()
    for node in root.find_all(exp.TimeToStr):
        fmt = node.args.get("format")
        if not isinstance(fmt, exp.Literal) or not fmt.is_string:
            continue
        unknown = sorted({c for c in _date_codes(fmt.this) if c not in known})
        if unknown:
            hint = (" (for a quarter: (CAST(strftime('%m', d) AS INTEGER) + 2) / 3)"
                    if {"q", "Q"} & set(unknown) else "")
            raise SQLCheckError(f"SQLite's strftime has no {', '.join('%' + c for c in unknown)}: it gives NULL; "
                                f"it knows {' '.join('%' + c for c in sorted(known))}{hint}")


def _check_join_conditions(root: exp.Expr) -> None:
    """Refuse a join whose condition compares a column with itself (``ON o.id = o.id``): it holds on every row,
    so the join pairs every row with every other, a silent wrong answer (:func:`~.namefix.fix_names` mends it along
    the schema's foreign keys when exactly one fits; otherwise the repair round is told)."""
    for join in root.find_all(exp.Join):
        on = join.args.get("on")
        if on is None:
            continue
        for eq in on.find_all(exp.EQ):
            if not compares_itself(eq):
                continue
            raise SQLCheckError(f"the join condition {eq.sql()} compares a column with itself, so every row "
                                f"matches: compare a column of each joined table")


def _date_codes(fmt: str) -> list[str]:
    """The letters after each ``%`` of a strftime format (``%%`` is a percent sign; other characters are not
    probed, so not judged)."""
    codes, i = [], 0
    while (i := fmt.find("%", i)) != -1 and i + 1 < len(fmt):
        if fmt[i + 1] in string.ascii_letters:
            codes.append(fmt[i + 1])
        i += 2
    return codes


# --- text -------------------------------------------------------------------------------------------------------

def _prepare(sql: str, dialect: str) -> tuple[str, list[Token]]:
    """Strip trailing semicolons/whitespace, refuse suspicious characters, insist on a single statement."""
    if not isinstance(sql, str):
        raise SQLCheckError(f"the SQL must be a string, not {type(sql).__name__}")
    if len(sql) > MAX_SQL_CHARS:
        raise SQLCheckError(f"the SQL is {len(sql)} characters long; the limit is {MAX_SQL_CHARS}")
    text = sql.strip()
    tokens = _tokenize(text, dialect)
    while tokens and tokens[-1].token_type == TokenType.SEMICOLON:  # "SELECT 1;", "SELECT 1; -- comment"
        text = text[:tokens.pop().start].rstrip()
    if not tokens:
        raise SQLCheckError("the SQL is empty")
    _check_characters(text, tokens, dialect)
    separators = sum(token.token_type == TokenType.SEMICOLON for token in tokens)
    if separators:
        raise SQLCheckError(f"only one statement is allowed; found {separators + 1} separated by ';'")
    return text, tokens


def _tokenize(text: str, dialect: str) -> list[Token]:
    """Tokenize with the dialect's tokenizer; tokenizer errors become one-line SQLCheckErrors."""
    try:
        return list(sqlglot.tokenize(text, read=dialect))
    except TokenError as error:
        raise SQLCheckError(f"could not read the SQL: {_one_line(error)}") from None


def _check_characters(text: str, tokens: list[Token], dialect: str) -> None:
    """Refuse NUL anywhere, and control, invisible or look-alike characters outside string literals."""
    commands = Dialect.get_or_raise(dialect).tokenizer_class.COMMANDS
    literal = bytearray(len(text))
    for previous, token in zip([None, *tokens], tokens):
        # after a command keyword (EXPLAIN, CALL, SHOW...) the tokenizer returns the raw rest as a STRING: not a literal
        if token.token_type in STRING_TOKENS and (previous is None or previous.token_type not in commands):
            literal[token.start:token.end + 1] = b"\x01" * (token.end + 1 - token.start)
    for index, char in enumerate(text):
        if char == "\x00" or (not literal[index] and _suspicious(text, index)):
            name = unicodedata.name(char, "control character")
            raise SQLCheckError(f"character U+{ord(char):04X} ({name}) at position {index} is not allowed "
                                "outside string literals; retype the SQL in plain text")


def _suspicious(text: str, index: int) -> bool:
    """True for characters a database may read differently from sqlglot (or that hide text from a reader)."""
    char = text[index]
    if char in " \t\n" or (char == "\r" and text[index + 1:index + 2] == "\n"):
        return False
    if unicodedata.category(char) in _INVISIBLE_CATEGORIES:
        return True
    return unicodedata.normalize("NFKC", char) != char  # fullwidth letters, ligatures, superscripts...


def _parse_one(text: str, dialect: str) -> exp.Expr:
    """Parse exactly one statement."""
    try:
        parsed = sqlglot.parse(text, read=dialect)
    except ParseError as error:
        raise SQLCheckError(f"could not parse the SQL ({dialect}): {_parse_message(error)}") from None
    except (TokenError, SqlglotError) as error:
        raise SQLCheckError(f"could not parse the SQL ({dialect}): {_one_line(error)}") from None
    except RecursionError:
        raise SQLCheckError("the SQL is nested too deeply to check") from None
    statements = [s for s in parsed if s is not None and not isinstance(s, exp.Semicolon)]
    if not statements:
        raise SQLCheckError("the SQL is empty")
    if len(statements) > 1:
        raise SQLCheckError(f"only one statement is allowed; found {len(statements)}")
    return statements[0]


def _parse_message(error: ParseError) -> str:
    """sqlglot's first parse error as one line: description, position and the offending text."""
    if not error.errors:
        return _one_line(error)
    first = error.errors[0]
    where = f" at line {first.get('line')}, column {first.get('col')}" if first.get("line") else ""
    near = f" near '{first['highlight']}'" if first.get("highlight") else ""
    description = first.get("description") or "invalid SQL"
    if description.startswith("Required keyword"):  # sqlglot names its own classes here: say it in words
        description = "incomplete SQL (an operand or clause is missing)"
    return f"{description}{where}{near}"


def _one_line(error: BaseException) -> str:
    """An exception's message condensed to one line without terminal colour codes."""
    return _condense(str(error).replace("\x1b[4m", "").replace("\x1b[0m", "")) or type(error).__name__


def _condense(text: str) -> str:
    """Text on one line, runs of whitespace collapsed."""
    return " ".join(text.split())


# --- policy -----------------------------------------------------------------------------------------------------

def _check_statement(text: str, tokens: list[Token], dialect: str,
                     allow_writes: bool) -> tuple[str, bool, exp.Expr]:
    """Apply the policy: return (kind, is_write, statement) or raise WriteRefused/SQLCheckError."""
    first = tokens[0].text.lower()
    if first == "explain":  # sqlglot has no EXPLAIN: check the statement explained
        inner = _explained_text(text[tokens[0].end + 1:], dialect)
        _, is_write, root = _check_statement(*_prepare(inner, dialect), dialect, allow_writes)
        return "explain", is_write, root
    policy = _dialect_policy(dialect)
    if first == "pragma":
        return _check_pragma(text, tokens, policy, allow_writes)
    keyword = _statement_keyword(tokens)
    if keyword is not None:  # a statement that never reads only: refuse by its keyword, parsed or not
        denied = STATEMENT_KEYWORDS[keyword]
        _refuse([(denied.reason, denied)], allow_writes)
        root = _parse_write(text, tokens, keyword, dialect)
        _refuse(list(_refusals(root, text, policy)) + list(_command_refusals(root, text, policy)), allow_writes,
                escapes_only=True)
        return _kind(root), True, root
    root = _unwrap(_parse_one(text, dialect))
    if isinstance(root, _NOT_STATEMENTS):
        raise SQLCheckError(f"could not parse the SQL ({dialect}): '{_condense(text)[:60]}' is not a statement "
                            "sqlglot understands")
    if isinstance(root, exp.Command) and _kind(root) == "show":  # SHOW setting / SHOW table (DuckDB, PostgreSQL)
        root = _show(root, dialect)
    refusals = list(_refusals(root, text, policy))
    if not isinstance(root, _READ_ONLY_ROOTS):
        label = _kind(root).upper()
        refusals.append((f"{label} cannot be checked (sqlglot does not read this statement)", Denied("")))
    _refuse(refusals, allow_writes)
    return _kind(root), bool(refusals), root


def _refuse(refusals: list[tuple[str, Denied]], allow_writes: bool, *, escapes_only: bool = False) -> None:
    """Raise WriteRefused for the first escape, else (without writes allowed) for the first refusal."""
    for what, denied in refusals:
        if denied.escape:
            raise WriteRefused(f"refused: {what}; {_NO_WAY_OUT}")
    if refusals and not allow_writes and not escapes_only:
        raise WriteRefused(f"refused: {refusals[0][0]}; {WAY_OUT}")


def _statement_keyword(tokens: list[Token]) -> str | None:
    """The STATEMENT_KEYWORDS entry the statement starts with (two-word entries first), or None."""
    # after a command keyword (VACUUM, SET...) the tokenizer returns the rest as one token: take its first word
    words = [(t.text.split() or [""])[0].lower() for t in tokens[:2]]
    pair = " ".join(words)
    if pair in STATEMENT_KEYWORDS:
        return pair
    return words[0] if words[0] in STATEMENT_KEYWORDS else None


def _parse_write(text: str, tokens: list[Token], keyword: str, dialect: str) -> exp.Expr:
    """An allowed write parsed; what sqlglot cannot read stays a Command named by its keyword."""
    try:
        root = _unwrap(_parse_one(text, dialect))
    except SQLCheckError:
        root = None
    if root is None or isinstance(root, _NOT_STATEMENTS):
        rest = text[tokens[1].start:] if len(tokens) > 1 else ""
        return exp.Command(this=keyword.split()[0].upper(), expression=exp.Literal.string(rest))
    return root


def _command_refusals(root: exp.Expr, text: str, policy: _Policy) -> Iterator[tuple[str, Denied]]:
    """Function calls inside statements sqlglot could not parse, found by the tokenizer (``name(``)."""
    for command in root.find_all(exp.Command):
        body = command.expression.name if isinstance(command.expression, exp.Literal) else str(command.expression)
        try:
            tokens = list(sqlglot.tokenize(body, read=policy.dialect))
        except TokenError:
            continue
        for token, following in zip(tokens, tokens[1:]):
            if following.token_type == TokenType.L_PAREN and token.token_type not in STRING_TOKENS:
                name = token.text.lower()
                denied = function_policy(name, policy.dialect)
                if denied is not None and denied.escape:
                    yield f"function {name}() {denied.reason}", denied


def _check_pragma(text: str, tokens: list[Token], policy: _Policy,
                  allow_writes: bool) -> tuple[str, bool, exp.Expr]:
    """``PRAGMA name``, ``PRAGMA name(arg)``, ``PRAGMA name = value``: reads are allowed, settings are writes."""
    words = [t for t in tokens[1:] if t.token_type != TokenType.DOT]
    if not words:
        raise SQLCheckError("PRAGMA needs a name")
    # PRAGMA [schema.]name ...: the name is the last word before '(' or '='
    position = next((i for i, t in enumerate(words) if t.token_type in (TokenType.L_PAREN, TokenType.EQ)),
                    len(words))
    name = words[max(position - 1, 0)].text.lower()
    assigns = position < len(words) and words[position].token_type == TokenType.EQ
    has_argument = position < len(words) and not assigns
    root = exp.Pragma(this=exp.Var(this=name))
    reads, settings = policy.read_pragmas
    if name in reads or (name in settings and not (assigns or has_argument)):
        return "pragma", False, root
    if policy.dialect == "duckdb" or name in ("writable_schema", "trusted_schema", "temp_store_directory"):
        raise WriteRefused(f"refused: PRAGMA {name} changes engine settings or files; {_NO_WAY_OUT}")
    _refuse([(f"PRAGMA {name}{' with a value' if assigns or has_argument else ''} changes engine settings",
              Denied(""))], allow_writes)
    return "pragma", True, root


def _show(root: exp.Command, dialect: str) -> exp.Expr:
    """``SHOW name``: a setting on PostgreSQL (read-only), a table description on DuckDB."""
    rest = root.expression.name if isinstance(root.expression, exp.Literal) else str(root.expression or "")
    if dialect == "duckdb" and rest.strip():
        described = _unwrap(_parse_one(f"DESCRIBE {rest}", dialect))
        if isinstance(described, exp.Describe):
            return described
    return exp.Show(this=rest.strip().upper())


def _explained_text(options_and_statement: str, dialect: str) -> str:
    """The statement in ``[ANALYZE | QUERY PLAN | VERBOSE | (option, ...)] statement`` (what follows EXPLAIN)."""
    text, tokens = _prepare(options_and_statement, dialect)
    depth = 0
    for position, token in enumerate(tokens):
        if token.token_type == TokenType.L_PAREN and (position == 0 or depth):
            depth += 1
        elif token.token_type == TokenType.R_PAREN and depth:
            depth -= 1
        elif not depth and token.text.lower() not in _EXPLAIN_OPTIONS:
            return text[token.start:]
    raise SQLCheckError("EXPLAIN needs a statement to explain")


def _unwrap(statement: exp.Expr) -> exp.Expr:
    """``(SELECT ...)`` at the top level is the SELECT inside."""
    while isinstance(statement, (exp.Subquery, exp.Paren)) and isinstance(statement.this, exp.Expression):
        statement = statement.this
    return statement


def _kind(root: exp.Expr) -> str:
    """The statement type: the sqlglot node key, or the keyword sqlglot fell back to a Command for."""
    if isinstance(root, exp.Command):
        return str(root.this).lower()
    return root.key


@dataclass(frozen=True)
class _Policy:
    """What the walk over a statement needs to know of its dialect."""

    dialect: str  # sqlfunctions' name: sqlite, duckdb, postgres (others are checked as postgres)

    @property
    def read_pragmas(self) -> tuple[frozenset[str], frozenset[str]]:
        if self.dialect == "duckdb":
            return DUCKDB_READ_PRAGMAS, frozenset()
        return SQLITE_READ_PRAGMAS, SQLITE_SETTING_PRAGMAS


def _dialect_policy(dialect: str) -> _Policy:
    """The allow-list a sqlglot dialect is checked against (unknown dialects get PostgreSQL's, the strictest)."""
    return _Policy(dialect if dialect in DIALECTS else "postgres")


def _refusals(root: exp.Expr, text: str, policy: _Policy) -> Iterator[tuple[str, Denied]]:
    """Every refused statement, function, relation or file read anywhere in the tree, as (what and why, Denied)."""
    for node in root.walk():
        if isinstance(node, exp.Command) and node is not root:
            keyword = _kind(node)
            denied = STATEMENT_KEYWORDS.get(keyword, Denied(f"{keyword.upper()} cannot be checked"))
            yield denied.reason, denied
        elif (denied := _denied_statement(node)) is not None:
            yield denied.reason, denied
        elif isinstance(node, exp.Func):
            found = _function_refusal(node, policy)
            if found is not None:
                yield found
        elif isinstance(node, exp.Table) and isinstance(node.this, exp.Identifier):
            found = _relation_refusal(node, text, policy)
            if found is not None:
                yield found


def _denied_statement(node: exp.Expr) -> Denied | None:
    """The DENIED_STATEMENTS entry for the node's class or a base class."""
    return next((DENIED_STATEMENTS[cls] for cls in type(node).__mro__ if cls in DENIED_STATEMENTS), None)


def _function_refusal(node: exp.Func, policy: _Policy) -> tuple[str, Denied] | None:
    """Why a function call is refused (by its name, after resolving a built-in qualifier), or None."""
    table_function = isinstance(node.parent, exp.Table) and node.parent.this is node
    if isinstance(node, exp.Anonymous):
        name = node.name.lower()
        qualifier = node.parent.this if isinstance(node.parent, exp.Dot) and node.parent.expression is node else None
        if (policy.dialect == "postgres" and isinstance(qualifier, (exp.Identifier, exp.Column, exp.Dot))
                and qualifier.name.lower() not in BUILTIN_QUALIFIERS["postgres"]):
            label = f"{qualifier.sql(policy.dialect)}.{name}"
            denied = function_policy(name, policy.dialect, table_function=table_function)
            if denied is not None and denied.escape:
                return f"function {label}() {denied.reason}", denied
            return f"function {label}() is user-defined, not a known read-only function", Denied("")
        denied = function_policy(name, policy.dialect, table_function=table_function)
        return (f"function {name}() {denied.reason}", denied) if denied is not None else None
    if isinstance(node, _TYPED_WRITES):
        return f"function {node.sql_names()[0].lower()}() advances a sequence", Denied("")
    for name in (n.lower() for n in node.sql_names()):  # sqlglot's typed functions: refused where the engine's are
        denied = function_policy(name, policy.dialect, table_function=table_function)
        if denied is not None and _is_engine_name(name, policy.dialect):
            return f"function {name}() {denied.reason}", denied
    return None


def _is_engine_name(name: str, dialect: str) -> bool:
    """True for a name the dialect's catalogue (or the refusal table) knows: a typed function spelt as it."""
    denied = function_policy(name, dialect)
    return name in WRITE_FUNCTIONS[dialect] or name in ADMIN_FUNCTIONS[dialect] or bool(denied and denied.escape)


def _relation_refusal(table: exp.Table, text: str, policy: _Policy) -> tuple[str, Denied] | None:
    """Why a table reference is refused (a file path, or a catalog relation off the list), or None.

    Records on the node (``meta["nl2sql"]``) whether it is a CTE, a catalog relation or a table, for the schema
    check.
    """
    if _is_cte_reference(table, policy.dialect):
        table.meta["nl2sql"] = "cte"
        return None
    start = table.this.meta.get("start")
    if policy.dialect == "duckdb" and table.this.quoted and start is not None and text[start:start + 1] == "'":
        table.meta["nl2sql"] = "file"
        return f"FROM '{table.name}': {_DUCKDB_PATH.reason}", _DUCKDB_PATH  # a string in FROM: a file or URL
    schema = table.args.get("db")
    is_catalog, denied = relation_policy(table.name.lower(), schema.name.lower() if schema else None,
                                         policy.dialect)
    table.meta["nl2sql"] = "catalog" if is_catalog else "table"
    if denied is not None:
        label = ".".join(part.name for part in table.parts)
        return f"{label} {denied.reason}", denied
    return None


def _is_cte_reference(table: exp.Table, dialect: str) -> bool:
    """True when an unqualified table name refers to a CTE in scope (as the dialect resolves CTE names).

    The main query sees every CTE of its WITH.  A CTE's own body sees the earlier ones; PostgreSQL's WITH
    RECURSIVE and SQLite also the later ones; itself only when recursive (SQLite always, DuckDB when its body is a
    UNION).  Anything else is a real table, so a CTE named like a catalog cannot hide a catalog read.
    """
    if table.args.get("db") or table.args.get("catalog"):
        return False
    name = table.name.lower()
    cte: exp.CTE | None = None
    node: exp.Expr | None = table
    while node is not None:
        parent = node.parent
        if isinstance(node, exp.CTE):
            cte = node
        if isinstance(parent, exp.With) and cte is not None and node is cte:
            if name in _visible_ctes(parent, cte, dialect):
                return True
            cte = None
        elif parent is not None and isinstance(parent.args.get("with_"), exp.With) and node is not parent.args["with_"]:
            if name in {c.alias_or_name.lower() for c in parent.args["with_"].expressions}:
                return True
        node = parent
    return False


def _visible_ctes(with_: exp.With, cte: exp.CTE, dialect: str) -> set[str]:
    """Names of ``with_``'s CTEs visible inside ``cte``'s body."""
    names = [c.alias_or_name.lower() for c in with_.expressions]
    index = next(i for i, c in enumerate(with_.expressions) if c is cte)
    recursive = bool(with_.args.get("recursive"))
    if dialect == "sqlite" or (dialect == "postgres" and recursive):
        return set(names)
    visible = set(names[:index])
    if recursive and isinstance(cte.this, exp.SetOperation):
        visible.add(names[index])
    return visible


def _tables(statement: exp.Expr) -> list[str]:
    """Names of the tables a statement uses, each once, without CTE references or table functions."""
    names: dict[str, None] = {}
    for table in statement.find_all(exp.Table):
        if isinstance(table.this, exp.Identifier) and table.meta.get("nl2sql") != "cte":
            names.setdefault(table.name, None)
    return list(names)


# --- schema -----------------------------------------------------------------------------------------------------

def _schema_query(root: exp.Expr) -> exp.Expr | None:
    """The query whose names the schema check verifies: the statement, the query or table a DESCRIBE, SUMMARIZE
    or PIVOT statement reads (as ``SELECT * FROM table``), or None (PRAGMA, SHOW)."""
    if isinstance(root, (exp.Describe, exp.Summarize, exp.Pivot)):
        inner = root.this
        if isinstance(inner, exp.Table):
            table = inner.copy()
            table.set("pivots", None)
            table.meta.update(inner.meta)
            return exp.select("*").from_(table)
        return inner if isinstance(inner, exp.Query) else None
    if isinstance(root, (exp.Pragma, exp.Show, exp.Command)):
        return None
    return root


def _check_schema(query: exp.Expr, schema: Schema, dialect: str) -> list[str]:
    """Verify tables and columns against ``schema``; raise on an unknown name, warn on what cannot be verified.

    Two checks must agree before a query is refused: a column is refused only when no table, subquery, CTE or
    alias within its scope provides it (``_unknown_column``, over sqlglot's scopes).  sqlglot's ``qualify`` with
    ``validate_qualify_columns`` runs as well; where it fails on a query the scope check accepts (a sqlglot limit,
    or an ambiguous name the database will report), the result is a warning, not a refusal.  (``qualify`` alone
    misses names in HAVING, so the scope check also runs when ``qualify`` passes.)
    """
    system = {c.name.lower() for c in query.find_all(exp.Column)} & SYSTEM_COLUMNS.get(_dialect_policy(dialect)
                                                                                      .dialect, frozenset())
    columns: dict[str, Any] = {str(t).lower(): {**{str(c).lower(): "UNKNOWN" for c in cols},
                                                **dict.fromkeys(system, "UNKNOWN")}
                               for t, cols in schema.items()}
    spelling = _spellings(schema, query)
    tree, warnings = _normalized(query, columns, dialect)
    _check_tables(tree, columns, spelling)
    problem = _unknown_column(tree, columns, spelling)
    if problem is not None:
        raise SQLCheckError(problem)
    try:
        qualify(tree, schema=columns, dialect=dialect, validate_qualify_columns=True,
                quote_identifiers=False, identify=False)
    except Exception as error:  # noqa: BLE001 - a sqlglot limit must not reject valid SQL: warn instead
        warnings.append(f"could not verify every column name ({_one_line(error)}); the database will check them")
    return warnings


def _spellings(schema: Schema, query: exp.Expr) -> dict[str, str]:
    """Lower-case name -> spelling for messages: the query's spelling, else the schema's."""
    spelling: dict[str, str] = {}
    for table, cols in schema.items():
        spelling[str(table).lower()] = str(table)
        spelling.update({str(c).lower(): str(c) for c in cols})
    spelling.update({i.name.lower(): i.name for i in query.find_all(exp.Identifier)})
    return spelling


def _normalized(query: exp.Expr, columns: dict[str, dict[str, str]],
                dialect: str) -> tuple[exp.Expr, list[str]]:
    """A copy with lower-case names and no database qualifiers; SQLite's double-quoted strings become strings."""
    tree = query.copy()
    for table in tree.find_all(exp.Table):
        if table.meta.get("nl2sql") != "catalog":  # a catalog relation keeps its schema (never a user table)
            table.set("db", None)
            table.set("catalog", None)
    known = {c for cols in columns.values() for c in cols} | {a.lower() for a in _aliases(tree)}
    warnings: list[str] = []
    for column in list(tree.find_all(exp.Column)):
        ident = column.this
        if may_be_string(column, dialect) and ident.name.lower() not in known:
            warnings.append(f'SQLite reads "{ident.name}" as a string because no column has that name; '
                            f"write '{ident.name}'")
            column.replace(exp.Literal.string(ident.name))
    for ident in tree.find_all(exp.Identifier):
        ident.set("this", ident.name.lower())
    return tree, warnings


def may_be_string(column: exp.Column, dialect: str) -> bool:
    """Whether ``column`` is an unqualified double-quoted word in SQLite, which SQLite reads as a string where no
    column has its name (``WHERE name = "Smith"``)."""
    return (dialect == "sqlite" and not column.table and isinstance(column.this, exp.Identifier)
            and bool(column.this.quoted))


def _aliases(tree: exp.Expr) -> Iterator[str]:
    """Every ``expr AS alias`` name in the tree (ORDER BY, GROUP BY and HAVING may refer to them)."""
    for alias in tree.find_all(exp.Alias):
        yield alias.alias


def _check_tables(tree: exp.Expr, columns: dict[str, dict[str, str]], spelling: dict[str, str]) -> None:
    """Raise ``no table X; did you mean Y?`` for a table that is neither in the schema, a CTE nor the catalog."""
    for table in tree.find_all(exp.Table):
        name = table.name
        if (isinstance(table.this, exp.Identifier) and table.meta.get("nl2sql") not in ("cte", "catalog")
                and name not in columns):
            raise SQLCheckError(f"no table {spelling.get(name, name)}{_suggest(name, columns, spelling)}")


def _unknown_column(tree: exp.Expr, columns: dict[str, dict[str, str]],
                    spelling: dict[str, str]) -> str | None:
    """Find a column reference that no table, subquery or alias in reach provides; its message, or None."""
    for scope in traverse_scope(tree.copy()):
        aliases = set(_aliases(scope.expression))
        for column in scope.walk():
            if type(column) is not exp.Column or isinstance(column.this, exp.Star) or column.find_ancestor(exp.Lambda):
                continue
            name = column.name
            if column.table:
                source = _find_source(scope, column.table)
                if source is None and column.table.lower() in columns and not column.args.get("db"):
                    table = spelling.get(column.table.lower(), column.table)
                    return (f"table {table} is used in {column.table}.{name} but is not in the query's FROM or "
                            f"JOIN; join it")
                available = _source_columns(source, columns) if source is not None else None
                if available is not None and name not in available:
                    return _column_message(name, [column.table], available, columns, spelling, source)
            elif name not in aliases:
                sources = list(_sources_in_reach(scope))
                provided = [_source_columns(source, columns) for source in sources]
                if sources and all(cols is not None and name not in cols for cols in provided):
                    available = set().union(*provided)  # type: ignore[arg-type]
                    labels = [_source_label(source) for source in sources]
                    return _column_message(name, labels, available, columns, spelling, None)
    return None


def _find_source(scope: Scope, alias: str) -> exp.Expr | Scope | None:
    """The table or subquery that ``alias`` names in this scope or an enclosing one it may correlate with."""
    for visible in _visible_scopes(scope):
        if alias in visible.sources:
            return visible.sources[alias]
    return None


def _sources_in_reach(scope: Scope) -> Iterator[exp.Expr | Scope]:
    """Sources of this scope, then of the enclosing scopes it may correlate with."""
    for visible in _visible_scopes(scope):
        yield from visible.sources.values()


def _visible_scopes(scope: Scope | None) -> Iterator[Scope]:
    """This scope and the enclosing ones whose names it can see: subqueries, UNION branches and LATERAL see out,
    derived tables and CTEs do not."""
    while scope is not None:
        yield scope
        sees_out = scope.is_subquery or scope.is_set_operation or scope.is_udtf or bool(
            scope.is_derived_table and getattr(scope, "can_be_correlated", False))
        scope = scope.parent if sees_out else None


def _source_columns(source: exp.Expr | Scope, columns: dict[str, dict[str, str]]) -> set[str] | None:
    """Column names a source provides, or None when they cannot be known (table functions, ``SELECT *``)."""
    if isinstance(source, exp.Table):
        if (not isinstance(source.this, exp.Identifier) or source.name not in columns
                or source.meta.get("nl2sql") == "catalog"):
            return None
        return set(columns[source.name])
    if isinstance(source, Scope):
        owner = source.expression.parent
        while isinstance(owner, exp.SetOperation):  # a recursive CTE's reference to itself: the CTE's column list
            owner = owner.parent
        alias = owner.args.get("alias") if owner is not None else None
        if isinstance(alias, exp.TableAlias) and alias.columns:
            return {c.name for c in alias.columns}
        if isinstance(source.expression, (exp.Select, exp.SetOperation)) and not _has_star(source.expression):
            return set(source.expression.named_selects)
    return None


def _has_star(query: exp.Expr) -> bool:
    """True when the query's output includes ``*`` or ``t.*`` (its columns come from elsewhere)."""
    selects = query.selects if isinstance(query, (exp.Select, exp.SetOperation)) else []
    return any(isinstance(s, exp.Star) or isinstance(s.this, exp.Star) for s in selects)


def _source_label(source: exp.Expr | Scope) -> str:
    """A source's name for messages."""
    if isinstance(source, exp.Table):
        return source.name
    return "a subquery"


def _column_message(name: str, tables: list[str], available: set[str], columns: dict[str, dict[str, str]],
                    spelling: dict[str, str], source: exp.Expr | Scope | None) -> str:
    """``no column X in table T; did you mean Y?`` with spellings from the schema."""
    if isinstance(source, exp.Table):
        tables = [source.name]
    where = " in table " if len(tables) == 1 else " in tables "
    label = ", ".join(spelling.get(t, t) for t in dict.fromkeys(tables))
    close = difflib.get_close_matches(name, sorted(available), n=1)
    if close:
        hint = f"; did you mean {spelling.get(close[0], close[0])}?"
    else:
        owners = [f"{spelling.get(t, t)}.{spelling.get(name, name)}" for t, cols in columns.items() if name in cols]
        hint = f"; it is in {', '.join(owners)}" if owners else _listing(available, spelling)
    return f"no column {spelling.get(name, name)}{where}{label}{hint}"


def _suggest(name: str, columns: dict[str, dict[str, str]], spelling: dict[str, str]) -> str:
    """``; did you mean Y?`` for an unknown table, or the list of tables."""
    close = difflib.get_close_matches(name, sorted(columns), n=1)
    if close:
        return f"; did you mean {spelling.get(close[0], close[0])}?"
    return _listing(columns, spelling, what="tables")


def _listing(names: Iterable[str], spelling: dict[str, str], what: str = "columns") -> str:
    """``; available columns: a, b, c`` (at most 12 names)."""
    shown = sorted(spelling.get(n, n) for n in names)
    if not shown:
        return ""
    more = ", ..." if len(shown) > 12 else ""
    return f"; available {what}: {', '.join(shown[:12])}{more}"
