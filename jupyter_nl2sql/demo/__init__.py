"""A small, realistic demo database generated deterministically (same bytes of data on every machine).

A shop: ``departments``, ``employees`` (each in a department, some managing others), ``customers``,
``products``, ``orders`` (placed by customers, handled by employees) and ``order_items``.  It is written once to
the user cache directory and reused; :func:`demo_url` returns its SQLAlchemy URL.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import sqlite3
from pathlib import Path
from typing import Mapping, Sequence

from ..paths import cache_root

#: Bump when the generator changes so stale copies are rebuilt.
DEMO_VERSION = 1

DEPARTMENTS = [("Sales", "London"), ("Support", "Dublin"), ("Engineering", "Berlin"), ("Marketing", "Paris"),
               ("Finance", "London")]
FIRST = ["Alice", "Bob", "Carla", "David", "Elena", "Farid", "Grace", "Hugo", "Ines", "Jonas", "Kira", "Liam",
         "Maya", "Noah", "Olga", "Pedro", "Quinn", "Rosa", "Sami", "Tara", "Uma", "Victor", "Wen", "Ximena",
         "Yusuf", "Zoe"]
LAST = ["Smith", "Garcia", "Müller", "Rossi", "Dubois", "Novak", "Kowalski", "Silva", "Jensen", "Ahmed", "Tanaka",
        "Okafor", "Larsen", "Costa", "Weber"]
CITIES = [("London", "United Kingdom"), ("Manchester", "United Kingdom"), ("Paris", "France"), ("Lyon", "France"),
          ("Berlin", "Germany"), ("Munich", "Germany"), ("Madrid", "Spain"), ("Rome", "Italy"),
          ("Dublin", "Ireland"), ("Amsterdam", "Netherlands")]
PRODUCTS = [("Laptop Pro 14", "Computers", 1899.0), ("Laptop Air 13", "Computers", 1199.0),
            ("Desktop Tower", "Computers", 1499.0), ("27-inch Monitor", "Accessories", 329.0),
            ("Mechanical Keyboard", "Accessories", 119.0), ("Wireless Mouse", "Accessories", 39.0),
            ("USB-C Dock", "Accessories", 189.0), ("Noise-cancelling Headphones", "Audio", 299.0),
            ("Bluetooth Speaker", "Audio", 89.0), ("Studio Microphone", "Audio", 149.0),
            ("Smartphone X", "Phones", 999.0), ("Smartphone Lite", "Phones", 499.0), ("Phone Case", "Phones", 25.0),
            ("Tablet 11", "Tablets", 649.0), ("E-reader", "Tablets", 139.0), ("Smartwatch", "Wearables", 349.0),
            ("Fitness Band", "Wearables", 79.0), ("Webcam HD", "Accessories", 69.0),
            ("External SSD 1TB", "Storage", 129.0), ("NAS 4-bay", "Storage", 549.0)]
STATUSES = ["delivered"] * 7 + ["shipped", "processing", "cancelled"]

SCHEMA = """
CREATE TABLE departments (
  department_id INTEGER PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  city TEXT NOT NULL
);
CREATE TABLE employees (
  employee_id INTEGER PRIMARY KEY,
  first_name TEXT NOT NULL,
  last_name TEXT NOT NULL,
  department_id INTEGER NOT NULL REFERENCES departments(department_id),
  manager_id INTEGER REFERENCES employees(employee_id),
  hire_date DATE NOT NULL,
  salary REAL NOT NULL
);
CREATE TABLE customers (
  customer_id INTEGER PRIMARY KEY,
  name TEXT NOT NULL,
  email TEXT NOT NULL UNIQUE,
  city TEXT NOT NULL,
  country TEXT NOT NULL,
  signup_date DATE NOT NULL
);
CREATE TABLE products (
  product_id INTEGER PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  category TEXT NOT NULL,
  unit_price REAL NOT NULL
);
CREATE TABLE orders (
  order_id INTEGER PRIMARY KEY,
  customer_id INTEGER NOT NULL REFERENCES customers(customer_id),
  employee_id INTEGER REFERENCES employees(employee_id),
  order_date DATE NOT NULL,
  status TEXT NOT NULL
);
CREATE TABLE order_items (
  order_id INTEGER NOT NULL REFERENCES orders(order_id),
  product_id INTEGER NOT NULL REFERENCES products(product_id),
  quantity INTEGER NOT NULL,
  unit_price REAL NOT NULL,
  PRIMARY KEY (order_id, product_id)
);
"""


def _rows(seed: int = 7) -> dict[str, list[tuple]]:
    """All rows of the demo database, from a fixed seed."""
    rng = random.Random(seed)
    departments = [(i + 1, name, city) for i, (name, city) in enumerate(DEPARTMENTS)]
    employees = []
    for i in range(24):
        dept = i % len(DEPARTMENTS) + 1
        manager = None if i < len(DEPARTMENTS) else dept  # the first employee of each department manages it
        hired = dt.date(2015, 1, 1) + dt.timedelta(days=rng.randrange(0, 3000))
        salary = round(rng.uniform(38_000, 95_000) + (25_000 if manager is None else 0), -2)
        employees.append((i + 1, FIRST[i % len(FIRST)], LAST[(i * 7) % len(LAST)], dept, manager,
                          hired.isoformat(), salary))
    customers = []
    for i in range(60):
        first, last = FIRST[(i * 5 + 3) % len(FIRST)], LAST[(i * 3 + 1) % len(LAST)]
        city, country = CITIES[rng.randrange(len(CITIES))]
        signup = dt.date(2021, 1, 1) + dt.timedelta(days=rng.randrange(0, 900))
        email = f"{first.lower()}.{last.lower().replace('ü', 'u')}{i + 1}@example.com"
        customers.append((i + 1, f"{first} {last}", email, city, country, signup.isoformat()))
    products = [(i + 1, name, cat, price) for i, (name, cat, price) in enumerate(PRODUCTS)]
    orders, items = [], []
    for i in range(300):
        cust = customers[rng.randrange(len(customers))]
        placed = max(dt.date.fromisoformat(cust[5]), dt.date(2023, 1, 1)) + dt.timedelta(days=rng.randrange(0, 540))
        sales = [e for e in employees if e[3] in (1, 2)]
        orders.append((i + 1, cust[0], rng.choice(sales)[0], placed.isoformat(), rng.choice(STATUSES)))
        for prod in rng.sample(products, rng.randint(1, 4)):
            items.append((i + 1, prod[0], rng.choice([1, 1, 1, 2, 2, 3]), prod[3]))
    return {"departments": departments, "employees": employees, "customers": customers, "products": products,
            "orders": orders, "order_items": items}


def write_sqlite(path: str | os.PathLike, schema: str, tables: Mapping[str, Sequence[tuple]], version: int) -> Path:
    """Write a SQLite file at ``path`` (replacing it, atomically): ``schema``'s DDL, then ``tables``' rows in order,
    and ``version`` as its ``user_version``.  Return the path.  Also used for the benchmarks' own databases."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    with sqlite3.connect(tmp) as db:
        db.executescript(schema)
        for table, rows in tables.items():
            marks = ", ".join("?" * len(rows[0]))
            db.executemany(f"INSERT INTO {table} VALUES ({marks})", rows)
        db.execute(f"PRAGMA user_version = {int(version)}")
    db.close()
    os.replace(tmp, path)
    return path


def build_demo_db(path: str | os.PathLike) -> Path:
    """Write the demo database to ``path`` (replacing it) and return the path."""
    return write_sqlite(path, SCHEMA, _rows(), DEMO_VERSION)


def demo_path() -> Path:
    """The demo database file, built on first use (and rebuilt when the generator changed)."""
    path = cache_root() / f"demo-v{DEMO_VERSION}.sqlite"
    if not path.is_file():
        build_demo_db(path)
    return path


def demo_url() -> str:
    """SQLAlchemy URL of the demo database."""
    return f"sqlite:///{demo_path()}"


def copy_demo(url: str) -> None:
    """Create the demo tables (keys included) in another database, e.g. PostgreSQL or DuckDB, and fill them.

    Existing demo tables there are replaced.
    """
    import sqlalchemy as sa

    source = sa.create_engine(demo_url())
    target = sa.create_engine(url)
    try:
        meta = sa.MetaData()
        meta.reflect(source)
        for table in meta.tables.values():  # keep the ids as they are (no SERIAL: DuckDB has none)
            for col in table.primary_key.columns:
                col.autoincrement = False
        meta.drop_all(target)
        meta.create_all(target)
        with source.connect() as src, target.begin() as dst:
            for table in meta.sorted_tables:
                rows = [dict(r._mapping) for r in src.execute(sa.select(table))]
                self_ref = any(fk.column.table is table for fk in table.foreign_keys)
                for batch in ([r] for r in rows) if self_ref else [rows]:  # managers before their reports
                    if batch:
                        dst.execute(table.insert(), batch)
    finally:
        source.dispose()
        target.dispose()
