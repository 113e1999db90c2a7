"""``python -m jupyter_nl2sql``: the command line (:mod:`jupyter_nl2sql.frontends.cli`)."""

import sys

from .frontends.cli import main

if __name__ == "__main__":
    sys.exit(main())
