"""Unit tests for :mod:`jupyter_nl2sql.pipeline.sqlcheck`: policy, parsing, single statement, names, Spider gold SQL."""

from __future__ import annotations

import json

import pytest

from benchmarks.runner import default_data_dir
from jupyter_nl2sql.errors import ConfigError, Nl2SqlError, SQLCheckError, WriteRefused
from jupyter_nl2sql.pipeline.sqlcheck import DENIED_FUNCTIONS, DENIED_STATEMENTS, check_sql
from jupyter_nl2sql.pipeline.sqlfunctions import ALLOWED_FUNCTIONS, STATEMENT_KEYWORDS

SPIDER = default_data_dir() / "spider"  # $NL2SQL_BENCH_DATA, else ../shared/data next to the repository
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
    ("postgres", "SELECT set_config('search_path', 'evil', false)"),
    ("postgres", "SELECT nextval('s')"),
    ("postgres", "COMMENT ON TABLE t IS 'x'"),
    ("postgres", "REFRESH MATERIALIZED VIEW v"),
    ("duckdb", "CALL pragma_version()"),
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
    ("sqlite", "PRAGMA writable_schema = 1"),
    ("postgres", "SET search_path = evil"),
    ("postgres", "SET ROLE postgres"),
    ("duckdb", "SET memory_limit = '1GB'"),
    ("sqlite", "VACUUM INTO '/tmp/copy.db'"),
]


@pytest.mark.parametrize("dialect, sql", ESCAPES)
def test_escapes_are_refused_even_with_allow_writes(dialect: str, sql: str) -> None:
    with pytest.raises(WriteRefused, match="refused"):
        check_sql(sql, dialect=dialect, allow_writes=True)


# (SAVEPOINT, CHECKPOINT and LISTEN left this list: they are refused by their keyword, with a reason)
@pytest.mark.parametrize("sql", ["FROBNICATE x", "1 = 1"])
def test_non_statements_are_parse_errors(sql: str) -> None:
    with pytest.raises(SQLCheckError, match="not a statement"):
        check_sql(sql, dialect="postgres", allow_writes=True)


def test_every_denial_has_a_reason() -> None:
    for entry in [*DENIED_FUNCTIONS.values(), *DENIED_STATEMENTS.values(), *STATEMENT_KEYWORDS.values()]:
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


# --- the allow-list (issue 18) ----------------------------------------------------------------------------------

PG_SCHEMA = {"users": {"id": "INT", "name": "TEXT"}, "orders": {"id": "INT", "status": "TEXT", "amount": "INT"},
             "my:table": {"a": "INT"}}

#: Honest exploration that used to be refused: none may be refused now (with the schema given, as run_sql does).
HONEST = [
    ("sqlite", "WITH RECURSIVE x(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM x WHERE n < 5) SELECT n FROM x"),
    ("postgres", "WITH RECURSIVE x(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM x WHERE n < 5) SELECT n FROM x"),
    ("duckdb", "WITH RECURSIVE x(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM x WHERE n < 5) SELECT n FROM x"),
    ("sqlite", "VALUES (1), (2)"), ("postgres", "VALUES (1), (2)"), ("duckdb", "VALUES (1), (2)"),
    ("postgres", "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"),
    ("duckdb", "SELECT table_name FROM information_schema.tables"),
    ("postgres", "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'users'"),
    ("sqlite", "SELECT rowid, * FROM users"), ("sqlite", "SELECT u.rowid FROM users AS u"),
    ("sqlite", "PRAGMA table_info(users)"), ("sqlite", "PRAGMA table_info('users')"), ("sqlite", "PRAGMA user_version"),
    ("sqlite", "SELECT * FROM pragma_table_info('users')"),
    ("sqlite", "SELECT name FROM sqlite_master WHERE type = 'table'"),
    ("postgres", "SELECT ctid, * FROM users"), ("postgres", "SELECT xmin, id FROM users"),
    ("postgres", "SELECT relname FROM pg_catalog.pg_class WHERE relkind = 'r'"),
    ("postgres", "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"),
    ("postgres", "SELECT pg_catalog.lower(name) FROM users"),
    ("postgres", "SELECT pg_size_pretty(pg_total_relation_size('users'))"),
    ("postgres", "SELECT * FROM generate_series(1, 3)"),
    ("duckdb", "DESCRIBE users"), ("duckdb", "DESCRIBE SELECT * FROM users"), ("duckdb", "SUMMARIZE users"),
    ("duckdb", "SUMMARIZE SELECT id FROM orders"), ("duckdb", "SHOW TABLES"), ("duckdb", "SHOW ALL TABLES"),
    ("duckdb", "SHOW users"), ("duckdb", "PIVOT orders ON status USING sum(amount)"),
    ("duckdb", "SELECT * FROM duckdb_tables()"), ("duckdb", "SELECT table_name FROM duckdb_tables"),
    ("duckdb", "PRAGMA show_tables"), ("duckdb", "PRAGMA table_info('users')"),
    ("duckdb", "SELECT rowid, id FROM users"), ("duckdb", "SELECT * FROM range(3)"),
    ("duckdb", "SELECT list_transform([1, 2], x -> x + 1)"), ("duckdb", "SELECT histogram(status) FROM orders"),
    ("duckdb", 'SELECT * FROM "my:table"'), ("sqlite", 'SELECT * FROM "my:table"'),
    ("postgres", 'SELECT * FROM "my:table"'),
    ("postgres", "SHOW search_path"),
    ("sqlite", "SELECT glob('a*', name) FROM users"),
]


@pytest.mark.parametrize("dialect, sql", HONEST)
def test_honest_exploration_is_not_refused(dialect: str, sql: str) -> None:
    checked = check_sql(sql, dialect=dialect, schema=PG_SCHEMA)
    assert not checked.is_write


#: Statements whose refusal used to be a parse error or "sqlglot does not understand": each now says why.
REASONS = [
    ("duckdb", "EXPORT DATABASE '/tmp/x'", "EXPORT DATABASE writes files"),
    ("postgres", "NOTIFY channel", "NOTIFY sends messages to other sessions"),
    ("postgres", "CHECKPOINT", "CHECKPOINT forces a write"),
    ("duckdb", "CHECKPOINT", "CHECKPOINT forces a write"),
    ("sqlite", "REPLACE INTO users VALUES (1, 'x')", "REPLACE INTO changes data"),
    ("postgres", "LOCK TABLE users", "LOCK takes table locks"),
    ("sqlite", "VACUUM", "VACUUM rewrites the database"),
    ("duckdb", "CALL pragma_version()", "CALL runs a procedure"),
    ("postgres", "SET ROLE postgres", "SET ROLE changes the privileges of the pooled session"),
    ("postgres", "TRUNCATE users", "TRUNCATE deletes every row"),
    ("postgres", "LISTEN channel", "LISTEN subscribes"),
    ("postgres", "SAVEPOINT s", "SAVEPOINT controls transactions"),
]


@pytest.mark.parametrize("dialect, sql, reason", REASONS)
def test_refusals_name_the_reason_in_one_line(dialect: str, sql: str, reason: str) -> None:
    with pytest.raises(WriteRefused) as info:
        check_sql(sql, dialect=dialect)
    message = str(info.value)
    assert reason in message and "\n" not in message and "TRUNCATETABLE" not in message
    assert message.startswith("refused: ")


#: A CTE named like a catalog, or a qualifier, cannot hide a catalog read; administration is never unlocked.
NEVER = [
    ("postgres", "WITH pg_authid AS (SELECT * FROM pg_catalog.pg_authid) SELECT * FROM pg_authid", "password"),
    ("postgres", "WITH a AS (SELECT rolpassword FROM pg_authid), pg_authid AS (SELECT 1) SELECT * FROM a",
     "password"),
    ("postgres", "SELECT rolpassword FROM pg_shadow", "password"),
    ("postgres", "WITH pg_stat_activity AS (SELECT * FROM pg_catalog.pg_stat_activity) "
                 "SELECT query FROM pg_stat_activity", "other sessions"),
    ("postgres", "SELECT * FROM pg_stat_activity", "other sessions"),
    ("postgres", "SELECT * FROM (SELECT * FROM pg_catalog.pg_authid) AS pg_roles", "password"),
    ("postgres", "SELECT pg_catalog.pg_stat_get_backend_activity(1)", "other sessions"),
    ("postgres", "SELECT * FROM pg_create_physical_replication_slot('s')", "replication slot"),
    ("postgres", "SELECT pg_drop_replication_slot('s')", "replication slot"),
    ("postgres", "SELECT pg_stat_reset()", "resets server statistics"),
    ("postgres", "SELECT pg_stat_reset_shared('bgwriter')", "resets server statistics"),
    ("postgres", "SELECT pg_backup_start('x')", "backup mode"),
    ("postgres", "SELECT pg_catalog.pg_read_file('/etc/passwd')", "server files"),
    ("postgres", "SELECT pg_some_future_admin_function()", "not a read-only PostgreSQL function"),
    ("postgres", "SELECT * FROM pg_file_settings", "configuration files"),
    ("postgres", "INSERT INTO users SELECT 1, rolpassword FROM pg_authid", "password"),
    ("duckdb", "SELECT * FROM enable_profiling()", "profiling"),
    ("duckdb", "SELECT * FROM enable_logging()", "profiling and logging"),
    ("duckdb", "SELECT * FROM duckdb_logs", "log"),
    ("duckdb", "PRAGMA enable_profiling", "PRAGMA enable_profiling"),
    ("duckdb", "SET profiling_output = '/tmp/x'", None),
    ("duckdb", "SELECT * FROM histogram('users', 'id')", "table named by a string"),
    ("duckdb", "SELECT * FROM 'data.csv'", "file or URL"),
    ("duckdb", "SELECT * FROM some_extension_scan('x')", "not a read-only DuckDB function"),
    ("sqlite", "WITH sqlite_master AS (SELECT 1) SELECT load_extension('x') FROM sqlite_master", "native code"),
    ("sqlite", "SELECT sqlite_log(1, 'x')", "log"),
]


@pytest.mark.parametrize("dialect, sql, reason", NEVER)
def test_catalog_shadowing_and_administration_are_refused_even_with_writes(dialect: str, sql: str,
                                                                           reason: str | None) -> None:
    with pytest.raises(WriteRefused) as info:
        check_sql(sql, dialect=dialect, schema=PG_SCHEMA, allow_writes=reason is not None)
    assert reason is None or reason in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("dialect, sql", [
    ("postgres", "SELECT nextval('s')"), ("postgres", "SELECT set_config('a.b', 'c', false)"),
    ("postgres", "SELECT pg_advisory_lock(1)"), ("postgres", "SELECT public.my_function(1)"),
    ("postgres", "SELECT my_function(1)"), ("duckdb", "SELECT nextval('s')"), ("sqlite", "SELECT my_udf(1)"),
])
def test_writes_and_unknown_functions_need_allow_writes(dialect: str, sql: str) -> None:
    with pytest.raises(WriteRefused, match="--allow-writes"):
        check_sql(sql, dialect=dialect)
    assert check_sql(sql, dialect=dialect, allow_writes=True).is_write


def test_cte_names_resolve_as_the_database_does() -> None:
    # the main query sees its CTEs; a CTE body sees only the earlier ones (PostgreSQL without RECURSIVE)
    assert check_sql("WITH pg_authid AS (SELECT 1 AS a) SELECT a FROM pg_authid", dialect="postgres").tables == []
    with pytest.raises(WriteRefused, match="password"):
        check_sql("WITH x AS (SELECT * FROM pg_authid), pg_authid AS (SELECT 1) SELECT * FROM x", dialect="postgres")
    assert check_sql("WITH RECURSIVE x AS (SELECT * FROM pg_authid), pg_authid AS (SELECT 1 AS a) "
                     "SELECT * FROM x", dialect="postgres").tables == []
    with pytest.raises(WriteRefused, match="credentials"):  # DuckDB: no forward references, even with RECURSIVE
        check_sql("WITH RECURSIVE x AS (SELECT * FROM duckdb_secrets), duckdb_secrets AS (SELECT 1) SELECT * FROM x",
                  dialect="duckdb")
    assert check_sql("WITH RECURSIVE x AS (SELECT * FROM duckdb_secrets), duckdb_secrets AS (SELECT 1) "
                     "SELECT * FROM x", dialect="sqlite").tables == []  # SQLite: every CTE of the WITH is visible


def test_allow_lists_are_large_and_exclude_the_dangerous() -> None:
    assert {"count", "lower", "substr", "json_extract", "strftime"} <= ALLOWED_FUNCTIONS["sqlite"]
    assert {"count", "lower", "date_trunc", "list_transform", "duckdb_tables"} <= ALLOWED_FUNCTIONS["duckdb"]
    assert {"count", "lower", "date_trunc", "jsonb_build_object", "pg_get_viewdef"} <= ALLOWED_FUNCTIONS["postgres"]
    assert not {"load_extension", "fts3_tokenizer"} & ALLOWED_FUNCTIONS["sqlite"]
    assert not {"read_csv", "enable_profiling", "checkpoint", "query", "nextval", "glob"} & ALLOWED_FUNCTIONS["duckdb"]
    assert not {"pg_read_file", "pg_stat_reset", "pg_create_physical_replication_slot", "pg_backup_start",
                "pg_terminate_backend", "query_to_xml", "nextval", "pg_sleep", "lo_import", "set_config",
                "pg_stat_get_activity", "pg_stat_get_backend_activity", "ts_stat"} & ALLOWED_FUNCTIONS["postgres"]
    assert all(len(ALLOWED_FUNCTIONS[d]) > 150 for d in ALLOWED_FUNCTIONS)


@pytest.mark.parametrize("sql", [
    "SELECT c.name FROM customers AS c JOIN orders AS o ON c.customer_id = c.customer_id",
    "SELECT c.name FROM customers AS c JOIN orders AS o ON o.order_id > 1 AND O.Customer_ID = o.customer_id",
    "SELECT name FROM customers JOIN orders ON customer_id = customer_id",
])
def test_a_join_that_compares_a_column_with_itself_is_refused(sql: str) -> None:
    with pytest.raises(SQLCheckError, match="compares a column with itself"):
        check_sql(sql)


def test_a_join_on_two_columns_and_a_where_on_one_are_accepted() -> None:
    check_sql("SELECT c.name FROM customers AS c JOIN orders AS o ON c.customer_id = o.customer_id "
              "WHERE c.name = c.name")
