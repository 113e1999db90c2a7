"""Schema introspection, rendering, linking; prompt building and SQL extraction."""

from __future__ import annotations

import pytest

from jupyter_nl2sql.connections import ConnectionManager
from jupyter_nl2sql.pipeline.prompting import build_messages, extract_sql, repair_messages
from jupyter_nl2sql.pipeline.schema import Column, ForeignKey, Schema, SchemaCache, Table, introspect, link_tables, render_schema


def test_introspect_demo_keys_and_samples(demo_sqlite_url: str) -> None:
    schema = introspect(ConnectionManager().resolve(demo_sqlite_url), sample_rows=2)
    assert [t.name for t in schema.tables] == ["customers", "departments", "employees", "order_items", "orders",
                                               "products"]
    items = schema.table("ORDER_ITEMS")
    assert {c.name for c in items.columns if c.primary_key} == {"order_id", "product_id"}
    assert {fk.ref_table for fk in items.foreign_keys} == {"orders", "products"}
    assert len(items.sample_rows) == 2
    assert schema.mapping()["customers"]["email"] == "TEXT"


def test_fingerprint_tracks_structure_not_data(demo_sqlite_url: str) -> None:
    conn = ConnectionManager().resolve(demo_sqlite_url)
    a, b = introspect(conn, sample_rows=1), introspect(conn, sample_rows=3)
    assert a.fingerprint == b.fingerprint
    a.tables[0].columns.append(Column("extra", "TEXT"))
    assert a.fingerprint != b.fingerprint


def test_schema_cache_reuses_until_refresh(demo_sqlite_url: str) -> None:
    conn = ConnectionManager().resolve(demo_sqlite_url)
    cache = SchemaCache()
    first = cache.get(conn)
    assert cache.get(conn) is first
    assert cache.get(conn, refresh=True) is not first


def test_render_has_keys_and_quoted_odd_names() -> None:
    schema = Schema("sqlite", [Table("order items", [Column("id", "INTEGER", primary_key=True),
                                                     Column("unit price", "REAL")],
                                     foreign_keys=[ForeignKey(["id"], "orders", ["id"])],
                                     sample_rows=[(1, 9.5)])])
    text = render_schema(schema)
    assert 'CREATE TABLE "order items"' in text
    assert '"unit price" REAL' in text
    assert "PRIMARY KEY (id)" in text and "REFERENCES orders(id)" in text
    assert "id\tunit price\n1\t9.5" in text


def _wide_schema(n: int) -> Schema:
    tables = [Table(f"t{i}_misc", [Column(f"c{j}", "TEXT") for j in range(30)]) for i in range(n)]
    tables.append(Table("invoices", [Column("invoice_id", "INTEGER", True), Column("customer_id", "INTEGER")],
                        foreign_keys=[ForeignKey(["customer_id"], "clients", ["client_id"])]))
    tables.append(Table("clients", [Column("client_id", "INTEGER", True), Column("name", "TEXT")]))
    return Schema("sqlite", tables)


def test_linking_keeps_everything_when_it_fits() -> None:
    schema = _wide_schema(2)
    assert len(link_tables(schema, "anything", max_chars=100_000)) == len(schema.tables)


def test_linking_picks_mentioned_tables_and_their_join_partners() -> None:
    schema = _wide_schema(200)
    chosen = link_tables(schema, "How many invoices are there?", max_chars=4000)
    assert "invoices" in chosen and "clients" in chosen  # the FK target comes along
    assert len(render_schema(schema, chosen)) <= 4000


def test_sql_layout_is_one_sql_script() -> None:
    msgs = build_messages("How many?", "CREATE TABLE t (a INT);", "postgresql",
                          hints="Values in the database that the question mentions:\n-- t.a = 'x'")
    assert [m["role"] for m in msgs] == ["user"]
    text = msgs[0]["content"]
    assert text.startswith("CREATE TABLE t") and "-- Values in the database" in text and "-- t.a = 'x'" in text
    assert "-- Using valid PostgreSQL, answer the following question" in text and "-- Question: How many?" in text
    assert text.index("-- Using valid") < text.index("-- t.a") < text.index("-- Question:")
    assert text.endswith("-- Question: How many?")  # the question last: all before it is the same for any question
    fixed = repair_messages(msgs, "SELECT b FROM t", "no column b")
    assert [m["role"] for m in fixed] == ["user", "assistant", "user"] and "no column b" in fixed[-1]["content"]


def test_sql_layout_shows_sample_rows_as_a_query_and_its_rows() -> None:
    table = Table("t", [Column("id", "INTEGER", primary_key=True), Column("name", "TEXT")],
                  sample_rows=[(1, "Ann  Lee"), (2, None)])
    text = render_schema(Schema("sqlite", [table]))
    assert "/*\n2 example rows:\nSELECT * FROM t LIMIT 2;\nid\tname\n1\tAnn Lee\n2\tNULL\n*/" in text
    assert "1 | 'Ann Lee'" in render_schema(Schema("sqlite", [table]), layout="chat")


def test_unknown_layout_is_refused() -> None:
    from jupyter_nl2sql.pipeline.assistant import Assistant
    from jupyter_nl2sql.errors import ConfigError

    with pytest.raises(ConfigError, match="prompt_layout must be one of sql, chat"):
        Assistant(prompt_layout="xml")


def test_messages_carry_dialect_schema_and_question() -> None:
    msgs = build_messages("How many?", "CREATE TABLE t (a INT);", "postgresql", layout="chat")
    assert msgs[0]["role"] == "system" and "PostgreSQL" in msgs[0]["content"]
    assert "CREATE TABLE t" in msgs[1]["content"] and msgs[1]["content"].endswith("Question: How many?")
    fixed = repair_messages(msgs, "SELECT b FROM t", "no column b")
    assert [m["role"] for m in fixed] == ["system", "user", "assistant", "user"]
    assert "no column b" in fixed[-1]["content"]


def test_extract_sql_from_fenced_and_bare_replies() -> None:
    assert extract_sql("Here:\n```sql\nSELECT 1;\n```\nDone") == "SELECT 1"
    assert extract_sql("```\nSELECT 2\n```") == "SELECT 2"
    assert extract_sql("SELECT 3;") == "SELECT 3"
    assert extract_sql("```sql\nSELECT 4") == "SELECT 4"  # cut off by the token limit
