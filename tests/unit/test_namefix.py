"""Deterministic name repair (``jupyter_nl2sql.namefix``) and its use in ``Assistant.ask`` (ScriptedBackend:
prepared replies, plumbing only)."""

from __future__ import annotations

import pytest

from jupyter_nl2sql.namefix import fix_names, squash

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
    from jupyter_nl2sql.assistant import Assistant

    backend = scripted("SELECT lastname FROM employees ORDER BY lastname LIMIT 3")
    ans = Assistant(generation_cache=False).ask("Three last names?", demo_sqlite_url)
    assert ans.ok and len(backend.calls) == 1
    assert ans.sql == "SELECT last_name FROM employees ORDER BY last_name LIMIT 3"
    assert list(ans.dataframe.columns) == ["last_name"] and len(ans.dataframe) == 3
    assert any("corrected names" in w and "lastname → last_name" in w for w in ans.warnings)


def test_wrong_alias_is_moved_to_the_table_that_has_the_column(scripted, demo_sqlite_url: str) -> None:
    from jupyter_nl2sql.assistant import Assistant

    backend = scripted("SELECT o.name, o.order_id FROM customers AS c JOIN orders AS o "
                       "ON c.customer_id = o.customer_id ORDER BY o.order_id LIMIT 2")
    ans = Assistant(generation_cache=False).ask("Customer of the first two orders?", demo_sqlite_url)
    assert ans.ok and len(backend.calls) == 1 and ans.sql.startswith("SELECT c.name, o.order_id")


def test_fix_names_off_asks_the_model_to_repair(scripted, demo_sqlite_url: str) -> None:
    from jupyter_nl2sql.assistant import Assistant

    backend = scripted("SELECT lastname FROM employees", "SELECT last_name FROM employees")
    ans = Assistant(generation_cache=False, fix_names=False).ask("Last names?", demo_sqlite_url)
    assert ans.ok and len(backend.calls) == 2 and "no column lastname" in backend.calls[1][-1]["content"]


def test_a_fix_that_still_fails_reports_the_first_error(scripted, demo_sqlite_url: str) -> None:
    from jupyter_nl2sql.assistant import Assistant

    scripted("SELECT lastname, shoe_size FROM employees")
    ans = Assistant(generation_cache=False, repair_rounds=0).ask("Last names?", demo_sqlite_url)
    assert not ans.ok and "no column lastname" in ans.error and ans.sql == "SELECT lastname, shoe_size FROM employees"
