"""``python -m jupyter_nl2sql``: the command line (:mod:`jupyter_nl2sql.frontends.cli`)."""

from .frontends.cli import run

if __name__ == "__main__":
    run()
