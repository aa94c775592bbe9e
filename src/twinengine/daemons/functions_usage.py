"""What a twin's functions on arrival use, as usage records (``compute.usage``).

A function is no run: it is called on every batch of its stream, thousands of times a second. Its calls'
CPU is read by the engine from ``/proc`` for the sandboxed worker that ran each slice of calls (code in the
sandbox cannot hide it) and gathered per twin and function; one record (kind ``function``) is written for
each ``PERIOD_SECONDS`` in which the function ran: in the transaction of its checkpoint, or by the loop's
pass once the function is idle, and the rest when the loop stops. It is charged to the twin's owner, with
the owner's groups, on the engine's own site; its ``run_id`` is the function's name (the records of one
function on one twin share it, as a run's attempts do). Whom to charge is also kept from when the twin was
last seen (``Charged``), so the last period of a twin deleted meanwhile is still charged to its owner.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from twinengine.auth.groups import groups_of
from twinengine.compute.metering import WORKER_CPU, WORKER_GPU, Reading
from twinengine.compute.sites import DEFAULT_SITE
from twinengine.compute.usage import UsageRun, record_usage
from twinengine.store.base import utcnow
from twinengine.twins.models import Twin

__all__ = ["KIND", "PERIOD_SECONDS", "Charged", "FunctionUsage"]

KIND = "function"
PERIOD_SECONDS = 60.0  # a function that runs all day writes 1,440 records, not one per batch


@dataclass(frozen=True)
class Charged:
    """Whom a twin's function usage goes to, as the twin was when the functions' loop last read it."""

    owner: str
    twin_name: str
    app: str


@dataclass
class FunctionUsage:
    """What one twin's function used since its last record: the CPU of its calls in their workers, the time
    those calls took (its wall seconds) and how many batches there were."""

    cpu_seconds: float = 0.0
    gpu_seconds: float = 0.0
    busy_seconds: float = 0.0
    batches: int = 0
    since: datetime = field(default_factory=utcnow)
    opened: float = field(default_factory=time.monotonic)
    charged: Charged | None = None  # the twin as last read: charged when the twin is gone

    def spent(self, cpu_seconds: float) -> None:
        """Told by the worker pool after each slice of calls (``workers.service``)."""
        self.cpu_seconds += cpu_seconds

    def gpu_spent(self, gpu_seconds: float) -> None:
        """Told by the worker pool after each slice of calls that held a GPU (``workers.service.GpuCall``)."""
        self.gpu_seconds += gpu_seconds

    def called(self, seconds: float) -> None:
        if not self.batches:  # a period opens with its first batch, not when the last one was written
            self.since = utcnow() - timedelta(seconds=seconds)
            self.opened = time.monotonic() - seconds
        self.busy_seconds += seconds
        self.batches += 1

    def due(self) -> bool:
        return self.batches > 0 and time.monotonic() - self.opened >= PERIOD_SECONDS

    def record(self, session: Session, twin_id: str, function: str) -> None:
        """Write the period's record in the caller's transaction (nothing if no call ran), then start anew.
        A deleted twin's is charged as ``charged`` says."""
        if self.batches:
            twin = session.get(Twin, twin_id)
            if twin is not None:
                self.charged = Charged(twin.owner, twin.name, f"{twin.app_name}@{twin.app_version}")
            if self.charged is not None:
                who = self.charged
                run = UsageRun(id=function[:40], kind=KIND, owner=who.owner, twin_id=twin_id,
                               twin_name=who.twin_name, app=who.app,
                               options={"groups": sorted(groups_of(session, who.owner))},
                               executor=DEFAULT_SITE)
                reading = Reading(started_at=self.since, finished_at=utcnow(), wall_seconds=self.busy_seconds,
                                  local_cpu_seconds=0.0, remote_core_seconds=self.cpu_seconds, peak_memory_bytes=0,
                                  bytes_read=0, bytes_written=0,
                                  sources=(WORKER_CPU, WORKER_GPU) if self.gpu_seconds else (WORKER_CPU,),
                                  gpu_seconds=self.gpu_seconds)
                record_usage(session, run, reading, status="done", site=DEFAULT_SITE, staging=False)
        self.cpu_seconds = self.gpu_seconds = self.busy_seconds = 0.0
        self.batches = 0  # the next period opens with its first batch (``called``)
