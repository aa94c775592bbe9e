"""Cycles that run by themselves: on arrival of observations or on a schedule (``assimilation.run``).

A twin whose app declares ``run`` gets a schedule row when it is created (forks do not: a what-if or a
calibration proposal keeps still until asked). The loop (``daemons/assimilation.py``) hands a twin here when
its observed stream grew past the row's ``seen_end`` or its tick came; ``run_pending`` claims the row with a
lease (a conditional UPDATE: of two engine processes that saw the same records, one runs the cycles, the
other finds the row taken), runs every pending cycle as the row's owner, and records how the pass ended on the
row and in the audit log. A failed pass is retried after a backoff that doubles with each failure in a row.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, or_, select, true, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import Session

from twinengine.auth import audit
from twinengine.auth.groups import with_groups
from twinengine.auth.principal import Principal, Role
from twinengine.catalog.assimilation_checks import observation_stream
from twinengine.catalog.assimilation_spec import AutoRun, RunOn
from twinengine.store.base import upsert, utcnow
from twinengine.store.engine import Database
from twinengine.streams.hub import stream_key
from twinengine.twin_assimilation import service
from twinengine.twin_assimilation.models import AssimilationSchedule
from twinengine.twin_assimilation.schemas import MAX_CYCLES, AssimilationRequest
from twinengine.twins import service as twins
from twinengine.twins import standing
from twinengine.twins.models import Twin

__all__ = ["LEASE", "Pass", "materialize", "observed_key", "run_pending", "schedule_of"]

log = logging.getLogger("twinengine.assimilation")

LEASE = timedelta(minutes=2)  # a claim not renewed for this long is free again (its engine died)
BACKOFF = timedelta(seconds=5)  # after a failed pass: 5 s, 10 s, 20 s, ... up to MAX_BACKOFF
MAX_BACKOFF = timedelta(hours=1)
ERROR_CHARS = 2000


class _Stopped(Exception):
    """Raised between two cycles when the loop is stopping: the pass ends, its cycles kept."""


@dataclass(frozen=True)
class Pass:
    """How one claimed pass over a twin ended: cycles run, and the error that stopped it (None: none)."""

    twin_id: str
    cycles: int
    error: str | None = None


def schedule_of(session: Session, twin: Twin) -> AutoRun | None:
    """What the twin's app declares (``assimilation.run``), or None."""
    spec = twins.manifest_for(session, twin).assimilation
    return None if spec is None else spec.run


def observed_key(session: Session, twin: Twin) -> str | None:
    """The stream key whose records the twin's cycles read (a fork reads its origin's), or None."""
    manifest = twins.manifest_for(session, twin)
    if manifest.assimilation is None:
        return None
    stream = observation_stream(manifest, next(iter(manifest.assimilation.observations.values())).stream)
    if stream is None:
        return None
    source = twin
    while source.origin_id is not None:
        origin = session.get(Twin, source.origin_id)
        if origin is None or origin.id == twin.id:
            break
        source = origin
    return stream_key(source.id, stream)


def materialize(session: Session, twin: Twin) -> bool:
    """Give a twin (not a fork) whose app declares ``run`` its schedule row, once; True when one was added.
    A twins hook (in the transaction that creates the twin) and the loop's start sweep call it."""
    if twin.origin_id is not None:
        return False
    run = schedule_of(session, twin)
    if run is None:
        return False
    now = utcnow()
    values = {"twin_id": twin.id, "run_on": run.on.value,
              "every_seconds": run.every.total_seconds() if run.every is not None else None,
              "source": "manifest", "owner": twin.owner, "enabled": True,
              "next_due_at": now if run.on is RunOn.SCHEDULE else None, "seen_end": 0, "last_cycles": 0,
              "failures": 0, "updated_at": now}
    statement = upsert(session.get_bind().dialect.name, AssimilationSchedule.__table__).values(**values)
    result = session.execute(statement.on_conflict_do_nothing(index_elements=["twin_id"]))
    return bool(getattr(result, "rowcount", 0))


def _claim(session: Session, twin_id: str, worker: str, now: datetime, *, due: bool) -> bool:
    """Take the twin's row for ``LEASE`` unless another worker holds it (or, with ``due``, its time has not
    come): one UPDATE, so two engines asking at once cannot both get it."""
    free = or_(AssimilationSchedule.claimed_until.is_(None), AssimilationSchedule.claimed_until < now,
               AssimilationSchedule.claimed_by == worker)
    when: ColumnElement[bool] = or_(AssimilationSchedule.next_due_at.is_(None),
                                    AssimilationSchedule.next_due_at <= now) if due else true()
    result = session.execute(
        update(AssimilationSchedule)
        .where(and_(AssimilationSchedule.twin_id == twin_id, AssimilationSchedule.enabled.is_(True), free, when))
        .values(claimed_by=worker, claimed_until=now + LEASE)
        .execution_options(synchronize_session=False))
    return isinstance(result, CursorResult) and result.rowcount == 1


def _renew(session: Session, twin_id: str, worker: str) -> None:
    """Extend the claim (in the transaction of the cycle just done); a claim another worker took over means
    this one's lease ran out: stop here, that cycle rolled back."""
    result = session.execute(
        update(AssimilationSchedule)
        .where(AssimilationSchedule.twin_id == twin_id, AssimilationSchedule.claimed_by == worker)
        .values(claimed_until=utcnow() + LEASE).execution_options(synchronize_session=False))
    if not isinstance(result, CursorResult) or result.rowcount != 1:
        raise _Stopped(f"the claim on twin {twin_id} was lost")


def _release(db: Database, twin_id: str, worker: str, *, cycles: int, seen_end: int | None,
             error: str | None) -> None:
    """Let the row go and say how the pass ended: on the row (``failures``, ``last_error``) and in the audit
    log, where the twin's owner and the operators look."""
    now = utcnow()
    with db.session() as session:
        row = session.get(AssimilationSchedule, twin_id)
        if row is None or row.claimed_by != worker:
            return
        row.claimed_by, row.claimed_until, row.last_run_at, row.updated_at = None, None, now, now
        row.last_cycles = cycles
        every = timedelta(seconds=row.every_seconds) if row.every_seconds else None
        if error is None:
            row.failures = 0
            if seen_end is not None:
                row.seen_end = max(row.seen_end, seen_end)
            row.next_due_at = (now + every) if every is not None else None
        else:
            row.failures += 1
            row.last_error, row.last_error_at = error[:ERROR_CHARS], now
            row.next_due_at = now + min(BACKOFF * 2 ** min(row.failures - 1, 20), MAX_BACKOFF)
        twin = session.get(Twin, twin_id)
        if cycles or error is not None:
            audit.record(session, actor=row.owner, role=None, action="assimilation-auto",
                         target=f"twin {twin.name if twin is not None else twin_id}",
                         outcome="failed" if error is not None else "success",
                         detail={"cycles": cycles, "run_on": row.run_on, "error": error and error[:ERROR_CHARS],
                                 "failures": row.failures})


class _Revoked(Exception):
    """Raised when the identity the cycles run as may no longer operate the twin."""


def _check_standing(session: Session, owner: str, twin_id: str) -> None:
    reason = standing.lost(session, identity=owner, twin_id=twin_id)
    if reason is not None:
        raise _Revoked(reason)


def run_pending(db: Database, engines: service.Engines, twin_id: str, *, worker: str,
                stopping: threading.Event, end: int | None = None, due: bool = True) -> Pass | None:
    """Claim the twin and run its pending cycles (in requests of ``MAX_CYCLES``, each cycle committed with
    the claim renewed); None when another worker holds it or its time has not come. ``end``: the observed
    stream's end as the caller saw it, kept as ``seen_end`` when the pass succeeds."""
    with db.session() as session:
        if not _claim(session, twin_id, worker, utcnow(), due=due):
            return None
        row = session.get(AssimilationSchedule, twin_id)
        assert row is not None
        owner = row.owner
    done, error = 0, None
    try:
        while not stopping.is_set():
            with db.session() as session:
                principal = with_groups(session, Principal(name=owner, role=Role.USER, issuer="internal"))
                _check_standing(session, owner, twin_id)

                def checkpoint(session: Session = session) -> None:
                    _renew(session, twin_id, worker)
                    session.commit()
                    if stopping.is_set():
                        raise _Stopped("the engine is stopping")
                    _check_standing(session, owner, twin_id)

                result = service.assimilate(session, engines, principal=principal, ref=twin_id,
                                            request=AssimilationRequest(cycles=MAX_CYCLES), checkpoint=checkpoint)
            done += len(result.cycles)
            if result.pending == 0 or not result.cycles:
                break
    except _Revoked as exc:  # the schedule's owner may no longer operate the twin: it runs no more
        error = f"{standing.CODE}: {exc}"
        _release(db, twin_id, worker, cycles=done, seen_end=None, error=error)
        with db.session() as session:
            row = session.get(AssimilationSchedule, twin_id)
            if row is not None:
                row.enabled = False
        return Pass(twin_id, done, error)
    except _Stopped as exc:
        log.info("assimilation of twin %s stopped after %d cycles: %s", twin_id, done, exc)
        _release(db, twin_id, worker, cycles=done, seen_end=None, error=None)
        return Pass(twin_id, done)
    except Exception as exc:  # any failure is the twin's, said on its row; the loop goes on with the others
        error = f"{type(exc).__name__}: {exc}"
        log.warning("assimilation of twin %s failed after %d cycles: %s", twin_id, done, error)
    if stopping.is_set() and error is None:
        end = None  # not every record was read: the next pass looks again
    _release(db, twin_id, worker, cycles=done, seen_end=end, error=error)
    return Pass(twin_id, done, error)


def arrival_rows(session: Session, twin_ids: Iterable[str] | None) -> list[AssimilationSchedule]:
    """Enabled arrival rows (of these twins; all when None)."""
    query = select(AssimilationSchedule).where(AssimilationSchedule.enabled.is_(True),
                                               AssimilationSchedule.run_on == RunOn.ARRIVAL.value)
    if twin_ids is not None:
        ids = sorted(set(twin_ids))
        if not ids:
            return []
        query = query.where(AssimilationSchedule.twin_id.in_(ids))
    return list(session.scalars(query))


def due_schedules(session: Session, now: datetime) -> list[str]:
    """Twins whose scheduled tick has come (an indexed look)."""
    return list(session.scalars(select(AssimilationSchedule.twin_id).where(
        AssimilationSchedule.enabled.is_(True), AssimilationSchedule.run_on == RunOn.SCHEDULE.value,
        AssimilationSchedule.next_due_at <= now)))
