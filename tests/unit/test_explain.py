"""Unit tests for :mod:`jupyter_nl2sql.pipeline.explain`: the exact words for analyst and Spider train queries,
every Spider dev gold query explained without an exception and naming every table it reads, and the explanation on
``Answer``, in the magic (``--explain``), the command line and the panel."""

from __future__ import annotations

import html
import json

import pytest
from sqlglot import exp, parse_one

from benchmarks.runner import default_data_dir
from jupyter_nl2sql.pipeline.explain import explain_sql

SPIDER = default_data_dir() / "spider"  # $NL2SQL_BENCH_DATA, else ../shared/data next to the repository

#: (SQL, its explanation): the demo database's kind of analyst queries, then gold SQL of Spider *train*, then
#: statements the explainer has no special words for (their own SQL text, or a short safe sentence).
CASES = [
    ("SELECT COUNT(*) FROM orders WHERE status = 'cancelled'",
     "Counts orders whose status is 'cancelled'."),
    ("SELECT strftime('%Y-%m', order_date) AS month, COUNT(*) FROM orders WHERE status = 'cancelled' AND order_date >= '2024-01-01' AND order_date < '2025-01-01' GROUP BY month",
     "Counts orders whose status is 'cancelled' and order_date is in 2024, grouped by the month of order_date."),
    ("SELECT strftime('%m', order_date), COUNT(*) FROM orders WHERE strftime('%Y', order_date) = '2024' GROUP BY 1",
     'Counts orders whose order_date is in 2024, grouped by the month number of order_date.'),
    ('SELECT p.name, SUM(oi.quantity * oi.unit_price) AS revenue FROM products p JOIN order_items oi ON p.product_id = oi.product_id GROUP BY p.name ORDER BY revenue DESC LIMIT 5',
     'Adds up order_items.quantity times order_items.unit_price from products joined with order_items on product_id, grouped by products.name, keeping the 5 rows with the highest total of order_items.quantity times order_items.unit_price.'),
    ('SELECT d.name, COUNT(e.employee_id) FROM departments d LEFT JOIN employees e ON e.department_id = d.department_id GROUP BY d.name',
     'Counts the non-NULL values of employees.employee_id from departments joined with employees on department_id (keeping rows without a match), grouped by departments.name.'),
    ("SELECT * FROM customers WHERE email LIKE '%@example.com' AND name NOT LIKE 'A%'",
     "Lists every column of customers whose email ends with '@example.com' and name does not start with 'A'."),
    ('SELECT DISTINCT country FROM customers ORDER BY country',
     'Lists the distinct country of customers, sorted by country.'),
    ('SELECT name FROM customers WHERE customer_id NOT IN (SELECT customer_id FROM orders)',
     'Lists name of customers where customer_id is not among the results of (a query that lists customer_id of orders).'),
    ('SELECT e.first_name, m.first_name FROM employees e JOIN employees m ON e.manager_id = m.employee_id',
     'Lists e.first_name and m.first_name from employees (as e) joined with employees (as m) on e.manager_id = m.employee_id.'),
    ('SELECT name FROM products WHERE unit_price > (SELECT AVG(unit_price) FROM products)',
     'Lists name of products whose unit_price is greater than (the result of a query that averages unit_price of products).'),
    ('WITH t AS (SELECT customer_id, COUNT(*) AS n FROM orders GROUP BY customer_id) SELECT c.name, t.n FROM customers c JOIN t ON t.customer_id = c.customer_id WHERE t.n >= 3',
     'Defines t as (a query that counts orders, grouped by customer_id), then lists customers.name and t.n from customers joined with t on customer_id where t.n is at least 3.'),
    ("SELECT category, CASE WHEN unit_price > 100 THEN 'premium' ELSE 'standard' END AS tier FROM products",
     "Lists category and ('premium' when unit_price is greater than 100, else 'standard') (as tier) of products."),
    ("SELECT first_name FROM employees WHERE hire_date BETWEEN '2020-01-01' AND '2020-12-31' OR manager_id IS NULL",
     "Lists first_name of employees whose hire_date is between '2020-01-01' and '2020-12-31' (inclusive) or manager_id is NULL."),
    ('SELECT customer_id, SUM(quantity) OVER (PARTITION BY customer_id ORDER BY order_date) FROM orders JOIN order_items USING (order_id)',
     'Shows customer_id and the running total of quantity within each customer_id in order of order_date from orders joined with order_items on order_id.'),
    ('SELECT MAX(salary), MIN(salary), AVG(salary) FROM employees',
     'Shows the highest salary, the lowest salary and the average of salary of employees.'),
    ('SELECT COUNT(DISTINCT city) FROM customers',
     'Counts the distinct city of customers.'),
    ('SELECT name FROM customers c WHERE NOT EXISTS (SELECT 1 FROM orders o WHERE o.customer_id = c.customer_id)',
     'Lists name of customers where (a query that lists 1 of orders whose customer_id is customers.customer_id) finds no row.'),
    ('SELECT category, SUM(oi.quantity) AS total FROM products p JOIN order_items oi ON oi.product_id = p.product_id GROUP BY category ORDER BY total DESC LIMIT 1',
     'Adds up order_items.quantity from products joined with order_items on product_id, grouped by category, keeping the row with the highest total of order_items.quantity.'),
    ("SELECT COUNT(*) FROM orders WHERE order_date >= '2024-03-01' AND order_date < '2024-04-01'",
     'Counts orders whose order_date is in March 2024.'),
    ('SELECT status, COUNT(*) FROM orders GROUP BY status HAVING COUNT(*) > 10 ORDER BY COUNT(*) DESC',
     'Counts orders, grouped by status, keeping the groups where the number of rows is greater than 10, sorted by the number of rows descending.'),
    ("SELECT ROUND(AVG(unit_price), 2) FROM products WHERE category IN ('Books', 'Toys')",
     "Shows the average of unit_price rounded to 2 decimal places of products whose category is one of 'Books' or 'Toys'."),
    ("SELECT name, signup_date FROM customers WHERE signup_date > '2023-06-30' ORDER BY signup_date DESC, name",
     "Lists name and signup_date of customers whose signup_date is after '2023-06-30', sorted by signup_date descending then name."),
    ("SELECT first_name || ' ' || last_name AS full_name FROM employees WHERE salary >= 50000 AND (department_id = 1 OR department_id = 2)",
     "Lists (first_name followed by ' ') followed by last_name (as full_name) of employees whose salary is at least 50000 and (department_id is 1 or department_id is 2)."),
    ("SELECT c.country, SUM(oi.quantity * oi.unit_price) FROM customers c JOIN orders o ON o.customer_id = c.customer_id JOIN order_items oi ON oi.order_id = o.order_id WHERE o.status <> 'cancelled' GROUP BY c.country",
     "Adds up order_items.quantity times order_items.unit_price from customers joined with orders on customer_id joined with order_items on order_id where orders.status is not 'cancelled', grouped by customers.country."),
    ('SELECT name FROM customers LIMIT 10',
     'Lists name of customers, keeping at most 10 rows.'),
    ("SELECT name FROM customers WHERE city LIKE '%ville%' OR COALESCE(country, 'none') = 'none'",
     "Lists name of customers whose city contains 'ville' or country (or 'none' when NULL) is 'none'."),
    ('SELECT o.order_id, c.name FROM orders o CROSS JOIN customers c',
     'Lists orders.order_id and customers.name from orders combined with every row of customers.'),
    ("SELECT COUNT(*) FROM orders WHERE strftime('%Y-%m', order_date) = '2024-02'",
     'Counts orders whose order_date is in February 2024.'),
    ('SELECT name FROM products ORDER BY unit_price LIMIT 3 OFFSET 3',
     'Lists name of products, sorted by unit_price, skipping the first 3 rows, keeping the next 3 rows.'),
    ('SELECT UPPER(name), LENGTH(name) FROM departments WHERE city IS NOT NULL',
     'Lists the upper-case name and the length of name of departments where city is not NULL.'),
    ("SELECT first_name, salary FROM employees ORDER BY salary DESC LIMIT 1",
     'Lists first_name and salary of employees, sorted by salary descending, keeping the first row.'),
    ('SELECT T2.Lname FROM DEPARTMENT AS T1 JOIN FACULTY AS T2 ON T1.DNO  =  T3.DNO JOIN MEMBER_OF AS T3 ON '
     'T2.FacID  =  T3.FacID WHERE T1.DName  =  "Computer Science"',
     'Lists FACULTY.Lname from DEPARTMENT joined with FACULTY on DEPARTMENT.DNO = MEMBER_OF.DNO joined with '
     'MEMBER_OF on FacID where DEPARTMENT.DName is "Computer Science".'),
    ('SELECT directed_by ,  count(*) FROM film GROUP BY directed_by',
     'Counts film, grouped by directed_by.'),
    ('SELECT organization_id FROM organizations EXCEPT SELECT parent_organization_id FROM organizations',
     'Finds the rows of (a query that lists organization_id of organizations) that are not in (a query that lists parent_organization_id of organizations).'),
    ("SELECT T2.friend FROM Person AS T1 JOIN PersonFriend AS T2 ON T1.name  =  T2.friend WHERE T2.name  =  'Alice' AND T1.gender  =  'female'",
     "Lists PersonFriend.friend from Person joined with PersonFriend on Person.name = PersonFriend.friend where PersonFriend.name is 'Alice' and Person.gender is 'female'."),
    ('SELECT count(DISTINCT acc_type) FROM customer',
     'Counts the distinct acc_type of customer.'),
    ('SELECT avg(enr) FROM College',
     'Averages enr of College.'),
    ('SELECT sum(Amount_Payment) FROM Payments',
     'Adds up Amount_Payment of Payments.'),
    ('SELECT customer_name ,  customer_id FROM customers WHERE customer_address LIKE "%TN%"',
     'Lists customer_name and customer_id of customers whose customer_address matches the pattern "%TN%".'),
    ('SELECT fname ,  major FROM Student WHERE StuID NOT IN (SELECT StuID FROM Has_allergy WHERE Allergy  =  "Soy")',
     'Lists fname and major of Student where StuID is not among the results of (a query that lists StuID of Has_allergy whose Allergy is "Soy").'),
    ('SELECT count(*) ,  T1.name FROM airports AS T1 JOIN routes AS T2 ON T1.apid  =  T2.src_apid GROUP BY T1.name',
     'Counts the rows of airports joined with routes on airports.apid = routes.src_apid, grouped by airports.name.'),
    ('SELECT personal_name FROM Students EXCEPT SELECT T1.personal_name FROM Students AS T1 JOIN Student_Course_Enrolment AS T2 ON T1.student_id  =  T2.student_id',
     'Finds the rows of (a query that lists personal_name of Students) that are not in (a query that lists Students.personal_name from Students joined with Student_Course_Enrolment on student_id).'),
    ('SELECT name FROM people WHERE height  >  200 OR height  <  190',
     'Lists name of people whose height is greater than 200 or height is less than 190.'),
    ('SELECT T1.name FROM station AS T1 JOIN status AS T2 ON T1.id  =  T2.station_id GROUP BY T2.station_id HAVING avg(T2.bikes_available)  >  14 UNION SELECT name FROM station WHERE installation_date LIKE "12/%"',
     'Combines the rows of (a query that lists station.name from station joined with status on station.id = status.station_id, grouped by status.station_id, keeping the groups where the average of status.bikes_available is greater than 14) and (a query that lists name of station whose installation_date matches the pattern "12/%"), without duplicates.'),
    ("SELECT name FROM instructor WHERE salary  >  (SELECT min(salary) FROM instructor WHERE dept_name  =  'Biology')",
     "Lists name of instructor whose salary is greater than (the result of a query that finds the lowest salary of instructor whose dept_name is 'Biology')."),
    ('SELECT max(budget_in_billions) ,  min(budget_in_billions) FROM department',
     'Shows the highest budget_in_billions and the lowest budget_in_billions of department.'),
    ('SELECT Name FROM Tourist_Attractions WHERE Opening_Hours BETWEEN 9 AND 11 INTERSECT SELECT Name FROM Tourist_Attractions WHERE How_to_Get_There  =  "walk"',
     'Finds the rows both in (a query that lists Name of Tourist_Attractions whose Opening_Hours is between 9 and 11 (inclusive)) and in (a query that lists Name of Tourist_Attractions whose How_to_Get_There is "walk").'),
    ('SELECT DISTINCT T1.title FROM course AS T1 JOIN prereq AS T2 ON T1.course_id  =  T2.course_id ORDER BY T1.title',
     'Lists the distinct course.title from course joined with prereq on course_id, sorted by course.title.'),
    ("SELECT a FROM t WHERE b = NULL",
     "Lists a of t whose b = NULL (never true: a comparison with NULL is unknown, unlike IS NULL)."),
    ("SELECT SUM(x) OVER (ORDER BY d ROWS BETWEEN 2 PRECEDING AND CURRENT ROW) FROM t",
     "Shows SUM(x) OVER (ORDER BY d ROWS BETWEEN 2 PRECEDING AND CURRENT ROW) of t."),
    ("SELECT 1",
     'Computes 1.'),
    ("DELETE FROM orders WHERE status = 'cancelled'",
     "Deletes the rows of orders where status is 'cancelled'."),
    ('SELECT weird_fn(a, b) FROM t',
     'Lists WEIRD_FN(a, b) of t.'),
    ('garbage ((',
     'Could not read this SQL to explain it.'),
]


@pytest.mark.parametrize("sql, expected", CASES, ids=[str(i) for i in range(len(CASES))])
def test_explanations_are_exact(sql: str, expected: str) -> None:
    assert explain_sql(sql, "sqlite") == expected


def test_enough_cases() -> None:
    assert len(CASES) >= 40 and len({sql for sql, _ in CASES}) == len(CASES)


@pytest.mark.parametrize("value", [None, 42, "", "   ", ";", "SELECT (", "SELECT * FROM t WHERE x = ANY (1)"])
def test_never_raises(value) -> None:
    text = explain_sql(value, "sqlite")  # type: ignore[arg-type]
    assert isinstance(text, str) and text.endswith(".") and "\n" not in text


def test_a_change_of_meaning_changes_the_words() -> None:
    """Faithful by construction: flipping a filter, an order or a join side is said differently."""
    pairs = [("SELECT a FROM t WHERE x > 1", "SELECT a FROM t WHERE x < 1"),
             ("SELECT a FROM t ORDER BY a DESC LIMIT 1", "SELECT a FROM t ORDER BY a LIMIT 1"),
             ("SELECT a FROM t JOIN u ON t.k = u.k", "SELECT a FROM t LEFT JOIN u ON t.k = u.k"),
             ("SELECT a FROM t UNION SELECT a FROM u", "SELECT a FROM t UNION ALL SELECT a FROM u"),
             ("SELECT a FROM t WHERE x IN (1, 2)", "SELECT a FROM t WHERE x NOT IN (1, 2)"),
             ("SELECT COUNT(*) FROM t WHERE d >= '2024-01-01' AND d < '2025-01-01'",
              "SELECT COUNT(*) FROM t WHERE d >= '2024-01-01' AND d < '2025-01-02'")]
    for one, other in pairs:
        assert explain_sql(one, "sqlite") != explain_sql(other, "sqlite"), one


def test_other_dialects() -> None:
    assert explain_sql("SELECT DISTINCT ON (a) a, b FROM t ORDER BY a, b DESC", "postgres") == \
        "Lists a and b (one row for each a) of t, sorted by a then b descending."
    assert explain_sql("SELECT EXTRACT(YEAR FROM d), COUNT(*) FROM t GROUP BY 1", "postgres") == \
        "Counts t, grouped by the year of d."
    assert explain_sql("SELECT date_trunc('month', d) AS m, SUM(x) FROM t GROUP BY m", "duckdb") == \
        "Adds up x of t, grouped by the month of d."


# -- every Spider dev gold query -------------------------------------------------------------------------------
def _spider_dev() -> list[dict]:
    """The scorable Spider dev items: those whose database is present (as the benchmark runner counts them)."""
    if not (SPIDER / "dev.json").is_file():
        pytest.skip(f"Spider data not found under {SPIDER}")
    items = json.loads((SPIDER / "dev.json").read_text(encoding="utf-8"))
    return [it for it in items if (SPIDER / "database" / it["db_id"] / f"{it['db_id']}.sqlite").is_file()]


def test_every_spider_dev_gold_query_is_explained_naming_its_tables() -> None:
    items = _spider_dev()
    assert len(items) == 972
    problems = []
    for it in items:
        sql = it["query"]
        text = explain_sql(sql, "sqlite")
        tree = parse_one(sql, read="sqlite")
        ctes = {c.alias_or_name.lower() for c in tree.find_all(exp.CTE)}
        tables = {t.name for t in tree.find_all(exp.Table)} - ctes
        missing = [t for t in tables if t.lower() not in text.lower()]
        if missing or text.startswith(("Runs a", "Could not")) or not text.endswith("."):
            problems.append(f"{sql} -> {text} (missing: {missing})")
    assert not problems, f"{len(problems)} of {len(items)}:\n" + "\n".join(problems[:10])


# -- where the explanation is shown ----------------------------------------------------------------------------
SQL = "SELECT count(*) AS n FROM customers WHERE country = 'France'"
WORDS = "Counts customers whose country is 'France'."


def test_answer_carries_the_explanation_of_the_sql_that_ran(scripted, demo_sqlite_url) -> None:
    from jupyter_nl2sql.pipeline.assistant import Assistant

    scripted(SQL)
    assistant = Assistant(generation_cache=False, few_shot=0)
    answer = assistant.ask("How many French customers?", demo_sqlite_url)
    assert answer.ok and answer.explanation == WORDS and "explain" in answer.stats.stages
    assert assistant.run_sql("SELECT name FROM products", demo_sqlite_url).explanation == "Lists name of products."


def test_magic_shows_the_explanation_under_the_sql_with_explain(ip, cell, scripted, demo_sqlite_url,
                                                                 monkeypatch) -> None:
    from jupyter_nl2sql.frontends import render

    shown: list[dict] = []
    monkeypatch.setattr(ip.display_pub, "publish", lambda data, **kw: shown.append(data))
    scripted(SQL)
    cell(f"%%nl2sql -c {demo_sqlite_url}\nHow many French customers?")
    assert render.explanation_text(WORDS) not in [d.get("text/plain") for d in shown]  # off by default
    shown.clear()
    cell(f"%%nl2sql -c {demo_sqlite_url} --explain\nHow many French customers?")
    texts = [d.get("text/plain") for d in shown]
    assert texts[texts.index(SQL) + 1] == f"-- {WORDS}"
    assert "nl2sql-explanation" in shown[texts.index(SQL) + 1]["text/html"]
    shown.clear()
    ip.run_line_magic("config", "Nl2SqlMagics.explain = True")
    try:
        cell(f"%%nl2sql -c {demo_sqlite_url}\nHow many French customers?")
    finally:
        ip.run_line_magic("config", "Nl2SqlMagics.explain = False")
    assert f"-- {WORDS}" in [d.get("text/plain") for d in shown]


def test_cli_prints_the_explanation_with_explain(scripted, demo_sqlite_url, capsys) -> None:
    from jupyter_nl2sql.frontends import cli

    scripted(SQL)
    assert cli.main(["ask", "How many French customers?", "--db", demo_sqlite_url, "--generation-cache", "off",
                     "--explain"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{SQL}\n\n-- {WORDS}\n\n")
    assert cli.main(["ask", "How many French customers?", "--db", demo_sqlite_url, "--generation-cache", "off"]) == 0
    assert WORDS not in capsys.readouterr().out


def test_panel_shows_the_explanation_under_the_sql_until_it_is_edited(scripted, demo_sqlite_url) -> None:
    from jupyter_nl2sql.frontends.widget import panel
    from jupyter_nl2sql.pipeline.assistant import Assistant

    scripted(SQL)
    p = panel(demo_sqlite_url, assistant=Assistant(generation_cache=False, few_shot=0), namespace={})
    try:
        assert p.explanation.layout.display == "none"
        p.question.value = "How many French customers?"
        p.run_button.click()
        assert p.wait(30)
        children = list(p.widget.children)
        assert children.index(p.explanation) == children.index(p.sql) + 1
        assert html.escape(WORDS) in p.explanation.value and p.explanation.layout.display is None
        p.sql.value = "SELECT 1"  # an edit: the words no longer describe what is shown
        assert p.explanation.layout.display == "none" and p.explanation.value == ""
    finally:
        p.wait(10)
        p.close()
