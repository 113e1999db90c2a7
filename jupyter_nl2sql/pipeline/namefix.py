"""Deterministic repair of table and column names a model got almost right.

Small models write ``pet_type`` for ``PetType``, ``Original_artist`` for the header ``Original artist``, put a
column on the wrong alias of a join (``T2.name`` where ``T1`` is the table with ``name``), or leave a header with
spaces unquoted (``WHERE School/Club Team = 'x'``).  Each of these is an unambiguous slip once the schema is known,
and fixing it costs microseconds where a repair round costs a model generation.  :func:`fix_values` does the same for
a literal the database spells differently (``'QF'`` for ``'qf'``, ``'1-6'`` for ``'1–6'``) in a query that found
nothing.

:func:`fix_names` is called only for SQL the checker refused (:func:`jupyter_nl2sql.pipeline.sqlcheck.check_sql`), and it
rewrites a name only when exactly one name of the schema fits; everything else is left to the checker's message and
the model's repair round.  All SQL handling is sqlglot's: its tokenizer for unquoted multi-word headers, its parser,
scopes and generator for the rest.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Sequence
from itertools import pairwise
from dataclasses import dataclass, field

from sqlglot import exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.errors import SqlglotError
from sqlglot.optimizer.scope import Scope, traverse_scope
from sqlglot.tokens import TokenType

from .sqlcheck import Schema as SchemaMapping
from .sqltree import compares_itself, parse_or_none

#: A foreign key: (table, its columns, referenced table, referenced columns).
Link = tuple[str, Sequence[str], str, Sequence[str]]

#: Most foreign-key hops a missing join may take (``Characteristics → Product_Characteristics → Products``).
_MAX_HOPS = 2
#: Most tokens one unquoted header may span (``U.S. viewers (in millions)`` is 9).
_MAX_SPAN = 12
#: Token types that may be part of an unquoted header; strings, quoted names and statement keywords may not.
_NEVER_IN_NAME = frozenset({TokenType.STRING, TokenType.IDENTIFIER, TokenType.SELECT, TokenType.FROM,
                            TokenType.WHERE, TokenType.AND, TokenType.OR, TokenType.EQ, TokenType.NEQ,
                            TokenType.GT, TokenType.GTE, TokenType.LT, TokenType.LTE, TokenType.COMMA,
                            TokenType.JOIN, TokenType.ON, TokenType.GROUP_BY, TokenType.ORDER_BY,
                            TokenType.LIMIT, TokenType.HAVING, TokenType.ALIAS, TokenType.SEMICOLON})


@dataclass
class NameFix:
    """The SQL after :func:`fix_names` and what was changed, one line per change (empty: nothing changed)."""

    sql: str
    changes: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        """True when at least one name was rewritten."""
        return bool(self.changes)


def squash(name: str) -> str:
    """A name reduced to lower-case letters and digits: ``Original_artist``, ``original artist`` and
    ``OriginalArtist`` all become ``originalartist``."""
    return "".join(ch for ch in name.lower() if ch.isalnum())


def fix_names(sql: str, schema: SchemaMapping, dialect: str = "sqlite", links: Iterable[Link] = ()) -> NameFix:
    """Rewrite names that match exactly one name of ``schema`` up to case, spaces and punctuation.

    In order: unquoted multi-word headers are quoted (``Winning Driver`` would otherwise parse as a column with an
    alias, ``School/Club Team`` as a division, or not at all); unknown tables and columns are renamed to their
    unique squashed match (:func:`squash`) among the tables in reach; a column on a join alias whose table lacks it
    moves to the one other table of that query that has it; with the schema's foreign keys (``links``), a join
    condition that compares a column with itself (``ON T1.id = T1.id``) becomes the one foreign key between the
    joined table and the other table of the query linked to it, and a column
    that no table of the query has but exactly one nearest table of the schema has is reached by joining that
    table along the foreign keys (at most two hops, each over exactly one key).  Returns the input unchanged when
    nothing applies or the SQL cannot be parsed.
    """
    tables, spelled = _lowered(schema)
    changes: list[str] = []
    quoted = _quote_headers(sql, [c for cols in tables.values() for c in cols.values()], dialect, changes)
    tree = parse_or_none(quoted, dialect)
    if tree is None:
        return NameFix(sql)
    _fix_tables(tree, spelled, changes)
    _fix_columns(tree, tables, changes)
    graph = _link_graph(links, spelled)
    if graph:
        _fix_self_joins(tree, tables, graph, changes)
        _add_joins(tree, tables, spelled, graph, changes)
    if not changes:
        return NameFix(sql)
    return NameFix(tree.sql(dialect=dialect), changes)


def _lowered(schema: SchemaMapping) -> tuple[dict[str, dict[str, str]], dict[str, str]]:
    """Lower-case table -> lower-case column -> spelling; lower-case table -> spelling."""
    tables = {str(t).lower(): {str(c).lower(): str(c) for c in cols} for t, cols in schema.items()}
    return tables, {str(t).lower(): str(t) for t in schema}


Spelling = Callable[[str, str, str], "str | None"]
"""``spelling(table, column, text)`` → the column's own spelling of ``text`` or None
(:meth:`jupyter_nl2sql.pipeline.values.ValueIndex.spelling`)."""


def fix_values(sql: str, schema: SchemaMapping, spelling: Spelling, dialect: str = "sqlite") -> NameFix:
    """Rewrite string literals compared with a column (``=``, ``<>``, ``IN``) to the column's own spelling of them,
    where ``spelling`` knows exactly one (``Call sign = 'K218DZ'`` → ``'k218dz'``).  Meant for a query that ran and
    found nothing; returns the input unchanged when nothing applies or the SQL cannot be parsed."""
    tables, spelled = _lowered(schema)
    tree = parse_or_none(sql, dialect)
    if tree is None:
        return NameFix(sql)
    changes: list[str] = []
    for scope in traverse_scope(tree):
        sources = {alias.lower(): source.name.lower() for alias, source in scope.sources.items()
                   if isinstance(source, exp.Table) and source.name.lower() in tables}
        for node in scope.walk():
            for column, literal in _compared(node):
                table = _owner(column, sources, tables)
                if table is None:
                    continue
                better = spelling(spelled[table], tables[table][column.name.lower()], literal.this)
                if better is not None and better != literal.this:
                    changes.append(f"'{literal.this}' → '{better}'")
                    literal.replace(exp.Literal.string(better))
    if not changes:
        return NameFix(sql)
    return NameFix(tree.sql(dialect=dialect), changes)


def _compared(node: exp.Expr) -> list[tuple[exp.Column, exp.Literal]]:
    """(column, string literal) pairs that ``node`` compares for (in)equality or membership."""
    if isinstance(node, (exp.EQ, exp.NEQ)):
        pairs = [(node.this, node.expression), (node.expression, node.this)]
    elif isinstance(node, exp.In) and not node.args.get("query"):
        pairs = [(node.this, item) for item in node.expressions]
    else:
        return []
    return [(c, v) for c, v in pairs if type(c) is exp.Column and isinstance(v, exp.Literal) and v.is_string]


def _owner(column: exp.Column, sources: dict[str, str], tables: dict[str, dict[str, str]]) -> str | None:
    """The lower-case table a column reads from, when that is certain."""
    name = column.name.lower()
    if column.table:
        table = sources.get(column.table.lower())
        return table if table is not None and name in tables[table] else None
    owners = {t for t in sources.values() if name in tables[t]}
    return owners.pop() if len(owners) == 1 else None


# --- unquoted headers -------------------------------------------------------------------------------------------

def _quote_headers(sql: str, names: Iterable[str], dialect: str, changes: list[str]) -> str:
    """Quote runs of tokens that spell a column name needing quotes (``School/Club Team``), longest run first."""
    exact: dict[str, set[str]] = {}
    loose: dict[str, set[str]] = {}
    for name in names:
        if exp.to_identifier(name).quoted:  # only names that cannot be written bare
            exact.setdefault("".join(name.lower().split()), set()).add(name)
            loose.setdefault(squash(name), set()).add(name)
    if not exact:
        return sql
    try:
        tokens = Dialect.get_or_raise(dialect).tokenize(sql)
    except SqlglotError:
        return sql
    pieces: list[str] = []
    at, i = 0, 0
    while i < len(tokens):
        match = _longest_header(sql, tokens, i, exact, loose)
        if match is None:
            i += 1
            continue
        j, name = match
        start, end = tokens[i].start, tokens[j].end + 1
        quoted = exp.to_identifier(name).sql(dialect=dialect)
        pieces += [sql[at:start], quoted]
        changes.append(f"quoted {sql[start:end]} as {quoted}")
        at, i = end, j + 1
    return "".join(pieces) + sql[at:]


def _longest_header(sql: str, tokens: list, i: int, exact: dict[str, set[str]],
                    loose: dict[str, set[str]]) -> tuple[int, str] | None:
    """(last token index, column name) of the longest run from token ``i`` (two tokens or more) that spells
    exactly one column name, ignoring spaces (or, failing that, everything but letters and digits)."""
    best = None
    for j in range(i + 1, min(len(tokens), i + _MAX_SPAN)):
        if any(t.token_type in _NEVER_IN_NAME for t in tokens[i:j + 1]):
            break
        text = sql[tokens[i].start:tokens[j].end + 1]
        found = exact.get("".join(text.lower().split())) or loose.get(squash(text))
        if found and len(found) == 1 and _bounded(next(iter(found)), tokens[i].text, tokens[j].text):
            best = (j, next(iter(found)))
    return best


def _bounded(name: str, first: str, last: str) -> bool:
    """The run starts where the name starts and ends where it ends: ``(Performed_by)`` is the header
    ``Performed by`` inside parentheses, not a header that includes them."""
    name = name.strip().lower()
    head = name.startswith(first.lower()) if not squash(first) else squash(name).startswith(squash(first))
    tail = name.endswith(last.lower()) if not squash(last) else squash(name).endswith(squash(last))
    return head and tail


# --- tables and columns -----------------------------------------------------------------------------------------

def _fix_tables(tree: exp.Expr, spelled: dict[str, str], changes: list[str]) -> None:
    """Rename a table that is not in the schema (nor a CTE) to its unique squashed match."""
    ctes = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}
    for table in tree.find_all(exp.Table):
        name = table.name.lower()
        if not isinstance(table.this, exp.Identifier) or name in spelled or name in ctes:
            continue
        match = _unique(name, spelled.values())
        if match is not None:
            changes.append(f"table {table.name} → {match}")
            table.set("this", exp.to_identifier(match))


def _fix_columns(tree: exp.Expr, tables: dict[str, dict[str, str]], changes: list[str]) -> None:
    """Rename or re-qualify column references that no source in their scope provides."""
    for scope in traverse_scope(tree):
        aliases = {a.alias.lower() for a in scope.expression.find_all(exp.Alias)}
        sources = _table_sources(scope, tables)
        for column in list(scope.walk()):
            if type(column) is not exp.Column or isinstance(column.this, exp.Star) or column.find_ancestor(exp.Lambda):
                continue
            name = column.name.lower()
            if column.table:
                qualifier = column.table.lower()
                if qualifier not in sources or name in sources[qualifier]:
                    continue
                own = _unique(name, sources[qualifier].values()) or _prefixed(name, scope, qualifier, sources)
                if own is not None:
                    _rename(column, own, changes)
                    continue
                others = [a for a, cols in sources.items() if a != qualifier and name in cols]
                if len(others) == 1 and len(sources) == len(scope.sources):
                    alias = _alias_spelling(scope, others[0])
                    changes.append(f"{column.table}.{column.name} → {alias}.{column.name}")
                    column.set("table", exp.to_identifier(alias))
            elif name not in aliases and sources and len(sources) == len(scope.sources):
                if any(name in cols for cols in sources.values()) or _outer_has(scope, name, tables):
                    continue
                match = _unique(name, {c for cols in sources.values() for c in cols.values()})
                if match is not None:
                    _rename(column, match, changes)
                    continue
                hits = {(a, c) for a in sources if (c := _prefixed(name, scope, a, sources)) is not None}
                if len(hits) == 1:
                    alias, match = hits.pop()
                    _rename(column, match, changes)
                    column.set("table", exp.to_identifier(_alias_spelling(scope, alias)))


# --- missing joins ----------------------------------------------------------------------------------------------

def _link_graph(links: Iterable[Link], spelled: dict[str, str]) -> dict[str, dict[str, tuple[list[str], list[str]]]]:
    """Lower-case table -> lower-case neighbour -> (columns here, columns there), for table pairs joined by exactly
    one foreign key (a pair with two keys, like home and away team, is left out: which one is meant is a guess)."""
    edges: dict[tuple[str, str], list[tuple[list[str], list[str]]]] = {}
    for table, cols, ref, ref_cols in links:
        a, b = table.lower(), ref.lower()
        if a == b or a not in spelled or b not in spelled or len(cols) != len(ref_cols) or not cols:
            continue
        edges.setdefault((a, b), []).append((list(cols), list(ref_cols)))
        edges.setdefault((b, a), []).append((list(ref_cols), list(cols)))
    graph: dict[str, dict[str, tuple[list[str], list[str]]]] = {}
    for (a, b), keys in edges.items():
        if len({(tuple(x), tuple(y)) for x, y in keys}) == 1:
            graph.setdefault(a, {})[b] = keys[0]
    return graph


def _add_joins(tree: exp.Expr, tables: dict[str, dict[str, str]], spelled: dict[str, str],
               graph: dict[str, dict[str, tuple[list[str], list[str]]]], changes: list[str]) -> None:
    """Join the table that holds a column no table of its query has, along the foreign keys."""
    for scope in traverse_scope(tree):
        select = scope.expression
        sources = _table_sources(scope, tables)
        if (not isinstance(select, exp.Select) or not sources or len(sources) != len(scope.sources)
                or any(isinstance(e, exp.Star) or (isinstance(e, exp.Column) and isinstance(e.this, exp.Star))
                       for e in select.expressions)):
            continue  # a derived table, or SELECT * (which a join would widen)
        aliases = {a.alias.lower() for a in select.find_all(exp.Alias)}
        columns = [c for c in scope.walk() if type(c) is exp.Column and not isinstance(c.this, exp.Star)
                   and not c.find_ancestor(exp.Lambda)]
        missing = [c for c in columns
                   if _is_missing(c, sources, aliases) and not _outer_has(scope, c.name.lower(), tables)]
        in_query = {alias: scope.sources[_alias_spelling(scope, alias)].name.lower() for alias in sources}
        if not missing or len(set(in_query.values())) != len(in_query):
            continue  # nothing missing, or a self-join (which of its aliases to join from is a guess)
        owners, hops = _join_plan({c.name.lower() for c in missing}, set(in_query.values()), tables, graph)
        missing = [c for c in missing if c.name.lower() in owners]
        if not missing:
            continue
        _qualify(columns, missing, sources, scope)
        alias_of = {table: _alias_spelling(scope, alias) for alias, table in in_query.items()}
        taken = {a.lower() for a in scope.sources}
        for here, there in hops:
            alias = _fresh_alias(spelled[there], taken)
            cols_here, cols_there = graph[here][there]
            on = exp.and_(*(exp.EQ(this=exp.column(exp.to_identifier(x), table=exp.to_identifier(alias_of[here])),
                                   expression=exp.column(exp.to_identifier(y), table=exp.to_identifier(alias)))
                            for x, y in zip(cols_here, cols_there)))
            table_node = exp.Table(this=exp.to_identifier(spelled[there]))
            if alias.lower() != there:
                table_node.set("alias", exp.TableAlias(this=exp.to_identifier(alias)))
            select.join(table_node, on=on, copy=False)
            alias_of[there] = alias
            changes.append(f"joined {spelled[there]} on {on.sql()}")
        for column in missing:
            owner = owners[column.name.lower()]
            column.set("this", exp.to_identifier(tables[owner][column.name.lower()]))
            column.set("table", exp.to_identifier(alias_of[owner]))


def _fix_self_joins(tree: exp.Expr, tables: dict[str, dict[str, str]],
                    graph: dict[str, dict[str, tuple[list[str], list[str]]]], changes: list[str]) -> None:
    """Replace ``ON a.x = a.x`` (true on every row) by the foreign key between the joined table and the one other
    table of its query that a single key links it to; left alone when none or several fit, or in a self-join."""
    for scope in traverse_scope(tree):
        select = scope.expression
        sources = _table_sources(scope, tables)
        in_query = {alias: scope.sources[_alias_spelling(scope, alias)].name.lower() for alias in sources}
        if not isinstance(select, exp.Select) or len(set(in_query.values())) != len(in_query):
            continue
        for join in select.args.get("joins") or ():
            on, joined = join.args.get("on"), join.this
            if on is None or not isinstance(joined, exp.Table) or joined.alias_or_name.lower() not in in_query:
                continue
            for eq in list(on.find_all(exp.EQ)):
                if not compares_itself(eq):
                    continue
                here = joined.alias_or_name.lower()
                named = eq.this.table.lower()
                others = [named] if named and named != here else [a for a in in_query if a != here]
                linked = [a for a in others if in_query.get(a) in graph.get(in_query[here], {})]
                if len(linked) != 1:
                    continue
                cols_here, cols_there = graph[in_query[here]][in_query[linked[0]]]
                if len(cols_here) != 1:
                    continue
                fixed = exp.EQ(this=exp.column(exp.to_identifier(cols_there[0]),
                                               table=exp.to_identifier(_alias_spelling(scope, linked[0]))),
                               expression=exp.column(exp.to_identifier(cols_here[0]),
                                                     table=exp.to_identifier(_alias_spelling(scope, here))))
                changes.append(f"join condition {eq.sql()} → {fixed.sql()}")
                eq.replace(fixed)


def _is_missing(column: exp.Column, sources: dict[str, dict[str, str]], aliases: set[str]) -> bool:
    """No table of the query has the column (a qualified column: not the table its qualifier names, nor another)."""
    name = column.name.lower()
    if column.table:
        qualifier = column.table.lower()
        return qualifier in sources and not any(name in cols for cols in sources.values())
    return name not in aliases and not any(name in cols for cols in sources.values())


def _join_plan(names: set[str], present: set[str], tables: dict[str, dict[str, str]],
               graph: dict[str, dict[str, tuple[list[str], list[str]]]]
               ) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """For each missing column name that has one nearest table within :data:`_MAX_HOPS` holding it, that table;
    and the hops (from, to) that join those tables to the query.  Names with no such table, or two at the same
    distance, are left out (the checker's message goes to the model for those)."""
    parents = _nearest(present, graph)
    owners: dict[str, str] = {}
    for name in sorted(names):
        holders = [t for t, cols in tables.items() if name in cols and t in parents and t not in present]
        depth = {t: _depth(t, parents) for t in holders}
        nearest = [t for t in holders if depth[t] == min(depth.values())]
        if len(nearest) == 1 and depth[nearest[0]] <= _MAX_HOPS:
            owners[name] = nearest[0]
    hops: list[tuple[str, str]] = []  # (from, to), each from a table already in the query or joined before
    for owner in dict.fromkeys(owners.values()):
        path = [owner]
        while parents[path[-1]] is not None:
            path.append(parents[path[-1]])  # type: ignore[arg-type]
        path.reverse()
        hops += [hop for hop in pairwise(path) if hop not in hops]
    return owners, hops


def _nearest(present: set[str], graph: dict[str, dict[str, tuple[list[str], list[str]]]]) -> dict[str, str | None]:
    """Breadth-first parents from the query's tables (sorted, so the result does not depend on set order)."""
    parents: dict[str, str | None] = {t: None for t in present}
    frontier = deque(sorted(present))
    while frontier:
        node = frontier.popleft()
        for other in sorted(graph.get(node, {})):
            if other not in parents:
                parents[other] = node
                frontier.append(other)
    return parents


def _depth(table: str, parents: dict[str, str | None]) -> int:
    hops = 0
    while parents[table] is not None:
        table, hops = parents[table], hops + 1  # type: ignore[assignment]
    return hops


def _qualify(columns: list[exp.Column], missing: list[exp.Column], sources: dict[str, dict[str, str]],
             scope: Scope) -> None:
    """Qualify the query's bare columns with their table, so that a joined table cannot make them ambiguous."""
    skip = {id(c) for c in missing}
    for column in columns:
        if column.table or id(column) in skip:
            continue
        owners = [a for a, cols in sources.items() if column.name.lower() in cols]
        if len(owners) == 1:
            column.set("table", exp.to_identifier(_alias_spelling(scope, owners[0])))


def _fresh_alias(table: str, taken: set[str]) -> str:
    """The table's own name when no source of the query uses it, else the first free ``T<n>``."""
    if table.lower() not in taken:
        taken.add(table.lower())
        return table
    n = 1
    while f"t{n}" in taken:
        n += 1
    taken.add(f"t{n}")
    return f"T{n}"


def _prefixed(name: str, scope: Scope, alias: str, sources: dict[str, dict[str, str]]) -> str | None:
    """The column of source ``alias`` that ``name`` spells with the table's name in front (``department_name`` for
    ``departments.name``, ``productid`` for ``product.id``), when exactly one does."""
    table = squash(scope.sources[_alias_spelling(scope, alias)].name)
    stems = {table, table[:-1] if table.endswith("s") else table, table[:-3] + "y" if table.endswith("ies") else table}
    key = squash(name)
    found = {col for col in sources[alias].values() if any(key == stem + squash(col) for stem in stems)}
    return found.pop() if len(found) == 1 else None


def _table_sources(scope: Scope, tables: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
    """Lower-case alias -> the schema columns of that source, for the sources of ``scope`` that are schema tables."""
    out: dict[str, dict[str, str]] = {}
    for alias, source in scope.sources.items():
        if isinstance(source, exp.Table) and source.name.lower() in tables:
            out[alias.lower()] = tables[source.name.lower()]
    return out


def _outer_has(scope: Scope, name: str, tables: dict[str, dict[str, str]]) -> bool:
    """True when an enclosing query has a table with column ``name`` (a correlated reference, not a slip)."""
    outer = scope.parent
    while outer is not None:
        if any(name in cols for cols in _table_sources(outer, tables).values()):
            return True
        outer = outer.parent
    return False


def _alias_spelling(scope: Scope, lowered: str) -> str:
    """The alias as the query writes it."""
    return next(a for a in scope.sources if a.lower() == lowered)


def _unique(name: str, candidates: Iterable[str]) -> str | None:
    """The one candidate whose :func:`squash` equals ``name``'s, else None."""
    key = squash(name)
    found = {c for c in candidates if squash(c) == key} if key else set()
    return next(iter(found)) if len(found) == 1 else None


def _rename(column: exp.Column, name: str, changes: list[str]) -> None:
    changes.append(f"{column.name} → {name}")
    column.set("this", exp.to_identifier(name))
