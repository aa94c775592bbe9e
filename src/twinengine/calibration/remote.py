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
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from twinengine.workers.sandbox import Limits, Sandbox, SandboxMode, gpu_devices
from twinengine.workers.service import AppWorkers, Workers

if TYPE_CHECKING:
    from twinengine.workers.containers import ContainerRuntime

__all__ = ["RemoteApp", "app_workers", "close_all", "remote_simulate", "started_workers"]

SIMULATE_MANY = "twinengine.calibration.worker:simulate_many"


@dataclass(frozen=True)
class RemoteApp:
    """One app version's code, environment and the engine's sandbox settings, as paths and plain values (it
    is pickled to the site); equal settings find the same warm workers there."""

    sha256: str
    label: str
    code: str
    env: str | None
    cache: str | None
    image: str | None
    sandbox: SandboxMode
    hidden: tuple[str, ...]
    timeout: float
    memory_bytes: int
    processes: int
    file_bytes: int
    shm_bytes: int
    containers: ContainerRuntime = "none"
    gpus: bool = False
    warm: int = 2

    @classmethod
    def of(cls, app: AppWorkers, sha256: str) -> RemoteApp:
        """The engine's own settings for ``app`` (the workers it would use locally)."""
        workers, sandbox = app.workers, app.workers.sandbox
        return cls(sha256=sha256, label=app.label, code=str(app.code), env=None if app.env is None else str(app.env),
                   cache=None if app.cache is None else str(app.cache), image=app.image,
                   sandbox="none" if sandbox.mode == "none" else "bwrap",
                   hidden=tuple(str(p) for p in sandbox.hidden), timeout=workers.timeout,
                   memory_bytes=workers.memory_bytes, processes=sandbox.limits.processes,
                   file_bytes=sandbox.limits.file_bytes, shm_bytes=sandbox.limits.shm_bytes,
                   containers=sandbox.containers, gpus=bool(sandbox.devices), warm=max(1, workers.pool.idle))

    def workers(self) -> Workers:
        """The sandboxed workers of this Dask worker process, bounded as the engine bounds its own."""
        import tempfile

        sandbox = Sandbox(self.sandbox, hidden=[Path(p) for p in self.hidden],
                          devices=gpu_devices() if self.gpus else [], containers=self.containers,
                          limits=Limits(processes=self.processes, file_bytes=self.file_bytes,
                                        shm_bytes=self.shm_bytes))
        return Workers(sandbox=sandbox, scratch_root=Path(tempfile.gettempdir()), timeout=self.timeout,
                       memory_bytes=self.memory_bytes, idle=self.warm)


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
