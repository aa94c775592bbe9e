"""Executors: where the Dask work of a run is computed. One interface, plugged in by name.

``local`` (embedded default) is Dask's threaded scheduler in the engine process; ``distributed`` is a Dask
cluster at ``TWIN_DASK_ADDRESS``; ``slurm`` starts a cluster through dask-jobqueue whose workers are
Slurm batch jobs (tested on a real single-node Slurm cluster). Third-party executors come in through the
``twinengine.executors`` entry-point group.
"""

from __future__ import annotations

import functools
import logging
import shlex
import signal
import sys
import threading
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any, ClassVar

__all__ = ["ClusterLost", "DistributedExecutor", "Executor", "LocalExecutor", "SlurmExecutor",
           "available_executors", "make_executor", "slurm_cluster", "slurm_options"]

log = logging.getLogger("twinengine.workflows")

# progress(done, total) while a computation runs; may raise to abort it
Progress = Callable[[int, int], None]


def _compute(*values: Any, **kwargs: Any) -> Any:
    """``dask.compute``, imported on the first run (not when the engine starts)."""
    import dask.base

    compute: Any = dask.base.compute  # untyped in dask
    return compute(*values, **kwargs)


class Executor:
    """Computes Dask collections. Subclasses implement ``compute``; ``close`` releases resources."""

    name: ClassVar[str] = "abstract"
    description: ClassVar[str] = ""

    def compute(self, *values: Any, progress: Progress | None = None) -> tuple[Any, ...]:
        raise NotImplementedError

    def close(self) -> None:
        return None

    def describe(self) -> dict[str, Any]:
        return {"name": self.name}


class LocalExecutor(Executor):
    """Dask's threaded scheduler in this process; progress and cancellation through scheduler callbacks."""

    name = "local"
    description = "Dask local (threaded) scheduler, embedded"

    def __init__(self, workers: int | None = None) -> None:
        self.workers = workers

    def compute(self, *values: Any, progress: Progress | None = None) -> tuple[Any, ...]:
        kwargs: dict[str, Any] = {"scheduler": "threads"}
        if self.workers:
            kwargs["num_workers"] = self.workers
        if progress is None:
            return tuple(_compute(*values, **kwargs))
        from dask import callbacks

        Callback: Any = callbacks.Callback

        lock = threading.Lock()
        state = {"done": 0, "total": 0}

        def start_state(_dsk: Any, st: dict[str, Any]) -> None:
            state["total"] = sum(len(st[k]) for k in ("ready", "waiting", "running", "finished"))
            progress(0, state["total"])

        def pretask(_key: Any, _dsk: Any, _state: Any) -> None:
            progress(state["done"], state["total"])  # raising here aborts the computation

        def posttask(_key: Any, _result: Any, _dsk: Any, _state: Any, _worker: Any) -> None:
            with lock:
                state["done"] += 1

        with Callback(start_state=start_state, pretask=pretask, posttask=posttask):
            return tuple(_compute(*values, **kwargs))

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "workers": self.workers}


_ANSWERING = ("running", "newly-created")


def _cancel(client: Any, futures: list[Any]) -> None:
    try:
        client.cancel(futures)
    except Exception as exc:  # the cluster is gone: nothing left to cancel
        log.debug("cancelling on a lost cluster: %s", exc)


class ClusterLost(ConnectionError):
    """Raised when a Dask cluster's scheduler stopped answering before or while a computation ran."""


class DistributedExecutor(Executor):
    """A Dask distributed cluster (``dask scheduler`` + workers); the client connects on first use."""

    name = "distributed"
    description = "Dask distributed cluster"

    def __init__(self, address: str) -> None:
        from twinengine.compute.dask_client import DaskClient

        self.address = address
        self.connection = DaskClient(address)  # a new client once the last one closed (a scheduler lost)

    @property
    def client(self) -> Any:
        return self.connection.get()

    def compute(self, *values: Any, progress: Progress | None = None) -> tuple[Any, ...]:
        """Persist on the cluster (futures), report progress while they finish, then gather. Values that
        are not Dask collections (an eager cube, a number) come back as they are, as ``dask.compute``
        returns them: ``Client.persist`` accepts collections only."""
        from dask.base import is_dask_collection

        lazy = [i for i, value in enumerate(values) if is_dask_collection(value)]
        if len(lazy) < len(values):
            computed = self._compute_lazy(*[values[i] for i in lazy], progress=progress) if lazy else ()
            merged = list(values)
            for i, value in zip(lazy, computed, strict=True):
                merged[i] = value
            return tuple(merged)
        return self._compute_lazy(*values, progress=progress)

    def _compute_lazy(self, *values: Any, progress: Progress | None = None) -> tuple[Any, ...]:
        import distributed

        futures_of: Any = distributed.futures_of
        from twinengine.compute.dask_usage import task_stream_usage

        client = self.client
        if client.status not in _ANSWERING:
            raise ClusterLost(f"lost the Dask cluster at {self.address}: its client is {client.status}")
        # The client is named explicitly, not made current: ``as_current`` sets dask's scheduler in the
        # process-wide config, so a computation on the engine's other threads at that moment (a local run,
        # a save) would be sent to this cluster, or fail for want of a client, and two runs entering and
        # leaving it at once could leave it set for good.
        with task_stream_usage(client, values) as read_stream:  # core-seconds from Dask's own record
            persisted = client.persist(list(values))
            futures = futures_of(persisted)
            pending = list(futures)
            total = max(1, len(pending))
            changed = threading.Event()  # distributed.wait would need a current client: callbacks do not
            for future in futures:
                future.add_done_callback(lambda _done: changed.set())
            try:
                while pending:
                    changed.wait(0.5)
                    changed.clear()
                    pending = [f for f in pending if not f.done()]
                    read_stream()  # what the cluster computed so far, charged as it goes (kept if it is lost)
                    if progress is not None:
                        progress(total - len(pending), total)
            except BaseException:
                # aside: a scheduler that stopped answering would keep the cancel (and the run) waiting
                threading.Thread(target=_cancel, args=(client, futures), name="cancel-futures", daemon=True).start()
                raise
            # a lost scheduler cancels every future of its clients; gathering them would wait for a
            # reconnection (20 s) only to fail the same way
            if client.status not in _ANSWERING or any(f.status in ("cancelled", "lost") for f in futures):
                raise ClusterLost(f"lost the Dask cluster at {self.address} while computing (client "
                                  f"{client.status})")
            return tuple(_compute(*persisted, scheduler=client.get))

    def close(self) -> None:
        self.connection.close()

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "address": self.address}


def slurm_options(*, queue: str | None = None, account: str | None = None, cores: int = 1, memory: str = "4GiB",
                  walltime: str = "01:00:00", jobs: int = 1, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """SLURMCluster keywords from the engine's settings; ``extra`` (``TWIN_SLURM_OPTIONS``) wins."""
    options: dict[str, Any] = {"cores": cores, "memory": memory, "walltime": walltime, "jobs": jobs,
                               "job_name": "twinengine-worker"}
    if queue:
        options["queue"] = queue
    if account:
        options["account"] = account
    return {**options, **(extra or {})}


_IMPORT_LOCK = threading.Lock()


def _slurm_cluster_class() -> Any:
    """``SLURMCluster``, imported with SIGINT left as it is. dask-jobqueue's runner module (which ``slurm``
    imports) sets SIGINT to ``sys.exit`` when it is imported, for its own command-line runner: imported on a
    thread other than the main one (a run or a calibration placed on a Slurm site) that raises ``ValueError:
    signal only works in main thread``, and on the main one it would replace the server's own handler."""
    if "dask_jobqueue.slurm" not in sys.modules:
        with _IMPORT_LOCK:
            original = signal.signal

            def keep_sigint(signum: Any, handler: Any) -> Any:
                if signum == signal.SIGINT:
                    return signal.getsignal(signum)
                return original(signum, handler)

            signal.signal = keep_sigint  # type: ignore[assignment]
            try:
                import dask_jobqueue.slurm  # noqa: F401
            finally:
                signal.signal = original
    from dask_jobqueue.slurm import SLURMCluster

    return SLURMCluster


def slurm_cluster(options: dict[str, Any]) -> Any:
    """A dask-jobqueue ``SLURMCluster`` (its scheduler runs here; workers are submitted with sbatch)."""
    try:
        SLURMCluster = _slurm_cluster_class()
    except ImportError as exc:
        raise ValueError("the slurm executor needs dask-jobqueue: pip install 'twinengine[slurm]'") from exc
    import dask.config

    kwargs = {k: v for k, v in options.items() if k != "jobs"}
    if "python" not in kwargs and dask.config.get("jobqueue.slurm.python", None) is None:
        # dask-jobqueue writes the interpreter into the job script unquoted: a virtualenv in a folder with a
        # space would run as two words
        kwargs["python"] = shlex.quote(sys.executable)
    return SLURMCluster(**kwargs)


class SlurmExecutor(DistributedExecutor):
    """A cluster of Slurm jobs through dask-jobqueue: the scheduler runs in the engine, each worker is an
    sbatch job that calls back to it; ``close`` cancels the jobs (scancel)."""

    name = "slurm"
    description = "Dask workers as Slurm jobs (dask-jobqueue)"

    def __init__(self, options: dict[str, Any]) -> None:
        self.cluster = slurm_cluster(options)
        jobs = int(options.get("jobs", 1))
        if jobs:
            self.cluster.scale(jobs=jobs)
        super().__init__(self.cluster.scheduler_address)

    def job_script(self) -> str:
        return str(self.cluster.job_script())

    def close(self) -> None:
        super().close()
        self.cluster.close()


_BUILTIN: dict[str, type[Executor]] = {"local": LocalExecutor, "distributed": DistributedExecutor,
                                      "slurm": SlurmExecutor}


@functools.cache
def available_executors() -> dict[str, type[Executor]]:
    """Built-ins merged with the ``twinengine.executors`` entry points (a broken plugin only warns). Read once
    per process, as the other plugin groups are: scanning every installed distribution costs about 50 ms."""
    found = dict(_BUILTIN)
    for ep in entry_points(group="twinengine.executors"):
        try:
            found.setdefault(ep.name, ep.load())
        except Exception as exc:  # a broken plugin must not break the engine
            log.warning("executor plugin %s could not be loaded: %s", ep.name, exc)
    return found


def make_executor(name: str | None, *, address: str | None = None, workers: int | None = None,
                  options: dict[str, Any] | None = None, credential: dict[str, str] | None = None) -> Executor:
    """``TWIN_DASK_ADDRESS`` set → distributed; else the named executor (default local). ``engine``: another
    engine at ``address`` (a site of that kind), reached with ``credential``."""
    if name == "engine":
        from twinengine.workflows.remote_runs import RemoteEngine

        return RemoteEngine(address or "", credential)  # type: ignore[return-value]  # runs whole runs
    if address:
        return DistributedExecutor(address)
    chosen = name or "local"
    registry = available_executors()
    if chosen not in registry:
        raise ValueError(f"unknown executor {chosen!r}; installed: {', '.join(sorted(registry))}")
    cls = registry[chosen]
    if cls is LocalExecutor:
        return LocalExecutor(workers)
    if cls is SlurmExecutor:
        return SlurmExecutor(options or {})
    return cls()
