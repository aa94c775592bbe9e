"""The data space's courier: sends what each negotiation and transfer process owes the other side, and pulls
what a started transfer made available (``dataspace.courier``).

A loop of every engine process: claims are per process row (a lease in the store), so two processes never send the
same message at once. A request that queued work wakes it at once (``Connector.wake``); otherwise it looks every
second (retries, work of other processes).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from twinengine.daemons.supervisor import Loop, Scope
from twinengine.dataspace.connector import Connector

__all__ = ["dataspace_loop"]

INTERVAL_S = 1.0


def dataspace_loop(connector: Callable[[], Connector]) -> Loop:
    """``courier.run_once`` when woken, else every ``INTERVAL_S``."""

    def step() -> int:
        from twinengine.dataspace.courier import run_once

        return run_once(connector())

    def wait(stop: threading.Event) -> None:
        due = connector().due
        if due.wait(INTERVAL_S):
            due.clear()

    return Loop("dataspace-courier", step, scope=Scope.PROCESS, interval=INTERVAL_S, wait=wait, rush=True,
                interrupt=lambda: connector().wake())
