"""The twin expiry loop: deletes the twins whose ``expires_at`` has passed (what-if runs' forks).

An elected loop (``daemons/supervisor.py``): one process of the engine runs it. A pass is one indexed query on
``twins.expires_at`` whatever the number of twins, once a minute; a pass that deleted a full batch is followed
by the next at once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from twinengine.daemons.supervisor import Loop, Scope
from twinengine.store.base import utcnow
from twinengine.store.engine import Database
from twinengine.twins import expiry

if TYPE_CHECKING:
    from twinengine.daemons.engine_parts import EngineParts

__all__ = ["BATCH", "expiry_loop", "run_once"]

BATCH = 100
INTERVAL_SECONDS = 60.0


def run_once(db: Database) -> int:
    """One pass: delete the twins due now (at most ``BATCH``); returns how many."""
    with db.session() as session:
        return expiry.expire(session, now=utcnow(), limit=BATCH)


def expiry_loop(runtime: EngineParts) -> Loop:
    return Loop("twin-expiry", lambda: run_once(runtime.db), scope=Scope.ELECTED, interval=INTERVAL_SECONDS,
                rush=True)
