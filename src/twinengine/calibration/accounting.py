"""What a calibration's attempt uses: one usage record of kind ``calibration`` (``compute.usage``) per attempt,
and the owner's compute quotas checked between its batches.

An attempt runs from the runner's claim to its end: done, error, canceled, or put back in the queue (the
engine stopped, or another engine took it over), when the next attempt resumes it and writes its own record.
Its core-seconds are the engine's share of its process's CPU (``compute.metering``) plus the CPU its model
runs took in the app's sandboxed workers, local or on a site: those are other processes, not in the engine's
rusage, so the engine's side reads each chunk's from ``/proc`` for the worker's processes (``workers/cpu.py``),
where the app's code can neither see nor change it.

A running calibration "crosses" a quota when the quota's recorded use plus this attempt's running total
(the engine's share measured so far and its model runs' CPU) reaches the limit; it is checked after each
batch is kept, so the calibration stops after that batch with ``QuotaExceeded`` and keeps its runs.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from twinengine.calibration.models import Calibration
from twinengine.compute.hooks import record_execution
from twinengine.compute.metering import WORKER_CPU, Reading, start_meter
from twinengine.compute.models import ComputeSite, UsageRecord
from twinengine.compute.quotas import check_quota
from twinengine.compute.sites import DEFAULT_SITE
from twinengine.compute.usage import UsageRun

__all__ = ["KIND", "SOURCE", "Attempt", "spent_before"]

KIND = "calibration"  # the usage records' kind
SOURCE = WORKER_CPU  # the model runs' CPU, read from /proc for the sandboxed workers' processes
STOPPED = "the calibration stopped after its current batch; its runs are kept"


class Attempt:
    """One attempt of a calibration, metered from its claim (on the runner's thread) to its record."""

    def __init__(self, calibration_id: str) -> None:
        self.calibration_id = calibration_id
        self.meter = start_meter()
        self.owner, self.site = "", DEFAULT_SITE
        self.groups: list[str] = []

    def of(self, row: Calibration) -> None:
        """Who and where the attempt is charged to: the calibration's owner, its groups then, its site."""
        self.owner, self.groups = row.owner, [str(g) for g in row.settings.get("groups") or []]
        self.site = str(row.settings.get("site") or DEFAULT_SITE)

    def charge(self, answer: dict[str, Any]) -> None:
        """A chunk's answer came back: add the CPU the engine's side read for its worker."""
        self.meter.charge(float(answer.get("cpu_seconds") or 0.0), SOURCE)

    @property
    def spent(self) -> float:
        """Core-seconds so far: the engine's share measured up to the last meter event, and the model runs'."""
        return self.meter.cpu + self.meter.remote

    def check_quota(self, session: Session) -> None:
        """Raise ``QuotaExceeded`` once a quota of the owner (or a group) on its site is crossed, counting
        this attempt's running total as used (see the module's docstring)."""
        check_quota(session, identity=self.owner, groups=self.groups, site=self.site, running=self.spent,
                    outcome=STOPPED)

    def record(self, session: Session, row: Calibration, status: str) -> Reading:
        """Stop the meter and write the attempt's usage record in ``session`` (the one that writes its end)."""
        from twinengine.twins.models import Twin

        twin = session.get(Twin, row.twin_id)
        site = str(row.settings.get("site") or DEFAULT_SITE)
        kind = None if site == DEFAULT_SITE else session.scalar(select(ComputeSite.kind)
                                                                .where(ComputeSite.name == site))
        run = UsageRun(id=row.id, kind=KIND, owner=row.owner, twin_id=row.twin_id,
                       twin_name=twin.name if twin is not None else None,
                       app=f"{twin.app_name}@{twin.app_version}" if twin is not None else None,
                       options={"site": site, "groups": list(row.settings.get("groups") or [])},
                       executor=kind or DEFAULT_SITE)
        return record_execution(session, run, self.meter, status=status)


def spent_before(session: Session, calibration_id: str) -> tuple[float, float]:
    """(core-seconds, of them the model runs') of the calibration's earlier attempts, from their records."""
    core, models = session.execute(
        select(func.coalesce(func.sum(UsageRecord.core_seconds), 0.0),
               func.coalesce(func.sum(UsageRecord.remote_core_seconds), 0.0))
        .where(UsageRecord.run_id == calibration_id, UsageRecord.kind == KIND)).one()
    return float(core or 0.0), float(models or 0.0)
