"""Write notebooks/widget_tour.ipynb (then execute it with nbclient, widget state stored)."""
from pathlib import Path
import nbformat
from nbformat.v4 import new_code_cell as code, new_markdown_cell as md, new_notebook

cells = [
    md("# jupyter-nl2sql: the panel\n\n"
       "`%nl2sql panel` (or `jupyter_nl2sql.panel()`) shows a panel for asking the database questions with clicks: "
       "pick a connection, type a question, press **Generate** (SQL only) or **Run**, review or edit the SQL, page "
       "through the result, keep it as a DataFrame or as a cell. The model, the schema and the database work in a "
       "background thread, so the panel answers every click at once and **Cancel** stops a long answer.\n\n"
       "Below, the panel is shown on the bundled demo database and then driven from code, doing exactly what the "
       "buttons do (`button.click()`), so this notebook can run unattended."),
    code("%load_ext jupyter_nl2sql"),
    md("## Show it\n\nThe connection menu lists the aliases and URLs this kernel knows (`demo` is built in); the "
       "text field next to it adds a SQLAlchemy URL, an alias or an `Engine` variable. The line at the top names "
       "the model and the device it runs on."),
    code("p = %nl2sql panel\np"),
    md("The model loads at the first question (or now, with `%nl2sql load`): from the converted cache this "
       "takes seconds; the first load in a fresh cache joins and converts the model (about a minute)."),
    code("# NBVAL_IGNORE_OUTPUT\n%nl2sql load"),
    md("## Ask a question\n\nA click on **Run** returns at once: the status line shows each stage (schema, model, "
       "SQL, run) with the elapsed time, and **Cancel** is enabled. `p.wait()` is only for scripts like this one."),
    code("import re\n\ndef text(widget):\n    \"\"\"What a widget shows, without its HTML.\"\"\"\n"
         "    return re.sub(r\"<[^>]+>\", \"\", widget.value).strip()\n\n"
         "p.question.value = \"How many customers are there?\"\n"
         "p.run_button.click()\n"
         "p.wait(600)\n"
         "int(p.answer.dataframe.iat[0, 0])"),
    md("The SQL the model wrote is in the editable SQL area, the stats line below the table says where the time "
       "and memory went:"),
    code("# NBVAL_IGNORE_OUTPUT\nprint(p.sql.value)\nprint(text(p.stats))"),
    md("## Edit the SQL and run your version\n\nChanging the SQL area makes **Run** execute your SQL through "
       "`Assistant.run_sql`: the same checks and read-only session, no model."),
    code("p.sql.value = \"SELECT country, count(*) AS customers FROM customers GROUP BY country ORDER BY customers DESC, country\"\n"
         "print(text(p.sql_hint))\n"
         "p.run_button.click()\n"
         "p.wait()\n"
         "p.answer.dataframe"),
    md("## Large results come in pages"),
    code("p.sql.value = \"SELECT customer_id, name, city, country FROM customers ORDER BY customer_id\"\n"
         "p.run_button.click()\n"
         "p.wait()\n"
         "p.next_button.click()\n"
         "text(p.page_label)"),
    md("## Mistakes are explained inline, and the panel goes on"),
    code("p.sql.value = \"DELETE FROM customers\"\n"
         "p.run_button.click()\n"
         "p.wait()\n"
         "print(text(p.error))\n"
         "p.sql.value = \"SELECT nme FROM customers\"\n"
         "p.run_button.click()\n"
         "p.wait()\n"
         "print(text(p.error))\n"
         "print(text(p.status), '| Run enabled:', not p.run_button.disabled)"),
    md("## Cancel\n\n**Cancel** sets the job's cancel event: the database query is interrupted and the panel is "
       "usable again at once."),
    code("import time\n\n"
         "p.sql.value = \"SELECT count(*) AS n FROM order_items a, order_items b, order_items c, order_items d\"\n"
         "p.run_button.click()\n"
         "time.sleep(0.5)\n"
         "p.cancel_button.click()\n"
         "print(text(p.status), '| Run enabled:', not p.run_button.disabled)\n"
         "p.wait(30)"),
    md("## Keep the result\n\n**Save DataFrame** stores the result under the name typed; **SQL → new cell** puts "
       "code that runs the SQL into a new cell."),
    code("p.history.value = next(i for label, i in p.history.options if \"GROUP BY country\" in label)  # a click on it\n"
         "p.variable_name.value = \"by_country\"\n"
         "p.save_button.click()\n"
         "by_country.head(3)"),
    code("print(p.insert_code())"),
    md("## History\n\nEvery answer, from the panel or from `%%nl2sql` cells, is in the shared history; a click on an "
       "entry restores its question, SQL and result."),
    code("# NBVAL_IGNORE_OUTPUT\n%nl2sql --no-stats How many products are there"),
    code("[label for label, _ in p.history.options]"),
]
nb = new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                        "language": "python"},
                                         "language_info": {"name": "python"}})
out = Path("/work/main/notebooks/widget_tour.ipynb")
nbformat.write(nb, out)
print(out)
