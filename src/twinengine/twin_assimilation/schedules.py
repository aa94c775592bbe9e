"""A twin's automatic assimilation as its users see and set it: read the schedule row (with how its last
pass ended), or set it for this one twin (on arrival, on a schedule, or off), overriding the app's
``assimilation.run``. The loop that runs it is ``daemons/assimilation.py``."""

from __future__ import annotations

from sqlalchemy.orm import Session

from twinengine.auth.policy import require
from twinengine.auth.principal import Principal
from twinengine.errors import NotFound, ValidationFailed
from twinengine.store.base import utcnow
from twinengine.twin_assimilation.models import AssimilationSchedule
from twinengine.twin_assimilation.schemas import ScheduleRead, ScheduleWrite
from twinengine.twins import service as twins
from twinengine.twins.models import Twin

__all__ = ["get_schedule", "set_schedule"]


def _read(row: AssimilationSchedule, twin: Twin) -> ScheduleRead:
    now = utcnow()
    return ScheduleRead(twin=twin.name, on=row.run_on if row.enabled else "off",
                        every_seconds=row.every_seconds, source=row.source, owner=row.owner,
                        next_due_at=row.next_due_at, seen_end=row.seen_end,
                        running=row.claimed_until is not None and row.claimed_until > now,
                        last_run_at=row.last_run_at, last_cycles=row.last_cycles, failures=row.failures,
                        last_error=row.last_error, last_error_at=row.last_error_at)


def get_schedule(session: Session, *, principal: Principal, ref: str) -> ScheduleRead:
    twin = twins.get_twin(session, principal=principal, ref=ref)
    row = session.get(AssimilationSchedule, twin.id)
    if row is None:
        raise NotFound(f"twin {twin.name} assimilates on request only (no assimilation.run in its app, none set)")
    return _read(row, twin)


def set_schedule(session: Session, *, principal: Principal, ref: str, body: ScheduleWrite) -> ScheduleRead:
    """Cycles run as ``principal`` from now on. On arrival: the next records that arrive (or the engine's next
    start) run whatever is pending; on a schedule: the first tick is now."""
    twin = twins.get_twin(session, principal=principal, ref=ref, action="twin.operate")
    require(principal, "assimilation.run", twin, target=f"twin {ref}")
    if twins.manifest_for(session, twin).assimilation is None:
        raise ValidationFailed.one("twin", f"app {twin.app_name}@{twin.app_version} declares no assimilation: "
                                           "section")
    try:
        every = body.every_seconds()
    except ValueError as exc:
        raise ValidationFailed.one("every", str(exc)) from None
    if body.on == "schedule" and every is None:
        raise ValidationFailed.one("every", "a schedule needs every (e.g. 1h)")
    now = utcnow()
    row = session.get(AssimilationSchedule, twin.id)
    if row is None:
        row = AssimilationSchedule(twin_id=twin.id, seen_end=0, last_cycles=0, failures=0)
        session.add(row)
    row.run_on = body.on if body.on != "off" else (row.run_on or "arrival")
    row.enabled = body.on != "off"
    row.every_seconds, row.source, row.owner, row.updated_at = every, "twin", principal.name, now
    row.next_due_at = now if body.on == "schedule" else None
    row.failures, row.seen_end = 0, 0 if body.on == "arrival" else row.seen_end
    session.flush()
    return _read(row, twin)
