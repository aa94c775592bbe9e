"""Measuring what one execution uses while it runs in the engine's process.

The engine's own CPU (``getrusage(RUSAGE_SELF)``: every thread, Dask's local pool included) is shared among
the executions in flight: at every start and end the CPU spent since the last event is split evenly among
those running then, so the records of a busy engine add up to what the process spent, and a run alone gets
all of it. Work done elsewhere (a Dask cluster's task stream, sandboxed workers running app code) is charged to
the execution computing in the current context (``charge``): its thread, and the tasks Dask's local
scheduler runs for it in copies of its context. Block I/O is shared like CPU; peak memory is the process's
high-water mark (an upper bound). GPU-seconds are the sandboxed workers' (``workers.service.GpuCall``): the
engine itself computes nothing on a GPU.
"""

from __future__ import annotations

import itertools
import resource
import threading
import time
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime

from twinengine.store.base import utcnow

__all__ = ["WORKER_CPU", "WORKER_GPU", "Meter", "Reading", "charge", "charge_worker", "charge_worker_gpu",
           "current_meter", "start_meter"]

BLOCK = 512  # ru_inblock / ru_oublock count 512-byte blocks
WORKER_CPU = "worker-cpu"  # the source of what sandboxed workers used for an execution
WORKER_GPU = "nvml"  # the source of GPU-seconds: the GPUs the driver lists a worker's processes on


@dataclass(frozen=True)
class Reading:
    """What an execution used, as measured when it ended."""

    started_at: datetime
    finished_at: datetime
    wall_seconds: float
    local_cpu_seconds: float
    remote_core_seconds: float
    peak_memory_bytes: int
    bytes_read: int
    bytes_written: int
    sources: tuple[str, ...]
    gpu_seconds: float = 0.0  # GPUs held by its workers' processes x the seconds of the calls that held them

    @property
    def core_seconds(self) -> float:
        return self.local_cpu_seconds + self.remote_core_seconds


@dataclass
class Meter:
    """One execution's running totals; ``stop`` ends it (once) and returns its reading."""

    accountant: _Accountant
    key: int
    started_at: datetime = field(default_factory=utcnow)
    started: float = field(default_factory=time.monotonic)
    cpu: float = 0.0
    blocks_in: float = 0.0
    blocks_out: float = 0.0
    remote: float = 0.0
    gpu: float = 0.0
    sources: set[str] = field(default_factory=lambda: {"rusage"})
    site: str | None = None  # where the execution ran (compute.site_executors notes it)
    reading: Reading | None = None

    def charge(self, core_seconds: float, source: str) -> None:
        """Work done on the executor's own workers for this execution (not in this process's rusage)."""
        with self.accountant.lock:
            self.remote += max(0.0, core_seconds)
            self.sources.add(source)

    def charge_gpu(self, gpu_seconds: float) -> None:
        """GPU-seconds of a sandboxed worker's call for this execution."""
        if gpu_seconds > 0:
            with self.accountant.lock:
                self.gpu += gpu_seconds
                self.sources.add(WORKER_GPU)

    def stop(self) -> Reading:
        if self.reading is None:
            self.accountant.leave(self)
            usage = resource.getrusage(resource.RUSAGE_SELF)
            self.reading = Reading(started_at=self.started_at, finished_at=utcnow(),
                                   wall_seconds=time.monotonic() - self.started, local_cpu_seconds=self.cpu,
                                   remote_core_seconds=self.remote, peak_memory_bytes=int(usage.ru_maxrss) * 1024,
                                   bytes_read=int(self.blocks_in * BLOCK), bytes_written=int(self.blocks_out * BLOCK),
                                   sources=tuple(sorted(self.sources)), gpu_seconds=self.gpu)
            if _current.get() is self:
                _current.set(None)
        return self.reading


class _Accountant:
    """Splits the process's CPU and block I/O among the meters running (one per process)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.active: dict[int, Meter] = {}
        self.keys = itertools.count()
        self.last = self._sample()

    @staticmethod
    def _sample() -> tuple[float, float, float]:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime, float(usage.ru_inblock), float(usage.ru_oublock)

    def _advance(self) -> None:
        """Share what the process spent since the last event among the meters running (caller holds lock)."""
        now = self._sample()
        if self.active:
            share = len(self.active)
            for meter in self.active.values():
                meter.cpu += (now[0] - self.last[0]) / share
                meter.blocks_in += (now[1] - self.last[1]) / share
                meter.blocks_out += (now[2] - self.last[2]) / share
        self.last = now

    def enter(self) -> Meter:
        with self.lock:
            self._advance()
            meter = Meter(self, next(self.keys))
            self.active[meter.key] = meter
        return meter

    def leave(self, meter: Meter) -> None:
        with self.lock:
            self._advance()
            self.active.pop(meter.key, None)


_ACCOUNTANT = _Accountant()
# A context variable, not a thread's own: Dask's local scheduler runs a run's tasks in copies of the context
# that computes them, so app code and UDFs called from its threads are charged to the run too.
_current: ContextVar[Meter | None] = ContextVar("twinengine_meter", default=None)


def start_meter() -> Meter:
    """Start measuring an execution; executors on this thread charge their figures to it until it stops.
    A meter this thread left running (an execution that ended without its record) is stopped first, so it
    takes no more shares of the process's CPU."""
    left = current_meter()
    if left is not None:
        left.stop()
    meter = _ACCOUNTANT.enter()
    _current.set(meter)
    return meter


def current_meter() -> Meter | None:
    return _current.get()


def charge_worker(core_seconds: float) -> None:
    """Charge what a sandboxed worker used for this thread's execution (app code, a UDF), as measured from
    outside the worker (``workers.cpu``): none of it is in the engine's own rusage."""
    charge(core_seconds, WORKER_CPU)


def charge_worker_gpu(gpu_seconds: float) -> None:
    """Charge the GPU-seconds of a sandboxed worker's call (``workers.service.GpuCall``) to this thread's
    execution."""
    meter = current_meter()
    if meter is not None:
        meter.charge_gpu(gpu_seconds)


def charge(core_seconds: float, source: str) -> None:
    """Charge an executor's own figure to the execution computing on this thread (none: nothing to do)."""
    meter = current_meter()
    if meter is not None:
        meter.charge(core_seconds, source)
