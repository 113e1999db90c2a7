"""Questions that name a table the database does not have: said before any model is asked.

"How many unicorns are in the zoo table?" on a database without anything like a zoo table cannot be answered
from it; a model asked anyway writes a count from some other table.  :func:`missing_tables` finds the tables a
question names explicitly ("the zoo table", "the TV Channel table", "a table called zoo") and keeps those that are
unlike every table *and* column of the schema (same letters up to case, spacing and underscores, a plural, one
name inside the other, or a close spelling all count as alike), so a question that names the schema's things in
its own words is never refused.  It is deliberately narrow: only an explicit "... table" is read.

:func:`missing_things` reads the question's subject instead — the thing counted, listed or averaged ("How many
unicorns…", "List the spaceships…", "the average salary of the astronauts", "refunds per month") and the attribute
asked for ("the salary of each journalist", "the discount on each order", "average rent per dorm") — and keeps one
that is a thing one keeps rows of (an attribute asked for, not under an aggregate, need not be: "the price of each
product") and none of whose nouns the database's :class:`~jupyter_nl2sql.pipeline.lexicon.SchemaLexicon` knows (no
table, column, comment, sample or indexed value, close spelling, plural or WordNet relative), or one whose modifier
that can only be a noun is unknown ("loyalty points" where points are known); a compound WordNet has as one noun
("fire station") is judged as one, and a subject ends at its verb ("how many cashiers work…").  Generic nouns
("number", "name", "records", "people"), words of the analysis ("average", "year"), money computed from prices
("revenue"), names written with a capital and quoted text are never missing.

:func:`missing_kinds` reads what a question word asks for — "When…" and "what year" a date or time, "Where…" a
place, "how old" an age, "born" a birth date, "how tall" a height, "how heavy", "how far", "how fast", "how long",
"how much … cost" money — and keeps a kind that no table or column of the whole schema could hold (none with a
word of the kind in its name, comments or sample values, no word there whose most frequent sense is of the kind,
no column of a date or time type, or of years or dates, for the kinds of time): "When was each photo taken?" on
photos kept without a date.  It reads the whole database, not the question's subject, so it refuses only where nothing could answer.
:func:`missing_agents` reads the people a "Who <verb>…" question asks for ("Who drives each train?": drivers).
:func:`missing_from_schema` is all four, as the Assistant asks before any model call.

>>> missing_tables("How many unicorns are in the zoo table?", ["employees", "departments"], ["name"])
[Missing(name='zoo', near=None, table=True)]
>>> missing_tables("List the names in the employee table", ["employees", "departments"], ["name"])
[]
>>> refusal(missing_tables("Rows of the departmnts table?", ["employees"], []), ["employees"])
"can't answer that from this database: it has no table departmnts; its tables: employees"
"""

from __future__ import annotations

import datetime as _dt
import difflib
import re
from typing import Any, Iterable, NamedTuple, Sequence

from .examples import STRUCTURE_WORDS, identifier_words, stem
from .lexicon import SchemaLexicon
from .namefix import squash
from .synonyms import FUNCTION_WORDS, GENERIC_WORDS
from .values import ANALYSIS_WORDS

__all__ = ["Missing", "missing_agents", "missing_from_schema", "missing_kinds", "missing_tables", "missing_things",
           "refusal"]


class Missing(NamedTuple):
    """Something a question asks about that the database lacks."""

    name: str
    """As the question writes it: ``zoo``, ``unicorns``."""
    near: str | None
    """The table with the closest spelling, for a did-you-mean (None when none is close)."""
    table: bool = True
    """True for an explicitly named table ("the zoo table"), False for a subject ("How many unicorns")."""

# Question text (English), not SQL: "the zoo table", "the `TV Channel` table", "a table called zoo".
_NAMED = re.compile(r"\b(?:the|a|an)\s+[\"'`]?((?:[\w-]+\s+){0,2}?[\w-]+)[\"'`]?\s+table\b", re.IGNORECASE)
_CALLED = re.compile(r"\btables?\s+(?:called|named)\s+[\"'`]?([\w-]+)", re.IGNORECASE)
#: Words before "table" that do not name one ("the same table", "the whole table").
_NOT_NAMES = frozenset("""same following whole main previous result results joined above below given first second
third last other another each every entire new temporary one lookup database data this that which what right wrong
correct relevant appropriate original single separate big large small full final""".split())
_FUNCTION_WORDS = frozenset("a an the of in on at by for from to with and or all any some its their".split())
_CLOSE = 0.75


def missing_tables(question: str, tables: Sequence[str], columns: Iterable[str] = ()) -> list[Missing]:
    """The tables ``question`` names that are unlike every name in ``tables`` and ``columns``, each with the
    nearest table name (or None when none is close): ``[Missing("zoo", None)]``; [] when it names none or only
    known ones."""
    names = [m.group(1) for m in _NAMED.finditer(question)] + [m.group(1) for m in _CALLED.finditer(question)]
    known = [squash(n) for n in [*tables, *columns] if squash(n)]
    out: list[Missing] = []
    for phrase in dict.fromkeys(names):
        words = phrase.split()
        cut = max((i + 1 for i, w in enumerate(words) if w.lower() in _FUNCTION_WORDS), default=0)
        words = words[cut:]  # "the rows of a table": no name
        if not words or all(w.lower() in _NOT_NAMES for w in words) or words[-1].isdigit():
            continue
        name = " ".join(words)
        # "the TV Channel table": "channel", "tvchannel" and the whole phrase may each be the name
        spans = [squash("".join(words[i:])) for i in range(len(words))]
        if any(_alike(span, k) for span in spans if span for k in known):
            continue
        out.append(Missing(name, _nearest(name, tables)))
    return out


# -- subjects -------------------------------------------------------------------------------------------------------
#: First words after which the question's subject follows ("List…", "What is…", "Number of…").
_OPENERS = frozenset("""list show give find return display count get tell print enumerate name what which number
numbers average total""".split())
#: Words skipped before a subject: commands, determiners, quantifiers and the analysis ("the average", "names of");
#: "money" too ("how much money did each customer spend": an amount that prices and quantities add up to), and
#: possessives ("What is his lowest score?").
_LEAD = (ANALYSIS_WORDS | STRUCTURE_WORDS | frozenset("""the a an all every some of me us is are was were list show
give find return display count get tell print enumerate name names number numbers id ids amount different distinct
unique overall mean youngest latest earliest how many much money what which who
his her their its our my your""".split())) - {"and", "or", "not", "no"}
#: Aggregates: the phrase after one is an attribute ("the average salary"), its "of" names the subject.
_AGGREGATES = frozenset("average averages mean total totals sum maximum minimum max min".split())
#: Words that end a subject: function words, prepositions, pronouns, auxiliaries (not the generic nouns: "given
#: names" is one phrase).
_STOP = FUNCTION_WORDS | frozenset("""be being am can could will would should may might must into over under about via
like near across through against along among around behind beyond upon toward towards within without above below
but nor so if whether while they them he she we you i one ones there here whose""".split())
#: Money a schema computes from prices and quantities rather than keeps: never a missing attribute.
_DERIVED = frozenset("""revenue revenues sales profit profits earnings turnover spend spending margin margins cost costs
value worth""".split())
#: Numbers in words: never a subject, and an object they lead is counted.
_NUMBER_WORDS = frozenset("one two three four five six seven eight nine ten".split())
#: Nouns that stand for any table or column: never a missing subject.
_GENERIC = GENERIC_WORDS | ANALYSIS_WORDS | STRUCTURE_WORDS | frozenset("""amount everything anything something
everyone anybody anyone somebody someone nobody none total list lists group groups number numbers name names value
values count counts place places way ways""".split()) | _NUMBER_WORDS | _DERIVED
#: Lead words of a count: an aggregate of one ("the average number of students") sums a column, rows need not exist.
_COUNTS = frozenset("number numbers count counts amount".split())
#: Forms of "be" after "who" that make what follows the attribute asked for ("Who is the coach of each swimmer?").
_BE = frozenset("is are was were".split())
#: Forms of "have" after a subject: what follows is its object ("Which students have a scholarship?").
_HAVE = frozenset("has have had".split())
#: Auxiliaries after "who": no verb of its own follows at once ("Who did…", "Who can…").
_AUXILIARIES = frozenset("do does did can could will would should may might must".split())
#: Lead words of an object that is counted, compared or denied ("more than 15000 students", "at least 2 pets", "two
#: or more", "without wireless networking"): a column may hold the number or the flag, so it is never missing.
_COMPARED = _NUMBER_WORDS | frozenset("""more most less least fewer fewest than over under at many much without no
not never""".split())
#: "the discount on each order", "the turnout in every county": like "the salary of each journalist".
_EACH = [[preposition, each] for preposition in ("on", "in", "for", "at") for each in ("each", "every")]
#: Subject phrases read after one anchor ("salary of the astronauts": two), and words per phrase.
_CHAIN, _PHRASE = 3, 3
_QUOTED = re.compile(r"\"[^\"]*\"|\u201c[^\u201d]*\u201d|`[^`]*`|(?<!\w)'[^']*'(?!\w)")
_TOKEN = re.compile(r"[^\W_]+")


def missing_things(question: str, lexicon: SchemaLexicon, values: Iterable[str] = (), *,
                   strict: bool = False) -> list[Missing]:
    """The question's subjects (see the module docstring) whose nouns ``lexicon`` knows none of, as written:
    ``[Missing("unicorns", None, table=False)]``; ``values``: the words of the database's values.  ``strict``: a
    noun is known by its spelling or a close sense only, not through a class it shares with a schema word nor
    WordNet's top classes (:meth:`~.lexicon.SchemaLexicon.knows`): what the schema has nothing close to, for a
    check that has other evidence besides (:mod:`~.grounding`)."""
    if lexicon.wordnet is None:
        return []  # no senses to compare a paraphrase with: nothing is refused
    values = frozenset(values)
    out: list[Missing] = []
    words, phrases = _phrases(question, lexicon)
    for phrase, attribute in phrases:
        name = _missing_name(phrase, words, lexicon, values, attribute, strict)
        if name is not None and name not in {m.name for m in out}:
            out.append(Missing(name, None, table=False))
    return out


def _phrases(question: str, lexicon: SchemaLexicon) -> tuple[list[str], list[tuple[list[str], bool]]]:
    """The question's words (quoted text as ``QUOTED``) and the phrases :func:`_subjects` reads from each anchor
    ("how many", "how much", a first word of :data:`_OPENERS`, "who is"), each with whether it is the attribute
    asked for."""
    words = _TOKEN.findall(_QUOTED.sub(" \x00 ", question).replace("\x00", "QUOTED"))
    lower = [w.casefold() for w in words]
    starts = [i + 2 for i in range(len(lower) - 1) if lower[i:i + 2] in (["how", "many"], ["how", "much"])]
    if lower and lower[0] in _OPENERS:
        starts.append(0)
    phrases = [found for start in sorted(set(starts)) for found in _subjects(words, lower, start, lexicon)]
    if lower[:1] == ["who"] and lower[1:2] and lower[1] in _BE:  # "Who is the coach of each swimmer?": the attribute
        # alone; "Who are the big spenders among our customers?" names its people in words of its own, and "Who won
        # each race?" (a verb) has no subject to read
        phrases[:0] = [(phrase, attribute) for phrase, attribute in _subjects(words, lower, 0, lexicon) if attribute]
    return words, phrases


def _missing_name(phrase: list[str], words: list[str], lexicon: SchemaLexicon, values: frozenset[str],
                  attribute: bool = False, strict: bool = False) -> str | None:
    """What ``phrase`` (read from the question ``words``) asks about that the lexicon does not know, as it will be
    named in the refusal; None when it is known, not a thing (an ``attribute`` asked for need not be one: "the price
    of each product"), or a name."""
    compound = lexicon.compound(phrase)
    if compound is not None and (attribute or lexicon.is_thing(compound)):
        # "fire stations", "interest rate": the compound is the thing, whatever its words mean alone; known when it
        # is, or when a word of it is spelled like the schema's (a "phone number" where a value says phone)
        known = lexicon.knows(compound, values, **_how(strict)) or any(
            lexicon.spelled(w, values) for w in compound.split() if w not in _GENERIC)
        return None if known or any(_is_name(w, words) for w in phrase) else compound
    while len(phrase) > 1 and phrase[-1].casefold() in _GENERIC:
        phrase = phrase[:-1]  # "luggage items", "popcorn sales": the thing is what comes before
    nouns = _nouns(phrase, lexicon)
    if (not nouns or not (attribute or lexicon.is_thing(nouns[-1])) or any(_is_name(w, words) for w in phrase)
            or _known(phrase, nouns, lexicon, values, attribute, strict)):
        return None
    return " ".join(w.casefold() for w in nouns)


def _nouns(phrase: list[str], lexicon: SchemaLexicon) -> list[str]:
    """The words of ``phrase`` that name something: nouns of three letters or more, not generic ("number")."""
    return [w for w in phrase if w.casefold() not in _GENERIC and len(w) > 2 and lexicon.is_noun(w)]


def asked_attributes(question: str, lexicon: SchemaLexicon) -> list[str]:
    """The attributes ``question`` asks for ("the weight of each product": ``["weight"]``), as their nouns; none
    under an aggregate or a count ("the number of likes for each student"), generic ones ("name", "number") or names
    written with a capital."""
    if lexicon.wordnet is None:
        return []
    out: list[str] = []
    words, phrases = _phrases(question, lexicon)
    for phrase, attribute in phrases:
        nouns = _nouns(phrase, lexicon)
        if attribute and nouns and not any(_is_name(w, words) for w in phrase):
            out.append(" ".join(w.casefold() for w in nouns))
    return list(dict.fromkeys(out))


# -- kinds asked by a question word -----------------------------------------------------------------------------------
#: What a question word asks for: (as named in a refusal, words a schema that could hold it would have — as a word of
#: a name, a comment or a value, up to a plural — the WordNet category of a schema word's most frequent sense that
#: could hold it, whether a column of a date or time type could).
_KINDS: dict[str, tuple[str, tuple[str, ...], str | None, bool]] = {
    "when": ("dates or times", ("date", "time", "year", "day", "month", "week", "season", "period"), "time", True),
    "where": ("places", ("place", "location", "city", "country", "address", "region", "venue", "town", "state",
                         "site"), "location", False),
    "old": ("ages or birth dates", ("age", "birth", "birthday", "born", "date", "year"), None, True),
    "born": ("birth dates or ages", ("birth", "born", "birthday", "dob", "age"), None, False),
    "tall": ("heights", ("height", "tall", "stature"), None, False),
    "heavy": ("weights", ("weight", "mass", "heavy", "kg", "kilograms", "pounds", "lbs", "tons", "tonnage"), None,
              False),
    "far": ("distances", ("distance", "length", "far", "km", "kilometers", "miles", "meters"), None, False),
    "fast": ("speeds", ("speed", "velocity", "fast", "mph", "kmh", "pace"), None, False),
    "much": ("prices or amounts of money", ("price", "cost", "fee", "fare", "charge", "budget", "salary", "wage",
                                              "pay", "payment", "revenue", "income", "dollar", "euro", "pound",
                                              "money", "worth", "expense", "spend", "sale", "profit", "earning"),
             "possession", False),
    "long": ("lengths or durations", ("length", "long", "duration", "time", "date", "year", "day", "hour", "minute",
                                      "second", "millisecond", "week", "month", "period", "km", "miles", "meters"),
             "time", True),
}
#: "how much … cost", "how much did … pay": the question asks "how much" money ("how expensive" too).
_MONEY_VERBS = frozenset("""cost costs pay pays paid charge charges charged spend spends spent earn earns earned
priced""".split())
#: "what year…", "in which month…": the question asks "when".
_WHICH = frozenset("what which".split())
_TIME_NOUNS = frozenset("year years date dates time day days month months".split())
#: Words in a column's type that make it a date or a time.
_TEMPORAL_TYPES = ("DATE", "TIME", "YEAR", "INTERVAL")


def missing_kinds(question: str, schema: Any, lexicon: SchemaLexicon, values: Iterable[str] = ()) -> list[Missing]:
    """The kinds ``question`` asks for by its question words (:data:`_KINDS`: "When…", "Where…", "what year",
    "how old", "how tall"…) that nothing in ``schema`` could hold: no table or column name, comment or value of the
    ``lexicon`` has one of the kind's words in it (spelled so, up to a plural: "height" is no weight), no word of
    the schema has its most frequent sense in the kind's WordNet category (a hometown is a place, a season a time),
    and, for a kind of time, no column is of a date or time type or holds only years or dates in its samples."""
    if lexicon.wordnet is None:
        return []
    lower = _bare_words(question)
    asked = [lower[0]] if lower[:1] in (["when"], ["where"]) else []
    asked += ["when" for i in range(len(lower) - 1) if lower[i] in _WHICH and lower[i + 1] in _TIME_NOUNS]
    asked += [lower[i + 1] for i in range(len(lower) - 1) if lower[i] == "how" and lower[i + 1] in _KINDS
              and (lower[i + 1] != "much" or not _MONEY_VERBS.isdisjoint(lower[i + 2:]))]
    asked += ["much" for i in range(len(lower) - 1) if lower[i] == "how" and lower[i + 1] in ("expensive", "cheap")]
    asked += ["born" for w in lower if w == "born"]  # "Which members were born before 1970?"
    if not asked:
        return []
    temporal = _holds_time(schema)
    values = frozenset(values)
    out = []
    for word in dict.fromkeys(asked):
        name, answers, category, timed = _KINDS[word]
        if not ((timed and temporal) or category in lexicon.categories
                or any(stem(a) in lexicon.stems or a in values for a in answers)):
            at = 0 if word == "born" else next(  # "born" may end the question: the whole of it says what
                i for i, w in enumerate(lower) if w == word or (word == "when" and w in _WHICH)
                or (word == "much" and w in ("expensive", "cheap")))
            at -= lower[at - 1:at] == ["how"]
            out.append(Missing(f"{name} ({' '.join(lower[at:])})", None, table=False))  # what the question asked
    return out


def missing_agents(question: str, lexicon: SchemaLexicon, values: Iterable[str] = ()) -> list[Missing]:
    """The people a "Who <verb>…" question asks for when the schema has none of them: the verb's agents as WordNet
    derives them (:meth:`SchemaLexicon.agents`: "Who drives each train?" asks for drivers), none of which, nor the
    verb itself, the ``lexicon`` knows; "Who is/has/did…" ask for no agent."""
    lower = _bare_words(question)
    if len(lower) < 2 or lower[0] != "who" or lower[1] in _BE | _HAVE | _AUXILIARIES:
        return []
    agents = lexicon.agents(lower[1])
    values = frozenset(values)
    if not agents or lexicon.knows(lower[1], values) or any(lexicon.knows(a, values) for a in agents):
        return []
    return [Missing(f"{' or '.join(a.replace('_', ' ') + 's' for a in agents[:2])} ({' '.join(lower)})", None,
                    table=False)]


def _bare_words(question: str) -> list[str]:
    """The question's words in lower case, quoted text left out (a value, not a word of the question)."""
    return [w.casefold() for w in _TOKEN.findall(_QUOTED.sub(" ", question))]


def _holds_time(schema: Any) -> bool:
    """Whether a column of ``schema`` holds dates or times: of a date or time type, or (not a key) with sample
    values that are all years (1000–2100) or ISO dates ("Creation" holding 1789 and 1947)."""
    for table in schema.tables:
        for i, column in enumerate(table.columns):
            if any(k in (column.type or "").upper() for k in _TEMPORAL_TYPES):
                return True
            if column.primary_key or "id" in identifier_words(column.name):
                continue
            seen = [row[i] for row in table.sample_rows if i < len(row) and row[i] is not None]
            if seen and all(_year_or_date(v) for v in seen):
                return True
    return False


def _year_or_date(value: Any) -> bool:
    if isinstance(value, (_dt.date, _dt.datetime)):
        return True
    text = str(value).strip()
    if text.isdigit():
        return len(text) == 4 and 1000 <= int(text) <= 2100
    try:
        _dt.date.fromisoformat(text[:10])
    except ValueError:
        return False
    return True


def missing_from_schema(question: str, schema: Any, lexicon: SchemaLexicon | None = None,
                        values: Iterable[str] = ()) -> list[Missing]:
    """What the Assistant refuses ``question`` for before any model call: the tables it names explicitly that
    ``schema`` lacks (:func:`missing_tables`), then, with a ``lexicon`` (None: not read), its subjects the lexicon
    does not know (:func:`missing_things`), and when none is missing, the kinds its question words ask for that
    nothing in the schema could hold (:func:`missing_kinds`), else the people a "Who <verb>…" question asks for
    (:func:`missing_agents`)."""
    tables = [t.name for t in schema.tables]
    found = missing_tables(question, tables, [c.name for t in schema.tables for c in t.columns])
    if lexicon is not None and not any(_anonymous(name) for name in tables):  # a table named "table_1_2840500_4"
        # may keep any kind of thing, players or drivers, under columns such as Name and Position
        said = {squash(m.name).rstrip("s") for m in found}
        found += [m for m in missing_things(question, lexicon, values) if squash(m.name).rstrip("s") not in said]
        if not found:  # what a question word asks for, when no subject is missing
            found += missing_kinds(question, schema, lexicon, values) or missing_agents(question, lexicon, values)
    return found


def _anonymous(table: str) -> bool:
    """Whether a table's name says nothing of what its rows are (``table_1_2840500_4``, ``t1``: "table" and
    numbers, or a letter and numbers)."""
    words = identifier_words(table)
    return all(w.isdigit() or w in ("table", "tbl", "t") for w in words)


def _subjects(words: list[str], lower: list[str], start: int,
              lexicon: SchemaLexicon) -> list[tuple[list[str], bool]]:
    """The phrases read from ``start`` (leading commands, determiners, numbers and "names of" skipped): the first
    noun phrase — the subject ("How many unicorns"), an attribute followed by "of" ("the salary of each
    journalist"), or what an aggregate sums ("average rent", "the total score": the aggregate stays with it, a
    column may be named after it) unless it counts ("the total number of students"); after an aggregate's "of", the
    phrase it is of ("the average salary of the astronauts"); the object of a verb that follows the subject
    ("Which customers filed a complaint?", "Which city has the most hospitals?"); and the phrase after a "per"
    ("refunds per month").  Each phrase comes with whether it is the attribute asked for."""
    i, aggregate = _skip_lead(lower, start)
    counted = not _COUNTS.isdisjoint(lower[start:i])  # "the total number of students": a count a column may hold
    first = _phrase_end(lower, i)
    if first == i:
        return []
    # an aggregate stays with what it sums: "the total score" may be a column named total
    head = i - 1 if i > start and lower[i - 1] in _AGGREGATES else i
    found, end = [], first
    how_many = lower[max(0, start - 2):start] == ["how", "many"]  # "how many cashiers work in each store"
    if (first < len(lower) and lower[first] == "of") or (not how_many and lower[first:first + 2] in _EACH):
        found.append((words[head:first], not (aggregate or counted)))  # the attribute: "the salary of each
        # journalist" (an aggregate of one may be computed, "the average time span"; "the number of likes for each
        # student" counts rows)
        if aggregate:
            j, _ = _skip_lead(lower, first + 1)
            end = _phrase_end(lower, j)
            found.append((words[j:end], False))
    elif not (aggregate and counted) and (first >= len(lower) or lower[first] not in ("and", "or")):  # "the sex
        # and job of"
        # the subject, or what an aggregate sums ("average rent per dorm"), up to a verb in it ("cashiers work")
        verb = next((k for k in range(i + 1, first) if lexicon.is_verb(lower[k])
                     or (lower[k - 1].endswith("s") and lexicon.is_plain_verb(lower[k]))), None)
        cut = first if verb is None or lower[verb].endswith("s") else verb  # "stations", "cards": nouns too
        found.append((words[head:cut], False))
        if verb is None and first < len(lower) and lower[first] in _HAVE:
            verb = first
        if verb is not None:
            j, _ = _skip_lead(lower, verb + 1)
            if _COMPARED.isdisjoint(lower[verb + 1:j + 1]) and not any(w.isdigit() for w in lower[verb + 1:j]):
                end = _phrase_end(lower, j)  # the object: "a complaint"; not a count ("more than 15000 students":
                found.append((words[j:end], False))  # a column may hold it)
    if end < len(lower) and lower[end] == "per":
        j, _ = _skip_lead(lower, end + 1)
        found.append((words[j:_phrase_end(lower, j)], False))
    return [(phrase, attribute) for phrase, attribute in found if phrase]


def _skip_lead(lower: list[str], i: int) -> tuple[int, bool]:
    """The position after the words of :data:`_LEAD` and numbers from ``i``, and whether an aggregate was among
    them."""
    aggregate = False
    while i < len(lower) and (lower[i] in _LEAD or lower[i].isdigit()):  # "the top 5 suppliers"
        aggregate = aggregate or lower[i] in _AGGREGATES
        i += 1
    return i, aggregate


def _phrase_end(lower: list[str], i: int) -> int:
    """Where the noun phrase from ``i`` ends: at a function word, a number or after :data:`_PHRASE` words."""
    j = i
    while j < len(lower) and j - i < _PHRASE and lower[j] not in _STOP and lower[j].isalpha():
        j += 1
    return j


def _is_name(word: str, words: list[str]) -> bool:
    """A capitalised word after the question's first one, or quoted text: a value, not a thing to look for."""
    return word == "QUOTED" or (word is not words[0] and word[:1].isupper() and not word.isupper())


def _how(strict: bool) -> dict[str, bool]:
    """How :meth:`~.lexicon.SchemaLexicon.knows` reads a word for a ``strict`` check (see :func:`missing_things`)."""
    return {"strict": True, "siblings": False} if strict else {}


def _known(phrase: list[str], nouns: list[str], lexicon: SchemaLexicon, values: frozenset[str],
           attribute: bool = False, strict: bool = False) -> bool:
    """Whether the phrase as one term ("water slide", "roller coaster") is known, or any noun of it is and so is
    each word before its last noun that can only be a singular noun ("loyalty points", "company car": a schema
    with points or cars need not keep these); for an ``attribute`` asked for, its last noun must be known itself
    ("the campaign budget of each candidate": a schema with campaigns need not keep their budgets), unless a word
    before it is part of a longer name of the schema ("home cities" where a column is ``Hometown``)."""
    how = _how(strict)
    if len(phrase) > 1 and lexicon.knows(" ".join(phrase), values, **how):
        return True
    head = lexicon.knows(nouns[-1], values, **how)
    if attribute and not head and not any(lexicon.in_longer_name(w) for w in nouns[:-1]):
        return False
    return (head or any(lexicon.knows(w, values, **how) for w in nouns[:-1])) and all(
        lexicon.knows(w, values, **how) for w in nouns[:-1] if lexicon.is_modifier_noun(w))


def refusal(missing: Sequence[Missing], tables: Sequence[str]) -> str:
    """One line saying what the database lacks, with a did-you-mean or the list of its tables.

    >>> refusal([Missing("unicorns", None, table=False)], ["zoo_animals"])
    "can't answer that from this database: it has no unicorns; its tables: zoo_animals"
    """
    parts = []
    for name, near, table in missing:
        parts.append(f"no {'table ' if table else ''}{name}" + (f" (did you mean {near}?)" if near else ""))
    return cannot_answer("; ".join(parts), tables)


def cannot_answer(lacks: str, tables: Sequence[str]) -> str:
    """The one line of a refusal: what the database ``lacks``, then (up to 12 of) its tables.

    >>> cannot_answer("no unicorns", ["zoo", "keepers"])
    "can't answer that from this database: it has no unicorns; its tables: keepers, zoo"
    """
    shown = ", ".join(sorted(tables)[:12]) + (", ..." if len(tables) > 12 else "")
    return f"can't answer that from this database: it has {lacks}; its tables: {shown}"


def _alike(a: str, b: str) -> bool:
    if a == b or a.rstrip("s") == b.rstrip("s") or a.removesuffix("es") == b or b.removesuffix("es") == a:
        return True
    if min(len(a), len(b)) >= 3 and (a in b or b in a):
        return True
    return difflib.SequenceMatcher(None, a, b).ratio() >= _CLOSE


def _nearest(name: str, tables: Sequence[str]) -> str | None:
    by_key = {squash(t): t for t in tables}
    close = difflib.get_close_matches(squash(name), list(by_key), n=1, cutoff=0.6)
    return by_key[close[0]] if close else None
