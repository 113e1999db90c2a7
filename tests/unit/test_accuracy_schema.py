"""Schema rendering and linking for the prompt: value listings, compact lines, join paths, fitting a budget."""

from __future__ import annotations

from jupyter_nl2sql.pipeline.schema import (Column, ForeignKey, Schema, Table, fit_schema, join_graph, join_path, link_tables,
                                   render_compact, render_schema, render_table)


def _chain_schema(filler: int = 60) -> Schema:
    """students -> enrollments -> courses -> departments, plus many unrelated wide tables."""
    tables = [Table(f"misc_{i}", [Column(f"field_{j}", "TEXT") for j in range(25)]) for i in range(filler)]
    tables += [
        Table("students", [Column("student_id", "INTEGER", True), Column("name", "TEXT")]),
        Table("enrollments", [Column("student_id", "INTEGER"), Column("course_id", "INTEGER")],
              foreign_keys=[ForeignKey(["student_id"], "students", ["student_id"]),
                            ForeignKey(["course_id"], "courses", ["course_id"])]),
        Table("courses", [Column("course_id", "INTEGER", True), Column("title", "TEXT"),
                          Column("department_id", "INTEGER")],
              foreign_keys=[ForeignKey(["department_id"], "departments", ["department_id"])]),
        Table("departments", [Column("department_id", "INTEGER", True), Column("dept_name", "TEXT")]),
    ]
    return Schema("sqlite", tables)


def test_join_path_follows_foreign_keys_both_ways() -> None:
    graph = join_graph(_chain_schema(0))
    assert join_path(graph, "students", "departments") == ["students", "enrollments", "courses", "departments"]
    assert join_path(graph, "departments", "students")[-1] == "students"
    assert join_path(graph, "students", "students") == ["students"]
    assert join_path({"a": set(), "b": set()}, "a", "b") == []


def test_linking_never_drops_the_tables_between_two_mentioned_ones() -> None:
    schema = _chain_schema()
    chosen = link_tables(schema, "Which students are in the history department?", max_chars=3000)
    assert {"students", "enrollments", "courses", "departments"} <= set(chosen)
    assert not any(t.startswith("misc_") for t in chosen)


def test_linking_keeps_tables_that_hold_mentioned_values() -> None:
    schema = _chain_schema()
    chosen = link_tables(schema, "Who studies with Smith?", max_chars=3000, must=["students"])
    assert "students" in chosen


def test_fit_schema_shows_everything_when_it_fits_and_compacts_the_rest_otherwise() -> None:
    small = _chain_schema(0)
    text, tables = fit_schema(small, "anything", max_chars=100_000)
    assert tables == [t.name for t in small.tables] and text == render_schema(small)
    big = _chain_schema()
    text, tables = fit_schema(big, "Which students take which courses?", max_chars=4000)
    assert len(text) <= 4000 and {"students", "enrollments", "courses"} <= set(tables)
    assert "-- Other tables (columns only" in text and "-- misc_0(field_0" in text
    whole, all_tables = fit_schema(big, "Which students take which courses?", max_chars=4000, linking=False)
    assert len(all_tables) == len(big.tables) and len(whole) > 4000


def test_fit_schema_drops_sample_rows_before_tables() -> None:
    table = Table("people", [Column("id", "INTEGER", True), Column("bio", "TEXT")],
                  sample_rows=[(i, "x" * 40) for i in range(3)])
    schema = Schema("sqlite", [table, Table("other", [Column("id", "INTEGER")])])
    full = render_schema(schema)
    text, tables = fit_schema(schema, "people bios", max_chars=len(full) - 60)
    assert "people" in tables and "/*\n2 example rows:\nSELECT * FROM people LIMIT 2;" in text


def test_values_listing_and_compact_line() -> None:
    table = Table("singer", [Column("id", "INTEGER", True), Column("country", "TEXT", comment="home country")],
                  foreign_keys=[ForeignKey(["id"], "person", ["id"])])
    text = render_table(table, values_for=lambda t, c: ["France", "O'Hara"] if c == "country" else [])
    assert "  country TEXT,  -- home country; e.g. 'France', \"O'Hara\"" in text  # the comma before the comment
    assert "  id INTEGER," in text
    assert render_compact(table) == "-- singer(id*, country)  [id -> person(id)]"
