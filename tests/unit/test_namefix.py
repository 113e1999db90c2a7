"""Deterministic name repair (``jupyter_nl2sql.pipeline.namefix``) and its use in ``Assistant.ask`` (ScriptedBackend:
prepared replies, plumbing only)."""

from __future__ import annotations

import pytest

from jupyter_nl2sql.pipeline.namefix import fix_names, squash

SCHEMA = {
    "pets": {"PetID": "INTEGER", "PetType": "TEXT", "weight": "REAL"},
    "singer": {"Singer_ID": "INTEGER", "Name": "TEXT", "Age": "INTEGER"},
    "singer_in_concert": {"Singer_ID": "INTEGER", "concert_ID": "INTEGER"},
    "stadium": {"Stadium_ID": "INTEGER", "Name": "TEXT"},
    "wiki": {"Season #": "TEXT", "U.S. viewers (million)": "REAL", "Original artist": "TEXT",
             "School/Club Team": "TEXT", "Pick": "INTEGER", "Title": "TEXT", "Top-25": "INTEGER",
             "Money ( $ )": "REAL", "Season": "TEXT"},
    "CountryLanguage": {"Language": "TEXT"},
}


def test_squash_ignores_case_spaces_and_punctuation() -> None:
    assert squash("Original_artist") == squash("original artist") == squash("OriginalArtist") == "originalartist"
    assert squash("Money ( $ )") == "money"


@pytest.mark.parametrize("sql, fixed", [
    ("SELECT pet_type, max(weight) FROM pets GROUP BY pet_type",
     "SELECT PetType, MAX(weight) FROM pets GROUP BY PetType"),
    ("SELECT count(*) FROM wiki WHERE Original_artist = 'anna'",
     "SELECT COUNT(*) FROM wiki WHERE \"Original artist\" = 'anna'"),
    ("SELECT Title FROM wiki WHERE Top_25 = 7", "SELECT Title FROM wiki WHERE \"Top-25\" = 7"),
    ("SELECT T2.Name FROM singer AS T1 JOIN singer_in_concert AS T2 ON T1.Singer_ID = T2.Singer_ID",
     "SELECT T1.Name FROM singer AS T1 JOIN singer_in_concert AS T2 ON T1.Singer_ID = T2.Singer_ID"),
    ("SELECT Pick FROM wiki WHERE School/Club Team = 'kentucky'",
     "SELECT Pick FROM wiki WHERE \"School/Club Team\" = 'kentucky'"),
    ("SELECT Season # FROM wiki WHERE U.S. viewers (million) = 3.35",
     "SELECT \"Season #\" FROM wiki WHERE \"U.S. viewers (million)\" = 3.35"),
    ("SELECT language FROM country_language", "SELECT language FROM CountryLanguage"),
    # a column written with its table's name in front (singular or plural)
    ("SELECT stadium_name FROM stadium", "SELECT stadium.Name FROM stadium"),
    ("SELECT T1.singer_name FROM singer AS T1", "SELECT T1.Name FROM singer AS T1"),
    ("SELECT pet_weight FROM pets", "SELECT pets.weight FROM pets"),
    ("SELECT COUNT(DISTINCT Original_artist) FROM wiki", "SELECT COUNT(DISTINCT \"Original artist\") FROM wiki"),
    ("SELECT MIN(Season #) FROM wiki", "SELECT MIN(\"Season #\") FROM wiki"),
    # parses, as a column with an alias, yet the header has a space
    ("SELECT Original artist FROM wiki", "SELECT \"Original artist\" FROM wiki"),
])
def test_unique_matches_are_rewritten(sql: str, fixed: str) -> None:
    result = fix_names(sql, SCHEMA)
    assert result.changed and result.sql == fixed


@pytest.mark.parametrize("sql", [
    "SELECT PetType FROM pets",  # nothing wrong
    # Name is on two other tables of the join: which one is meant is a guess, so it is left to the model
    ("SELECT T2.Name FROM singer AS T1 JOIN singer_in_concert AS T2 ON T1.Singer_ID = T2.Singer_ID "
     "JOIN stadium AS T3 ON T3.Stadium_ID = T1.Singer_ID"),
    "SELECT colour FROM pets",  # no match at all
    "SELECT * FROM pet",  # plural: not a squashed match
    "SELECT name FROM singer WHERE Age > (SELECT avg(weight) FROM pets WHERE pets.weight > singer.age)",
    "SELECT 'pet_type' FROM pets",  # a string, not a name
    "SELECT FROM WHERE",  # does not parse even with quoting: returned unchanged
])
def test_ambiguous_or_correct_sql_is_left_alone(sql: str) -> None:
    result = fix_names(sql, SCHEMA)
    assert not result.changed and result.sql == sql


def test_correlated_outer_column_is_not_renamed() -> None:
    sql = "SELECT Name FROM singer WHERE EXISTS (SELECT 1 FROM pets WHERE pets.weight = Age)"
    assert not fix_names(sql, SCHEMA).changed


def test_assistant_fixes_names_without_another_model_call(scripted, demo_sqlite_url: str) -> None:
    from jupyter_nl2sql.pipeline.assistant import Assistant

    backend = scripted("SELECT lastname FROM employees ORDER BY lastname LIMIT 3")
    ans = Assistant(generation_cache=False).ask("Three last names?", demo_sqlite_url)
    assert ans.ok and len(backend.calls) == 1
    assert ans.sql == "SELECT last_name FROM employees ORDER BY last_name LIMIT 3"
    assert list(ans.dataframe.columns) == ["last_name"] and len(ans.dataframe) == 3
    assert any("corrected the model's SQL" in w and "lastname → last_name" in w for w in ans.warnings)


def test_wrong_alias_is_moved_to_the_table_that_has_the_column(scripted, demo_sqlite_url: str) -> None:
    from jupyter_nl2sql.pipeline.assistant import Assistant

    backend = scripted("SELECT o.name, o.order_id FROM customers AS c JOIN orders AS o "
                       "ON c.customer_id = o.customer_id ORDER BY o.order_id LIMIT 2")
    ans = Assistant(generation_cache=False).ask("Customer of the first two orders?", demo_sqlite_url)
    assert ans.ok and len(backend.calls) == 1 and ans.sql.startswith("SELECT c.name, o.order_id")


def test_fix_names_off_asks_the_model_to_repair(scripted, demo_sqlite_url: str) -> None:
    from jupyter_nl2sql.pipeline.assistant import Assistant

    backend = scripted("SELECT lastname FROM employees", "SELECT last_name FROM employees")
    ans = Assistant(generation_cache=False, fix_names=False).ask("Last names?", demo_sqlite_url)
    assert ans.ok and len(backend.calls) == 2 and "no column lastname" in backend.calls[1][-1]["content"]


def test_a_fix_that_still_fails_reports_the_first_error(scripted, demo_sqlite_url: str) -> None:
    from jupyter_nl2sql.pipeline.assistant import Assistant

    scripted("SELECT lastname, shoe_size FROM employees")
    ans = Assistant(generation_cache=False, repair_rounds=0).ask("Last names?", demo_sqlite_url)
    assert not ans.ok and "no column lastname" in ans.error and ans.sql == "SELECT lastname, shoe_size FROM employees"


# --- missing joins along foreign keys -----------------------------------------------------------------------------

SHOP = {
    "orders": {"order_id": "INTEGER", "customer_id": "INTEGER", "employee_id": "INTEGER", "status": "TEXT"},
    "customers": {"customer_id": "INTEGER", "name": "TEXT", "country": "TEXT"},
    "employees": {"employee_id": "INTEGER", "last_name": "TEXT", "department_id": "INTEGER"},
    "departments": {"department_id": "INTEGER", "city": "TEXT"},
    "matches": {"home_id": "INTEGER", "away_id": "INTEGER", "score": "INTEGER"},
    "teams": {"team_id": "INTEGER", "nickname": "TEXT"},
}
SHOP_LINKS = [("orders", ["customer_id"], "customers", ["customer_id"]),
              ("orders", ["employee_id"], "employees", ["employee_id"]),
              ("employees", ["department_id"], "departments", ["department_id"]),
              ("matches", ["home_id"], "teams", ["team_id"]), ("matches", ["away_id"], "teams", ["team_id"])]


@pytest.mark.parametrize("sql, fixed", [
    # a column of a table the query does not join: joined along the one foreign key, bare columns qualified
    ("SELECT order_id FROM orders WHERE country = 'France'",
     ("SELECT orders.order_id FROM orders JOIN customers ON orders.customer_id = customers.customer_id "
      "WHERE customers.country = 'France'")),
    # on the wrong alias of a join: the missing table joins from the table that references it
    ("SELECT T1.order_id, T2.city FROM orders AS T1 JOIN employees AS T2 ON T1.employee_id = T2.employee_id",
     ("SELECT T1.order_id, departments.city FROM orders AS T1 JOIN employees AS T2 "
      "ON T1.employee_id = T2.employee_id JOIN departments ON T2.department_id = departments.department_id")),
    # a double-quoted string (SQLite reads it as one) does not stop the join
    ("SELECT order_id FROM orders WHERE country = \"France\"",
     ("SELECT orders.order_id FROM orders JOIN customers ON orders.customer_id = customers.customer_id "
      "WHERE customers.country = \"France\"")),
    # two hops, and an aggregate over the joined rows
    ("SELECT count(*) FROM orders WHERE city = 'Lyon'",
     ("SELECT COUNT(*) FROM orders JOIN employees ON orders.employee_id = employees.employee_id "
      "JOIN departments ON employees.department_id = departments.department_id WHERE departments.city = 'Lyon'")),
])
def test_missing_join_is_added_along_the_foreign_keys(sql: str, fixed: str) -> None:
    result = fix_names(sql, SHOP, links=SHOP_LINKS)
    assert result.sql == fixed and any(c.startswith("joined ") for c in result.changes)


@pytest.mark.parametrize("sql", [
    "SELECT * FROM orders WHERE country = 'France'",  # a join would widen SELECT *
    "SELECT score FROM matches WHERE nickname = 'Lions'",  # home or away: two keys to teams
    "SELECT order_id FROM orders WHERE shoe_size = 3",  # no table has it
    "SELECT a.order_id FROM orders AS a JOIN orders AS b ON a.order_id = b.order_id WHERE country = 'x'",  # self-join
])
def test_missing_join_is_not_guessed(sql: str) -> None:
    assert not fix_names(sql, SHOP, links=SHOP_LINKS).changed


def test_without_links_no_join_is_added() -> None:
    assert not fix_names("SELECT order_id FROM orders WHERE country = 'France'", SHOP).changed


def test_assistant_joins_the_missing_table(scripted, demo_sqlite_url: str) -> None:
    from jupyter_nl2sql.pipeline.assistant import Assistant

    backend = scripted("SELECT count(*) FROM orders WHERE country = 'Germany'")
    ans = Assistant(generation_cache=False).ask("How many orders from Germany?", demo_sqlite_url)
    assert ans.ok and len(backend.calls) == 1
    assert "JOIN customers ON orders.customer_id = customers.customer_id" in ans.sql
    want = Assistant(generation_cache=False).run_sql(
        "SELECT count(*) FROM orders o JOIN customers c USING (customer_id) WHERE c.country = 'Germany'",
        demo_sqlite_url).dataframe.iloc[0, 0]
    assert int(ans.dataframe.iloc[0, 0]) == want > 0
    assert any("joined customers" in w for w in ans.warnings)


# --- literal values in the database's spelling ---------------------------------------------------------------------

def _spelling():
    from jupyter_nl2sql.pipeline.values import ValueIndex

    index = ValueIndex.from_values([("wiki", "Season", "qf"), ("wiki", "Title", "1–6, 4–6"),
                                    ("wiki", "Title", "−16"), ("wiki", "Title", "16"),
                                    ("singer", "Name", "Joe Sharp"), ("stadium", "Name", "Joe sharp")])
    return index.spelling


@pytest.mark.parametrize("sql, fixed", [
    ("SELECT Pick FROM wiki WHERE Season = 'QF'", "SELECT Pick FROM wiki WHERE Season = 'qf'"),
    ("SELECT Pick FROM wiki WHERE Title IN ('1-6, 4-6', '-16')",
     "SELECT Pick FROM wiki WHERE Title IN ('1–6, 4–6', '−16')"),
    ("SELECT T1.Age FROM singer AS T1 JOIN stadium AS T2 ON 1 = 1 WHERE 'joe sharp' = T1.Name",
     "SELECT T1.Age FROM singer AS T1 JOIN stadium AS T2 ON 1 = 1 WHERE 'Joe Sharp' = T1.Name"),
])
def test_literal_is_respelled_as_the_column_spells_it(sql: str, fixed: str) -> None:
    from jupyter_nl2sql.pipeline.namefix import fix_values

    assert fix_values(sql, SCHEMA, _spelling()).sql == fixed


@pytest.mark.parametrize("sql", [
    "SELECT Pick FROM wiki WHERE Season = 'qf'",  # already the database's spelling
    "SELECT Pick FROM wiki WHERE Title = 'sixteen'",  # no such value
    "SELECT Age FROM singer JOIN stadium ON 1 = 1 WHERE Name = 'joe sharp'",  # Name of which table?
    "SELECT Pick FROM wiki WHERE Season LIKE 'QF%'",  # only equality and IN
])
def test_literal_is_not_guessed(sql: str) -> None:
    from jupyter_nl2sql.pipeline.namefix import fix_values

    assert not fix_values(sql, SCHEMA, _spelling()).changed


def test_assistant_respells_a_value_when_the_query_finds_nothing(scripted, demo_sqlite_url: str) -> None:
    from jupyter_nl2sql.pipeline.assistant import Assistant

    backend = scripted("SELECT count(*) AS n FROM customers WHERE country = 'united kingdom'")
    ans = Assistant(generation_cache=False).ask("How many customers in the UK?", demo_sqlite_url)
    assert ans.ok and len(backend.calls) == 1 and ans.sql.endswith("country = 'United Kingdom'")
    assert ans.dataframe["n"].iat[0] > 0 and any("'united kingdom' → 'United Kingdom'" in w for w in ans.warnings)
    backend = scripted("SELECT count(*) AS n FROM customers WHERE country = 'united kingdom'")
    ans = Assistant(generation_cache=False, fix_values=False, repair_empty=False).ask("How many?", demo_sqlite_url)
    assert ans.dataframe["n"].iat[0] == 0  # off: the query's own (empty) answer


def test_checker_refuses_a_column_of_a_table_the_query_does_not_join() -> None:
    from jupyter_nl2sql.errors import SQLCheckError
    from jupyter_nl2sql.pipeline.sqlcheck import check_sql

    with pytest.raises(SQLCheckError, match="table order_items is used in order_items.quantity but is not in the "
                                            "query's FROM or JOIN"):
        check_sql("SELECT name FROM customers ORDER BY SUM(order_items.quantity) DESC",
                  schema={"customers": {"name": "TEXT"}, "order_items": {"quantity": "INTEGER"}})
    check_sql("SELECT name FROM customers AS c WHERE EXISTS (SELECT 1 FROM orders WHERE orders.cid = c.id)",
              schema={"customers": {"name": "TEXT", "id": "INTEGER"}, "orders": {"cid": "INTEGER"}})


@pytest.mark.parametrize("sql, fixed", [
    # the qualifier is the other table: compared with the joined table's key
    ("SELECT c.name FROM customers AS c JOIN orders AS o ON c.customer_id = c.customer_id",
     "SELECT c.name FROM customers AS c JOIN orders AS o ON c.customer_id = o.customer_id"),
    # the qualifier is the joined table: the one other table linked to it
    ("SELECT c.name FROM customers AS c JOIN orders AS o ON o.customer_id = o.customer_id WHERE o.order_id > 3",
     "SELECT c.name FROM customers AS c JOIN orders AS o ON c.customer_id = o.customer_id WHERE o.order_id > 3"),
])
def test_join_condition_on_one_column_becomes_the_foreign_key(sql: str, fixed: str) -> None:
    result = fix_names(sql, SHOP, links=SHOP_LINKS)
    assert result.sql == fixed and result.changes[0].startswith("join condition ")


@pytest.mark.parametrize("sql", [
    "SELECT t.nickname FROM matches AS m JOIN teams AS t ON t.team_id = t.team_id",  # home or away: two keys
    "SELECT d.city FROM customers AS c JOIN departments AS d ON d.city = d.city",  # no key between them
    "SELECT c.name FROM customers AS c JOIN orders AS o ON c.customer_id = o.customer_id",  # nothing wrong
])
def test_join_condition_is_not_guessed(sql: str) -> None:
    assert not fix_names(sql, SHOP, links=SHOP_LINKS).changed


def test_assistant_mends_a_join_on_one_column(scripted, demo_sqlite_url: str) -> None:
    from jupyter_nl2sql.pipeline.assistant import Assistant

    backend = scripted("SELECT COUNT(*) FROM customers AS c JOIN orders AS o ON c.customer_id = c.customer_id "
                       "WHERE c.country = 'Germany'")
    ans = Assistant(generation_cache=False).ask("How many orders from Germany?", demo_sqlite_url)
    assert ans.ok and len(backend.calls) == 1 and "ON c.customer_id = o.customer_id" in ans.sql
    want = Assistant(generation_cache=False).run_sql(
        "SELECT count(*) FROM orders o JOIN customers c USING (customer_id) WHERE c.country = 'Germany'",
        demo_sqlite_url).dataframe.iloc[0, 0]
    assert int(ans.dataframe.iloc[0, 0]) == want > 0


def test_a_join_on_one_column_without_a_key_goes_to_the_repair_round(scripted, demo_sqlite_url: str) -> None:
    from jupyter_nl2sql.pipeline.assistant import Assistant

    backend = scripted("SELECT COUNT(*) FROM customers AS c JOIN products AS p ON p.product_id = p.product_id",
                       "SELECT COUNT(*) FROM customers")
    ans = Assistant(generation_cache=False).ask("How many customers?", demo_sqlite_url)
    assert ans.ok and len(backend.calls) == 2
    assert "compares a column with itself" in backend.calls[1][-1]["content"]
