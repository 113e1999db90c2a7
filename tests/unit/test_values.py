"""Value retrieval (jupyter_nl2sql.pipeline.values): normalisation, exact and fuzzy matches, the index over a database."""

from __future__ import annotations

from jupyter_nl2sql.connections import ConnectionManager
from jupyter_nl2sql.pipeline.schema import Column, Schema, Table, introspect
from jupyter_nl2sql.pipeline.values import ValueIndex, ValueIndexCache, normalize, render_matches


def _index() -> ValueIndex:
    return ValueIndex.from_values([
        ("city", "Name", "Zürich"), ("city", "Name", "São Paulo"), ("city", "Name", "New York City"),
        ("country", "Name", "United States"), ("country", "Name", "France"), ("singer", "Country", "France"),
        ("singer", "Is_male", "T"), ("song", "Languages", "english"), ("concert", "Year", "2014"),
        ("people", "Name", "O'Brien"),
    ])


def test_normalize_folds_case_accents_and_punctuation() -> None:
    assert normalize("São  Paulo!") == "sao paulo"
    assert normalize("ÉCOLE-normale") == "ecole normale"
    assert normalize("O'Brien") == "o brien"
    assert normalize("ﬁle") == "file"  # compatibility forms


def test_exact_match_after_normalisation_gives_the_database_spelling() -> None:
    matches = _index().match("How many people live in zurich or sao paulo?")
    assert {(m.table, m.column, m.value) for m in matches} == {("city", "Name", "Zürich"),
                                                               ("city", "Name", "São Paulo")}
    assert all(m.score == 1.0 for m in matches)


def test_one_span_lists_every_column_that_holds_it() -> None:
    found = {(m.table, m.column) for m in _index().match("Which singers are from France?")}
    assert found == {("country", "Name"), ("singer", "Country")}


def test_fuzzy_match_catches_misspellings_but_not_unrelated_words() -> None:
    matches = _index().match("singers from Frence")
    assert {(m.value, m.score < 1) for m in matches} == {("France", True)}
    assert _index().match("songs in spanish") == []


def test_longest_span_wins_and_spans_do_not_overlap() -> None:
    matches = _index().match("What is the population of new york city?")
    assert [m.value for m in matches] == ["New York City"]


def test_stopwords_short_words_and_single_letters_are_not_values() -> None:
    index = ValueIndex.from_values([("t", "c", "The"), ("t", "c", "T"), ("t", "c", "of"), ("t", "c", "name")])
    assert index.match("What is the name of T?") == []


def test_words_that_name_the_schema_are_not_taken_for_values() -> None:
    index = ValueIndex.from_values([("drivers", "surname", "Driver"), ("drivers", "surname", "Hamilton")])
    assert [m.value for m in index.match("Which driver won most?")] == ["Driver"]
    assert index.match("Which drivers won most?", ignore_words={"driver", "surname"}) == []
    assert [m.value for m in index.match("Is Hamilton a driver?", ignore_words={"driver"})] == ["Hamilton"]


def test_numbers_match_only_exactly() -> None:
    index = _index()
    assert [m.value for m in index.match("concerts in 2014")] == ["2014"]
    assert index.match("concerts in 2015") == []


def test_words_of_the_analysis_are_not_fuzzy_values() -> None:
    index = ValueIndex.from_values([("track", "Name", "Moth"), ("track", "Name", "Yearn")])
    assert index.match("split the invoices of 2011 by month") == []
    assert index.match("How many tracks per year?") == []
    assert [m.value for m in index.match("songs like Mothh")] == ["Moth"]  # a misspelt value still matches
    exact = ValueIndex.from_values([("album", "Title", "Month")])
    assert [m.value for m in exact.match("albums by month")] == ["Month"]  # the exact spelling is still a value


def test_a_year_is_a_value_only_where_the_column_holds_years() -> None:
    index = ValueIndex.from_values([("invoice", "PostalCode", v) for v in ("2010", "10012", "T6G 2C7", "H2G 1A7")]
                                   + [("concert", "Year", v) for v in ("2014", "2015", "unknown")])
    assert index.match("How many invoices were issued in 2010?") == []
    assert [(m.column, m.value) for m in index.match("concerts in 2015")] == [("Year", "2015")]
    assert [m.value for m in index.match("invoices to postal code 10012")] == ["10012"]


def test_render_quotes_like_sql() -> None:
    text = render_matches(_index().match("songs by o'brien in English"))
    assert "-- people.Name = 'O''Brien'" in text and "-- song.Languages = 'english'" in text
    assert render_matches([]) == ""


def test_build_reads_text_columns_most_frequent_first(demo_sqlite_url: str) -> None:
    conn = ConnectionManager().resolve(demo_sqlite_url)
    schema = introspect(conn, sample_rows=0)
    index = ValueIndex.build(conn, schema)
    assert index.has_column("customers", "country") and not index.has_column("orders", "order_id")
    assert index.column_values("customers", "country", 2)[0] in {"Germany", "France", "Ireland", "Italy",
                                                                "Netherlands", "Spain", "United Kingdom"}
    assert [(m.column, m.value) for m in index.match("customers in the united kingdom")] == \
        [("country", "United Kingdom")]
    assert not index.partial and index.build_seconds >= 0


def test_build_respects_limits(demo_sqlite_url: str) -> None:
    conn = ConnectionManager().resolve(demo_sqlite_url)
    index = ValueIndex.build(conn, introspect(conn, sample_rows=0), max_per_column=2)
    assert index.partial and len(index.column_values("customers", "country", 10)) == 2


def test_untyped_and_odd_columns_never_break_the_build() -> None:
    schema = Schema("sqlite", [Table("missing", [Column("a", "")])])
    conn = ConnectionManager().resolve("sqlite://")
    assert len(ValueIndex.build(conn, schema)) == 0  # the table does not exist: nothing, no error


def test_cache_builds_once_per_connection_and_schema(demo_sqlite_url: str) -> None:
    conn = ConnectionManager().resolve(demo_sqlite_url)
    schema = introspect(conn, sample_rows=0)
    cache = ValueIndexCache()
    first = cache.get(conn, schema)
    assert cache.get(conn, schema) is first
    cache.clear()
    assert cache.get(conn, schema) is not first


def test_matching_finds_values_among_many() -> None:
    """Exact and misspelt values among 24,000 (its speed: tests/performance/test_value_matching_latency.py)."""
    rows = [("t", "c", f"Value number {i} of {name}") for i in range(4000) for name in ("Alpha",)]
    rows += [("city", "name", f"Town{i}ville") for i in range(20000)]
    index = ValueIndex.from_values(rows)
    matches = index.match("Which customers live in Town1234vile or in the town called Town77ville today?")
    assert {m.value for m in matches} >= {"Town77ville", "Town1234ville"}
