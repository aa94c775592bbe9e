"""Retraining buffers: a twin's policy collects stream records into fills that the AI lifecycle consumes.

A fill is a range of offsets in the stream's log (no copy). Policies seal a fill by volume (``count``:
every N new records), by time (``time``: every S seconds with new records) or on request (``external``; any
buffer can also be sealed on request). With ``discard_after`` each fill holds only records since the last
one and is discarded once a retraining consumed it; without, fills grow from the buffer's start.

The AI lifecycle's API: ``ready_fills``, ``fill_table``, ``mark_consumed``.
"""

from __future__ import annotations

from datetime import timedelta

import pyarrow as pa
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from twinengine.auth.principal import Principal
from twinengine.errors import BufferNotFound, Conflict, ValidationFailed
from twinengine.quality.spec import FLAGS, QualityPolicy
from twinengine.store.base import utcnow
from twinengine.streams.hub import StreamHub, stream_key
from twinengine.streams.models import BufferFill, RetrainBuffer
from twinengine.streams.schemas import BufferCreate, BufferFillRead, BufferRead
from twinengine.streams.service import resolve
from twinengine.twins.models import Twin
from twinengine.twins.service import get_twin, manifest_for

__all__ = ["buffer_read", "consume", "create_buffer", "evaluate", "excluded_flags", "fill_table", "get_buffer",
           "list_buffers", "mark_consumed", "read_fill", "ready_fills", "seal", "seal_fill"]


def buffer_read(hub: StreamHub, row: RetrainBuffer, fills: list[BufferFill]) -> BufferRead:
    end = hub.end(stream_key(row.twin_id, row.stream))
    return BufferRead(id=row.id, twin_id=row.twin_id, name=row.name, stream=row.stream, policy=row.policy,
                      records=row.records, seconds=row.seconds, discard_after=row.discard_after,
                      quality=QualityPolicy.model_validate({"exclude": _excluded(row)}),
                      start_offset=row.start_offset, filled=max(end - max(row.start_offset, row.sealed_end), 0),
                      opened_at=row.opened_at, fills=[BufferFillRead.model_validate(f) for f in fills])


def _excluded(row: RetrainBuffer) -> list[str]:
    return [f for f in (row.exclude_quality or "").split(",") if f]


def excluded_flags(row: RetrainBuffer | None) -> list[str]:
    """The quality flags a buffer leaves out of its fills (for the AI lifecycle reading a fill)."""
    return _excluded(row) if row is not None else []


def _fills(session: Session, row: RetrainBuffer) -> list[BufferFill]:
    return list(session.scalars(select(BufferFill).where(BufferFill.buffer_id == row.id).order_by(BufferFill.id)))


def create_buffer(session: Session, hub: StreamHub, *, principal: Principal, twin_ref: str,
                  body: BufferCreate) -> BufferRead:
    """A buffer policy on one of the twin's streams; it collects records appended from now on."""
    twin, _manifest, _declared = resolve(session, principal=principal, twin_ref=twin_ref, stream=body.stream,
                                         action="stream.manage")
    if body.policy == "count" and body.records is None:
        raise ValidationFailed.one("records", "a count policy needs records")
    if body.policy == "time" and body.seconds is None:
        raise ValidationFailed.one("seconds", "a time policy needs seconds")
    start = hub.end(stream_key(twin.id, body.stream))
    row = RetrainBuffer(twin_id=twin.id, name=body.name, stream=body.stream, policy=body.policy,
                        records=body.records, seconds=body.seconds, discard_after=body.discard_after,
                        exclude_quality=",".join(body.quality.exclude) or None, start_offset=start,
                        sealed_end=start, created_by=principal.name)
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:
        raise Conflict(f"twin {twin.name} has a buffer named {body.name!r} already") from None
    return buffer_read(hub, row, [])


def get_buffer(session: Session, *, principal: Principal, twin_ref: str, name: str,
               action: str = "stream.read") -> tuple[Twin, RetrainBuffer]:
    twin = get_twin(session, principal=principal, ref=twin_ref, action=action)
    row = session.scalar(select(RetrainBuffer).where(RetrainBuffer.twin_id == twin.id, RetrainBuffer.name == name))
    if row is None:
        raise BufferNotFound(f"twin {twin.name} has no buffer named {name!r}")
    return twin, row


def list_buffers(session: Session, hub: StreamHub, *, principal: Principal, twin_ref: str) -> list[BufferRead]:
    twin = get_twin(session, principal=principal, ref=twin_ref, action="stream.read")
    manifest_for(session, twin)
    rows = session.scalars(select(RetrainBuffer).where(RetrainBuffer.twin_id == twin.id).order_by(RetrainBuffer.name))
    return [buffer_read(hub, r, _fills(session, r)) for r in rows]


def seal_fill(session: Session, hub: StreamHub, row: RetrainBuffer, *, reason: str,
              end: int | None = None) -> BufferFill | None:
    """Close the fill in progress (None when it has no new records)."""
    stop = hub.end(stream_key(row.twin_id, row.stream)) if end is None else end
    if stop <= row.sealed_end:
        return None
    start = row.sealed_end if row.discard_after else row.start_offset
    fill = BufferFill(buffer_id=row.id, twin_id=row.twin_id, stream=row.stream, start_offset=start, end_offset=stop,
                      status="ready", reason=reason)
    session.add(fill)
    row.sealed_end, row.opened_at = stop, utcnow()
    session.flush()
    return fill


def seal(session: Session, hub: StreamHub, *, principal: Principal, twin_ref: str, name: str) -> BufferFillRead:
    """The external trigger: seal what the buffer holds now."""
    _twin, row = get_buffer(session, principal=principal, twin_ref=twin_ref, name=name, action="stream.manage")
    fill = seal_fill(session, hub, row, reason="external trigger")
    if fill is None:
        raise Conflict(f"buffer {name!r} has no new records to seal")
    return BufferFillRead.model_validate(fill)


def evaluate(session: Session, hub: StreamHub) -> int:
    """Seal every count or time buffer whose policy is due (the buffer daemon's step); returns fills made."""
    made = 0
    now = utcnow()
    for row in session.scalars(select(RetrainBuffer).where(RetrainBuffer.policy.in_(("count", "time")))):
        end = hub.end(stream_key(row.twin_id, row.stream))
        if row.policy == "count" and row.records:
            while end - row.sealed_end >= row.records:
                made += seal_fill(session, hub, row, reason=f"{row.records} records",
                                  end=row.sealed_end + row.records) is not None
        elif row.policy == "time" and row.seconds and now - row.opened_at >= timedelta(seconds=row.seconds):
            made += seal_fill(session, hub, row, reason=f"{row.seconds:g} s elapsed") is not None
    return made


def ready_fills(session: Session, *, twin_id: str | None = None) -> list[BufferFill]:
    """Fills waiting for a retraining, oldest first (for the AI lifecycle, which acts for the engine)."""
    query = select(BufferFill).where(BufferFill.status == "ready")
    if twin_id is not None:
        query = query.where(BufferFill.twin_id == twin_id)
    return list(session.scalars(query.order_by(BufferFill.id)))


def fill_table(hub: StreamHub, fill: BufferFill, *, time_field: str | None = None,
               session: Session | None = None) -> pa.Table:
    """The records of a fill as one Arrow table (with ``_offset``, ``_arrival``, ``_quality``, ``_checks``),
    without the flags its buffer excludes (looked up through ``session`` when given)."""
    if fill.status == "discarded":
        raise Conflict(f"fill {fill.id} was discarded after its retraining")
    buffer = session.get(RetrainBuffer, fill.buffer_id) if session is not None else None
    excluded = set(_excluded(buffer)) if buffer is not None else set()
    kept = {f.value for f in FLAGS} - excluded if excluded else None
    table = hub.read(stream_key(fill.twin_id, fill.stream), start=fill.start_offset, stop=fill.end_offset,
                     limit=fill.end_offset - fill.start_offset, time_field=time_field, quality=kept)
    return table if table is not None else pa.table({})


def mark_consumed(session: Session, fill: BufferFill, *, success: bool, note: str | None = None) -> BufferFill:
    """Record a retraining's outcome: success discards (or keeps) the fill per policy; failure keeps it ready."""
    buffer = session.get(RetrainBuffer, fill.buffer_id)
    if fill.status != "ready":
        raise Conflict(f"fill {fill.id} is {fill.status}, not ready")
    fill.note = note
    if success:
        fill.status = "discarded" if buffer is None or buffer.discard_after else "consumed"
        fill.consumed_at = utcnow()
    session.flush()
    return fill


def read_fill(session: Session, *, principal: Principal, twin_ref: str, name: str, fill_id: int,
              action: str = "stream.read") -> tuple[RetrainBuffer, BufferFill]:
    _twin, row = get_buffer(session, principal=principal, twin_ref=twin_ref, name=name, action=action)
    fill = session.get(BufferFill, fill_id)
    if fill is None or fill.buffer_id != row.id:
        raise BufferNotFound(f"buffer {name!r} has no fill {fill_id}")
    return row, fill


def consume(session: Session, *, principal: Principal, twin_ref: str, name: str, fill_id: int, success: bool,
            note: str | None) -> BufferFillRead:
    _row, fill = read_fill(session, principal=principal, twin_ref=twin_ref, name=name, fill_id=fill_id,
                           action="stream.manage")
    return BufferFillRead.model_validate(mark_consumed(session, fill, success=success, note=note))
