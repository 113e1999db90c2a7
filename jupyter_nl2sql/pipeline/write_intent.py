"""Questions that ask to change the database, said before any model call when writes are not allowed.

"Drop the customers table" or "Delete all cancelled orders" asks for a write.  Read-only, the SQL check refuses
the ``DROP`` the model writes — but a model that writes a ``SELECT`` for it instead (or a query that fails) leaves
the user with an answer to another question or an error about a column.  :func:`write_request` reads the verb a
question opens with (after "please", "can you"…): one of :data:`WRITE_VERBS`, which no question that reads data
opens with (none of Spider's 8,000 does), asks to change data.  Verbs that also open reads ("add up", "create a
list", "remove duplicates", "change in revenue") are not among them: for those the SQL check decides.

>>> write_request("Please drop the customers table")
'drop'
>>> write_request("Which customers placed an order?") is None
True
"""

from __future__ import annotations

from .values import normalize

__all__ = ["WRITE_VERBS", "write_request"]

#: Verbs that, opening a question, ask to change the database.
WRITE_VERBS = frozenset("drop delete truncate insert alter rename update erase wipe purge set".split())
#: Words before the verb that change nothing ("please delete…", "can you drop…").
_POLITE = frozenset("please kindly now then and also can could would will you just".split())


def write_request(question: str) -> str | None:
    """The verb with which ``question`` asks to change the database ("drop"), or None."""
    for word in normalize(question).split():
        if word not in _POLITE:
            return word if word in WRITE_VERBS else None
    return None
