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
import unicodedata
from collections.abc import Iterable, Iterator, Mapping
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


@dataclass(frozen=True)
class Denied:
    """Why a statement type or function is refused.

    ``escape`` marks things that reach outside the database (files, network, other sessions, the server itself):
    they are refused even when writes are allowed.
    """

    reason: str
    escape: bool = False


# Functions refused anywhere in a statement.  Keys are lower case; a trailing ``*`` matches a prefix.  Names from
# every engine are refused on every dialect: a function of one engine does not exist on the others.
DENIED_FUNCTIONS: dict[str, Denied] = {
    # PostgreSQL
    "pg_sleep*": Denied("stalls the server (PostgreSQL pg_sleep)", escape=True),
    "pg_read_*": Denied("reads server files (PostgreSQL)", escape=True),
    "pg_ls_*": Denied("lists server directories (PostgreSQL)", escape=True),
    "pg_stat_file": Denied("inspects server files (PostgreSQL)", escape=True),
    "pg_file_*": Denied("writes server files (PostgreSQL adminpack)", escape=True),
    "lo_*": Denied("large objects import/export server files (PostgreSQL)", escape=True),
    "dblink*": Denied("connects to other databases (PostgreSQL dblink)", escape=True),
    "query_to_xml*": Denied("runs the SQL text it is given (PostgreSQL)", escape=True),
    "pg_terminate_backend": Denied("kills other sessions (PostgreSQL)", escape=True),
    "pg_cancel_backend": Denied("cancels other sessions' queries (PostgreSQL)", escape=True),
    "pg_reload_conf": Denied("reloads the server configuration (PostgreSQL)", escape=True),
    "pg_rotate_logfile": Denied("administers the server (PostgreSQL)", escape=True),
    "pg_switch_wal": Denied("administers the server (PostgreSQL)", escape=True),
    "pg_promote": Denied("administers the server (PostgreSQL)", escape=True),
    "pg_create_restore_point": Denied("administers the server (PostgreSQL)", escape=True),
    "set_config": Denied("changes session settings (PostgreSQL)"),
    "nextval": Denied("advances a sequence (PostgreSQL, DuckDB)"),
    "setval": Denied("sets a sequence (PostgreSQL)"),
    "txid_current": Denied("assigns a transaction id (PostgreSQL)"),
    "pg_current_xact_id": Denied("assigns a transaction id (PostgreSQL)"),
    "pg_notify": Denied("sends notifications (PostgreSQL)"),
    "pg_advisory*": Denied("takes locks that outlive the query (PostgreSQL)"),
    "pg_try_advisory*": Denied("takes locks that outlive the query (PostgreSQL)"),
    "pg_logical_emit_message": Denied("writes to the WAL (PostgreSQL)"),
    # DuckDB
    "read_*": Denied("reads files or URLs (DuckDB read_csv, read_parquet, read_json, read_text...)", escape=True),
    "parquet_*": Denied("reads files or URLs (DuckDB parquet_scan, parquet_metadata...)", escape=True),
    "sniff_csv": Denied("reads files (DuckDB)", escape=True),
    "glob": Denied("lists files (DuckDB glob)", escape=True),
    "getenv": Denied("reads the server's environment (DuckDB)", escape=True),
    "iceberg_*": Denied("reads files or URLs (DuckDB iceberg)", escape=True),
    "delta_scan": Denied("reads files or URLs (DuckDB delta)", escape=True),
    "sqlite_scan": Denied("reads another database file (DuckDB sqlite)", escape=True),
    "sqlite_attach": Denied("attaches another database file (DuckDB sqlite)", escape=True),
    "postgres_*": Denied("connects to other databases (DuckDB postgres)", escape=True),
    "mysql_*": Denied("connects to other databases (DuckDB mysql)", escape=True),
    "st_read": Denied("reads files (DuckDB spatial)", escape=True),
    "http_*": Denied("makes network requests (DuckDB http_client)", escape=True),
    "query": Denied("runs the SQL text it is given (DuckDB)", escape=True),
    "query_table": Denied("reads tables named by a string (DuckDB)", escape=True),
    "json_execute_serialized_sql": Denied("runs serialized SQL (DuckDB)", escape=True),
    "duckdb_secrets": Denied("lists stored credentials (DuckDB)", escape=True),
    # SQLite
    "load_extension": Denied("loads native code (SQLite)", escape=True),
    "readfile": Denied("reads files (SQLite shell)", escape=True),
    "writefile": Denied("writes files (SQLite shell)", escape=True),
    "edit": Denied("starts an editor (SQLite shell)", escape=True),
    "fsdir": Denied("lists directories (SQLite fileio)", escape=True),
    "zipfile*": Denied("reads and writes zip files (SQLite zipfile)", escape=True),
    "fts3_tokenizer": Denied("can install native tokenizers (SQLite FTS3)", escape=True),
}

# Statement types refused anywhere in the tree (a data-modifying CTE is an INSERT/UPDATE/DELETE inside a SELECT).
DENIED_STATEMENTS: dict[type[exp.Expr], Denied] = {
    exp.Insert: Denied("INSERT changes data"),
    exp.Update: Denied("UPDATE changes data"),
    exp.Delete: Denied("DELETE changes data"),
    exp.Merge: Denied("MERGE changes data"),
    exp.TruncateTable: Denied("TRUNCATE deletes data"),
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
    exp.Pragma: Denied("PRAGMA changes or inspects engine settings"),
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

# Statements sqlglot does not understand become ``exp.Command``; these keywords reach outside the database.
ESCAPE_COMMANDS: dict[str, Denied] = {
    "load": Denied("LOAD loads native extensions", escape=True),
    "install": Denied("INSTALL downloads extensions", escape=True),
    "do": Denied("DO runs procedural code", escape=True),
    "copy": Denied("COPY reads or writes files or programs", escape=True),
    "attach": Denied("ATTACH opens or creates another database file", escape=True),
    "export": Denied("EXPORT writes files", escape=True),
    "import": Denied("IMPORT reads files", escape=True),
}

# DuckDB reads a file or URL named in FROM ("FROM 'data.csv'", "FROM 'https://...'").
_DUCKDB_PATH_CHARS = frozenset("/\\:.*?~")
_DUCKDB_PATH = Denied("DuckDB reads the file or URL named in FROM", escape=True)

_READ_ONLY_ROOTS = (exp.Select, exp.SetOperation)
# What sqlglot returns for an unknown keyword followed by a name ("CHECKPOINT", "LISTEN x"): an expression.
_NOT_STATEMENTS = (exp.Condition, exp.Alias, exp.Tuple, exp.Identifier, exp.Star, exp.Var)
_EXPLAIN_OPTIONS = frozenset({"analyze", "analyse", "verbose", "query", "plan"})
_STRING_TOKENS = frozenset({
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
    warnings: list[str] = []
    if schema is not None and not is_write:
        warnings = _check_schema(root, schema, dialect)
    return CheckedSQL(sql=text, kind=kind, is_write=is_write, tables=_tables(root), warnings=warnings)


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
        if token.token_type in _STRING_TOKENS and (previous is None or previous.token_type not in commands):
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
    return f"{first.get('description') or 'invalid SQL'}{where}{near}"


def _one_line(error: BaseException) -> str:
    """An exception's message condensed to one line without terminal colour codes."""
    return _condense(str(error).replace("\x1b[4m", "").replace("\x1b[0m", "")) or type(error).__name__


def _condense(text: str) -> str:
    """Text on one line, runs of whitespace collapsed."""
    return " ".join(text.split())


# --- policy -----------------------------------------------------------------------------------------------------

def _check_statement(text: str, tokens: list[Token], dialect: str,
                     allow_writes: bool) -> tuple[str, bool, exp.Expr]:
    """Parse and apply the policy: return (kind, is_write, statement) or raise WriteRefused/SQLCheckError."""
    if tokens[0].text.lower() == "explain":  # sqlglot has no EXPLAIN: check the statement explained
        inner = _explained_text(text[tokens[0].end + 1:], dialect)
        _, is_write, root = _check_statement(*_prepare(inner, dialect), dialect, allow_writes)
        return "explain", is_write, root
    root = _unwrap(_parse_one(text, dialect))
    if isinstance(root, _NOT_STATEMENTS):
        raise SQLCheckError(f"could not parse the SQL ({dialect}): '{_condense(text)[:60]}' is not a statement "
                            "sqlglot understands")
    kind = _kind(root)
    refusals = list(_refusals(root, dialect))
    for label, denied in refusals:
        if denied.escape:
            raise WriteRefused(f"{label} is refused: {denied.reason}")
    read_only = isinstance(root, _READ_ONLY_ROOTS) and not refusals
    if not read_only and not allow_writes:
        if refusals:
            label, denied = refusals[0]
            raise WriteRefused(f"{label} is refused: {denied.reason}; only read-only queries run unless writes "
                               "are allowed (--allow-writes in the magic, allow_writes=True in Python)")
        raise WriteRefused(f"{kind.upper()} is refused: only read-only queries (SELECT, WITH ... SELECT, UNION, "
                           "EXPLAIN) run unless writes are allowed (--allow-writes in the magic, "
                           "allow_writes=True in Python)")
    return kind, not read_only, root


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


def _refusals(root: exp.Expr, dialect: str) -> Iterator[tuple[str, Denied]]:
    """Every refused statement, function or file read anywhere in the tree, as (label, why)."""
    for node in root.walk():
        if isinstance(node, exp.Command):
            keyword = _kind(node)
            yield keyword.upper(), ESCAPE_COMMANDS.get(keyword, Denied("sqlglot does not understand this statement"))
        elif (denied := _denied_statement(node)) is not None:
            yield node.key.upper(), denied
        elif isinstance(node, exp.Func):
            for name in _function_names(node):
                denied = _denied_function(name)
                if denied is not None:
                    yield f"function {name}()", denied
        elif dialect == "duckdb" and _is_path_table(node):
            yield f"FROM '{node.name}'", _DUCKDB_PATH


def _denied_statement(node: exp.Expr) -> Denied | None:
    """The DENIED_STATEMENTS entry for the node's class or a base class."""
    return next((DENIED_STATEMENTS[cls] for cls in type(node).__mro__ if cls in DENIED_STATEMENTS), None)


def _function_names(node: exp.Func) -> set[str]:
    """The lower-case names a function node can be called by."""
    if isinstance(node, exp.Anonymous):
        return {node.name.lower()}
    return {name.lower() for name in node.sql_names()}


def _denied_function(name: str) -> Denied | None:
    """The DENIED_FUNCTIONS entry matching ``name`` exactly or by prefix."""
    if name in DENIED_FUNCTIONS:
        return DENIED_FUNCTIONS[name]
    for key, denied in DENIED_FUNCTIONS.items():
        if key.endswith("*") and name.startswith(key[:-1]):
            return denied
    return None


def _is_path_table(node: exp.Expr) -> bool:
    """A DuckDB table reference that names a file, glob or URL rather than a table."""
    return (isinstance(node, exp.Table) and isinstance(node.this, exp.Identifier)
            and any(char in _DUCKDB_PATH_CHARS for char in node.name))


def _tables(statement: exp.Expr) -> list[str]:
    """Names of the tables a statement uses, each once, without CTE names or table functions."""
    ctes = {cte.alias_or_name.lower() for cte in statement.find_all(exp.CTE)}
    names: dict[str, None] = {}
    for table in statement.find_all(exp.Table):
        if isinstance(table.this, exp.Identifier) and table.name.lower() not in ctes:
            names.setdefault(table.name, None)
    return list(names)


# --- schema -----------------------------------------------------------------------------------------------------

def _check_schema(query: exp.Expr, schema: Schema, dialect: str) -> list[str]:
    """Verify tables and columns against ``schema``; raise on an unknown name, warn on what cannot be verified.

    Two checks must agree before a query is refused: a column is refused only when no table, subquery, CTE or
    alias within its scope provides it (``_unknown_column``, over sqlglot's scopes).  sqlglot's ``qualify`` with
    ``validate_qualify_columns`` runs as well; where it fails on a query the scope check accepts (a sqlglot limit,
    or an ambiguous name the database will report), the result is a warning, not a refusal.  (``qualify`` alone
    misses names in HAVING, so the scope check also runs when ``qualify`` passes.)
    """
    columns: dict[str, Any] = {str(t).lower(): {str(c).lower(): "UNKNOWN" for c in cols}
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
        table.set("db", None)
        table.set("catalog", None)
    known = {c for cols in columns.values() for c in cols} | {a.lower() for a in _aliases(tree)}
    warnings: list[str] = []
    for column in list(tree.find_all(exp.Column)):
        ident = column.this
        if (dialect == "sqlite" and not column.table and isinstance(ident, exp.Identifier) and ident.quoted
                and ident.name.lower() not in known):
            warnings.append(f'SQLite reads "{ident.name}" as a string because no column has that name; '
                            f"write '{ident.name}'")
            column.replace(exp.Literal.string(ident.name))
    for ident in tree.find_all(exp.Identifier):
        ident.set("this", ident.name.lower())
    return tree, warnings


def _aliases(tree: exp.Expr) -> Iterator[str]:
    """Every ``expr AS alias`` name in the tree (ORDER BY, GROUP BY and HAVING may refer to them)."""
    for alias in tree.find_all(exp.Alias):
        yield alias.alias


def _check_tables(tree: exp.Expr, columns: dict[str, dict[str, str]], spelling: dict[str, str]) -> None:
    """Raise ``no table X; did you mean Y?`` for a table that is neither in the schema nor a CTE."""
    ctes = {cte.alias_or_name for cte in tree.find_all(exp.CTE)}
    for table in tree.find_all(exp.Table):
        name = table.name
        if isinstance(table.this, exp.Identifier) and name not in ctes and name not in columns:
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
        if not isinstance(source.this, exp.Identifier) or source.name not in columns:
            return None
        return set(columns[source.name])
    if isinstance(source, Scope):
        alias = source.expression.parent.args.get("alias") if source.expression.parent else None
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
