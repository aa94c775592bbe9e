"""The compute sites' heartbeat loop (``compute.heartbeats``), elected: one process of the engine runs it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from twinengine.compute.heartbeats import HEARTBEAT_SECONDS, run_once
from twinengine.daemons.supervisor import Loop, Scope

if TYPE_CHECKING:
    from twinengine.daemons.engine_parts import EngineParts

__all__ = ["heartbeat_loop"]


def heartbeat_loop(runtime: EngineParts, *, every: float = HEARTBEAT_SECONDS) -> Loop:
    return Loop("compute-heartbeats", lambda: run_once(runtime.db, runtime.lake.keyring, every=every),
                scope=Scope.ELECTED, interval=min(5.0, every / 2), rush=True)
