"""The second database of the analyst question suite: a video streaming service, generated deterministically.

Benchmark data, not product: the demo shop (:mod:`jupyter_nl2sql.demo`) is the first database of the suite
(:mod:`benchmarks.analyst`), and this one adds what the shop lacks: timestamps as well as dates spanning three
years (2022-2024), money in cents that is sometimes discounted or refunded, nullable columns that really hold
NULLs (a cancellation date and reason, a birth year, a referrer, a rating, a runtime, a maturity rating), a
self-reference (who referred whom) and a many-to-many link table (``title_genres``).

Tables: ``plans``, ``subscribers``, ``subscriptions`` (a subscriber's plan from ``started_on`` until
``cancelled_on``, NULL while active), ``payments`` (one a month while a subscription runs), ``titles``,
``genres``, ``title_genres`` and ``views`` (what a subscriber watched, when, for how long, on which device, and the
rating given, if any).  The rows come from one seeded :class:`random.Random`, so every machine builds the same data;
:func:`analyst_db_path` writes the file once to the benchmark cache and reuses it.
"""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path

from benchmarks.wikisql import default_cache_dir
from jupyter_nl2sql.demo import write_sqlite

#: The name the question file gives this database.
NAME = "streaming"
#: Bump when the generator changes so that a stale cached copy is rebuilt.
VERSION = 1
SEED = 2024
#: Payments and views are generated up to (not including) this day.
END = dt.date(2025, 1, 1)

SCHEMA = """
CREATE TABLE plans (
  plan_id INTEGER PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  monthly_price REAL NOT NULL,
  screens INTEGER NOT NULL
);
CREATE TABLE subscribers (
  subscriber_id INTEGER PRIMARY KEY,
  name TEXT NOT NULL,
  email TEXT NOT NULL UNIQUE,
  country TEXT NOT NULL,
  birth_year INTEGER,
  signed_up_at TIMESTAMP NOT NULL,
  referred_by INTEGER REFERENCES subscribers(subscriber_id)
);
CREATE TABLE subscriptions (
  subscription_id INTEGER PRIMARY KEY,
  subscriber_id INTEGER NOT NULL REFERENCES subscribers(subscriber_id),
  plan_id INTEGER NOT NULL REFERENCES plans(plan_id),
  started_on DATE NOT NULL,
  cancelled_on DATE,
  cancel_reason TEXT
);
CREATE TABLE payments (
  payment_id INTEGER PRIMARY KEY,
  subscription_id INTEGER NOT NULL REFERENCES subscriptions(subscription_id),
  paid_at TIMESTAMP NOT NULL,
  amount REAL NOT NULL,
  discount REAL,
  method TEXT NOT NULL,
  refunded_at TIMESTAMP
);
CREATE TABLE titles (
  title_id INTEGER PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  kind TEXT NOT NULL,
  release_year INTEGER NOT NULL,
  runtime_minutes INTEGER,
  maturity_rating TEXT
);
CREATE TABLE genres (
  genre_id INTEGER PRIMARY KEY,
  name TEXT NOT NULL UNIQUE
);
CREATE TABLE title_genres (
  title_id INTEGER NOT NULL REFERENCES titles(title_id),
  genre_id INTEGER NOT NULL REFERENCES genres(genre_id),
  PRIMARY KEY (title_id, genre_id)
);
CREATE TABLE views (
  view_id INTEGER PRIMARY KEY,
  subscriber_id INTEGER NOT NULL REFERENCES subscribers(subscriber_id),
  title_id INTEGER NOT NULL REFERENCES titles(title_id),
  started_at TIMESTAMP NOT NULL,
  minutes_watched INTEGER NOT NULL,
  device TEXT NOT NULL,
  rating INTEGER
);
"""

PLANS = [("Basic", 7.99, 1), ("Standard", 12.99, 2), ("Premium", 17.99, 4), ("Student", 4.99, 1)]
PLAN_WEIGHTS = [30, 40, 18, 12]
GENRES = ["Drama", "Comedy", "Thriller", "Documentary", "Sci-Fi", "Romance", "Animation", "Crime", "Horror",
          "Family"]
COUNTRIES = [("United States", 30), ("United Kingdom", 14), ("Canada", 10), ("Germany", 10), ("France", 9),
             ("Spain", 7), ("Brazil", 8), ("Japan", 6), ("Australia", 6)]
FIRST = ["Ava", "Ben", "Chloe", "Dev", "Emma", "Felix", "Gia", "Hiro", "Isla", "Jack", "Kofi", "Lena", "Mateo",
         "Nina", "Omar", "Priya", "Raul", "Sofia", "Theo", "Una", "Vera", "Will", "Yara", "Zane", "Amir", "Bea",
         "Carlos", "Dana", "Eli", "Fatima"]
LAST = ["Anderson", "Brown", "Chen", "Diaz", "Evans", "Fischer", "Gomez", "Hughes", "Ito", "Johnson", "Khan",
        "Lopez", "Martin", "Nguyen", "Olsen", "Patel", "Reyes", "Schmidt", "Taylor", "Walker"]
ADJECTIVES = ["Silent", "Golden", "Broken", "Hidden", "Last", "Midnight", "Crimson", "Frozen", "Wild", "Distant",
              "Electric", "Lost", "Paper", "Quiet", "Restless", "Salt"]
NOUNS = ["Harbor", "Signal", "Garden", "Empire", "Orbit", "Letters", "Frontier", "Kitchen", "Island", "Code",
         "Summer", "Detective", "Valley", "Circus", "Machine", "River"]
MATURITY = ["G", "PG", "PG-13", "R", None]
MATURITY_WEIGHTS = [12, 25, 30, 18, 15]
DEVICES = ["tv", "phone", "laptop", "tablet"]
DEVICE_WEIGHTS = [45, 25, 20, 10]
METHODS = ["card", "paypal", "gift card"]
METHOD_WEIGHTS = [70, 22, 8]
CANCEL_REASONS = ["too expensive", "not enough content", "technical issues", "moving to another service", None]
CANCEL_WEIGHTS = [35, 25, 10, 15, 15]
#: payments in this month get the Black Friday promotion
PROMO_MONTH = "2023-11"
PROMO_DISCOUNT = 3.00


def _add_months(day: dt.date, months: int) -> dt.date:
    """``day`` moved by whole months, clamped to the last day of a shorter month (Jan 31 + 1 month: Feb 28)."""
    month0 = day.month - 1 + months
    year, month = day.year + month0 // 12, month0 % 12 + 1
    for last in (31, 30, 29, 28):
        try:
            return dt.date(year, month, min(day.day, last))
        except ValueError:
            continue
    raise AssertionError("unreachable")


def _timestamp(day: dt.date, rng: random.Random, first_hour: int = 0) -> str:
    """``day`` at a random second from ``first_hour`` o'clock on, as ``YYYY-MM-DD HH:MM:SS``."""
    at = dt.datetime.combine(day, dt.time()) + dt.timedelta(seconds=rng.randrange(first_hour * 3600, 86400))
    return at.isoformat(sep=" ")


def _titles(rng: random.Random) -> tuple[list[tuple], list[tuple]]:
    """60 titles (two thirds movies) and their one to three genres each."""
    names = [f"The {a} {n}" if i % 3 == 0 else f"{a} {n}"
             for i, (a, n) in enumerate(rng.sample([(a, n) for a in ADJECTIVES for n in NOUNS], 60))]
    titles, links = [], []
    for i, name in enumerate(names):
        kind = "series" if i % 3 == 2 else "movie"
        runtime = None if kind == "series" else rng.randrange(78, 170)
        if kind == "movie" and rng.random() < 0.08:  # a few movies whose runtime nobody entered
            runtime = None
        rating = rng.choices(MATURITY, MATURITY_WEIGHTS)[0]
        titles.append((i + 1, name, kind, rng.randrange(1995, 2025), runtime, rating))
        for genre in sorted(rng.sample(range(1, len(GENRES) + 1), rng.choices([1, 2, 3], [40, 45, 15])[0])):
            links.append((i + 1, genre))
    return titles, links


def _subscribers(rng: random.Random) -> list[tuple]:
    """320 subscribers, signed up from 2022 to late 2024, some referred by an earlier one."""
    days = sorted(rng.randrange(0, (dt.date(2024, 11, 1) - dt.date(2022, 1, 1)).days) for _ in range(320))
    countries, weights = zip(*COUNTRIES)
    rows = []
    for i, offset in enumerate(days):
        first, last = FIRST[(i * 7) % len(FIRST)], LAST[(i * 3 + i // len(FIRST)) % len(LAST)]
        signed = _timestamp(dt.date(2022, 1, 1) + dt.timedelta(days=offset), rng, first_hour=6)
        birth = None if rng.random() < 0.15 else rng.randrange(1950, 2007)
        referrer = rng.randrange(1, i + 1) if i > 10 and rng.random() < 0.3 else None
        rows.append((i + 1, f"{first} {last}", f"{first.lower()}.{last.lower()}{i + 1}@example.net",
                     rng.choices(countries, weights)[0], birth, signed, referrer))
    return rows


def _subscriptions(rng: random.Random, subscribers: list[tuple]) -> list[tuple]:
    """Most subscribers subscribe within days of signing up; some cancel, some switch plans (the old subscription
    ends with reason 'switched plan' the day the new one starts); a few never subscribe."""
    rows: list[tuple] = []
    for sub in subscribers:
        if rng.random() < 0.06:
            continue  # signed up, never subscribed
        plan = rng.choices(range(1, len(PLANS) + 1), PLAN_WEIGHTS)[0]
        start = dt.date.fromisoformat(sub[5][:10]) + dt.timedelta(days=rng.randrange(0, 15))
        while start < END:
            length = rng.randrange(20, 900)
            end = start + dt.timedelta(days=length)
            if end >= END or rng.random() < 0.35:
                end_day, reason = (None, None) if end >= END or rng.random() < 0.5 else (end, None)
                if end_day is not None:
                    reason = rng.choices(CANCEL_REASONS, CANCEL_WEIGHTS)[0]
                rows.append((len(rows) + 1, sub[0], plan, start.isoformat(),
                             end_day and end_day.isoformat(), reason))
                break
            if rng.random() < 0.5:  # switches plan
                rows.append((len(rows) + 1, sub[0], plan, start.isoformat(), end.isoformat(), "switched plan"))
                plan = rng.choice([p for p in range(1, len(PLANS) + 1) if p != plan])
                start = end
            else:
                reason = rng.choices(CANCEL_REASONS, CANCEL_WEIGHTS)[0]
                rows.append((len(rows) + 1, sub[0], plan, start.isoformat(), end.isoformat(), reason))
                break
    return rows


def _payments(rng: random.Random, subscriptions: list[tuple], subscribers: list[tuple]) -> list[tuple]:
    """One payment a month from the start day while the subscription runs; referred subscribers pay half price
    for their first three months, November 2023 has a promotion, a few payments are refunded."""
    referred = {s[0] for s in subscribers if s[6] is not None}
    price = {i + 1: p[1] for i, p in enumerate(PLANS)}
    rows: list[tuple] = []
    for sub_id, subscriber, plan, started, cancelled, _ in subscriptions:
        start = dt.date.fromisoformat(started)
        stop = dt.date.fromisoformat(cancelled) if cancelled else END
        method = rng.choices(METHODS, METHOD_WEIGHTS)[0]
        month = 0
        while (day := _add_months(start, month)) < stop:
            discount = None
            if subscriber in referred and month < 3:
                discount = round(price[plan] / 2, 2)
            elif day.isoformat()[:7] == PROMO_MONTH:
                discount = PROMO_DISCOUNT
            paid = _timestamp(day, rng)
            refunded = None
            if rng.random() < 0.02:
                refunded = _timestamp(day + dt.timedelta(days=rng.randrange(1, 10)), rng)
            rows.append((len(rows) + 1, sub_id, paid, round(price[plan] - (discount or 0.0), 2), discount, method,
                         refunded))
            month += 1
    return rows


def _views(rng: random.Random, subscriptions: list[tuple], titles: list[tuple]) -> list[tuple]:
    """Viewing sessions inside each subscription's active period: about three a month, of popular titles more
    often than others; some get a rating from 1 to 5."""
    popularity = [1.0 / (1 + (i * 7) % 23) for i in range(len(titles))]
    rows: list[tuple] = []
    for _, subscriber, _, started, cancelled, _ in subscriptions:
        start = dt.date.fromisoformat(started)
        stop = dt.date.fromisoformat(cancelled) if cancelled else END
        active = (stop - start).days
        if active <= 0:
            continue
        device = rng.choices(DEVICES, DEVICE_WEIGHTS)[0]  # each subscriber mostly uses one device
        for _ in range(max(0, int(active / 30 * rng.uniform(0.5, 2.5)))):
            title = rng.choices(titles, popularity)[0]
            day = start + dt.timedelta(days=rng.randrange(active))
            full = title[4] or rng.randrange(25, 60)
            minutes = rng.randrange(3, full + 1)
            rating = rng.randint(1, 5) if rng.random() < 0.35 else None
            rows.append((subscriber, title[0], _timestamp(day, rng, first_hour=7), minutes,
                         device if rng.random() < 0.8 else rng.choice(DEVICES), rating))
    rows.sort(key=lambda r: (r[2], r[0]))
    return [(i + 1, *row) for i, row in enumerate(rows)]


def rows(seed: int = SEED) -> dict[str, list[tuple]]:
    """Every row of the streaming database, table by table in foreign-key order, from ``seed``."""
    rng = random.Random(seed)
    titles, links = _titles(rng)
    subscribers = _subscribers(rng)
    subscriptions = _subscriptions(rng, subscribers)
    return {
        "plans": [(i + 1, *plan) for i, plan in enumerate(PLANS)],
        "subscribers": subscribers,
        "subscriptions": subscriptions,
        "payments": _payments(rng, subscriptions, subscribers),
        "titles": titles,
        "genres": [(i + 1, name) for i, name in enumerate(GENRES)],
        "title_genres": links,
        "views": _views(rng, subscriptions, titles),
    }


def build_analyst_db(path: str | Path) -> Path:
    """Write the streaming database to ``path`` (replacing it) and return the path."""
    return write_sqlite(path, SCHEMA, rows(), VERSION)


def analyst_db_path(cache_dir: Path | None = None) -> Path:
    """The streaming database file under the benchmark cache (``$NL2SQL_BENCH_CACHE`` or
    ``~/.cache/jupyter-nl2sql/benchmarks``), built on first use and rebuilt when :data:`VERSION` changes."""
    path = (cache_dir or default_cache_dir()) / f"analyst-{NAME}-v{VERSION}.sqlite"
    if not path.is_file():
        build_analyst_db(path)
    return path
