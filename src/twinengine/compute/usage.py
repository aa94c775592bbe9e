"""Usage records: one per execution of a run (a workflow run, an ensemble member), written with the run's
end, and read back per identity, group, twin, app, site or kind over a period. Users see their own; admins all.

Bytes transferred: what the transfers the run's staging queued moved (``compute.staging``; an input staged
once for several runs is charged to the run whose staging copied it). Bytes stored: the sizes of the outputs
the run kept in the lake (one copy each: copies rules make later are their owners'). An attempt lost with its
site has a record of its own (status ``lost``): what the lost site consumed counts in usage and quotas."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from twinengine.auth.policy import allowed, require
from twinengine.auth.principal import Principal
from twinengine.compute.metering import Reading
from twinengine.compute.models import UsageRecord
from twinengine.compute.schemas import UsageGroup, UsageKey, UsageRead
from twinengine.errors import ValidationFailed
from twinengine.lake.models import Did

__all__ = ["LOST", "RunLike", "UsageRun", "list_usage", "record_usage", "summarize", "transferred", "usage_read"]

MAX_RECORDS = 100_000
LOST = "lost"  # the status of an attempt's record whose site was lost under it (the run was rerun elsewhere)


class RunLike(Protocol):
    """What a usage record takes from a run (a workflow run row)."""

    id: str
    kind: str
    owner: str
    twin_id: str | None
    twin_name: str | None
    app: str | None
    options: dict[str, Any]
    executor: str | None
    assets: list[dict[str, Any]]


@dataclass
class UsageRun:
    """A run that is not a workflow run row (a calibration's attempt, a training run) as ``RunLike``."""

    id: str
    kind: str
    owner: str
    twin_id: str | None
    twin_name: str | None
    app: str | None
    options: dict[str, Any]
    executor: str | None
    assets: list[dict[str, Any]] = field(default_factory=list)


def _stored(session: Session, assets: Sequence[dict[str, Any]]) -> int:
    """The lake's sizes of the assets registered there (those with a ``did``)."""
    names = {tuple(str(a["did"]).split(":", 1)) for a in assets if a.get("did") and ":" in str(a["did"])}
    if not names:
        return 0
    sizes = session.execute(select(Did.scope, Did.name, Did.bytes).where(
        Did.scope.in_({scope for scope, _ in names}), Did.name.in_({name for _, name in names})))
    return sum(int(size or 0) for scope, name, size in sizes if (scope, name) in names)


def transferred(options: dict[str, Any]) -> int:
    """What the run's staging (``options["staging"]``) had transferred for it, with its stagings for sites
    lost under it before (``earlier``)."""
    staging = options.get("staging") or {}
    return sum(int(s.get("bytes_transferred") or 0) for s in [staging, *(staging.get("earlier") or [])])


def record_usage(session: Session, run: RunLike, reading: Reading, *, status: str, site: str,
                 staging: bool = True) -> UsageRecord:
    """Write what ``run`` used in the caller's transaction (the one that records the run's end). Bytes
    written: what the run kept (its assets), or the block writes measured when larger. A ``lost`` attempt
    kept nothing and is charged no staging: the rerun's record carries every staging of the run. Without
    ``staging`` the run's staging is charged elsewhere (an ensemble's, to its first member)."""
    lost = status == LOST
    kept = 0 if lost else sum(int(a.get("size") or 0) for a in run.assets or [])
    options = {} if lost or not staging else run.options or {}
    row = UsageRecord(run_id=run.id, kind=run.kind, status=str(status), identity=run.owner,
                      groups=sorted(str(g) for g in (run.options or {}).get("groups") or []), twin_id=run.twin_id,
                      twin_name=run.twin_name, app=run.app, site=site, executor=run.executor,
                      started_at=reading.started_at, finished_at=reading.finished_at,
                      wall_seconds=round(reading.wall_seconds, 6), core_seconds=round(reading.core_seconds, 6),
                      remote_core_seconds=round(reading.remote_core_seconds, 6), cores=1,
                      peak_memory_bytes=reading.peak_memory_bytes, bytes_read=reading.bytes_read,
                      bytes_written=max(kept, reading.bytes_written), bytes_transferred=transferred(options),
                      bytes_stored=0 if lost else _stored(session, run.assets or []),
                      gpu_seconds=round(reading.gpu_seconds, 6), source="+".join(reading.sources))
    session.add(row)
    return row


def usage_read(row: UsageRecord) -> UsageRead:
    return UsageRead(run_id=row.run_id, kind=row.kind, status=row.status, identity=row.identity,
                     groups=list(row.groups or []), twin=row.twin_name or row.twin_id, app=row.app, site=row.site,
                     executor=row.executor, started_at=row.started_at, finished_at=row.finished_at,
                     wall_seconds=row.wall_seconds, core_seconds=row.core_seconds,
                     remote_core_seconds=row.remote_core_seconds, cores=row.cores,
                     peak_memory_bytes=row.peak_memory_bytes, bytes_read=row.bytes_read,
                     bytes_written=row.bytes_written, bytes_transferred=row.bytes_transferred,
                     bytes_stored=row.bytes_stored, gpu_seconds=row.gpu_seconds or 0.0, source=row.source)


def list_usage(session: Session, *, principal: Principal, since: datetime | None = None,
               until: datetime | None = None, identity: str | None = None, site: str | None = None
               ) -> list[UsageRecord]:
    """Records that ended in [since, until): the caller's own, or anyone's (``identity``) for an admin."""
    require(principal, "compute.usage.read")
    if since is not None and until is not None and until <= since:
        raise ValidationFailed.one("until", "must be after since")
    everyone = allowed(principal, "compute.usage.read_all")
    if identity is not None and identity != principal.name and not everyone:
        require(principal, "compute.usage.read_all", target=f"the usage of {identity}")
    query = select(UsageRecord).order_by(UsageRecord.finished_at, UsageRecord.id).limit(MAX_RECORDS)
    if not everyone:
        query = query.where(UsageRecord.identity == principal.name)
    elif identity is not None:
        query = query.where(UsageRecord.identity == identity)
    if site is not None:
        query = query.where(UsageRecord.site == site)
    if since is not None:
        query = query.where(UsageRecord.finished_at >= since)
    if until is not None:
        query = query.where(UsageRecord.finished_at < until)
    return list(session.scalars(query))


def _keys(row: UsageRecord, by: UsageKey) -> list[str]:
    if by is UsageKey.IDENTITY:
        return [row.identity]
    if by is UsageKey.TWIN:
        return [row.twin_name or row.twin_id or "(no twin)"]
    if by is UsageKey.APP:
        return [row.app or "(no app)"]
    if by is UsageKey.SITE:
        return [row.site]
    if by is UsageKey.KIND:
        return [row.kind]
    return list(row.groups or []) or ["(no group)"]


def summarize(rows: Sequence[UsageRecord], by: UsageKey) -> list[UsageGroup]:
    """Sums per key, largest core-seconds first (a record counts for each of its groups under ``group``)."""
    sums: dict[str, dict[str, float]] = {}
    for row in rows:
        for key in _keys(row, by):
            total = sums.setdefault(key, {"runs": 0, "wall": 0.0, "core": 0.0, "peak": 0, "read": 0, "written": 0,
                                          "transferred": 0, "stored": 0, "gpu": 0.0})
            total["runs"] += 1
            total["wall"] += row.wall_seconds
            total["core"] += row.core_seconds
            total["peak"] = max(total["peak"], row.peak_memory_bytes)
            total["read"] += row.bytes_read
            total["written"] += row.bytes_written
            total["transferred"] += row.bytes_transferred or 0
            total["stored"] += row.bytes_stored or 0
            total["gpu"] += row.gpu_seconds or 0.0
    groups = [UsageGroup(key=key, runs=int(t["runs"]), wall_seconds=round(t["wall"], 6),
                         core_seconds=round(t["core"], 6), core_hours=round(t["core"] / 3600, 9),
                         peak_memory_bytes=int(t["peak"]), bytes_read=int(t["read"]),
                         bytes_written=int(t["written"]), bytes_transferred=int(t["transferred"]),
                         bytes_stored=int(t["stored"]), gpu_seconds=round(t["gpu"], 6),
                         gpu_hours=round(t["gpu"] / 3600, 9)) for key, t in sums.items()]
    return sorted(groups, key=lambda g: (-g.core_seconds, g.key))
