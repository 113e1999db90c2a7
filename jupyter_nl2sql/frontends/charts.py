"""Charts of results: which picture a result has (:func:`choose`), the data it is drawn from (:func:`chart_data`)
and the picture as a static PNG (:func:`draw`), for the magic's output and the panel's chart view.

The natural picture of a result (``plot = "auto"``): one category and one number → a bar chart; a date/time and
numbers → a line chart; two numbers → a scatter chart; anything else → none.  A kind can be forced (``bar``,
``line``, ``scatter``); one that does not fit raises :class:`ChartError` with one line.  Dates are date/datetime
values, datetime columns, and text in ISO 8601 form (``2024-03``, ``2024-03-01``, ``2024-03-01 12:30:00``):
SQLite has no date type, so its dates (and ``strftime('%Y-%m', ...)`` months) arrive as such text.  A bare year
(``2024``) is not a date: a count per year is a bar chart.

Large results are not plotted by pulling every row.  A result that is complete in memory is reduced with pandas;
one cut at the row cap (``truncated``) is reduced in the database by wrapping its SQL (built with sqlglot, checked
and run read-only through :func:`~jupyter_nl2sql.pipeline.execution.execute`), and :attr:`Chart.note` says what
was drawn: bars are summed per category, the :data:`MAX_BARS` largest kept; lines are summed per date, in day,
month or year buckets past :data:`MAX_POINTS` dates; scatter charts take every k-th row up to :data:`MAX_POINTS`.

matplotlib is imported when a chart is drawn (never at ``%load_ext``) and draws on the Agg canvas (no windows).

>>> import pandas as pd
>>> choose(pd.DataFrame({"country": ["FR", "DE"], "n": [3, 5]}))
ChartPlan(kind='bar', x='country', y=('n',))
>>> choose(pd.DataFrame({"month": ["2024-01", "2024-02"], "n": [3, 5]})).kind
'line'
>>> choose(pd.DataFrame({"name": ["a", "b"], "city": ["x", "y"]})) is None
True
"""

from __future__ import annotations

import base64
import datetime as _dt
import io
import math
import re
import struct
import warnings
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Callable

import pandas as pd
import sqlglot
from sqlglot import exp

from ..errors import Nl2SqlError
from ..pipeline.execution import MAX_RESULT_BYTES, execute
from ..pipeline.sqlcheck import check_sql
from ..settings import OPTIONS

#: Most bars drawn: the largest ones are kept.
MAX_BARS = 30
#: Most points (line dates, scatter rows) drawn before the data is bucketed or sampled.
MAX_POINTS = 2000
#: Most number columns drawn as lines of one chart.
MAX_SERIES = 6
#: The picture's size in pixels (width, height) at :data:`DPI`.
SIZE = (640, 360)
DPI = 100
#: How many non-empty values of a column decide its type.
TYPE_SAMPLE = 200

#: Time buckets for long lines: name, strftime format, about how many days one bucket spans.
TIME_UNITS = (("day", "%Y-%m-%d", 1.0), ("month", "%Y-%m", 30.44), ("year", "%Y", 365.25))

_ISO_DATE = re.compile(r"\d{4}-\d{2}(-\d{2}([ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?)?")
_KIND_WORDS = {"number": "number", "date": "date/time", "category": "text", None: "empty"}


class ChartError(Nl2SqlError):
    """A chart that cannot be drawn from this result (a forced kind that does not fit it); one line."""


@dataclass(frozen=True)
class ChartPlan:
    """What to draw: ``kind`` (bar, line, scatter), the ``x`` column and the ``y`` number columns."""

    kind: str
    x: str
    y: tuple[str, ...]


@dataclass(eq=False)
class Chart:
    """A drawn chart: the plan, the data drawn (``frame``: the x and y columns), the PNG and a ``note`` saying what
    was drawn when it is not every row of the result as it came."""

    plan: ChartPlan
    frame: pd.DataFrame
    png: bytes
    note: str | None = None

    @property
    def description(self) -> str:
        """One line: ``bar chart of n by country (5 bars)`` (the text form of the output, what nbval compares)."""
        plan = self.plan
        count = len(self.frame)
        unit = {"bar": "bar", "line": "point", "scatter": "point"}[plan.kind]
        text = (f"{plan.kind} chart of {', '.join(map(str, plan.y))} by {plan.x} "
                f"({count} {unit}{'s' if count != 1 else ''})")
        return f"{text}; {self.note}" if self.note else text

    def mimebundle(self) -> dict[str, str]:
        """The display data: the PNG (base64, as notebooks store it) and the description as text."""
        return {"image/png": base64.b64encode(self.png).decode("ascii"), "text/plain": self.description}

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        return self.mimebundle()


# -- what a result is ----------------------------------------------------------------------------------------------
def column_kind(series: pd.Series) -> str | None:
    """``"number"``, ``"date"``, ``"category"`` or None (no values) for a result column.

    >>> column_kind(pd.Series([1, 2.5])), column_kind(pd.Series(["2024-01-31", None])), column_kind(pd.Series(["FR"]))
    ('number', 'date', 'category')
    >>> column_kind(pd.Series(["2024"])), column_kind(pd.Series([True, False])), column_kind(pd.Series([None]))
    ('category', 'category', None)
    """
    if pd.api.types.is_bool_dtype(series.dtype):
        return "category"
    if pd.api.types.is_numeric_dtype(series.dtype):
        return "number" if series.notna().any() else None
    if pd.api.types.is_datetime64_any_dtype(series.dtype):
        return "date" if series.notna().any() else None
    values = series.dropna().head(TYPE_SAMPLE).tolist()
    if not values:
        return None
    if all(isinstance(v, (int, float, Decimal)) and not isinstance(v, bool) for v in values):
        return "number"  # e.g. PostgreSQL NUMERIC arrives as Decimal objects
    if all(isinstance(v, (_dt.date, _dt.datetime)) for v in values):
        return "date"
    if all(isinstance(v, str) and _ISO_DATE.fullmatch(v.strip()) for v in values):
        return "date" if to_dates(pd.Series(values)).notna().all() else "category"
    return "category"


def to_dates(series: pd.Series) -> pd.Series:
    """A date column as pandas datetimes (NaT where a value is not a date)."""
    if pd.api.types.is_datetime64_any_dtype(series.dtype):
        return series
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pandas warns about mixed time zones; they are read as UTC below
        try:
            parsed = pd.to_datetime(series, format="ISO8601", errors="coerce")
        except (TypeError, ValueError):
            parsed = None
        if (parsed is None or not pd.api.types.is_datetime64_any_dtype(parsed.dtype)
                or parsed.isna().sum() > series.isna().sum()):  # mixed time zones (or naive and aware)
            parsed = pd.to_datetime(series, format="ISO8601", errors="coerce", utc=True)
    return parsed


def to_numbers(series: pd.Series) -> pd.Series:
    """A number column as floats (Decimal values included)."""
    return pd.to_numeric(series, errors="coerce").astype(float)


def describe_columns(frame: pd.DataFrame) -> str:
    """The columns and their kinds, for messages: ``name (text), n (number)``."""
    kinds = [f"{col} ({_KIND_WORDS[column_kind(frame[col])]})" for col in frame.columns]
    return ", ".join(kinds) or "no columns"


def choose(frame: pd.DataFrame | None, kind: str = "auto") -> ChartPlan | None:
    """The chart of ``frame``: with ``kind="auto"`` its natural picture or None; a forced kind's plan, or
    :class:`ChartError` saying in one line why it does not fit; None for ``"none"``.

    >>> frame = pd.DataFrame({"x": [1.0, 2.0, 3.0], "y": [2.0, 4.0, 5.0]})
    >>> choose(frame), choose(frame, "line")
    (ChartPlan(kind='scatter', x='x', y=('y',)), ChartPlan(kind='line', x='x', y=('y',)))
    >>> choose(frame.assign(name=["a", "b", "c"]), "bar")
    ChartPlan(kind='bar', x='name', y=('x',))
    """
    kind = OPTIONS["plot"].check("plot", kind)
    if kind == "none" or frame is None:
        return None
    if frame.columns.has_duplicates:
        if kind == "auto":
            return None
        raise ChartError(f"no {kind} chart: the result has two columns with the same name")
    columns: dict[str, list[str]] = {"number": [], "date": [], "category": []}
    for col in frame.columns:
        found = column_kind(frame[col])
        if found is not None:
            columns[found].append(col)
    numbers, dates, categories = columns["number"], columns["date"], columns["category"]
    if kind == "auto":
        if len(frame) < 2:
            return None
        if len(dates) == 1 and numbers and not categories:
            return ChartPlan("line", dates[0], tuple(numbers[:MAX_SERIES]))
        if len(categories) == 1 and len(numbers) == 1 and not dates:
            return ChartPlan("bar", categories[0], (numbers[0],))
        if len(numbers) == 2 and not categories and not dates:
            return ChartPlan("scatter", numbers[0], (numbers[1],))
        return None
    if frame.empty:
        raise ChartError(f"no {kind} chart: the result has no rows")
    plan = _forced(kind, numbers, dates, categories)
    if plan is None:
        need = {"bar": "a category (or date) column and a number column",
                "line": "a date/time (or number) column and a number column",
                "scatter": "two number columns (or a date/time and a number)"}[kind]
        raise ChartError(f"no {kind} chart: it needs {need}; this result has {describe_columns(frame)}")
    return plan


def _forced(kind: str, numbers: list[str], dates: list[str], categories: list[str]) -> ChartPlan | None:
    """The plan of a forced kind from the columns of each type, or None when they do not make one."""
    if kind == "bar":
        x = (categories + dates + (numbers if len(numbers) > 1 else []))[:1]
    elif kind == "line":
        x = (dates + (numbers if len(numbers) > 1 else []))[:1]
    else:
        x = (numbers if len(numbers) > 1 else dates)[:1]
    ys = [n for n in numbers if n not in x]
    if not x or not ys:
        return None
    return ChartPlan(kind, x[0], tuple(ys[:MAX_SERIES if kind == "line" else 1]))


# -- the data drawn ------------------------------------------------------------------------------------------------
def time_unit(distinct: int, first: Any, last: Any) -> tuple[str, str] | None:
    """The bucket (name, strftime format) that keeps a line under :data:`MAX_POINTS` points: None while the
    ``distinct`` dates fit, else the finest of day, month, year whose buckets over ``first``…``last`` fit.

    >>> time_unit(500, "2020-01-01", "2024-01-01"), time_unit(5000, "2020-01-01", "2024-01-01")
    (None, ('day', '%Y-%m-%d'))
    >>> time_unit(50_000, "1900-01-01", "2024-01-01")
    ('month', '%Y-%m')
    """
    if distinct <= MAX_POINTS:
        return None
    ends = to_dates(pd.Series([first, last]).astype(object))
    if isinstance(ends.dtype, pd.DatetimeTZDtype):
        ends = ends.dt.tz_localize(None)
    span = (ends.iloc[1] - ends.iloc[0]).total_seconds() / 86400 if ends.notna().all() else math.inf
    for name, fmt, days in TIME_UNITS:
        if span / days < MAX_POINTS:
            return name, fmt
    return TIME_UNITS[-1][:2]


def reduce_frame(frame: pd.DataFrame, plan: ChartPlan) -> tuple[pd.DataFrame, str | None]:
    """The data a chart of a complete in-memory result draws, and a note when it is not every row as it came
    (the same reductions as :func:`aggregate_sql` does in the database)."""
    data = frame[[plan.x, *plan.y]].copy()
    for y in plan.y:
        data[y] = to_numbers(data[y])
    rows = len(data)
    if plan.kind == "bar":
        note = None
        if data[plan.x].duplicated().any():
            data = data.groupby(plan.x, sort=False, dropna=False, as_index=False)[list(plan.y)].sum()
            note = f"summed per {plan.x} over {rows} rows"
        if len(data) > MAX_BARS:
            groups = len(data)
            data = data.nlargest(MAX_BARS, plan.y[0])
            note = f"the {MAX_BARS} largest of {groups} {plan.x} values by {plan.y[0]}" + (
                f", summed over {rows} rows" if note else "")
        return data, note
    if plan.kind == "line":
        data = data[data[plan.x].notna()]
        if data[plan.x].duplicated().any() or data[plan.x].nunique() > MAX_POINTS:
            xs = data[plan.x]
            unit = (time_unit(xs.nunique(), xs.min(), xs.max())
                    if column_kind(xs) == "date" else None)
            key = to_dates(xs).dt.strftime(unit[1]) if unit else xs
            data = data.assign(**{plan.x: key}).groupby(plan.x, as_index=False)[list(plan.y)].sum()
            return data, f"summed per {unit[0] if unit else plan.x} over {rows} rows"
        return data, None
    if rows > MAX_POINTS:
        step = -(-rows // MAX_POINTS)
        return data.iloc[::step], f"every {step}th of {rows} rows"
    return data, None


def aggregate_sql(sql: str, plan: ChartPlan, columns: list[str], dialect: str, *,
                  rows: int | None = None, unit: tuple[str, str] | None = None) -> str:
    """``sql`` wrapped so that the database returns only what the chart draws (see :func:`reduce_frame`).

    ``columns``: the result's column names (they name the query's outputs); ``rows``: the result's row count
    (a scatter chart's sampling step); ``unit``: a line's time bucket (:func:`time_unit`; None: per date).

    >>> aggregate_sql("SELECT country, count(*) FROM customers GROUP BY 1", ChartPlan("bar", "country", ("n",)),
    ...               ["country", "n"], "sqlite")
    'SELECT "country", SUM("n") AS "n", COUNT(*) OVER () AS _groups FROM (SELECT country AS "country", COUNT(*) AS "n" FROM customers GROUP BY 1) AS _q GROUP BY "country" ORDER BY 2 DESC LIMIT 30'
    """
    source = _named(sql, columns, dialect).subquery("_q")
    x, ys = _col(plan.x), [_col(y) for y in plan.y]
    sums = [exp.alias_(exp.Sum(this=y), name, quoted=True) for y, name in zip(ys, plan.y)]
    if plan.kind == "bar":
        groups = exp.alias_(exp.Window(this=exp.Count(this=exp.Star())), "_groups")
        query = (exp.select(x, *sums, groups).from_(source).group_by(x)
                 .order_by(exp.Ordered(this=exp.Literal.number(2), desc=True, nulls_first=False)).limit(MAX_BARS))
    elif plan.kind == "line":
        key = x if unit is None else exp.alias_(exp.TimeToStr(this=x, format=exp.Literal.string(unit[1])), plan.x,
                                                quoted=True)
        query = (exp.select(key, *sums).from_(source).where(exp.Not(this=exp.Is(this=x, expression=exp.Null())))
                 .group_by(exp.Literal.number(1)).order_by(exp.Literal.number(1)))
    else:
        step = max(1, -(-(rows or 0) // MAX_POINTS))
        numbered = exp.select(x, *ys, exp.alias_(exp.Window(this=exp.RowNumber()), "_r")).from_(source)
        first = exp.Paren(this=exp.Sub(this=exp.column("_r"), expression=exp.Literal.number(1)))
        query = (exp.select(x, *ys).from_(numbered.subquery("_s"))
                 .where(exp.EQ(this=exp.Mod(this=first, expression=exp.Literal.number(step)),
                               expression=exp.Literal.number(0))))
    return query.sql(dialect=dialect)


def profile_sql(sql: str, x: str, columns: list[str], dialect: str) -> str:
    """A query for the result's row count and the ``x`` column's distinct count, first and last values."""
    col = _col(x)
    return (exp.select(exp.alias_(exp.Count(this=exp.Star()), "n"),
                       exp.alias_(exp.Count(this=exp.Distinct(expressions=[col])), "k"),
                       exp.alias_(exp.Min(this=col), "lo"), exp.alias_(exp.Max(this=col), "hi"))
            .from_(_named(sql, columns, dialect).subquery("_q")).sql(dialect=dialect))


def _col(name: str) -> Any:
    return exp.column(name, quoted=True)


def _named(sql: str, columns: list[str], dialect: str) -> Any:
    """``sql`` parsed, its outputs named after the result's ``columns`` when it is a SELECT listing them (so that
    ``count(*)`` can be referred to on every database)."""
    tree = sqlglot.parse_one(sql, read=dialect)
    if (isinstance(tree, exp.Select) and len(tree.expressions) == len(columns)
            and not any(isinstance(e, exp.Star) or e.find(exp.Star) is e for e in tree.expressions)):
        tree = tree.copy()
        tree.set("expressions", [exp.alias_(e.unalias(), name, quoted=True)
                                 for e, name in zip(tree.expressions, columns)])
    return tree


#: ``run(sql) -> DataFrame``: a read-only query (what :func:`chart_data` uses to aggregate in the database).
Runner = Callable[[str], pd.DataFrame]


def chart_data(frame: pd.DataFrame, plan: ChartPlan, *, sql: str | None = None, truncated: bool = False,
               dialect: str = "sqlite", run: Runner | None = None) -> tuple[pd.DataFrame, str | None]:
    """The data ``plan`` draws and a note: from ``frame`` when it is the whole result, else (``truncated``:
    rows were left unread) aggregated in the database by ``run``-ning :func:`aggregate_sql` on ``sql``; with no
    ``sql`` or ``run``, or when the database cannot run the aggregate, the rows at hand, said in the note."""
    if not truncated:
        return reduce_frame(frame, plan)
    columns = [str(c) for c in frame.columns]
    fallback = f"only the first {len(frame)} rows (the rest of the result was not read)"
    if sql is None or run is None:
        data, note = reduce_frame(frame, plan)
        return data, fallback + (f"; {note}" if note else "")
    try:
        if plan.kind == "bar":
            data = run(aggregate_sql(sql, plan, columns, dialect))
            groups = int(data["_groups"].iloc[0]) if len(data) else 0
            data = data.drop(columns="_groups")
            note = (f"the {MAX_BARS} largest of {groups} {plan.x} values by {plan.y[0]}, summed in the database"
                    if groups > MAX_BARS else f"summed per {plan.x} in the database")
            return data, note
        profile = run(profile_sql(sql, plan.x, columns, dialect)).iloc[0]
        rows = int(profile["n"])
        if plan.kind == "line":
            unit = time_unit(int(profile["k"]), profile["lo"], profile["hi"]) if column_kind(frame[plan.x]) == "date" else None
            data = run(aggregate_sql(sql, plan, columns, dialect, unit=unit))
            return data, f"summed per {unit[0] if unit else plan.x} over {rows} rows, in the database"
        data = run(aggregate_sql(sql, plan, columns, dialect, rows=rows))
        step = max(1, -(-rows // MAX_POINTS))
        return data, (f"every {step}th of {rows} rows, sampled in the database" if step > 1
                      else f"all {rows} rows, read again from the database")
    except Nl2SqlError as exc:
        data, note = reduce_frame(frame, plan)
        return data, f"{fallback}: the database could not aggregate it ({exc})"


# -- drawing -------------------------------------------------------------------------------------------------------
def draw(data: pd.DataFrame, plan: ChartPlan, *, size: tuple[int, int] = SIZE) -> bytes:
    """The chart of ``data`` (the columns of ``plan``) as PNG bytes of ``size`` pixels.

    Drawn on a :class:`matplotlib.figure.Figure` with the Agg canvas, not through pyplot: no window opens, and the
    notebook's own matplotlib backend and figures are left alone."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(size[0] / DPI, size[1] / DPI), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    y = plan.y[0]
    if plan.kind == "bar":
        labels = ["NULL" if pd.isna(v) else str(v) for v in data[plan.x]]
        values = to_numbers(data[y]).fillna(0.0).tolist()
        if len(labels) > 8 or max((len(s) for s in labels), default=0) > 10:  # long or many labels: horizontal
            ax.barh(range(len(labels))[::-1], values, color="#4c78a8")
            ax.set_yticks(range(len(labels))[::-1], labels, fontsize=8)
            ax.set_xlabel(y)
            ax.set_ylabel(plan.x)
        else:
            ax.bar(range(len(labels)), values, color="#4c78a8")
            ax.set_xticks(range(len(labels)), labels)
            ax.set_xlabel(plan.x)
            ax.set_ylabel(y)
    else:
        xs = data[plan.x]
        xs = to_dates(xs) if column_kind(xs) == "date" else to_numbers(xs)
        if isinstance(xs.dtype, pd.DatetimeTZDtype):
            xs = xs.dt.tz_localize(None)
        order = xs.argsort(kind="stable").to_numpy() if plan.kind == "line" else slice(None)
        for name in plan.y:
            values = to_numbers(data[name]).to_numpy()
            if plan.kind == "line":
                ax.plot(xs.to_numpy()[order], values[order], marker="." if len(data) <= 60 else None, label=name)
            else:
                ax.scatter(xs.to_numpy(), values, s=12, alpha=0.7, color="#4c78a8")
        ax.set_xlabel(plan.x)
        ax.set_ylabel(y if len(plan.y) == 1 else "")
        if len(plan.y) > 1:
            ax.legend(fontsize=8)
        if column_kind(data[plan.x]) == "date":
            fig.autofmt_xdate()
    ax.grid(alpha=0.3)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def png_size(png: bytes) -> tuple[int, int]:
    """(width, height) of PNG bytes, read from their header."""
    if png[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    return struct.unpack(">II", png[16:24])


def chart(frame: pd.DataFrame | None, kind: str = "auto", *, sql: str | None = None, truncated: bool = False,
          dialect: str = "sqlite", run: Runner | None = None, size: tuple[int, int] = SIZE) -> Chart | None:
    """The chart of a result (see :func:`choose` and :func:`chart_data`), or None when it has no picture."""
    plan = choose(frame, kind)
    if plan is None:
        return None
    data, note = chart_data(frame, plan, sql=sql, truncated=truncated, dialect=dialect, run=run)
    return Chart(plan, data.reset_index(drop=True), draw(data, plan, size=size), note)


def answer_chart(answer: Any, kind: str = "auto", connection: Any = None, *, timeout: float | None = 30.0,
                 max_result_bytes: int | None = None) -> Chart | None:
    """The chart of an :class:`~jupyter_nl2sql.pipeline.assistant.Answer`'s result; when it was cut at the row
    cap, its SQL is aggregated on ``connection`` (a :class:`~jupyter_nl2sql.connections.Connection`): checked,
    then run read-only, bounded in time and bytes like every query."""
    frame = getattr(answer, "dataframe", None)
    if frame is None or kind == "none":
        return None
    run = None
    if connection is not None and answer.sql:
        def run(sql: str) -> pd.DataFrame:
            checked = check_sql(sql, dialect=connection.sqlglot_dialect)
            return execute(connection, checked.sql, row_cap=MAX_POINTS + 1, timeout=timeout, stream=True,
                           max_result_bytes=max_result_bytes or MAX_RESULT_BYTES).dataframe

    return chart(frame, kind, sql=answer.sql, truncated=bool(answer.truncated),
                 dialect=getattr(connection, "sqlglot_dialect", "sqlite"), run=run)
