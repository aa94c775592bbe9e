"""On a compute site's Dask worker: run a chunk of a calibration's model runs in a sandboxed worker of the app
version, exactly as the engine runs them on its own machine.

The site shares the engine's file system for app code, as HPC sites share theirs: the app's unpacked code,
its environment and its cache folder are reached by the paths the engine uses, and the Dask worker's Python
has ``twinengine`` installed. The sandbox and its limits are the engine's (``RemoteApp``), never the site's:
app code runs unsandboxed there only when the engine's own setting is ``none`` (``auto`` is ``bwrap`` on a
site, as it is for ``twin serve``: a worker the engine does not watch must not fall back to no sandbox).
"""

from __future__ import annotations

import atexit
import threading
from pathlib import Path
from typing import Any

from twinengine.workers.service import AppWorkers
from twinengine.workers.site import RemoteApp

__all__ = ["RemoteApp", "app_workers", "close_all", "remote_simulate", "started_workers"]

SIMULATE_MANY = "twinengine.calibration.worker:simulate_many"


_WARM: dict[RemoteApp, AppWorkers] = {}  # per Dask worker process, kept between tasks
_LOCK = threading.Lock()  # held to look up or add, never while a worker starts or runs


def app_workers(spec: RemoteApp) -> AppWorkers:
    """The warm workers of ``spec`` in this process (made on the first chunk, reused by later ones)."""
    with _LOCK:
        found = _WARM.get(spec)
        if found is None:
            found = spec.workers().for_app((spec.sha256, spec.env), label=spec.label, code=Path(spec.code),
                                           env=None if spec.env is None else Path(spec.env),
                                           cache=None if spec.cache is None else Path(spec.cache),
                                           image=spec.image)
            _WARM[spec] = found
    return found


def simulate_chunk(workers: AppWorkers, payload: dict[str, Any]) -> dict[str, Any]:
    """``simulate_many`` on one chunk (``payload``: entrypoint, base, sets, forcing) in a warm sandboxed worker:
    {"values", "error", "cpu_seconds"}, the CPU read from /proc for the worker's processes by this (the
    engine's) side, never what the code in the sandbox reported."""
    spent = [0.0]
    answer: dict[str, Any] = workers.process(SIMULATE_MANY, payload,
                                             cpu=lambda seconds: spent.__setitem__(0, seconds))
    answer["cpu_seconds"] = spent[0]
    return answer


def remote_simulate(spec: RemoteApp, payload: dict[str, Any]) -> dict[str, Any]:
    """A Dask task: ``simulate_chunk`` in this Dask worker process's warm workers of the app."""
    return simulate_chunk(app_workers(spec), payload)


def started_workers() -> int:
    """Sandboxed workers this process started so far (what a site's operator, or a test, can ask it)."""
    with _LOCK:
        return sum(app.workers.pool.started for app in _WARM.values())


def close_all() -> None:
    """Stop every warm worker of this process."""
    with _LOCK:
        apps = list(_WARM.values())
        _WARM.clear()
    for app in apps:
        app.workers.close()


atexit.register(close_all)  # the sandboxed workers end with the Dask worker process
