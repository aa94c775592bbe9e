"""The store's refusal of a write that collides with what it holds, as the engine's error.

Many writes read first and then insert (does the name exist? is the member attached?). Two requests doing so
at once both find nothing on PostgreSQL, where neither sees the other's uncommitted row, and the second
insert breaks a unique key; a reference may likewise point at a row another request just removed. The
request that loses has written nothing (its unit of work is rolled back), and the sequential answer it
would have had is a conflict too, so it gets a 409 naming the table and the key instead of a 500. The
same holds for a collision that is a missing check: the answer is right, and the log names the key.
"""

from __future__ import annotations

import logging
import re

from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm.exc import StaleDataError

from twinengine.errors import StoredConflict

__all__ = ["STORE_REFUSALS", "store_refusal", "stored_conflict"]

log = logging.getLogger("twinengine.store")

_UNIQUE_STATES = {"23505"}  # unique_violation (a primary key too)
_REFERENCE_STATES = {"23503"}  # foreign_key_violation
_SQLITE_UNIQUE = ("SQLITE_CONSTRAINT_UNIQUE", "SQLITE_CONSTRAINT_PRIMARYKEY")
_SQLITE_REFERENCE = ("SQLITE_CONSTRAINT_FOREIGNKEY",)
_SQLITE_COLUMNS = re.compile(r"constraint failed: (?P<columns>[\w.]+(?:, [\w.]+)*)")


def stored_conflict(error: IntegrityError) -> StoredConflict | None:
    """The conflict a unique-key or reference violation stands for; None for other integrity errors (a null
    or a check the engine should have refused itself: a bug, left to surface as one)."""
    cause = error.orig
    state = getattr(cause, "sqlstate", None)
    name = getattr(cause, "sqlite_errorname", None)
    if state in _UNIQUE_STATES or name in _SQLITE_UNIQUE:
        unique = True
    elif state in _REFERENCE_STATES or name in _SQLITE_REFERENCE:
        unique = False
    else:
        return None
    diag = getattr(cause, "diag", None)
    table = getattr(diag, "table_name", None)
    key = getattr(diag, "constraint_name", None)
    if diag is None:  # SQLite names the columns: "UNIQUE constraint failed: lake_dids.scope, lake_dids.name"
        found = _SQLITE_COLUMNS.search(str(cause))
        if found:
            columns = found.group("columns").split(", ")
            table = columns[0].partition(".")[0]
            key = ", ".join(c.partition(".")[2] or c for c in columns)
    where = f"{table or 'a table'}" + (f" ({key})" if key else "")
    log.warning("write refused by the store: %s", cause)
    if unique:
        return StoredConflict(f"{where} already holds a row with the same key, most likely written by another "
                              "request at the same moment; nothing of this request was written: repeat it to "
                              "see its answer")
    return StoredConflict(f"a row this request refers to in {where} is not stored, most likely removed by "
                          "another request at the same moment; nothing of this request was written")


_TURN_STATES = {"40P01", "40001"}  # deadlock_detected, serialization_failure: PostgreSQL ended the transaction
STORE_REFUSALS = (DBAPIError, StaleDataError)  # what ``store_refusal`` may turn into a conflict


def store_refusal(error: BaseException) -> StoredConflict | None:
    """The conflict a refused write stands for: a key or reference (``stored_conflict``), a row another
    request removed between this one's read and its write (``StaleDataError``: its UPDATE or DELETE matched
    nothing), or a transaction PostgreSQL ended in a deadlock or a serialisation failure with another one. In
    each, nothing of the request was written and repeating it gives its answer. None for anything else."""
    if isinstance(error, IntegrityError):
        return stored_conflict(error)
    if isinstance(error, StaleDataError):
        log.warning("write refused by the store: %s", error)
        return StoredConflict("a row this request changes was changed or removed by another request at the same "
                              "moment; nothing of this request was written: repeat it to see its answer")
    if isinstance(error, DBAPIError) and getattr(error.orig, "sqlstate", None) in _TURN_STATES:
        log.warning("transaction ended by the store: %s", error.orig)
        return StoredConflict("the store ended this request's transaction, which waited for another one that "
                              "waited for it; nothing of this request was written: repeat it")
    return None
