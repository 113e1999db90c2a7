"""DataFrames and data files asked through an in-memory DuckDB database (``-c df``, ``-c frames``, ``-c x.csv``).

Plumbing only: the SQL is run with ``run_sql`` or written by the ScriptedBackend (no model behaviour is claimed).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from IPython.core.error import UsageError

pytest.importorskip("duckdb_engine")

from jupyter_nl2sql.connections import ConnectionManager, FrameConnection  # noqa: E402
from jupyter_nl2sql.errors import ConnectionFailed, Nl2SqlError  # noqa: E402
from jupyter_nl2sql.frames import file_reader, looks_like_path, sources_from_token, table_name  # noqa: E402
from jupyter_nl2sql.pipeline.assistant import Assistant  # noqa: E402
from jupyter_nl2sql.pipeline.schema import SchemaCache, render_schema  # noqa: E402
from jupyter_nl2sql.pipeline.execution import execute  # noqa: E402


@pytest.fixture()
def sales() -> pd.DataFrame:
    return pd.DataFrame({"country": ["France", "Spain", "France", "Italy"], "amount": [10.0, 20.0, 5.0, 7.5],
                         "day": pd.to_datetime(["2024-01-03", "2024-02-01", "2024-02-11", "2024-03-05"])})


@pytest.fixture()
def customers() -> pd.DataFrame:
    return pd.DataFrame({"country": ["France", "Spain", "Italy"], "customers": [3, 1, 2]})


@pytest.fixture()
def manager():
    m = ConnectionManager()
    yield m
    m.close_all()


@pytest.fixture()
def files(tmp_path: Path, sales: pd.DataFrame) -> dict[str, Path]:
    csv = tmp_path / "Sales 2024.csv"
    sales.to_csv(csv, index=False)
    js = tmp_path / "targets.json"
    js.write_text(json.dumps([{"country": "France", "target": 12}, {"country": "Spain", "target": 30}]))
    secret = tmp_path / "secret.csv"
    secret.write_text("password\nhunter2\n")
    return {"csv": csv, "json": js, "secret": secret}


def _rows(conn, sql: str) -> list[tuple]:
    return [tuple(r) for r in execute(conn, sql).dataframe.itertuples(index=False)]


# -- names and parsing ---------------------------------------------------------------------------------------------
def test_names_and_file_types() -> None:
    assert table_name("Sales 2024") == "Sales_2024" and table_name("2024-q1") == "t_2024_q1"
    assert file_reader("x.parquet") == "read_parquet" and file_reader("y.csv.gz") == "read_csv_auto"
    assert file_reader("shop.db") is None
    assert looks_like_path("data/sales.csv") and not looks_like_path("sales")


def test_a_token_that_is_not_about_frames_is_left_to_the_manager() -> None:
    assert sources_from_token("sqlite:///shop.db", {}) is None
    assert sources_from_token("warehouse", {"warehouse": 1}) is None  # a variable that is not a DataFrame
    assert sources_from_token("warehouse", {}) is None  # perhaps an alias or a connections.ini section


# -- asking DataFrames -------------------------------------------------------------------------------------------
def test_a_dataframe_variable_is_a_table_with_types_and_sample_rows(manager, sales) -> None:
    conn = manager.resolve("sales", {"sales": sales})
    assert isinstance(conn, FrameConnection) and conn.dialect == "duckdb" and conn.display_url == "frames:sales"
    schema = SchemaCache().get(conn, sample_rows=2)
    assert [t.name for t in schema.tables] == ["sales"]  # the internal registration is not listed
    assert [(c.name, c.type) for c in schema.tables[0].columns] == [
        ("country", "VARCHAR"), ("amount", "FLOAT"), ("day", "TIMESTAMP")]
    text = render_schema(schema, sample_rows=2)
    assert "CREATE TABLE sales" in text and "France\t10.0\t2024-01-03" in text
    assert _rows(conn, "SELECT country, SUM(amount) AS total FROM sales GROUP BY 1 ORDER BY 1") == [
        ("France", 15.0), ("Italy", 7.5), ("Spain", 20.0)]


def test_two_dataframes_join(manager, sales, customers) -> None:
    conn = manager.resolve("sales,customers", {"sales": sales, "customers": customers})
    assert sorted(t.name for t in SchemaCache().get(conn).tables) == ["customers", "sales"]
    assert _rows(conn, "SELECT s.country, SUM(s.amount) / MAX(c.customers) AS per FROM sales s "
                       "JOIN customers c USING (country) WHERE s.country = 'France' GROUP BY 1") == [("France", 5.0)]


def test_frames_keyword_takes_every_dataframe_but_underscored_names(manager, sales, customers) -> None:
    namespace = {"sales": sales, "customers": customers, "_": sales, "_3": customers, "n": 3}
    conn = manager.resolve("frames", namespace)
    assert conn.frames.names == ["customers", "sales"]
    with pytest.raises(ConnectionFailed, match="no pandas DataFrame") as err:
        manager.resolve("frames", {"n": 3, "_": sales})
    assert "\n" not in str(err.value)


def test_a_variable_named_frames_wins_over_the_keyword(manager, sales, customers) -> None:
    conn = manager.resolve("frames", {"frames": sales, "customers": customers})
    assert conn.frames.names == ["frames"]
    conn = manager.resolve("frames", {"frames": {"a": sales, "b": customers}, "customers": customers})
    assert conn.frames.names == ["a", "b"]


def test_python_api_accepts_a_dataframe_a_dict_and_a_path(manager, sales, customers, files) -> None:
    assistant = Assistant(connections=manager)
    answer = assistant.run_sql("SELECT COUNT(*) AS n FROM df", sales)  # a bare DataFrame is the table df
    assert answer.dataframe["n"].iat[0] == 4
    answer = assistant.run_sql("SELECT SUM(customers) AS n FROM c", {"s": sales, "c": customers})
    assert answer.dataframe["n"].iat[0] == 6
    answer = assistant.run_sql("SELECT COUNT(*) AS n FROM Sales_2024", files["csv"])
    assert answer.dataframe["n"].iat[0] == 4


def test_ask_on_a_dataframe_from_python(manager, sales, scripted) -> None:
    backend = scripted("SELECT country, SUM(amount) AS total FROM sales GROUP BY country ORDER BY total DESC")
    answer = Assistant(connections=manager).ask("Total amount per country?", {"sales": sales})
    assert answer.error is None and answer.dataframe["country"].tolist() == ["Spain", "France", "Italy"]
    prompt = backend.calls[0][-1]["content"] + backend.calls[0][0]["content"]
    assert "CREATE TABLE sales" in prompt and "France" in prompt  # the table and its sample rows reach the prompt


# -- a changed frame is seen; stale schema states are never used ---------------------------------------------------
def test_new_columns_change_the_key_and_the_schema(manager, sales) -> None:
    cache = SchemaCache()
    conn = manager.resolve("sales", {"sales": sales})
    key, fingerprint = conn.key, cache.get(conn).fingerprint
    assert manager.resolve("sales", {"sales": sales}) is conn  # same frame, same shape: same connection
    sales["amount"] = sales["amount"].astype("int64")  # a dtype changed in place
    again = manager.resolve("sales", {"sales": sales})
    assert again.key != key and cache.get(again).fingerprint != fingerprint
    assert cache.get(again).tables[0].column("amount").type == "BIGINT"
    sales["vat"] = sales["amount"] * 0.2  # a column added in place
    third = manager.resolve("sales", {"sales": sales})
    assert "vat" in [c.name for c in cache.get(third).tables[0].columns]
    assert _rows(third, "SELECT MAX(vat) FROM sales") == [(4.0,)]
    assert conn not in manager.connections() and again not in manager.connections()  # the old ones are closed


def test_a_frame_replaced_under_the_same_name_is_seen(manager, sales) -> None:
    namespace = {"sales": sales}
    conn = manager.resolve("sales", namespace)
    namespace["sales"] = sales[sales["country"] == "France"]  # same columns and dtypes, another object
    assert _rows(manager.resolve("sales", namespace), "SELECT COUNT(*) FROM sales") == [(2,)]
    assert manager.resolve(None, namespace) is manager.current  # the current connection is read again...
    namespace["sales"] = sales.head(1)
    assert _rows(manager.resolve(None, namespace), "SELECT COUNT(*) FROM sales") == [(1,)]  # ...by its name
    assert conn.key != manager.current.key


def test_a_value_set_in_place_is_seen(manager, sales) -> None:
    conn = manager.resolve("sales", {"sales": sales})
    assert _rows(conn, "SELECT MAX(amount) FROM sales") == [(20.0,)]
    sales.loc[0, "amount"] = 99.0
    assert _rows(conn, "SELECT MAX(amount) FROM sales") == [(99.0,)]


# -- files ---------------------------------------------------------------------------------------------------------
def test_csv_and_json_files_are_views_named_after_the_file(manager, files, sales) -> None:
    conn = manager.resolve(f"{files['csv']},{files['json']},sales", {"sales": sales})
    assert conn.frames.names == ["Sales_2024", "targets", "sales"]
    schema = SchemaCache().get(conn)
    assert {t.name for t in schema.tables} == {"Sales_2024", "targets", "sales"}
    assert _rows(conn, "SELECT t.country, SUM(s.amount) FROM Sales_2024 s JOIN targets t USING (country) "
                       "GROUP BY 1 ORDER BY 1") == [("France", 15.0), ("Spain", 20.0)]


def test_parquet_and_glob(manager, tmp_path, sales) -> None:
    import duckdb

    for i in (1, 2):
        duckdb.sql(f"COPY (SELECT {i} AS part, 'x' AS tag) TO '{tmp_path / f'part_{i}.parquet'}'")
    conn = manager.resolve(str(tmp_path / "part_*.parquet"), {})
    assert conn.frames.names == ["part"]
    assert _rows(conn, "SELECT SUM(part) FROM part") == [(3,)]


def test_a_rewritten_file_gets_a_new_key(manager, files) -> None:
    conn = manager.resolve(str(files["json"]), {})
    files["json"].write_text(json.dumps([{"country": "Peru", "target": 1, "note": "new"}]))
    again = manager.resolve(str(files["json"]), {})
    assert again.key != conn.key and [c.name for c in SchemaCache().get(again).tables[0].columns] == [
        "country", "target", "note"]


# -- read-only: other files cannot be read, nothing can be written ------------------------------------------------
@pytest.mark.parametrize("sql", [
    "SELECT * FROM read_csv_auto('{secret}')",
    "SELECT * FROM read_text('{secret}')",
    "SELECT * FROM glob('{dir}/*')",
])
def test_the_sql_reads_no_other_file(manager, files, sql) -> None:
    conn = manager.resolve(str(files["csv"]), {})
    sql = sql.format(secret=files["secret"], dir=files["secret"].parent)
    # below the SQL check: the engine's statement guard (file functions) or DuckDB's own configuration
    with conn.connect() as c, pytest.raises(Exception, match="(?i)^refused: |disabled by configuration|permission"):
        c.exec_driver_sql(sql).fetchall()
    with pytest.raises(Nl2SqlError):
        Assistant(connections=manager).run_sql(sql, conn)


def test_nothing_is_written_even_with_allow_writes(manager, files) -> None:
    conn = manager.resolve(str(files["csv"]), {})
    before = files["csv"].read_text()
    assistant = Assistant(connections=manager)
    for sql in (f"COPY (SELECT 1 AS x) TO '{files['csv']}' (USE_TMP_FILE false)", "CREATE TABLE t AS SELECT 1 AS x"):
        with pytest.raises(Nl2SqlError, match="(?i)read-only|refused|not allowed"):
            assistant.run_sql(sql, conn, allow_writes=True)
    with conn.connect() as c:  # the session is a read-only transaction too
        with pytest.raises(Exception, match="(?i)read-only"):
            c.exec_driver_sql("CREATE TABLE t AS SELECT 1 AS x")
    with pytest.raises(ConnectionFailed, match="read-only"):
        with conn.connect(allow_writes=True):
            pass
    assert files["csv"].read_text() == before


def test_a_query_cannot_read_a_kernel_variable_by_its_name(manager, sales) -> None:
    secret_frame = pd.DataFrame({"password": ["hunter2"]})  # noqa: F841 - what a replacement scan would find
    conn = manager.resolve("sales", {"sales": sales})
    raw = conn.engine.raw_connection()  # DuckDB's own execute, called from this frame (where secret_frame lives)
    try:
        assert raw.execute("SELECT COUNT(*) FROM sales").fetchall() == [(4,)]
        with pytest.raises(Exception, match="(?i)does not exist"):
            raw.execute("SELECT * FROM secret_frame").fetchall()
    finally:
        raw.close()


# -- bad input: one line each --------------------------------------------------------------------------------------
@pytest.mark.parametrize("token, namespace, fragment", [
    ("nosuch", {}, "unknown connection 'nosuch'"),
    ("sales,nosuch", "sales", "no variable 'nosuch'"),
    ("numbers", {"numbers": [1, 2]}, "neither a SQLAlchemy Engine nor a pandas DataFrame"),
    ("sales,numbers", "sales+numbers", "'numbers' is a list, not a pandas DataFrame"),
    ("missing.csv", {}, "no such file: missing.csv"),
    ("shop.xlsx", "xlsx", "unsupported file type '.xlsx'"),
    ("frames", {"n": 1}, "no pandas DataFrame"),
    ("nothing_*.csv", {}, "no file matches"),
    ("bad.parquet", "bad", "cannot read bad.parquet"),
])
def test_bad_input_is_one_line(manager, sales, tmp_path, monkeypatch, token, namespace, fragment) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "shop.xlsx").write_text("not really")
    (tmp_path / "bad.parquet").write_text("not parquet")
    namespace = {"sales": {"sales": sales}, "sales+numbers": {"sales": sales, "numbers": [1]},
                 "xlsx": {}, "bad": {}}.get(namespace, namespace) if isinstance(namespace, str) else namespace
    with pytest.raises(ConnectionFailed) as err:
        manager.resolve(token, namespace)
    assert fragment in str(err.value) and "\n" not in str(err.value)


# -- the magic ----------------------------------------------------------------------------------------------------
def test_magic_asks_a_dataframe_and_files(ip, cell, scripted, sales, files) -> None:
    ip.user_ns["sales"] = sales
    scripted("SELECT country, SUM(amount) AS total FROM sales GROUP BY country ORDER BY total DESC")
    df = cell("%%nl2sql -c sales\nTotal amount per country?")
    assert df["country"].tolist() == ["Spain", "France", "Italy"]
    scripted("SELECT COUNT(*) AS n FROM sales")
    ip.user_ns["sales"] = sales.head(2)  # the current connection is read again by its variable
    assert cell("%nl2sql How many sales?")["n"].iat[0] == 2
    scripted("SELECT COUNT(*) AS n FROM targets")
    assert cell(f"%nl2sql -c {files['json']} How many targets?")["n"].iat[0] == 2


@pytest.mark.parametrize("source, fragment", [
    ("%%nl2sql -c nosuch\nHow many?", "unknown connection 'nosuch'"),
    ("%%nl2sql -c numbers\nHow many?", "neither a SQLAlchemy Engine nor a pandas DataFrame"),
    ("%%nl2sql -c missing.csv\nHow many?", "no such file"),
    ("%%nl2sql -c notes.docx\nHow many?", "unsupported file type"),
    ("%%nl2sql -c frames\nHow many?", "no pandas DataFrame"),
])
def test_magic_bad_input_is_a_usage_error(ip, cell, scripted, tmp_path, monkeypatch, source, fragment) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.docx").write_text("x")
    scripted("SELECT 1")
    ip.user_ns["numbers"] = [1, 2, 3]
    for name, value in list(ip.user_ns.items()):  # -c frames: no DataFrame in this namespace
        if isinstance(value, pd.DataFrame) and not name.startswith("_"):
            del ip.user_ns[name]
    with pytest.raises(UsageError, match=fragment) as err:
        cell(source)
    assert "\n" not in str(err.value)


def test_duckdb_administration_is_refused_below_the_sql_check(manager, sales, tmp_path) -> None:
    """The engine-level guard of every DuckDB engine the library opens covers DataFrame connections too."""
    from jupyter_nl2sql.errors import SQLCheckError

    conn = manager.resolve(sales)
    with pytest.raises(SQLCheckError, match="^refused: enable_logging"):
        with conn.connect() as session:
            session.exec_driver_sql(f"SELECT * FROM enable_logging(storage = 'file', storage_path = '{tmp_path}/logs')")
    assert not list(tmp_path.iterdir())
    assert execute(conn, "SELECT count(*) AS n FROM df").dataframe["n"].iat[0] == len(sales)  # a bare frame: df
