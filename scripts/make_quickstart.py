"""Write notebooks/quickstart.ipynb (then execute it: jupyter nbconvert --to notebook --execute --inplace ...).

nbval compares the cells that check values (counts, sums, sorted figures); the cells showing the model's SQL and
tables carry the ``nbval-ignore-output`` tag, so that a model or engine change that writes other (equally right)
SQL does not fail the notebook, and one that gets the answer wrong does."""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

def shown(source: str):
    """A cell whose output (the model's SQL, the table, the stats) is shown to readers but not compared by nbval:
    the next cell checks the values."""
    return new_code_cell(source, metadata={"tags": ["nbval-ignore-output"]})


cells = [
    new_markdown_cell("# jupyter-nl2sql quickstart\n\nAsk the bundled demo database (a small shop) questions in "
                      "plain English. The SQL is written by the local default model, checked with sqlglot, "
                      "run read-only, and returned as a pandas DataFrame; the last line of each answer shows "
                      "where the time and memory went."),
    new_code_cell("%load_ext jupyter_nl2sql"),
    new_markdown_cell("Connect to the demo database (any SQLAlchemy URL, alias or `Engine` variable works) and "
                      "load the model. The first load in a fresh cache joins and converts the model (about a "
                      "minute); later loads take seconds."),
    new_code_cell("%nl2sql connect demo"),
    new_code_cell("# NBVAL_IGNORE_OUTPUT\n%nl2sql load"),
    new_markdown_cell("## Ask\n\nEach answer shows the SQL the model wrote, the table and the stats; the cell after it "
                      "checks the values (the exact SQL may differ from one model or engine to the next, the "
                      "answer may not)."),
    shown("%%nl2sql -o by_country\nHow many customers are there in each country?"),
    new_code_cell("counts = by_country.select_dtypes('number').iloc[:, 0]\n"
                  "print(len(by_country), 'countries,', int(counts.sum()), 'customers')"),
    shown("%%nl2sql -o top\nWhich 5 customers spent the most in total? Spending is quantity times unit "
          "price of their order items."),
    new_code_cell("print(len(top), 'customers; the most any spent:', top.select_dtypes('number').max().max())"),
    shown("df = %nl2sql What is the average salary of employees in each department? Show the department name.\n"
          "df.round(2)"),
    new_code_cell("print(len(df), 'departments; average salaries:', "
                  "sorted(df.select_dtypes('number').iloc[:, 0].round(2)))"),
    new_markdown_cell("`{var}` interpolation and generate-only mode (`-g`) show the SQL without running it:"),
    shown("category = 'Audio'\n%nl2sql -g List the names of the products in the {category} category."),
    new_markdown_cell("Writes are refused unless a cell passes `--allow-writes`; a bad request gives a one-line "
                      "error and the kernel goes on:"),
    new_code_cell("from jupyter_nl2sql import Assistant, Nl2SqlError\ntry:\n"
                  "    Assistant().run_sql('DELETE FROM customers', 'demo')\nexcept Nl2SqlError as e:\n"
                  "    print(type(e).__name__, '-', e)"),
    new_markdown_cell("The same pipeline from Python, with the stats as an object:"),
    new_code_cell("from jupyter_nl2sql import get_assistant\n"
                  "answer = get_assistant().ask('How many orders were cancelled?', 'demo')\n"
                  "print(answer.dataframe.iat[0, 0], 'cancelled orders')\n"
                  "print({'generate', 'check', 'execute'} <= set(answer.stats.stages))"),
    shown("answer.sql"),
]
nb = new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                        "language": "python"}})
out = Path(__file__).resolve().parent.parent / "notebooks" / "quickstart.ipynb"
nbformat.write(nb, out)
print(out)
