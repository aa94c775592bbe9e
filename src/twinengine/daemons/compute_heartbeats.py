"""The compute sites' heartbeat loop (``compute.heartbeats``), in a thread of the process that runs the
singleton loops."""

from __future__ import annotations

from typing import TYPE_CHECKING

from twinengine.compute.heartbeats import HEARTBEAT_SECONDS, run_once
from twinengine.daemons.loop import Daemons

if TYPE_CHECKING:
    from twinengine.daemons.engine_parts import EngineParts

__all__ = ["start_heartbeats"]


def start_heartbeats(runtime: EngineParts, *, every: float = HEARTBEAT_SECONDS) -> Daemons:
    daemons = Daemons()
    daemons.start("compute-heartbeats", lambda: run_once(runtime.db, runtime.lake.keyring, every=every),
                  interval=min(5.0, every / 2))
    return daemons
