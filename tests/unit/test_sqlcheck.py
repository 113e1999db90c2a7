"""Unit tests for :mod:`jupyter_nl2sql.pipeline.sqlcheck`: policy, parsing, single statement, names, Spider gold SQL."""

from __future__ import annotations

import json

import pytest

from benchmarks.runner import default_data_dir
from jupyter_nl2sql.errors import ConfigError, Nl2SqlError, SQLCheckError, WriteRefused
from jupyter_nl2sql.pipeline.sqlcheck import DENIED_FUNCTIONS, DENIED_STATEMENTS, check_sql

SPIDER = default_data_dir() / "spider"  # $NL2SQL_BENCH_DATA, else ../shared/data: as the benchmark runner
SCHEMA = {
    "Singer": {"Singer_ID": "INTEGER", "Name": "TEXT", "Age": "INTEGER"},
    "concert": {"concert_id": "INTEGER", "singer_id": "INTEGER", "Year": "TEXT"},
}


# --- statements and text ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("sql, expected", [
    ("SELECT 1;", "SELECT 1"),
    ("  SELECT 1 ;\n", "SELECT 1"),
    ("SELECT 1;;; ;", "SELECT 1"),
    ("SELECT 1; -- trailing comment", "SELECT 1"),
    ("SELECT ';' AS semi", "SELECT ';' AS semi"),
    ("-- leading comment\nSELECT 1", "-- leading comment\nSELECT 1"),
])
def test_returns_original_text_minus_trailing_semicolons(sql: str, expected: str) -> None:
    checked = check_sql(sql)
    assert checked.sql == expected
    assert (checked.kind, checked.is_write) == ("select", False)


@pytest.mark.parametrize("sql", ["", "   ", ";", " ; ;", "-- only a comment", "/* nothing */"])
def test_empty_sql_is_refused(sql: str) -> None:
    with pytest.raises(SQLCheckError, match="empty"):
        check_sql(sql)


@pytest.mark.parametrize("sql", ["SELEC name FROM t", "SELECT FROM WHERE", "SELECT (1", "SELECT 'unterminated"])
def test_parse_errors_are_one_line(sql: str) -> None:
    with pytest.raises(SQLCheckError) as info:
        check_sql(sql)
    message = str(info.value)
    assert "\n" not in message and "\x1b" not in message
    assert message.startswith("could not")


@pytest.mark.parametrize("dialect, sql", [
    ("sqlite", "SELECT 1; SELECT 2"),
    ("sqlite", "SELECT 1; DROP TABLE t"),
    ("sqlite", "SELECT 1 ; ; DELETE FROM t"),
    ("sqlite", "SELECT 1 -- comment\n; DROP TABLE t"),
    ("sqlite", "SELECT 1 /* /* */ ; DROP TABLE t; -- */"),  # SQLite comments do not nest
    ("postgres", "SELECT '\\'; DROP TABLE t; --'"),  # standard strings: backslash is not an escape
    ("postgres", "EXPLAIN SELECT 1; DROP TABLE t"),
    ("duckdb", "SELECT 1; COPY t TO 'x.csv'"),
])
def test_more_than_one_statement_is_refused(dialect: str, sql: str) -> None:
    with pytest.raises(SQLCheckError, match="only one statement"):
        check_sql(sql, dialect=dialect, allow_writes=True)


@pytest.mark.parametrize("dialect, sql", [
    ("postgres", "SELECT 1 /* /* */ ; DROP TABLE t; -- */"),  # PostgreSQL comments nest: one statement
    ("postgres", "SELECT E'\\'; DROP TABLE t; --'"),  # escape string: one literal
    ("postgres", "SELECT $$; DROP TABLE t; $$"),
    ("duckdb", "SELECT $tag$; DROP TABLE t;$tag$"),
])
def test_semicolons_inside_literals_and_comments_are_one_statement(dialect: str, sql: str) -> None:
    assert check_sql(sql, dialect=dialect).kind == "select"


@pytest.mark.parametrize("sql", [
    "SELECT\u200b1", "SELECT 1\u200d", "SELECT\u00a01", "SELECT 1\x00", "SELECT 1 --x\r; DROP TABLE t",
    "SELECT\x0b1", "SELECT\x0c1", "\ufeffSELECT 1", "SELECT 1 AS \"a\u200bb\"", "SELECT 1 -- \u202e hidden",
    "ＳＥＬＥＣＴ 1", "SELECT ＊ FROM t", "SELECT 1； DROP TABLE t", "SELECT 1 AS ﬁle",
])
def test_invisible_control_and_lookalike_characters_are_refused(sql: str) -> None:
    with pytest.raises(SQLCheckError, match="not allowed"):
        check_sql(sql, allow_writes=True)


@pytest.mark.parametrize("sql", ["SELECT 'a\u200bb'", "SELECT 'ｆｕｌｌｗｉｄｔｈ'", "SELECT 'line\r\nbreak\ttab'",
                                 "SELECT 1 AS \"naïve\"", "SELECT '名前' AS 名前", "SELECT 1\r\nFROM t"])
def test_such_characters_inside_literals_and_normal_unicode_pass(sql: str) -> None:
    assert check_sql(sql).kind == "select"


def test_nul_is_refused_even_inside_a_literal() -> None:
    with pytest.raises(SQLCheckError, match="U\\+0000"):
        check_sql("SELECT 'a\x00b'")


def test_unknown_dialect_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown SQL dialect"):
        check_sql("SELECT 1", dialect="no-such-dialect")


# --- read-only policy -------------------------------------------------------------------------------------------

READ_ONLY = [
    ("sqlite", "SELECT name FROM t WHERE id = 1", "select"),
    ("sqlite", "WITH x AS (SELECT 1 AS a) SELECT a FROM x", "select"),
    ("sqlite", "SELECT 1 UNION ALL SELECT 2", "union"),
    ("sqlite", "SELECT 1 INTERSECT SELECT 1", "intersect"),
    ("sqlite", "(SELECT 1)", "select"),
    ("sqlite", "EXPLAIN QUERY PLAN SELECT * FROM t", "explain"),
    ("postgres", "EXPLAIN (ANALYZE, FORMAT JSON) SELECT * FROM t", "explain"),
    ("postgres", "TABLE t", "select"),
    ("duckdb", "FROM t", "select"),
    ("duckdb", "EXPLAIN ANALYZE SELECT 1", "explain"),
]


@pytest.mark.parametrize("dialect, sql, kind", READ_ONLY)
def test_read_only_queries_pass(dialect: str, sql: str, kind: str) -> None:
    checked = check_sql(sql, dialect=dialect)
    assert (checked.kind, checked.is_write) == (kind, False)


WRITES = [
    ("sqlite", "INSERT INTO t VALUES (1)"),
    ("sqlite", "INSERT OR REPLACE INTO t VALUES (1)"),
    ("sqlite", "REPLACE INTO t VALUES (1)"),
    ("sqlite", "UPDATE t SET a = 1"),
    ("sqlite", "DELETE FROM t"),
    ("sqlite", "DROP TABLE t"),
    ("sqlite", "CREATE TABLE x AS SELECT 1"),
    ("sqlite", "ALTER TABLE t ADD COLUMN b INT"),
    ("sqlite", "PRAGMA table_info(t)"),
    ("sqlite", "PRAGMA writable_schema = 1"),
    ("sqlite", "VACUUM"),
    ("sqlite", "BEGIN"),
    ("postgres", "TRUNCATE t"),
    ("postgres", "MERGE INTO t USING s ON t.a = s.a WHEN MATCHED THEN DELETE"),
    ("postgres", "WITH gone AS (DELETE FROM t RETURNING *) SELECT * FROM gone"),
    ("postgres", "WITH x AS MATERIALIZED (UPDATE t SET a = 1 RETURNING a) SELECT a FROM x"),
    ("postgres", "SELECT * INTO copy_of_t FROM t"),
    ("postgres", "SELECT * FROM t FOR UPDATE"),
    ("postgres", "EXPLAIN ANALYZE DELETE FROM t"),
    ("postgres", "GRANT ALL ON t TO public"),
    ("postgres", "SET search_path = evil"),
    ("postgres", "SET ROLE postgres"),
    ("postgres", "SELECT set_config('search_path', 'evil', false)"),
    ("postgres", "SELECT nextval('s')"),
    ("postgres", "COMMENT ON TABLE t IS 'x'"),
    ("postgres", "REFRESH MATERIALIZED VIEW v"),
    ("duckdb", "CALL pragma_version()"),
    ("duckdb", "SET memory_limit = '1GB'"),
    ("duckdb", "SHOW TABLES"),
    ("postgres", "VALUES (1)"),
]


@pytest.mark.parametrize("dialect, sql", WRITES)
def test_writes_are_refused_read_only(dialect: str, sql: str) -> None:
    with pytest.raises(WriteRefused, match="refused"):
        check_sql(sql, dialect=dialect)


@pytest.mark.parametrize("dialect, sql", WRITES)
def test_allow_writes_lets_them_through(dialect: str, sql: str) -> None:
    checked = check_sql(sql, dialect=dialect, allow_writes=True)
    assert checked.is_write
    assert checked.sql == sql


ESCAPES = [
    ("sqlite", "ATTACH DATABASE '/tmp/evil.db' AS evil"),
    ("sqlite", "DETACH evil"),
    ("sqlite", "SELECT load_extension('/tmp/evil.so')"),
    ("sqlite", "SELECT writefile('/tmp/x', 'y')"),
    ("sqlite", "SELECT readfile('/etc/passwd')"),
    ("sqlite", "SELECT * FROM fsdir('/')"),
    ("postgres", "SELECT pg_sleep(100)"),
    ("postgres", "SELECT pg_catalog.pg_read_file('/etc/passwd')"),
    ("postgres", "SELECT * FROM pg_ls_dir('.')"),
    ("postgres", "SELECT lo_import('/etc/passwd')"),
    ("postgres", "SELECT * FROM dblink('host=evil', 'SELECT 1') AS t(a int)"),
    ("postgres", "SELECT query_to_xml('DELETE FROM t', true, true, '')"),
    ("postgres", "COPY t TO PROGRAM 'id'"),
    ("postgres", "DO $$ BEGIN DELETE FROM t; END $$"),
    ("postgres", "SELECT pg_terminate_backend(1)"),
    ("duckdb", "SELECT * FROM read_csv('/etc/passwd')"),
    ("duckdb", "SELECT * FROM read_csv_auto('/etc/passwd')"),
    ("duckdb", "SELECT * FROM read_parquet('s3://bucket/x.parquet')"),
    ("duckdb", "SELECT * FROM read_json('/etc/x.json')"),
    ("duckdb", "SELECT * FROM read_text('/etc/passwd')"),
    ("duckdb", "SELECT * FROM '/etc/passwd'"),
    ("duckdb", "SELECT * FROM 'https://example.com/x.csv'"),
    ("duckdb", "SELECT * FROM glob('/home/*')"),
    ("duckdb", "SELECT getenv('HOME')"),
    ("duckdb", "SELECT * FROM query('DROP TABLE t')"),
    ("duckdb", "COPY t TO '/tmp/x.csv'"),
    ("duckdb", "LOAD httpfs"),
    ("duckdb", "INSTALL httpfs"),
    ("duckdb", "ATTACH '/tmp/evil.duckdb' AS evil"),
    ("duckdb", "SELECT * FROM duckdb_secrets()"),
]


@pytest.mark.parametrize("dialect, sql", ESCAPES)
def test_escapes_are_refused_even_with_allow_writes(dialect: str, sql: str) -> None:
    with pytest.raises(WriteRefused, match="refused"):
        check_sql(sql, dialect=dialect, allow_writes=True)


# (SAVEPOINT left this list with sqlglot 30.31, which reads it as a Command; without writes the security corpus
# shows it refused either way)
@pytest.mark.parametrize("sql", ["CHECKPOINT", "LISTEN x", "1 = 1"])
def test_non_statements_are_parse_errors(sql: str) -> None:
    with pytest.raises(SQLCheckError, match="not a statement"):
        check_sql(sql, dialect="postgres", allow_writes=True)


def test_every_denial_has_a_reason() -> None:
    for entry in [*DENIED_FUNCTIONS.values(), *DENIED_STATEMENTS.values()]:
        assert entry.reason.strip()
    assert all(name == name.lower() for name in DENIED_FUNCTIONS)


def test_all_errors_are_nl2sql_errors_with_one_line() -> None:
    for sql in ["DROP TABLE t", "SELECT 1; SELECT 2", "SELEC", "SELECT nme FROM singer"]:
        with pytest.raises(Nl2SqlError) as info:
            check_sql(sql, schema=SCHEMA)
        assert "\n" not in str(info.value)


# --- names --------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dialect, sql, message", [
    ("sqlite", "SELECT nme FROM singer", "no column nme in table singer; did you mean Name?"),
    ("sqlite", "SELECT name FROM singers", "no table singers; did you mean Singer?"),
    ("sqlite", ("SELECT T1.name FROM singer AS T1 JOIN concert AS T2 ON T1.singer_id = T2.singer_id "
                "WHERE T2.yeer = '2014'"), "no column yeer in table concert; did you mean Year?"),
    ("sqlite", "SELECT year FROM singer", "no column year in table singer; it is in concert.year"),
    ("sqlite", "SELECT name FROM singer GROUP BY name HAVING avg(agee) > 1", "did you mean Age?"),
    ("sqlite", "SELECT zzz FROM singer", "no column zzz in table singer; available columns: "),
    ("sqlite", "SELECT x.nam FROM (SELECT name FROM singer) AS x", "no column nam in table x; did you mean name?"),
    ("postgres", "SELECT name FROM singer WHERE singer_id IN (SELECT singer_idd FROM concert)", "singer_idd"),
    ("duckdb", "SELECT name FROM public.sngr", "no table sngr; did you mean Singer?"),
])
def test_unknown_names_are_refused_with_a_hint(dialect: str, sql: str, message: str) -> None:
    with pytest.raises(SQLCheckError) as info:
        check_sql(sql, dialect=dialect, schema=SCHEMA)
    assert message in str(info.value)


@pytest.mark.parametrize("dialect, sql", [
    ("sqlite", "SELECT name AS n FROM singer ORDER BY n"),
    ("sqlite", "SELECT count(*) AS c, age FROM singer GROUP BY age HAVING c > 1"),
    ("sqlite", "WITH old AS (SELECT name, age FROM singer WHERE age > 40) SELECT o.name FROM old AS o"),
    ("sqlite", "WITH c(x, y) AS (SELECT name, age FROM singer) SELECT x FROM c"),
    ("sqlite", "SELECT x.n FROM (SELECT name AS n FROM singer) AS x"),
    ("sqlite", "SELECT count(*) FROM (SELECT name FROM singer UNION SELECT year FROM concert)"),
    ("sqlite", "SELECT * FROM singer"),
    ("sqlite", "SELECT s.* FROM singer AS s"),
    ("sqlite", "SELECT COUNT(*) FROM singer"),
    ("sqlite", 'SELECT "Name", [Age], `Singer_ID` FROM "SINGER"'),
    ("sqlite", "select NAME from SINGER where AGE > 1"),
    ("sqlite", "SELECT name FROM singer WHERE name = \"France\""),  # SQLite: a double-quoted string
    ("sqlite", "SELECT name FROM singer AS s WHERE age > (SELECT avg(age) FROM singer WHERE singer_id = s.singer_id)"),
    ("sqlite", "SELECT j.value, s.name FROM singer AS s, json_each('[1]') AS j"),
    ("postgres", 'SELECT "Name" FROM "Singer"'),
    ("postgres", "SELECT s.name FROM singer s WHERE EXISTS (SELECT 1 FROM concert c WHERE c.singer_id = s.singer_id)"),
    ("postgres", "SELECT name, row_number() OVER (ORDER BY age) AS r FROM singer ORDER BY r"),
    ("postgres", "SELECT name FROM public.singer"),
    ("duckdb", "SELECT list_transform([age], x -> x + 1) FROM singer"),
    ("sqlite", "EXPLAIN QUERY PLAN SELECT name FROM singer"),
])
def test_valid_names_are_not_flagged(dialect: str, sql: str) -> None:
    checked = check_sql(sql, dialect=dialect, schema=SCHEMA)
    assert not [w for w in checked.warnings if "could not verify" in w]


def test_sqlite_double_quoted_string_warns() -> None:
    checked = check_sql('SELECT name FROM singer WHERE name = "Joe"', schema=SCHEMA)
    assert any("'Joe'" in w for w in checked.warnings)


def test_what_sqlglot_cannot_verify_degrades_to_a_warning() -> None:
    checked = check_sql("SELECT singer_id FROM singer JOIN concert ON 1 = 1", schema=SCHEMA)
    assert any("could not verify" in w for w in checked.warnings)


def test_tables_lists_tables_not_ctes() -> None:
    checked = check_sql("WITH x AS (SELECT singer_id FROM concert) SELECT name FROM singer JOIN x USING (singer_id)")
    assert sorted(checked.tables) == ["concert", "singer"]


def test_writes_skip_the_schema_check() -> None:
    checked = check_sql("CREATE TABLE brand_new (a INT)", schema=SCHEMA, allow_writes=True)
    assert checked.is_write and checked.tables == ["brand_new"]


# --- Spider gold SQL --------------------------------------------------------------------------------------------

def _spider_cases() -> list[tuple[str, str, dict[str, dict[str, str]]]]:
    """(sql, db_id, schema) for every dev gold query whose database is present."""
    if not (SPIDER / "dev_gold.sql").is_file() or not (SPIDER / "tables.json").is_file():
        pytest.skip(f"Spider data not found under {SPIDER}")
    schemas = {}
    for db in json.loads((SPIDER / "tables.json").read_text()):
        tables = db["table_names_original"]
        schema: dict[str, dict[str, str]] = {t: {} for t in tables}
        for (table, column), kind in zip(db["column_names_original"], db["column_types"]):
            if table >= 0:
                schema[tables[table]][column] = kind
        schemas[db["db_id"]] = schema
    cases = []
    for line in (SPIDER / "dev_gold.sql").read_text().splitlines():
        sql, db_id = line.split("\t")
        if (SPIDER / "database" / db_id).is_dir():
            cases.append((sql, db_id, schemas[db_id]))
    return cases


def test_spider_dev_gold_queries_all_pass() -> None:
    cases = _spider_cases()
    failures = []
    for sql, db_id, schema in cases:
        try:
            checked = check_sql(sql, dialect="sqlite", schema=schema)
        except SQLCheckError as error:
            failures.append(f"{db_id}: {sql} -> {error}")
        else:
            assert checked.kind in ("select", "union", "intersect", "except")
    assert len(cases) >= 972
    assert not failures, f"{len(failures)}/{len(cases)} gold queries refused:\n" + "\n".join(failures[:20])


def test_spider_dev_gold_with_a_misspelt_column_is_refused() -> None:
    """The acceptance above is not vacuous: misspelling any column of a gold query is caught."""
    from sqlglot import exp, parse_one

    missed = []
    for sql, db_id, schema in _spider_cases()[::5]:
        tree = parse_one(sql, read="sqlite")
        column = next((c for c in tree.find_all(exp.Column) if not c.this.quoted), None)
        if column is None:
            continue
        column.this.set("this", column.name + "_zz")
        try:
            check_sql(tree.sql("sqlite"), dialect="sqlite", schema=schema)
        except SQLCheckError as error:
            assert "_zz" in str(error)
        else:
            missed.append(f"{db_id}: {tree.sql('sqlite')}")
    assert not missed, "\n".join(missed[:20])
