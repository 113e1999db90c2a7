"""Prompts for the model and getting the SQL back out of its reply.

The prompt (layout ``"sql"``, the default) is one user message written as a SQL script: the schema (``CREATE TABLE``
plus sample rows in a comment), worked examples (few-shot, most similar last), the database values the question
mentions as comments, and ``-- Question: ...``; layout ``"chat"`` puts the task in a system message and the same
parts in labelled sections. A follow-up question (see :mod:`jupyter_nl2sql.pipeline.conversation`) also shows the
conversation's earlier questions and their SQL, after the schema and the examples, so the schema part, which
backends keep evaluated per database, is the same bytes with or without them. A repair round appends the model's
previous SQL and the error it caused (or, for a query that ran but found nothing although the question names values,
a hint about those values), and asks for a corrected query.
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
#: answer the following question for the tables provided above.`` and ``-- Question: ...``), the layout of
#: Qwen2.5-Coder's own text-to-SQL evaluation; ``"chat"`` is a system message with the task and a user message in
#: labelled sections.
LAYOUTS = ("sql", "chat")


#: What a follow-up question is told about the turns before it (both layouts).
FOLLOW_UP_NOTE = ("The question below follows up on them: rewrite the last query as the follow-up asks, keeping "
                  "its columns, joins, conditions and grouping unless the follow-up changes them (a question about "
                  "something else is answered on its own).")


def thread_question(question: str, history: Sequence[Example]) -> str:
    """The question as the prompt asks it: alone, or after the conversation's earlier questions, so that a
    fragment ("and only for 2024?") reads as the whole request it is.

    >>> thread_question("and only for 2024?", [Example("Orders per country?", "SELECT ...")])
    'Orders per country? Follow-up: and only for 2024?'
    """
    return " Follow-up: ".join([*(t.question.strip() for t in history), question.strip()])


def build_messages(question: str, schema_text: str, dialect: str, examples: Sequence[Example] = (),
                   hints: str = "", layout: str = "sql", history: Sequence[Example] = ()) -> list[dict]:
    """Chat messages asking for the SQL that answers ``question`` over ``schema_text``.

    ``examples``: worked (question, SQL) pairs, shown in the given order; ``hints``: extra lines placed just
    before the question (the values the question mentions, see :func:`jupyter_nl2sql.pipeline.values.render_matches`);
    ``layout``: one of :data:`LAYOUTS`; ``history``: the conversation's earlier questions and their SQL (empty SQL:
    the question alone), oldest first, shown after the schema and the examples when ``question`` follows up on them.
    """
    label = dialect_label(dialect)
    if layout == "sql":
        return _sql_layout(question, schema_text, label, examples, hints, history)
    parts = [f"Database schema ({label}):\n\n{schema_text}"]
    if examples:
        shots = "\n\n".join(f"Question: {ex.question}\n```sql\n{ex.sql}\n```" for ex in examples)
        parts.append("Examples of questions and their SQL (some are about other databases; use them for the "
                     f"form of the query, and only the schema above for names):\n\n{shots}")
    if history:
        turns = "\n\n".join(f"Question: {t.question}" + (f"\n```sql\n{t.sql.strip()}\n```" if t.sql.strip() else "")
                              for t in history)
        parts.append(f"Earlier questions in this conversation, oldest first, with their SQL:\n\n{turns}\n\n"
                     f"{FOLLOW_UP_NOTE}")
    if hints.strip():
        parts.append(hints.strip())
    parts.append(f"Question: {thread_question(question, history)}")
    return [{"role": "system", "content": SYSTEM_PROMPT.format(dialect=label)},
            {"role": "user", "content": "\n\n".join(parts)}]


def _sql_layout(question: str, schema_text: str, label: str, examples: Sequence[Example], hints: str,
                history: Sequence[Example] = ()) -> list[dict]:
    """The ``"sql"`` layout: everything is SQL text or a SQL comment, in one user message."""
    parts = [schema_text]
    if examples:
        shots = "\n\n".join(f"-- Question: {ex.question}\n{ex.sql.strip().rstrip(';')};" for ex in examples)
        parts.append("-- Examples of questions and their SQL (some are about other databases: use them for the form "
                     f"of the query, and only the tables above for names).\n{shots}")
    if history:
        turns = "\n\n".join(f"-- Question: {t.question}" + (f"\n{t.sql.strip().rstrip(';')};" if t.sql.strip() else "")
                              for t in history)
        parts.append(f"-- Earlier questions in this conversation, oldest first, with their SQL:\n{turns}\n\n"
                     f"-- {FOLLOW_UP_NOTE}")
    if hints.strip():
        parts.append("\n".join(line if line.startswith("--") else f"-- {line}" for line in hints.strip().splitlines()))
    parts.append(f"-- Using valid {label}, answer the following question for the tables provided above.\n"
                 f"-- Question: {thread_question(question, history)}")
    parts.append("Output only the SQL query, nothing else.")
    return [{"role": "user", "content": "\n\n".join(parts)}]


def repair_messages(messages: list[dict], previous_sql: str, error: str) -> list[dict]:
    """``messages`` followed by the failed SQL and the error, asking for a corrected query."""
    return [*messages,
            {"role": "assistant", "content": f"```sql\n{previous_sql}\n```"},
            {"role": "user", "content": f"That query failed: {error}\nWrite a corrected query that answers the "
                                        "question. Reply with the SQL in a single ```sql code block."}]


def empty_result_messages(messages: list[dict], previous_sql: str, hints: str) -> list[dict]:
    """``messages`` followed by a query that ran but returned no rows, with the values the question mentions."""
    return [*messages,
            {"role": "assistant", "content": f"```sql\n{previous_sql}\n```"},
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
    writes it: the system message, the schema and its sample rows, up to the last line break before anything that
    depends on the question.  A backend keeps this head's evaluated state, so no question pays for it twice.

    >>> render = lambda messages: "".join(m["content"] + "\\n" for m in messages)
    >>> prompt_head(render, "CREATE TABLE t (a INT);", "sqlite")
    'CREATE TABLE t (a INT);\\n\\n'
    """
    a, b = (render(build_messages(q, schema_text, dialect, (), hints, layout)) for q, hints in _SENTINELS)
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return a[:a.rfind("\n", 0, n) + 1]
