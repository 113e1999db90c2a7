"""The raw baseline (``--raw``): the same model with a plain prompt and nothing else.

The prompt is the database's ``CREATE TABLE`` statements, three sample rows per table, the question and "output
only the SQL"; the model generates greedily once; the reply's markdown fence (if any) is stripped and the text is
scored as it is — no schema linking, few-shot examples, checking or repair.  This is what the pipeline's accuracy
gain and latency cost are measured against (``python -m benchmarks.compare``).

The baseline is kept apart from the pipeline's own prompting code on purpose, so that changing the pipeline never
moves the baseline.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from benchmarks.runner import Prediction

#: Longest value shown in a sample row (characters).
_MAX_CELL = 40
_DIALECTS = {"sqlite": "SQLite", "duckdb": "DuckDB", "postgresql": "PostgreSQL", "mysql": "MySQL"}


def _cell(value: Any) -> str:
    text = "NULL" if value is None else str(value)
    text = " ".join(text.split())
    return text if len(text) <= _MAX_CELL else text[:_MAX_CELL - 3] + "..."


def _table_ddl(conn: sa.Connection, engine: sa.Engine) -> list[tuple[str, str]]:
    """(table name, CREATE TABLE text) for every user table, in the database's own words where it keeps them."""
    if engine.dialect.name == "sqlite":
        rows = conn.execute(sa.text("SELECT name, sql FROM sqlite_master WHERE type = 'table' "
                                    "AND name NOT LIKE 'sqlite_%' ORDER BY rowid")).fetchall()
        return [(name, sql.strip()) for name, sql in rows if sql]
    meta = sa.MetaData()
    meta.reflect(bind=conn)
    return [(t.name, str(sa.schema.CreateTable(t).compile(engine)).strip()) for t in meta.sorted_tables]


def schema_prompt(url: str, sample_rows: int = 3) -> tuple[str, str]:
    """The schema part of the raw prompt and the dialect's display name.

    Each table is its CREATE TABLE followed by a comment with ``SELECT * FROM t LIMIT n`` and its rows,
    tab-separated (the layout of Rajkumar et al., 2022, "Evaluating the Text-to-SQL Capabilities of LLMs").
    """
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            parts = []
            for name, ddl in _table_ddl(conn, engine):
                block = ddl
                if sample_rows > 0:
                    quoted = engine.dialect.identifier_preparer.quote(name)
                    result = conn.execute(sa.text(f"SELECT * FROM {quoted} LIMIT {int(sample_rows)}"))
                    header = "\t".join(result.keys())
                    rows = ["\t".join(_cell(v) for v in row) for row in result.fetchall()]
                    block += (f"\n/*\n{len(rows)} example rows:\nSELECT * FROM {quoted} LIMIT {sample_rows};\n"
                              + "\n".join([header, *rows]) + "\n*/")
                parts.append(block)
            dialect = _DIALECTS.get(engine.dialect.name, engine.dialect.name)
    finally:
        engine.dispose()
    return "\n\n".join(parts), dialect


def raw_messages(question: str, schema_text: str, dialect: str) -> list[dict[str, str]]:
    """One user message: schema, question, and the instruction to output only the SQL."""
    content = (f"{schema_text}\n\n-- Using valid {dialect}, answer the following question for the tables provided "
               f"above.\n-- Question: {question.strip()}\n\nOutput only the SQL query, nothing else.")
    return [{"role": "user", "content": content}]


def strip_fence(reply: str) -> str:
    """The body of the first markdown code fence in ``reply``, else the reply itself, stripped.

    >>> strip_fence("```sql\\nSELECT 1;\\n```")
    'SELECT 1;'
    """
    text = reply.strip()
    start = text.find("```")
    if start < 0:
        return text
    body = text.find("\n", start)
    if body < 0:
        return text.strip("`").strip()
    end = text.find("```", body)
    return text[body + 1:end if end >= 0 else len(text)].strip()


class RawPredictor:
    """Plain prompt -> one greedy generation -> SQL, timed with the pipeline's own :class:`Stats`.

    ``model``, ``device``, ``dtype`` and ``backend`` go to ``get_backend``; ``max_new_tokens`` and ``sample_rows`` shape the
    prompt and the generation.  The schema text of each database is built once and reused (stage ``schema``).
    """

    def __init__(self, model: str | None = None, *, device: str | None = None, dtype: str | None = None,
                 max_new_tokens: int = 256, sample_rows: int = 3, backend: str | None = None) -> None:
        self.model, self.device, self.dtype, self.backend = model, device, dtype, backend
        self.max_new_tokens = int(max_new_tokens)
        self.sample_rows = int(sample_rows)
        self._schemas: dict[str, tuple[str, str]] = {}
        self._backend: Any = None

    def _get_backend(self) -> tuple[Any, float | None]:
        from jupyter_nl2sql.models import get_backend

        backend, seconds = get_backend(self.model, device=self.device, dtype=self.dtype, progress=False,
                                       backend=self.backend)
        self._backend = backend
        return backend, seconds

    def prepare(self) -> float | None:
        """Load the model now, so that no question pays for it."""
        return self._get_backend()[1]

    def predict(self, question: str, url: str) -> Prediction:
        """One plain-prompt generation."""
        from jupyter_nl2sql.pipeline.stats import Stats

        stats = Stats().start()
        try:
            with stats.stage("schema"):
                if url not in self._schemas:
                    self._schemas[url] = schema_prompt(url, self.sample_rows)
                schema_text, dialect = self._schemas[url]
            with stats.stage("prompt"):
                messages = raw_messages(question, schema_text, dialect)
            backend, load_seconds = self._get_backend()
            if load_seconds is not None:
                stats.model_load_seconds = load_seconds
            stats.device = f"{backend.device} {backend.dtype}"
            with stats.stage("generate"):
                gen = backend.generate(messages, max_new_tokens=self.max_new_tokens)
            stats.add_generation(gen)
            sql = strip_fence(gen.text)
        finally:
            stats.finish()
        return Prediction(sql or None, None if sql else "empty reply", stats.to_dict())

    def release(self) -> None:
        """Forget the schema texts of the databases asked so far."""
        self._schemas.clear()

    def describe(self) -> dict[str, Any]:
        """Baseline settings and the backend's provenance."""
        return {"kind": "raw", "model": self.model, "max_new_tokens": self.max_new_tokens,
                "sample_rows": self.sample_rows,
                "provenance": dict(getattr(self._backend, "provenance", {}) or {})}
