"""The store out of reach, told apart from a refusal or a bug: PostgreSQL restarting or shut down, its host or
the connection to it gone. Nothing about the work is wrong then; it waits and is repeated. An API request gets
503 ``StoreUnavailable`` with Retry-After instead of a 500, and a background loop waits for the store instead of
counting the outage as its work's failure (a function's records would otherwise be dead-lettered for it).
"""

from __future__ import annotations

from sqlalchemy.exc import DBAPIError, OperationalError

__all__ = ["store_unreachable"]

_UNREACHABLE_CLASS = "08"  # connection_exception and its subclasses
_UNREACHABLE_STATES = {"57P01", "57P02", "57P03"}  # admin_shutdown, crash_shutdown, cannot_connect_now


def store_unreachable(error: BaseException) -> bool:
    """Whether ``error`` says the store could not be reached (or dropped the connection), as opposed to a
    refusal of what was asked (a key, a deadlock) or a bug (a missing table, a bad statement)."""
    if not isinstance(error, DBAPIError):
        return False
    if error.connection_invalidated:
        return True
    state = getattr(error.orig, "sqlstate", None)
    if state:
        return state.startswith(_UNREACHABLE_CLASS) or state in _UNREACHABLE_STATES
    # psycopg names no state for a server that never answered (refused, unknown host, in recovery); SQLite's
    # OperationalError (a missing table, a locked file) carries its own error name and is not an outage
    return isinstance(error, OperationalError) and getattr(error.orig, "sqlite_errorname", None) is None \
        and type(error.orig).__module__.startswith("psycopg")
