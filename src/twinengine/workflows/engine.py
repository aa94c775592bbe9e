"""The workflow engine of a runtime: registry, executor, result store, and the state its loops share.

Started with the runtime (``twin serve``, the demo, tests) and stopped with it; its loops (workers, heartbeat,
triggers) run on the runtime's supervisor. Work passes through
database rows, so several engines may share one PostgreSQL store.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import event
from sqlalchemy.orm import Session

from twinengine import lazy_imports
from twinengine.auth.principal import SYSTEM
from twinengine.collections import CollectionSource
from twinengine.store.blobs import BlobStore
from twinengine.store.engine import Database
from twinengine.workers.interrupt import Interrupt
from twinengine.workflows.apps import AppProcesses
from twinengine.workflows.executors import Executor, make_executor, slurm_options
from twinengine.workflows.processes import build_registry
from twinengine.workflows.registry import ProcessRegistry
from twinengine.workflows.results import LocalResultStore, ResultStore
from twinengine.workflows.run_endings import abandon, reap

if TYPE_CHECKING:
    from twinengine.config import Settings
    from twinengine.workflows.arrival_feeds import ArrivalFeed

__all__ = ["WorkflowEngine"]

log = logging.getLogger("twinengine.workflows")

_REGISTRY: ProcessRegistry | None = None
_REGISTRY_LOCK = threading.Lock()
_WAKE_ON_COMMIT = "twinengine.workflows.wake"  # engines whose workers a session wakes when it commits


@event.listens_for(Session, "after_commit")
def _wake_after_commit(session: Session) -> None:
    for engine in session.info.pop(_WAKE_ON_COMMIT, ()):
        engine.wake.set()


@event.listens_for(Session, "after_rollback")
def _forget_wake(session: Session) -> None:
    session.info.pop(_WAKE_ON_COMMIT, None)


def _standard_registry() -> ProcessRegistry:
    """The standard and engine processes are the same for every engine in a process: build them once."""
    global _REGISTRY
    with _REGISTRY_LOCK:
        if _REGISTRY is None:
            with lazy_imports.LOCK:  # it imports openeo-processes-dask, dask and xarray
                _REGISTRY = build_registry()
        return _REGISTRY


class WorkflowEngine:
    def __init__(self, *, db: Database, blobs: BlobStore, collections: CollectionSource, data_dir: Path,
                 executor: Executor | None = None, results: ResultStore | None = None, workers: int = 2,
                 udf_timeout: float = 60.0, udf_memory_bytes: int = 2 << 30, heartbeat_seconds: float = 2.0,
                 stale_after_seconds: float = 15.0, poll_seconds: float = 0.5,
                 arrivals: ArrivalFeed | None = None, sync_timeout: float | None = None,
                 sync_max_result_bytes: int | None = None, max_array_elements: int | None = None) -> None:
        self.db, self.blobs, self.collections = db, blobs, collections
        self.executor = executor or make_executor("local")
        self.results = results or LocalResultStore(data_dir / "results")
        self.apps = AppProcesses(db, blobs)
        self.registry = ProcessRegistry(apps=self.apps, base=lambda: _standard_registry().list(include_apps=False))
        self.system = SYSTEM
        self.workers = workers
        self.udf_timeout, self.udf_memory_bytes = udf_timeout, udf_memory_bytes
        # Budgets of synchronous processing (None: unbounded) and the element cap of arrays built in the engine
        self.sync_timeout, self.sync_max_result_bytes = sync_timeout, sync_max_result_bytes
        self.max_array_elements = max_array_elements
        self.memory_limit: str | None = None  # the limit a MemoryError means here, in words (a sync process's)
        self.overdue: dict[str, dict[str, Any]] = {}  # run id → its error when its budget or a lost grant stops it
        self.heartbeat_seconds, self.stale_after_seconds = heartbeat_seconds, stale_after_seconds
        self.poll_seconds = poll_seconds
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.executing: set[str] = set()
        self.in_progress: dict[str, Any] = {}  # run id → its flush of pending node updates (the heartbeat calls)
        self.cancel_requests: set[str] = set()
        self.interrupts: dict[str, Interrupt] = {}  # run id → what stops its app code mid-node (``cancel``)
        self.wake = threading.Event()
        self.stopping = threading.Event()
        self._working = 0  # runs the loops' workers are executing (``working``)
        self._idle = threading.Condition()
        self.arrivals = arrivals
        self.services: dict[str, Any] = {}  # lent to processes through the run context (read_stream)
        self.kinds: dict[str, Callable[[WorkflowEngine, str], str]] = {}  # executors of runs of other kinds
        self.started = False

    @classmethod
    def from_settings(cls, settings: Settings, *, db: Database, blobs: BlobStore,
                      collections: CollectionSource) -> WorkflowEngine:
        from twinengine.workflows.arrival_feeds import LocalArrivals

        options = slurm_options(queue=settings.slurm_queue, account=settings.slurm_account, cores=settings.slurm_cores,
                                memory=settings.slurm_memory, walltime=settings.slurm_walltime,
                                jobs=settings.slurm_jobs, extra=settings.slurm_options)
        executor = make_executor(settings.executor, address=settings.dask_address, workers=settings.dask_workers,
                                 options=options)
        root = settings.collections_dir or settings.data_dir / "collections"
        return cls(db=db, blobs=blobs, collections=collections, data_dir=settings.data_dir, executor=executor,
                   workers=settings.workflow_workers, udf_timeout=settings.udf_timeout.total_seconds(),
                   udf_memory_bytes=settings.udf_memory_bytes, arrivals=LocalArrivals(root),
                   stale_after_seconds=settings.workflow_stale_after.total_seconds(),
                   sync_timeout=settings.sync_timeout.total_seconds(),
                   sync_max_result_bytes=settings.sync_max_result_bytes,
                   max_array_elements=settings.workflow_max_array_elements)

    def start(self) -> None:
        """Reap the runs a previous engine left running. The loops that execute runs, beat their heartbeat and
        fire triggers run on the runtime's supervisor (``daemons.supervisor``, ``daemons.workflows_runner``)."""
        if self.started:
            return
        self.started = True
        reap(self, stale_after=self.stale_after_seconds)

    @contextmanager
    def working(self) -> Iterator[None]:
        """Around a worker's execution of a run, its ending recorded included: ``stop`` waits for them."""
        with self._idle:
            self._working += 1
        try:
            yield
        finally:
            with self._idle:
                self._working -= 1
                self._idle.notify_all()

    def halt(self) -> None:
        """Take no more runs and cancel those in progress (the loops stopping call it)."""
        self.stopping.set()
        self.wake.set()
        self.cancel(list(self.executing))

    def stop(self, *, grace: float = 4.0) -> None:
        """Cancel the runs in progress, give them ``grace`` seconds to end, then record those that still have
        not ended as ``error`` (the engine stopped), so none stays ``running``. From now on its loops take no
        work (``daemons.workflows_runner``)."""
        self.halt()
        with self._idle:  # runs end at their next node once cancelled, recording how they ended
            self._idle.wait_for(lambda: self._working == 0, timeout=grace)
        if self.started:
            try:
                abandon(self, list(self.executing))
            except Exception:  # the store may be gone already; the next engine's reaper ends them then
                log.exception("could not record the runs left in progress")
        self.executor.close()

    def cancel(self, run_ids: Iterable[str]) -> None:
        """Stop these runs of this engine: each ends before its next node or Dask task, and app code running
        for it in a worker is stopped at once (the worker is killed; ``workers.interrupt``)."""
        for run_id in run_ids:
            self.cancel_requests.add(run_id)
            interrupt = self.interrupts.get(run_id)
            if interrupt is not None:
                interrupt.fire()

    def notify(self, session: Session | None = None) -> None:
        """A run was queued in ``session``: wake a worker once that transaction commits (woken before, it
        would not see the run and sleep until its next poll). Without a session, wake one now."""
        if session is None:
            self.wake.set()
        else:
            session.info.setdefault(_WAKE_ON_COMMIT, set()).add(self)
