"""The SQL in plain English, made from the SQL's own syntax tree (sqlglot), never from the model.

Because the words come from the tree of the statement that runs, they cannot disagree with it: every table,
filter, grouping, order and limit is said, and a part this module has no words for is shown as its own SQL text
(true, if less friendly) rather than guessed.  :func:`explain_sql` never raises: SQL it cannot read at all gets
a short, safe sentence.

>>> explain_sql("SELECT COUNT(*) FROM orders WHERE status = 'cancelled'", "sqlite")
"Counts orders whose status is 'cancelled'."
>>> explain_sql("SELECT name FROM customers WHERE country IN ('France', 'Spain') ORDER BY name LIMIT 5", "sqlite")
"Lists name of customers whose country is one of 'France' or 'Spain', sorted by name, keeping the first 5 rows."
"""

from __future__ import annotations

import calendar
import datetime as _dt
import re
from typing import Iterable

import sqlglot
from sqlglot import exp

__all__ = ["explain_sql"]

#: What a comparison says, by node type (dates get their own words: :data:`_DATE_WORDS`).
_COMPARISONS: dict[type, str] = {exp.EQ: "is", exp.NEQ: "is not", exp.GT: "is greater than",
                                 exp.GTE: "is at least", exp.LT: "is less than", exp.LTE: "is at most",
                                 exp.NullSafeEQ: "is (NULL-safe)", exp.NullSafeNEQ: "is not (NULL-safe)"}
_DATE_WORDS: dict[type, str] = {exp.GT: "is after", exp.GTE: "is on or after", exp.LT: "is before",
                                exp.LTE: "is on or before"}
_ARITHMETIC: dict[type, str] = {exp.Add: "plus", exp.Sub: "minus", exp.Mul: "times", exp.Div: "divided by",
                                exp.Mod: "modulo", exp.DPipe: "followed by"}
#: Aggregate → (noun phrase, verb of a query that selects only it).
_AGGREGATES: dict[type, tuple[str, str]] = {exp.Sum: ("the total of", "adds up"),
                                            exp.Avg: ("the average of", "averages"),
                                            exp.Min: ("the lowest", "finds the lowest"),
                                            exp.Max: ("the highest", "finds the highest")}
_SIMPLE_FUNCTIONS: dict[type, str] = {exp.Lower: "the lower-case", exp.Upper: "the upper-case",
                                      exp.Length: "the length of", exp.Abs: "the absolute value of",
                                      exp.Trim: "the trimmed"}
#: strftime formats → what the value is.
_TIME_PARTS = {"%Y": "the year of", "%Y-%m": "the month of", "%m": "the month number of", "%d": "the day of month of",
               "%Y-%m-%d": "the date of", "%H": "the hour of", "%w": "the weekday number of",
               "%j": "the day of year of", "%W": "the week number of"}
_UNITS = {"YEAR": "the year of", "MONTH": "the month of", "DAY": "the day of", "WEEK": "the week of",
          "QUARTER": "the quarter of", "HOUR": "the hour of"}
_EXTRACT = {"YEAR": "the year of", "MONTH": "the month number of", "DAY": "the day of month of",
            "QUARTER": "the quarter number of", "HOUR": "the hour of", "DOW": "the weekday number of",
            "WEEK": "the week number of"}
_DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2})(?:[ T]00:00(?::00)?)?")  # a literal's value, not SQL
_YEAR_MONTH = re.compile(r"(\d{4})-(\d{2})")
_LONG_JOIN = 100  # characters: a join condition longer than this is "on a condition"


def explain_sql(sql: str, dialect: str | None = None) -> str:
    """One or a few sentences saying what ``sql`` does, made from its syntax tree in ``dialect`` (sqlglot's
    name: ``sqlite``, ``postgres``, ``duckdb``...).  Never raises: SQL that cannot be read gets a short, true text.

    >>> explain_sql("SELECT department_id, AVG(salary) FROM employees GROUP BY department_id", "sqlite")
    'Averages salary of employees, grouped by department_id.'
    """
    try:
        trees = [t for t in sqlglot.parse(sql, read=dialect or None) if t is not None]
    except Exception:  # noqa: BLE001 — a text for anything, never an exception
        return "Could not read this SQL to explain it."
    if not trees:
        return "No SQL to explain."
    try:
        return " ".join(_sentence(_Explainer(dialect).statement(tree)) for tree in trees)
    except Exception:  # noqa: BLE001 — a construct this module mishandles: a generic but true sentence
        return _generic(trees)


def _generic(trees: list[exp.Expression]) -> str:
    """A short, true text about statements the explainer could not describe."""
    try:
        names = list(dict.fromkeys(t.name for tree in trees for t in tree.find_all(exp.Table) if t.name))
    except Exception:  # noqa: BLE001
        names = []
    return f"Runs a query that reads {_and(names)}." if names else "Runs a query (no explanation available)."


def _sentence(text: str) -> str:
    text = text.strip()
    return (text[:1].upper() + text[1:]).rstrip(".") + "."


def _and(items: Iterable[str], word: str = "and") -> str:
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} {word} {items[-1]}"


def _bare(phrase: str) -> str:
    """``the total of x`` → ``total of x`` (after "the highest"/"the lowest")."""
    return phrase[4:] if phrase.startswith("the ") else phrase


def _literal_date(node: exp.Expression) -> _dt.date | None:
    if isinstance(node, exp.Literal) and node.is_string:
        m = _DATE.fullmatch(node.this)
        if m:
            try:
                return _dt.date(int(m[1]), int(m[2]), int(m[3]))
            except ValueError:
                return None
    return None


def _period(start: _dt.date, stop: _dt.date) -> str | None:
    """``2024`` / ``March 2024`` / ``2024-03-05`` when [start, stop) is exactly that calendar period."""
    if start.month == 1 and start.day == 1 and stop == _dt.date(start.year + 1, 1, 1):
        return str(start.year)
    if start.day == 1:
        following = _dt.date(start.year + start.month // 12, start.month % 12 + 1, 1)
        if stop == following:
            return f"{calendar.month_name[start.month]} {start.year}"
    if stop - start == _dt.timedelta(days=1):
        return start.isoformat()
    return None


class _Scope:
    """The names one SELECT reads: alias or name → table name (None: a subquery or a CTE), and the outer scope."""

    def __init__(self, sources: list[tuple[str, str | None]], outer: _Scope | None) -> None:
        self.sources = sources
        self.outer = outer
        self.tables = {alias.lower(): table for alias, table in sources}

    @property
    def several(self) -> bool:
        return len(self.sources) > 1

    def qualifier(self, name: str) -> str:
        """What to write before a column qualified with ``name``: the table's name when it is read once."""
        scope: _Scope | None = self
        while scope is not None:
            if name.lower() in scope.tables:
                table = scope.tables[name.lower()]
                if table is not None and sum(t == table for _, t in scope.sources) == 1:
                    return table
                return name
            scope = scope.outer
        return name


class _Explainer:
    """Walks one statement's tree; every method returns a phrase (lower-case start, no full stop)."""

    def __init__(self, dialect: str | None) -> None:
        self.dialect = dialect or None
        self.scope: _Scope | None = None
        self.ctes: set[str] = set()

    def sql(self, node: exp.Expression) -> str:
        """The node's own SQL: the words for what this module has no words for."""
        return node.sql(dialect=self.dialect)

    # -- statements -------------------------------------------------------------------------------------------
    def statement(self, node: exp.Expression) -> str:
        if isinstance(node, exp.Query):
            return self.query(node)
        if isinstance(node, (exp.Insert, exp.Update, exp.Delete)):
            return self.write(node)
        if isinstance(node, exp.Command) and str(node.this).upper() == "EXPLAIN":
            return "shows the database's plan for a query"
        kind = node.key.upper()
        return f"runs a {kind} statement" + self._reads(node)

    def _reads(self, node: exp.Expression) -> str:
        names = list(dict.fromkeys(t.name for t in node.find_all(exp.Table) if t.name))
        return f" on {_and(names)}" if names else ""

    def write(self, node: exp.Expression) -> str:
        target = node.this if isinstance(node.this, exp.Table) else node.find(exp.Table)
        name = target.name if isinstance(target, exp.Table) else "a table"
        where = node.args.get("where")
        cond = f" where {self.cond(where.this)}" if where is not None else ""
        if isinstance(node, exp.Delete):
            return f"deletes the rows of {name}{cond}" if cond else f"deletes every row of {name}"
        if isinstance(node, exp.Update):
            sets = [self.cond(e) if not isinstance(e, exp.EQ) else f"{self.expr(e.this)} to {self.expr(e.expression)}"
                    for e in node.expressions]
            return f"changes {name}: sets {_and(sets)}" + (cond or " in every row")
        source = node.args.get("expression")
        if isinstance(source, exp.Query):
            return f"adds to {name} the rows of (a query that {self.query(source)})"
        return f"adds rows to {name}"

    def query(self, node: exp.Expression) -> str:
        """A SELECT, a set operation or a parenthesised query, with its CTEs first."""
        with_ = node.args.get("with_") or node.args.get("with")
        head = ""
        if with_ is not None:
            parts = []
            for cte in with_.expressions:
                self.ctes.add(cte.alias_or_name.lower())
                parts.append(f"{cte.alias_or_name} as (a query that {self.query(cte.this)})")
            head = f"defines {_and(parts)}, then "
        if isinstance(node, exp.Select):
            body = self.select(node)
        elif isinstance(node, exp.SetOperation):
            body = self.set_operation(node)
        elif isinstance(node, exp.Subquery):
            body = self.query(node.this) + self.order_limit(node, None)
        else:
            body = f"runs {self.sql(node)}"
        return head + body

    def set_operation(self, node: exp.SetOperation) -> str:
        left, right = self.query(node.this), self.query(node.expression)
        if isinstance(node, exp.Union):
            how = "keeping duplicates" if node.args.get("distinct") is False else "without duplicates"
            text = f"combines the rows of (a query that {left}) and (a query that {right}), {how}"
        elif isinstance(node, exp.Intersect):
            text = f"finds the rows both in (a query that {left}) and in (a query that {right})"
        else:
            text = f"finds the rows of (a query that {left}) that are not in (a query that {right})"
        return text + self.order_limit(node, None)

    # -- SELECT -----------------------------------------------------------------------------------------------
    def select(self, node: exp.Select) -> str:
        outer = self.scope
        sources = self._sources(node)
        self.scope = _Scope(sources, outer)
        try:
            return self._select(node, sources)
        finally:
            self.scope = outer

    def _sources(self, node: exp.Select) -> list[tuple[str, str | None]]:
        from_ = node.args.get("from_") or node.args.get("from")
        items = ([from_.this] if from_ is not None else []) + [j.this for j in node.args.get("joins") or []]
        out = []
        for item in items:
            if isinstance(item, exp.Table):
                table = None if item.name.lower() in self.ctes and not item.db else item.name
                out.append((item.alias_or_name, table))
            else:
                out.append((item.alias_or_name, None))
        return out

    def _select(self, node: exp.Select, sources: list[tuple[str, str | None]]) -> str:
        projections = [p.unalias() if isinstance(p, exp.Alias) else p for p in node.expressions]
        group = node.args.get("group")
        aliases = {a.alias.lower(): p for a, p in zip(node.expressions, projections) if isinstance(a, exp.Alias)}
        keys = [self._positional(k, projections, aliases) for k in group.expressions] if group is not None else []
        key_sql = {k.sql() for k in keys}
        shown = [p for p in projections if p.sql() not in key_sql] if keys else projections
        if not shown:
            shown = projections
        items = [(p, a) for p, a in zip(projections, node.expressions) if p in shown or not keys]
        where = node.args.get("where")
        single = len(sources) == 1 and not isinstance(self._from_item(node), (exp.Subquery, exp.Values))
        source = self.source(node)
        text = self._head(node, [p for p, _ in items], [a for _, a in items], source, single)
        if where is not None:
            word = "whose" if single and not isinstance(where.this, (exp.Exists, exp.Not)) else "where"
            text += f" {word} {self.cond(where.this)}"
        if keys:
            text += f", grouped by {_and(self.expr(k) for k in keys)}"
        having = node.args.get("having")
        if having is not None:
            text += f", keeping the groups where {self.cond(having.this)}"
        return text + self.order_limit(node, projections, aliases)

    @staticmethod
    def _positional(node: exp.Expression, projections: list[exp.Expression],
                    aliases: dict[str, exp.Expression] | None = None) -> exp.Expression:
        """``GROUP BY 2`` / ``ORDER BY 2``: the second selected expression; ``ORDER BY n`` where ``n`` names a
        selected expression (``COUNT(*) AS n``): that expression."""
        if isinstance(node, exp.Column) and not node.table and aliases and node.name.lower() in aliases:
            target = aliases[node.name.lower()]
            if not (isinstance(target, exp.Column) and target.name.lower() == node.name.lower()):
                return target
        if isinstance(node, exp.Literal) and not node.is_string and node.this.isdigit():
            i = int(node.this) - 1
            if 0 <= i < len(projections):
                return projections[i]
        return node

    @staticmethod
    def _from_item(node: exp.Select) -> exp.Expression | None:
        from_ = node.args.get("from_") or node.args.get("from")
        return from_.this if from_ is not None else None

    def _head(self, node: exp.Select, projections: list[exp.Expression], written: list[exp.Expression],
              source: str | None, single: bool) -> str:
        """The verb and what is selected, with the source: ``counts orders``, ``lists name of customers``."""
        of = "" if source is None else (f" of {source}" if single else f" from {source}")
        distinct = node.args.get("distinct") is not None
        if len(projections) == 1 and not distinct:  # (DISTINCT ON too: the words below say it)
            only = projections[0]
            if isinstance(only, exp.Count):
                inner = only.this
                if isinstance(inner, exp.Star) or inner is None:
                    if source is None:
                        return "counts 1 row"
                    return f"counts {source}" if single else f"counts the rows of {source}"
                if isinstance(inner, exp.Distinct):
                    return f"counts the distinct {_and(self.expr(e) for e in inner.expressions)}{of}"
                return f"counts the non-NULL values of {self.expr(inner)}{of}"
            if type(only) in _AGGREGATES and not isinstance(only.this, exp.Distinct):
                return f"{_AGGREGATES[type(only)][1]} {self.expr(only.this)}{of}"
        if any(isinstance(p, exp.Star) for p in projections) and len(projections) == 1:
            what = "every column"
        else:
            what = _and(self.item(p, w) for p, w in zip(projections, written))
        has_aggregate = any(p.find(exp.AggFunc) is not None for p in projections)
        on = node.args["distinct"].args.get("on") if distinct else None
        if on is not None:  # PostgreSQL's DISTINCT ON (a): one row per value of a
            keys = on.expressions if isinstance(on, exp.Tuple) else [on]
            what += f" (one row for each {_and(self.expr(k) for k in keys)})"
        elif distinct:
            what = f"the distinct {what}" if len(projections) == 1 else f"the distinct combinations of {what}"
        verb = "shows" if has_aggregate else ("computes" if source is None else "lists")
        return f"{verb} {what}{of}"

    def item(self, node: exp.Expression, written: exp.Expression) -> str:
        phrase = self.expr(node)
        if isinstance(written, exp.Alias) and not isinstance(node, exp.Column) and written.alias:
            phrase += f" (as {written.alias})"
        return phrase

    # -- FROM and joins ---------------------------------------------------------------------------------------
    def source(self, node: exp.Select) -> str | None:
        first = self._from_item(node)
        if first is None:
            return None
        text = self.relation(first)
        for join in node.args.get("joins") or []:
            text += self.join(join)
        return text

    def relation(self, node: exp.Expression) -> str:
        if isinstance(node, exp.Table):
            name = node.name
            alias = node.alias
            if alias and self.scope is not None and sum(t == name for _, t in self.scope.sources) > 1:
                return f"{name} (as {alias})"
            return name
        if isinstance(node, exp.Subquery):
            alias = f" (called {node.alias})" if node.alias else ""
            return f"the rows of (a query that {self.query(node.this)}){alias}"
        return self.sql(node)

    def join(self, join: exp.Join) -> str:
        other = self.relation(join.this)
        kind, side = (join.kind or "").upper(), (join.side or "").upper()
        on, using = join.args.get("on"), join.args.get("using")
        method = (join.args.get("method") or "")
        method = method.upper() if isinstance(method, str) else str(method).upper()
        if method == "NATURAL":
            how = "on the columns they share"
        elif using:
            how = f"on {_and(u.name for u in using)}"
        elif on is not None:
            words = self._join_condition(on, join.this.alias_or_name)
            how = f"on {words}" if len(words) <= _LONG_JOIN else "on a condition"
        else:
            return f" combined with every row of {other}"
        keep = {"LEFT": " (keeping rows without a match)", "RIGHT": f" (keeping rows of {other} without a match)",
                "FULL": " (keeping rows without a match on either side)"}.get(side, "")
        return f" joined with {other} {how}{keep}"

    def _join_condition(self, on: exp.Expression, joined: str) -> str:
        """``a.x = b.x`` → ``x`` when one side is the joined table's; other equalities as ``a.x = b.y``; anything
        else in words."""
        terms = list(on.flatten()) if isinstance(on, exp.And) else [on]
        out = []
        for term in terms:
            if (isinstance(term, exp.EQ) and isinstance(term.this, exp.Column)
                    and isinstance(term.expression, exp.Column)):
                sides = {term.this.table.lower(), term.expression.table.lower()}
                if (term.this.name.lower() == term.expression.name.lower() and joined.lower() in sides
                        and len(sides) == 2):
                    out.append(term.this.name)
                else:
                    out.append(f"{self.expr(term.this)} = {self.expr(term.expression)}")
            else:
                out.append(self.cond(term))
        return _and(out)

    # -- ORDER BY, LIMIT --------------------------------------------------------------------------------------
    def order_limit(self, node: exp.Expression, projections: list[exp.Expression] | None,
                    aliases: dict[str, exp.Expression] | None = None) -> str:
        order = node.args.get("order")
        limit = node.args.get("limit")
        offset = node.args.get("offset")
        count = self.count(limit)
        keys = []
        numeric: list[bool] = []  # a count, a total, a sum: "highest" and "lowest" are the words for it
        if order is not None:
            for ordered in order.expressions:
                target = self._positional(ordered.this, projections or [], aliases)
                keys.append((self.expr(target), bool(ordered.args.get("desc"))))
                numeric.append(isinstance(target, (exp.AggFunc, *_ARITHMETIC)))
        text = ""
        if offset is not None:
            text += f", skipping the first {self.count(offset) or self.sql(offset.expression)} rows"
        if len(keys) == 1 and numeric[0] and count is not None and offset is None:
            phrase, desc = keys[0]
            most = "highest" if desc else "lowest"
            if count == "1":
                return f", keeping the row with the {most} {_bare(phrase)}"
            return f", keeping the {count} rows with the {most} {_bare(phrase)}"
        if keys:
            text = ", sorted by " + _and((f"{p} descending" if d else p for p, d in keys), "then") + text
        if limit is not None:
            n = count or self.sql(limit.expression if isinstance(limit, exp.Limit) else limit)
            first = "next" if offset is not None else "first"
            if n == "1":
                text += f", keeping the {first} row" if keys else ", keeping at most 1 row"
            else:
                text += f", keeping the {first} {n} rows" if keys else f", keeping at most {n} rows"
        return text

    @staticmethod
    def count(node: exp.Expression | None) -> str | None:
        """The number of rows of a LIMIT / OFFSET when it is a plain number."""
        if node is None:
            return None
        value = node.args.get("expression") if isinstance(node, (exp.Limit, exp.Offset)) else node
        if isinstance(value, exp.Literal) and not value.is_string and value.this.isdigit():
            return value.this
        return None

    # -- conditions -------------------------------------------------------------------------------------------
    def cond(self, node: exp.Expression) -> str:
        if isinstance(node, exp.Paren):
            return self.cond(node.this)
        if isinstance(node, exp.And):
            return _and(self._conjuncts(list(node.flatten())))
        if isinstance(node, exp.Or):
            return _and((self._grouped(t, exp.And) for t in node.flatten()), "or")
        if isinstance(node, exp.Not):
            return self.negated(node.this)
        if type(node) in _COMPARISONS:
            return self.comparison(node)
        if isinstance(node, exp.In):
            return self.membership(node, negate=False)
        if isinstance(node, exp.Between):
            return (f"{self.expr(node.this)} is between {self.expr(node.args['low'])} and "
                    f"{self.expr(node.args['high'])} (inclusive)")
        if isinstance(node, (exp.Like, exp.ILike)):
            return self.like(node, negate=bool(node.args.get("negate")))
        if isinstance(node, exp.Is):
            return f"{self.expr(node.this)} is {self.expr(node.expression)}"
        if isinstance(node, exp.Exists):
            return f"(a query that {self.query(node.this)}) finds at least one row"
        return self.expr(node)

    def _grouped(self, node: exp.Expression, kind: type) -> str:
        inner = node.this if isinstance(node, exp.Paren) else node
        text = self.cond(inner)
        return f"({text})" if isinstance(inner, (exp.And, exp.Or)) else text

    def _conjuncts(self, terms: list[exp.Expression]) -> list[str]:
        """The terms of an AND, with ``x >= '2024-01-01' AND x < '2025-01-01'`` said as ``x is in 2024``."""
        out: list[str] = []
        used: set[int] = set()
        for i, low in enumerate(terms):
            if i in used:
                continue
            if isinstance(low, exp.GTE) and _literal_date(low.expression):
                for j in range(i + 1, len(terms)):
                    high = terms[j]
                    if (j not in used and isinstance(high, exp.LT) and _literal_date(high.expression)
                            and high.this == low.this):
                        period = _period(_literal_date(low.expression), _literal_date(high.expression))
                        if period is not None:
                            out.append(f"{self.expr(low.this)} is {'on' if '-' in period else 'in'} {period}")
                            used.update((i, j))
                            break
            if i not in used:
                out.append(self._grouped(low, exp.Or))
        return out

    def negated(self, node: exp.Expression) -> str:
        inner = node.this if isinstance(node, exp.Paren) else node
        if isinstance(inner, exp.In):
            return self.membership(inner, negate=True)
        if isinstance(inner, exp.Is):
            return f"{self.expr(inner.this)} is not {self.expr(inner.expression)}"
        if isinstance(inner, exp.Between):
            return (f"{self.expr(inner.this)} is not between {self.expr(inner.args['low'])} and "
                    f"{self.expr(inner.args['high'])}")
        if isinstance(inner, (exp.Like, exp.ILike)):
            return self.like(inner, negate=not inner.args.get("negate"))
        if isinstance(inner, exp.Exists):
            return f"(a query that {self.query(inner.this)}) finds no row"
        return f"not ({self.cond(inner)})"

    def comparison(self, node: exp.Expression) -> str:
        left, right = node.this, node.expression
        if isinstance(node, exp.EQ) and isinstance(right, exp.Literal):
            period = self._time_period(left, right)
            if period is not None:
                return period
        if isinstance(right, (exp.Any, exp.All)):
            which = "every value" if isinstance(right, exp.All) else "at least one value"
            return (f"{self.expr(left)} {_COMPARISONS[type(node)]} {which} of (a query that "
                    f"{self.query(right.this.unnest() if isinstance(right.this, exp.Subquery) else right.this)})")
        words = _COMPARISONS[type(node)]
        if isinstance(right, exp.Null) or isinstance(left, exp.Null):
            return f"{self.sql(node)} (never true: a comparison with NULL is unknown, unlike IS NULL)"
        if type(node) in _DATE_WORDS and (_literal_date(right) or _literal_date(left)):
            words = _DATE_WORDS[type(node)]
        return f"{self.expr(left)} {words} {self.expr(right)}"

    def _time_period(self, left: exp.Expression, right: exp.Literal) -> str | None:
        """``strftime('%Y', x) = '2024'`` → ``x is in 2024``; ``'%Y-%m'`` and ``'2024-03'`` → ``in March 2024``."""
        part, of = self._time_part(left)
        if of is None:
            return None
        value = str(right.this)
        if part == "the year of" and value.isdigit() and len(value) == 4:
            return f"{self.expr(of)} is in {value}"
        m = _YEAR_MONTH.fullmatch(value)
        if part == "the month of" and m and 1 <= int(m[2]) <= 12 and right.is_string:
            return f"{self.expr(of)} is in {calendar.month_name[int(m[2])]} {m[1]}"
        return None

    def membership(self, node: exp.In, *, negate: bool) -> str:
        left = self.expr(node.this)
        query = node.args.get("query")
        if query is not None:
            inner = query.this if isinstance(query, exp.Subquery) else query
            where = "not among" if negate else "among"
            return f"{left} is {where} the results of (a query that {self.query(inner)})"
        values = [self.expr(v) for v in node.expressions]
        if len(values) == 1:
            return f"{left} is {'not ' if negate else ''}{values[0]}"
        return f"{left} is {'none' if negate else 'one'} of {_and(values, 'nor' if negate else 'or')}"

    def like(self, node: exp.Expression, *, negate: bool) -> str:
        left, pattern = self.expr(node.this), node.expression
        case = " (ignoring case)" if isinstance(node, exp.ILike) else ""
        escape = node.args.get("escape")
        if isinstance(pattern, exp.Literal) and pattern.is_string and escape is None:
            text = pattern.this
            core = text.strip("%")
            plain = core and "%" not in core and "_" not in core and "\\" not in core
            if plain and text == f"%{core}%":
                how = "contains"
            elif plain and text == f"{core}%":
                how = "starts with"
            elif plain and text == f"%{core}":
                how = "ends with"
            else:
                how = None
            if how is not None:
                if negate:
                    how = {"contains": "does not contain", "starts with": "does not start with",
                           "ends with": "does not end with"}[how]
                return f"{left} {how} '{core}'{case}"
        words = "does not match" if negate else "matches"
        return f"{left} {words} the pattern {self.expr(pattern)}{case}"

    # -- expressions ------------------------------------------------------------------------------------------
    def expr(self, node: exp.Expression) -> str:
        if isinstance(node, exp.Column):
            return self.column(node)
        if isinstance(node, exp.Literal):
            return f"'{node.this}'" if node.is_string else str(node.this)
        if isinstance(node, exp.Null):
            return "NULL"
        if isinstance(node, exp.Boolean):
            return "true" if node.this else "false"
        if isinstance(node, exp.Star):
            return "every column"
        if isinstance(node, exp.Paren):
            inner = self.expr(node.this)
            return f"({inner})" if isinstance(node.this, exp.Binary) else inner
        if isinstance(node, exp.Alias):
            return self.expr(node.this)
        if isinstance(node, exp.Count):
            inner = node.this
            if inner is None or isinstance(inner, exp.Star):
                return "the number of rows"
            if isinstance(inner, exp.Distinct):
                return f"the number of distinct {_and(self.expr(e) for e in inner.expressions)}"
            return f"the number of non-NULL {self.expr(inner)}"
        if type(node) in _AGGREGATES:
            inner = node.this
            if isinstance(inner, exp.Distinct):
                return f"{_AGGREGATES[type(node)][0]} distinct {_and(self.expr(e) for e in inner.expressions)}"
            return f"{_AGGREGATES[type(node)][0]} {self.expr(inner)}"
        if type(node) in _ARITHMETIC:
            return f"{self._operand(node.this)} {_ARITHMETIC[type(node)]} {self._operand(node.expression)}"
        if isinstance(node, exp.Neg):
            return f"minus {self._operand(node.this)}"
        if isinstance(node, (exp.Subquery, exp.Query)):
            inner = node.this if isinstance(node, exp.Subquery) else node
            return f"(the result of a query that {self.query(inner)})"
        if isinstance(node, exp.Case):
            return self.case(node)
        if isinstance(node, exp.If) and node.args.get("true") is not None:
            other = node.args.get("false")
            rest = f", else {self.expr(other)}" if other is not None else ", else NULL"
            return f"({self.expr(node.args['true'])} when {self.cond(node.this)}{rest})"
        if isinstance(node, (exp.Predicate, exp.Connector, exp.Not)) and not isinstance(node, exp.Exists):
            return f"whether {self.cond(node)}"
        if isinstance(node, exp.Coalesce):
            return f"{self.expr(node.this)} (or {_and((self.expr(e) for e in node.expressions), 'or')} when NULL)"
        if isinstance(node, exp.Cast):
            return f"{self.expr(node.this)} as {node.to.sql(dialect=self.dialect)}"
        if isinstance(node, exp.Round):
            places = node.args.get("decimals")
            digits = self.expr(places) if places is not None else "0"
            return f"{self.expr(node.this)} rounded to {digits} decimal places"
        if type(node) in _SIMPLE_FUNCTIONS and not node.args.get("expression"):
            return f"{_SIMPLE_FUNCTIONS[type(node)]} {self.expr(node.this)}"
        if isinstance(node, exp.Window):
            return self.window(node)
        part, of = self._time_part(node)
        if of is not None:
            return f"{part} {self.expr(of)}"
        if isinstance(node, exp.Distinct):
            return f"distinct {_and(self.expr(e) for e in node.expressions)}"
        return self.sql(node)

    def _operand(self, node: exp.Expression) -> str:
        text = self.expr(node)
        return f"({text})" if type(node) in _ARITHMETIC else text

    def column(self, node: exp.Column) -> str:
        name = node.name if not isinstance(node.this, exp.Star) else "every column"
        if isinstance(node.this, exp.Identifier) and node.this.quoted:
            name = f'"{name}"'  # as written: SQLite reads a double-quoted name it does not know as text
        if node.table and self.scope is not None and (self.scope.several or self.scope.outer is not None):
            qualifier = self.scope.qualifier(node.table)
            if name == "every column":
                return f"every column of {qualifier}"
            if self.scope.several or node.table.lower() not in self.scope.tables:
                return f"{qualifier}.{name}"
        return name

    def case(self, node: exp.Case) -> str:
        subject = node.this
        parts = []
        for branch in node.args.get("ifs") or []:
            when = (f"{self.expr(subject)} is {self.expr(branch.this)}" if subject is not None
                    else self.cond(branch.this))
            parts.append(f"{self.expr(branch.args['true'])} when {when}")
        default = node.args.get("default")
        parts.append(f"else {self.expr(default)}" if default is not None else "else NULL")
        return f"({', '.join(parts)})"

    def window(self, node: exp.Window) -> str:
        if node.args.get("spec") is not None:
            return self.sql(node)
        func = node.this
        names = {exp.RowNumber: "the row number", exp.Rank: "the rank", exp.DenseRank: "the dense rank"}
        order = node.args.get("order")
        partition = node.args.get("partition_by") or []
        if type(func) in names:
            text = names[type(func)]
        elif isinstance(func, exp.AggFunc):
            text = self.expr(func)
            if order is not None:
                text = "the running " + _bare(text)
        else:
            return self.sql(node)
        if partition:
            text += f" within each {_and(self.expr(p) for p in partition)}"
        if order is not None:
            keys = [f"{self.expr(o.this)}{' descending' if o.args.get('desc') else ''}" for o in order.expressions]
            text += f" in order of {_and(keys, 'then')}"
        return text

    @staticmethod
    def _time_part(node: exp.Expression) -> tuple[str, exp.Expression | None]:
        """(``the year of``, the date) for ``strftime('%Y', d)``, ``EXTRACT(YEAR FROM d)``, ``YEAR(d)``,
        ``date_trunc('month', d)``, each also as a number (``CAST(strftime('%Y', d) AS INTEGER)``); ('', None) for
        anything else."""
        def unwrap(value: exp.Expression) -> exp.Expression:
            while isinstance(value, (exp.TsOrDsToTimestamp, exp.TsOrDsToDate)) and len(value.args) == 1:
                value = value.this
            return value

        if isinstance(node, exp.Cast) and node.to.is_type(*exp.DataType.INTEGER_TYPES):
            node = node.this

        if isinstance(node, exp.TimeToStr):
            fmt = node.args.get("format")
            if isinstance(fmt, exp.Literal) and fmt.this in _TIME_PARTS:
                return _TIME_PARTS[fmt.this], unwrap(node.this)
        if isinstance(node, exp.Extract):
            unit = node.this.name.upper()
            if unit in _EXTRACT:
                return _EXTRACT[unit], unwrap(node.expression)
        for kind, unit in ((exp.Year, "YEAR"), (exp.Month, "MONTH"), (exp.Day, "DAY")):
            if isinstance(node, kind):
                return _EXTRACT[unit], unwrap(node.this)
        if isinstance(node, (exp.TimestampTrunc, exp.DateTrunc)):
            unit = node.args.get("unit")
            name = (unit.name if isinstance(unit, exp.Expression) else str(unit or "")).upper()
            if name in _UNITS:
                return _UNITS[name], unwrap(node.this)
        return "", None
