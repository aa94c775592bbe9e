"""Inputs that are a stream's records, named by the records' SHA-256 like a collection by its files'. The checksum
(``streams.checksum``: canonical JSON lines in offset order) is taken where the run holds the records it read (a
workflow run's ``load_stream``, a training's read, a calibration's window) and otherwise when the crate is made,
from the offsets or window the run kept (assimilation cycles' offsets, runs made before checksums were taken):
the crate says which, since records may change between the run and the crate. A rerun takes it again here, from
the same offsets, before it starts; when it differs, or the records are gone, its diff says that input changed."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator
from sqlalchemy import select
from sqlalchemy.orm import Session

from twinengine.crates.record import Input, RunRecord
from twinengine.streams.checksum import RecordsChecksum, RecordsDigest, stream_records
from twinengine.twins import service as twins
from twinengine.twins.models import Twin

__all__ = ["RecordSelection", "StreamChange", "change_reason", "checksum_here", "stream_changes", "with_checksum"]

KINDS = ("stream", "records", "observations")  # inputs that are a stream's records


class RecordSelection(BaseModel):
    """Which records of a stream an input is: offsets in the ``ranges`` [start, end) (end None: to the stream's
    end), event times in [since, until), flags in ``quality`` (any when None). Read back from crates made
    anywhere, so checked here."""

    model_config = ConfigDict(extra="ignore")

    twin: str  # the twin's name (its id here may be another)
    stream: str
    ranges: list[tuple[int, int | None]]
    since: datetime | None = None
    until: datetime | None = None
    quality: list[str] | None = None
    taken: Literal["run", "crate"] = "run"  # when the checksum was taken

    @field_validator("since", "until")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        """A time without a zone is UTC (as the stream keeps its times)."""
        return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


class StreamChange(BaseModel):
    """A stream input whose records here are not those the original read."""

    kind: str
    name: str
    selection: RecordSelection
    then: str
    now: str | None  # None: the stream is not here
    records_then: int | None = None
    records_now: int = 0


def _offsets(selection: RecordSelection) -> str:
    return ", ".join(f"[{a}, {'end' if b is None else b})" for a, b in selection.ranges)


def with_checksum(found: Input, selection: RecordSelection, checksum: RecordsChecksum | None) -> Input:
    """``found`` with the records it is and their checksum (the bytes hashed as its size; None: without)."""
    found.properties["selection"] = selection.model_dump(mode="json")
    if checksum is None:
        return found
    found.sha256, found.size = checksum.sha256, checksum.bytes
    found.properties["records"] = checksum.records
    when = ("taken when the run read them" if selection.taken == "run"
            else "taken when the crate was made: the records may have changed since the run")
    found.description = (f"{found.description}; {checksum.records} records, SHA-256 of their canonical JSON lines "
                         f"({when})")
    return found


def _twin_here(session: Session, twin_id: str | None, name: str) -> Twin | None:
    """The twin here: by the id the crate names, else by its name (a crate made on another engine)."""
    row = session.get(Twin, twin_id) if twin_id else None
    return row if row is not None else session.scalar(select(Twin).where(Twin.name == name).limit(1))


def checksum_here(session: Session, engines: Any, twin_id: str | None,
                  selection: RecordSelection) -> RecordsChecksum | None:
    """The checksum of the selected records as this engine's stream history holds them now (segments, then the
    log), read in bounded parts; None where the engine has no streams or the twin is not here."""
    hub, sink = getattr(engines, "streams", None), getattr(engines, "segment_sink", None)
    twin = _twin_here(session, twin_id, selection.twin)
    if hub is None or sink is None or twin is None:
        return None
    declared = twins.manifest_for(session, twin).streams.get(selection.stream)
    time_field = declared.time_field if declared is not None else None
    digest = RecordsDigest()
    for start, end in sorted(selection.ranges, key=lambda r: r[0]):
        for part in stream_records(session, hub, sink, twin_id=twin.id, stream=selection.stream, start=start,
                                   end=end, since=selection.since, until=selection.until, time_field=time_field,
                                   quality=selection.quality):
            digest.update(part)
    return digest.result()


def _selection(item: Input) -> RecordSelection | None:
    try:
        return RecordSelection.model_validate(item.properties.get("selection"))
    except ValidationError:
        return None


def stream_changes(session: Session, engines: Any, record: RunRecord, *, made_now: bool = False) -> list[StreamChange]:
    """Each stream input the crate names a checksum for whose records here, at the same offsets, have another
    checksum or are gone. ``made_now``: the record was made just now, so a checksum it took is not taken again."""
    changes = []
    for item in record.inputs:
        selection = _selection(item) if item.kind in KINDS and item.sha256 else None
        if selection is None or item.sha256 is None or (made_now and selection.taken == "crate"):
            continue
        twin_id = item.id.partition(":")[2].partition("/")[0] or None  # stream:<twin>/<stream>, observations:<twin>
        now = checksum_here(session, engines, twin_id, selection)
        if now is None or now.sha256 != item.sha256:
            then = item.properties.get("records")
            changes.append(StreamChange(kind=item.kind, name=item.name, selection=selection, then=item.sha256,
                                        now=None if now is None else now.sha256,
                                        records_then=then if isinstance(then, int) else None,
                                        records_now=0 if now is None else now.records))
    return changes


def change_reason(change: StreamChange) -> str:
    """How a diff names a stream input that changed: the stream, its offsets and both checksums."""
    where = f"stream {change.selection.stream} of twin {change.selection.twin} at offsets {_offsets(change.selection)}"
    if change.now is None:
        return f"an input changed: {change.kind} {change.name}: {where} is not here (sha256 {change.then} then)"
    gone = ""
    if change.records_then is not None and change.records_now < change.records_then:
        gone = f"; {change.records_then - change.records_now} of its {change.records_then} records are gone"
    return (f"an input changed: {change.kind} {change.name}: the records of {where} have sha256 {change.then} "
            f"then, {change.now} now ({change.records_now} records{gone})")
