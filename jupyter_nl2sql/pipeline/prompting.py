"""Prompts for the model and getting the SQL back out of its reply.

The prompt (layout ``"sql"``, the default) is one user message written as a SQL script: the schema (``CREATE TABLE``
plus sample rows in a comment), worked examples (few-shot, most similar last), the task, the database values the
question mentions as comments, and ``-- Question: ...`` last, so that everything before the question's own lines is
the same for every question on a database and is evaluated once (see :func:`prompt_head`); layout ``"chat"`` puts
the task in a system message and the same parts in labelled sections. A follow-up question (see
:mod:`jupyter_nl2sql.pipeline.conversation`) is the next message of a chat: the conversation's first prompt, each
turn's SQL as the assistant's reply and each follow-up as a user message, so the schema part, which backends keep
evaluated per database, is the same bytes with or without them, and the engine's prompt cache evaluates only what a
follow-up adds. A repair round appends the model's previous SQL and the error it caused (or, for a query that ran
but found nothing although the question names values, a hint about those values), and asks for a corrected query.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

DIALECT_NAMES = {"sqlite": "SQLite", "postgresql": "PostgreSQL", "postgres": "PostgreSQL", "duckdb": "DuckDB",
                 "mysql": "MySQL", "mssql": "SQL Server", "tsql": "SQL Server"}

SYSTEM_PROMPT = (
    "You are an expert {dialect} data analyst. Given a database schema and a question, write one {dialect} "
    "SELECT query that answers the question. Use only tables and columns that exist in the schema. "
    "Select only the columns the question asks for. Reply with the SQL in a single ```sql code block and "
    "nothing else."
)


@dataclass(frozen=True)
class Example:
    """A question with its SQL, shown to the model as a worked example."""

    question: str
    sql: str


def dialect_label(dialect: str) -> str:
    """Human name of a dialect for the prompt (``postgresql`` → ``PostgreSQL``)."""
    return DIALECT_NAMES.get(dialect.lower(), dialect)


#: Prompt layouts: ``"sql"`` is one user message written as a SQL script (the schema, then ``-- Using valid SQLite,
#: answer the following question for the tables provided above. Output only the SQL query, nothing else.`` and
#: ``-- Question: ...``): the layout of Qwen2.5-Coder's own text-to-SQL evaluation, with its closing instruction
#: moved up into the task line so that the question is the prompt's last line; ``"chat"`` is a system message with
#: the task and a user message in labelled sections.
LAYOUTS = ("sql", "chat")


#: What a follow-up question is told, after the conversation so far (both layouts).
FOLLOW_UP_NOTE = ("If it refines the previous question (another filter, sort, limit, column or grouping), modify the "
                  "previous query; if it asks something new, write a new query for it.")
#: The reply a failed turn is shown with (its SQL did not work: no model for the next one).
NO_QUERY = "I could not write a working query for that question."


def follow_up_message(question: str, hints: str = "", layout: str = "sql") -> dict:
    """The user message that asks a follow-up ``question`` after the conversation so far (see
    :func:`follow_up_messages`), with the values it mentions (``hints``).

    >>> print(follow_up_message("and only for 2024?")["content"])  # doctest: +ELLIPSIS
    -- Follow-up question: and only for 2024?
    -- If it refines the previous question (...), modify the previous query; if it asks something new, ...
    Output only the SQL query, nothing else.
    """
    if layout == "sql":
        lines = [f"-- Follow-up question: {question.strip()}", *_comment_lines(hints), f"-- {FOLLOW_UP_NOTE}",
                 "Output only the SQL query, nothing else."]
    else:
        lines = [f"Follow-up question: {question.strip()}", *([hints.strip()] if hints.strip() else []),
                 f"{FOLLOW_UP_NOTE} Reply with the SQL in a single ```sql code block."]
    return {"role": "user", "content": "\n".join(lines)}


def follow_up_messages(thread: Sequence[tuple[Sequence[dict], str | None]], question: str, hints: str = "",
                       layout: str = "sql") -> list[dict]:
    """A follow-up ``question`` asked as the next message of the conversation: each earlier turn's messages
    (``thread``: the first turn's whole prompt, then each follow-up's user message) with the SQL kept for it as the
    assistant's reply (:data:`NO_QUERY` for a turn without working SQL), then :func:`follow_up_message`.

    The prompt of a follow-up starts with the previous turn's prompt and reply, so the engine's prompt cache
    evaluates only the new part, and the schema head is the same bytes as in any question on the database.

    >>> opening = build_messages("Orders per country?", "CREATE TABLE orders (country TEXT);", "sqlite")
    >>> [m["role"] for m in follow_up_messages([(opening, "SELECT country, count(*) FROM orders GROUP BY 1")],
    ...                                        "and only for 2024?")]
    ['user', 'assistant', 'user']
    """
    messages: list[dict] = []
    for said, sql in thread:
        reply = sql_reply(sql.strip().rstrip(";")) if sql and sql.strip() else {"role": "assistant",
                                                                                 "content": NO_QUERY}
        messages += [*said, reply]
    messages.append(follow_up_message(question, hints, layout))
    return messages


def _comment_lines(hints: str) -> list[str]:
    """``hints`` as SQL comment lines."""
    return [line if line.startswith("--") else f"-- {line}" for line in hints.strip().splitlines()]


def build_messages(question: str, schema_text: str, dialect: str, examples: Sequence[Example] = (),
                   hints: str = "", layout: str = "sql") -> list[dict]:
    """Chat messages asking for the SQL that answers ``question`` over ``schema_text``.

    ``examples``: worked (question, SQL) pairs, shown in the given order; ``hints``: extra lines placed just
    before the question (the values the question mentions, see :func:`jupyter_nl2sql.pipeline.values.render_matches`);
    ``layout``: one of :data:`LAYOUTS`.  A follow-up question is asked with :func:`follow_up_messages`.
    """
    label = dialect_label(dialect)
    if layout == "sql":
        return _sql_layout(question, schema_text, label, examples, hints)
    parts = [f"Database schema ({label}):\n\n{schema_text}"]
    if examples:
        shots = "\n\n".join(f"Question: {ex.question}\n```sql\n{ex.sql}\n```" for ex in examples)
        parts.append("Examples of questions and their SQL (some are about other databases; use them for the "
                     f"form of the query, and only the schema above for names):\n\n{shots}")
    if hints.strip():
        parts.append(hints.strip())
    parts.append(f"Question: {question}")
    return [{"role": "system", "content": SYSTEM_PROMPT.format(dialect=label)},
            {"role": "user", "content": "\n\n".join(parts)}]


def _sql_layout(question: str, schema_text: str, label: str, examples: Sequence[Example], hints: str) -> list[dict]:
    """The ``"sql"`` layout: everything is SQL text or a SQL comment, in one user message."""
    parts = [schema_text]
    if examples:
        shots = "\n\n".join(f"-- Question: {ex.question}\n{ex.sql.strip().rstrip(';')};" for ex in examples)
        parts.append("-- Examples of questions and their SQL (some are about other databases: use them for the form "
                     f"of the query, and only the tables above for names).\n{shots}")
    task = (f"-- Using valid {label}, answer the following question for the tables provided above. Output only the "
            "SQL query, nothing else.")
    parts.append("\n".join([task, *(_comment_lines(hints) if hints.strip() else []), f"-- Question: {question}"]))
    return [{"role": "user", "content": "\n\n".join(parts)}]


def sql_reply(sql: str) -> dict:
    """``sql`` as the model's reply in a chat: an assistant message with one fenced SQL block."""
    return {"role": "assistant", "content": f"```sql\n{sql}\n```"}


def repair_messages(messages: list[dict], previous_sql: str, error: str) -> list[dict]:
    """``messages`` followed by the failed SQL and the error, asking for a corrected query."""
    return [*messages,
            sql_reply(previous_sql),
            {"role": "user", "content": f"That query failed: {error}\nWrite a corrected query that answers the "
                                        "question. Reply with the SQL in a single ```sql code block."}]


def empty_result_messages(messages: list[dict], previous_sql: str, hints: str) -> list[dict]:
    """``messages`` followed by a query that ran but returned no rows, with the values the question mentions."""
    return [*messages,
            sql_reply(previous_sql),
            {"role": "user", "content": "That query ran but returned no rows. "
                                        f"{hints.strip()}\nCheck the values in the conditions (exact spelling and "
                                        "case, the right column) and the joins, then write a corrected query that "
                                        "answers the question. Reply with the SQL in a single ```sql code block."}]


def extract_sql(reply: str) -> str:
    """The SQL in a model reply: the first fenced code block if there is one, else the whole reply.

    Only the markdown around the SQL is removed here; the SQL itself is parsed by :mod:`jupyter_nl2sql.pipeline.sqlcheck`.
    """
    text = reply.strip()
    start = text.find("```")
    if start != -1:
        body_start = text.find("\n", start)
        if body_start != -1:
            end = text.find("```", body_start)
            text = text[body_start + 1:end if end != -1 else len(text)]
    return text.strip().rstrip(";").strip()


#: Two questions (and value hints) that share no text: their prompts differ from the first character that depends
#: on the question, whichever comes first in the layout (hints, examples or the question).
_SENTINELS = (("How many rows are there?", "-- t.a = 1"), ("List every name.", "-- u.b = 'x'"))


def prompt_head(render: Callable[[list[dict]], str], schema_text: str, dialect: str, layout: str = "sql") -> str:
    """The head every question's prompt over ``schema_text`` shares, as ``render`` (the model's chat template)
    writes it: the system message, the schema and its sample rows and the task, up to the last line break before
    anything that depends on the question.  A backend keeps this head's evaluated state, so no question pays for
    it twice.

    >>> render = lambda messages: "".join(m["content"] + "\\n" for m in messages)
    >>> prompt_head(render, "CREATE TABLE t (a INT);", "sqlite").splitlines()[-1]
    '-- Using valid SQLite, answer the following question for the tables provided above. Output only the SQL query, \
nothing else.'
    """
    a, b = (render(build_messages(q, schema_text, dialect, (), hints, layout)) for q, hints in _SENTINELS)
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return a[:a.rfind("\n", 0, n) + 1]
