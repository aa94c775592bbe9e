"""Where code the engine did not write runs: sandboxed worker processes (bubblewrap), warm per app version,
speaking a small framed protocol over pipes, each app in an environment of its own.

The names below are imported on first use, not with the package: every worker process starts as
``python -m twinengine.workers._child``, which imports this package first, and the engine's side of the pool
(about 0.1 s of imports) would be paid again by each of them."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from twinengine.workers.pool import WorkerPool
    from twinengine.workers.process import Worker, WorkerCrashed, WorkerError, WorkerOutOfMemory, WorkerTimeout
    from twinengine.workers.sandbox import Layout, Sandbox, SandboxUnavailable
    from twinengine.workers.service import AppWorkers, Workers

__all__ = ["AppWorkers", "Layout", "Sandbox", "SandboxUnavailable", "Worker", "WorkerCrashed", "WorkerError",
           "WorkerOutOfMemory", "WorkerPool", "WorkerTimeout", "Workers"]

_HOMES = {"WorkerPool": "pool", "Worker": "process", "WorkerCrashed": "process", "WorkerError": "process",
          "WorkerOutOfMemory": "process", "WorkerTimeout": "process", "Layout": "sandbox", "Sandbox": "sandbox",
          "SandboxUnavailable": "sandbox",
          "AppWorkers": "service", "Workers": "service"}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value  # once: later lookups do not come here
    return value
