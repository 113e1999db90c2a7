"""Line-magic questions that end in ``?`` reach the magic in a real IPython shell (ScriptedBackend: plumbing only).

Without the extension's input transformer IPython reads ``df = %nl2sql How many orders were cancelled?`` as a help
request for ``cancelled`` and assigns nothing; these tests run the cells through ``shell.run_cell`` and read the
question the (scripted) model was given.
"""

from __future__ import annotations

import pandas as pd
from IPython.utils.capture import capture_output

from jupyter_nl2sql.frontends.input_transform import keep_question_marks

COUNT_CANCELLED = "SELECT count(*) AS n FROM orders WHERE status = 'cancelled'"


def asked(backend) -> list[str]:
    """The question turns the scripted model was given, in order."""
    return [call[-1]["content"] for call in backend.calls]


def test_assignment_with_a_question_mark_gets_the_dataframe(ip, cell, scripted, demo_sqlite_url) -> None:
    backend = scripted(COUNT_CANCELLED)
    ip.user_ns.pop("df", None)
    cell(f"%nl2sql connect {demo_sqlite_url}")
    cell("df = %nl2sql How many orders were cancelled?")
    assert isinstance(ip.user_ns["df"], pd.DataFrame) and ip.user_ns["df"]["n"].iat[0] > 0
    assert "How many orders were cancelled?" in asked(backend)[0]


def test_bare_line_magic_with_a_question_mark_returns_the_result(ip, cell, scripted, demo_sqlite_url) -> None:
    backend = scripted("SELECT count(*) AS n FROM customers")
    result = cell(f"%nl2sql -c {demo_sqlite_url} How many customers are there?")
    assert result["n"].iat[0] == 60
    assert "How many customers are there?" in asked(backend)[0]


def test_multi_line_cell_and_indented_block(ip, cell, scripted, demo_sqlite_url) -> None:
    backend = scripted(COUNT_CANCELLED, "SELECT count(*) AS n FROM customers")
    ip.user_ns["state"] = "cancelled"
    total = cell(f"%nl2sql connect {demo_sqlite_url}\n"
                 "first = %nl2sql In all, how many orders were {state}?\n"
                 "if True:\n"
                 "    second = %nl2sql And how many customers are there??\n"
                 "int(first['n'].iat[0]) + int(second['n'].iat[0])")
    assert total == ip.user_ns["first"]["n"].iat[0] + ip.user_ns["second"]["n"].iat[0]
    questions = asked(backend)  # questions new to the generation cache: both reach the model, in order
    assert "In all, how many orders were cancelled?" in questions[0]
    assert "And how many customers are there??" in questions[1]
    assert ip.user_ns["second"]["n"].iat[0] == 60


def test_help_on_the_magic_still_works(ip) -> None:
    assert "pinfo" in ip.transform_cell("%nl2sql?") and "pinfo2" in ip.transform_cell("%nl2sql??")
    with capture_output() as shown:
        result = ip.run_cell("%nl2sql?")
    assert result.success
    assert "Ask a database a question in English" in shown.stdout


def test_strings_and_other_code_are_not_changed(ip, cell) -> None:
    source = ("text = '%nl2sql How many?'\n"
              "block = '''\n%nl2sql How many orders?\n'''\n"
              "pair = ('%nl2sql a?', 1)")
    assert ip.transform_cell(source) == source + "\n"
    cell(source)
    assert ip.user_ns["text"] == "%nl2sql How many?"
    assert ip.user_ns["block"] == "\n%nl2sql How many orders?\n"
    assert keep_question_marks(["%%nl2sql\n", "df = %nl2sql a?\n"]) == ["%%nl2sql\n", "df = %nl2sql a?\n"]
    assert keep_question_marks(["%nl2sqlx a?\n", "!echo x = %nl2sql a?\n"]) == ["%nl2sqlx a?\n",
                                                                               "!echo x = %nl2sql a?\n"]


def test_question_without_question_mark_is_unchanged_by_ipython(ip) -> None:
    assert keep_question_marks(["%nl2sql How many customers\n"]) == ["%nl2sql How many customers\n"]
    assert ip.transform_cell("x = %nl2sql How many customers") == \
        "x = get_ipython().run_line_magic('nl2sql', 'How many customers')\n"


def test_load_registers_once_and_unload_removes(ip) -> None:
    assert ip.input_transformers_cleanup.count(keep_question_marks) == 1
    ip.run_line_magic("reload_ext", "jupyter_nl2sql")
    assert ip.input_transformers_cleanup.count(keep_question_marks) == 1
    ip.run_line_magic("unload_ext", "jupyter_nl2sql")
    try:
        assert keep_question_marks not in ip.input_transformers_cleanup
        assert "pinfo" in ip.transform_cell("df = %nl2sql How many orders were cancelled?")  # IPython's own reading
    finally:
        ip.run_line_magic("load_ext", "jupyter_nl2sql")
