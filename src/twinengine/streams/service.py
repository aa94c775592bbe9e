"""Streams of a twin: ingest (JSON lines, JSON, Arrow IPC), read history, describe, bind MQTT topics.

Public functions check the policy first; ``append_table`` is the unchecked path the MQTT bridge (a daemon)
uses after it resolved the binding itself.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from twinengine.auth.principal import Principal
from twinengine.catalog.manifest import Manifest, Stream
from twinengine.errors import (
    Conflict,
    FunctionNotFound,
    FunctionNotPaused,
    InvalidInput,
    NotFound,
    StreamNotFound,
    ValidationFailed,
)
from twinengine.quality.indicators import QualityReport, TooManyWindows, summarise
from twinengine.quality.plan import CHECKS, QUALITY, QualityPlan
from twinengine.quality.spec import CompletenessCheck, GapCheck
from twinengine.store.base import lock_for_delete
from twinengine.store.changes import bump
from twinengine.streams import records
from twinengine.streams.hub import ARRIVAL, OFFSET, AppendResult, StreamHub, stream_key
from twinengine.streams.models import DeadLetter, StreamBinding, StreamConsumer
from twinengine.streams.schemas import (
    AppendAck,
    DeadLetterRead,
    FunctionRead,
    FunctionResumed,
    ProducerRead,
    StreamRead,
)
from twinengine.twins.models import Twin
from twinengine.twins.service import get_twin, manifest_for

__all__ = [
    "ARROW_TYPES",
    "JSON_TYPES",
    "append_table",
    "bind_mqtt",
    "dead_letters",
    "describe",
    "function_events",
    "ingest",
    "ingest_records",
    "list_bindings",
    "list_functions",
    "parse_body",
    "producer_position",
    "quality_plan",
    "quality_report",
    "read_records",
    "resolve",
    "resume_function",
    "unbind_mqtt",
]

JSON_TYPES = ("application/x-ndjson", "application/jsonl", "application/json-lines", "application/json")
ARROW_TYPES = ("application/vnd.apache.arrow.stream", "application/vnd.apache.arrow.file")
MAX_PRODUCER = 128
PAGE_BYTES = 32 << 20  # a page of records holds about this much at most (records with array fields are large)


def resolve(session: Session, *, principal: Principal, twin_ref: str, stream: str,
            action: str = "stream.read") -> tuple[Twin, Manifest, Stream]:
    """The twin (authorized for ``action``), its manifest, and the declaration of ``stream``."""
    twin = get_twin(session, principal=principal, ref=twin_ref, action=action)
    manifest = manifest_for(session, twin)
    declared = manifest.streams.get(stream)
    if declared is None:
        known = ", ".join(sorted(manifest.streams)) or "none"
        raise StreamNotFound(f"{manifest.ref} declares no stream {stream!r} (streams: {known})")
    return twin, manifest, declared


def parse_body(declared: Stream, body: bytes, content_type: str) -> pa.Table:
    """A request body as the stream's canonical table: JSON lines, a JSON array/object, or Arrow IPC."""
    kind = content_type.split(";", 1)[0].strip().lower()
    if kind in ARROW_TYPES:
        return records.parse_arrow(declared, body)
    if kind == "application/json":
        stripped = body.lstrip()
        if stripped[:1] in (b"[", b"{") and not _looks_like_lines(stripped):
            try:
                data = json.loads(body)
            except (ValueError, RecursionError) as exc:  # nested beyond the parser's depth: not records either
                raise InvalidInput(f"body: not valid JSON ({exc})") from None
            return records.check_records(declared, data if isinstance(data, list) else [data])
        return records.parse_json_lines(declared, body)
    if kind in JSON_TYPES or not kind:
        return records.parse_json_lines(declared, body)
    raise InvalidInput(f"Content-Type: {content_type!r} is not one of {', '.join(JSON_TYPES + ARROW_TYPES)}")


def _looks_like_lines(body: bytes) -> bool:
    first = body.split(b"\n", 1)
    return len(first) == 2 and first[0].rstrip().endswith(b"}") and first[1].lstrip()[:1] == b"{"


def _check_producer(producer: str | None, seq: int | None) -> None:
    if (producer is None) != (seq is None):
        raise ValidationFailed.one("producer" if producer is None else "seq", "give producer and seq together")
    if producer is not None and not 0 < len(producer) <= MAX_PRODUCER:
        raise ValidationFailed.one("producer", f"1 to {MAX_PRODUCER} characters")
    if seq is not None and not 0 <= seq < 2**62:
        raise ValidationFailed.one("seq", "a sequence number is an integer from 0")


@lru_cache(maxsize=256)
def _plan(stream_json: str) -> QualityPlan | None:
    declared = Stream.model_validate_json(stream_json)
    if not declared.quality:
        return None
    return QualityPlan(declared.quality, time_field=declared.time_field, key=declared.key)


def quality_plan(declared: Stream) -> QualityPlan | None:
    """The stream's declared checks compiled once (None when it declares none)."""
    return _plan(declared.model_dump_json()) if declared.quality else None


def append_table(hub: StreamHub, twin: Twin, stream: str, declared: Stream, table: pa.Table, *,
                 producer: str | None = None, seq: int | None = None) -> AppendAck:
    """Append validated records, flagged by the stream's quality checks (no policy check: callers resolved
    the twin already)."""
    _check_producer(producer, seq)
    result: AppendResult = hub.append(stream_key(twin.id, stream), table, time_field=declared.time_field,
                                      producer=producer, seq=seq, quality=quality_plan(declared))
    return AppendAck(twin_id=twin.id, stream=stream, first_offset=result.first_offset, count=result.count,
                     duplicates=result.duplicates, next_offset=result.next_offset)


def ingest(session: Session, hub: StreamHub, *, principal: Principal, twin_ref: str, stream: str, body: bytes,
           content_type: str, producer: str | None = None, seq: int | None = None) -> AppendAck:
    """Validate a whole batch, then append it durably; a refused batch leaves nothing behind."""
    twin, _manifest, declared = resolve(session, principal=principal, twin_ref=twin_ref, stream=stream,
                                        action="stream.append")
    _check_producer(producer, seq)
    hub.check_lag(stream_key(twin.id, stream))  # refuse early, before parsing a batch we would not take
    return append_table(hub, twin, stream, declared, parse_body(declared, body, content_type), producer=producer,
                        seq=seq)


def ingest_records(session: Session, hub: StreamHub, *, principal: Principal, twin_ref: str, stream: str,
                   items: list[Any], producer: str | None = None, seq: int | None = None) -> AppendAck:
    twin, _manifest, declared = resolve(session, principal=principal, twin_ref=twin_ref, stream=stream,
                                        action="stream.append")
    return append_table(hub, twin, stream, declared, records.check_records(declared, items), producer=producer,
                        seq=seq)


def _utc(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


def _us(value: datetime | None) -> int | None:
    if value is None:
        return None
    value = value.replace(tzinfo=UTC) if value.tzinfo is None else value
    return int(value.timestamp() * 1_000_000)


def read_records(session: Session, hub: StreamHub, *, principal: Principal, twin_ref: str, stream: str,
                 start: int | None = None, since: datetime | None = None, until: datetime | None = None,
                 limit: int = 1000, last: int | None = None,
                 quality: Collection[str] | None = None) -> tuple[Twin, pa.Table | None, int]:
    """History in offset (arrival) order: from offset ``start``, or the ``last`` N, filtered by event time
    ``[since, until)`` and by quality flag. Returns the twin, the records (None when none) and the stream's
    end offset."""
    twin, _manifest, declared = resolve(session, principal=principal, twin_ref=twin_ref, stream=stream)
    key = stream_key(twin.id, stream)
    end = hub.end(key)
    first = max(end - last, 0) if last is not None else (start or 0)
    table = hub.read(key, start=first, since_us=_us(since), until_us=_us(until), limit=limit,
                     time_field=declared.time_field, quality=quality, max_bytes=PAGE_BYTES)
    return twin, table, end


def describe(session: Session, hub: StreamHub, *, principal: Principal, twin_ref: str) -> list[StreamRead]:
    twin = get_twin(session, principal=principal, ref=twin_ref, action="stream.read")
    manifest = manifest_for(session, twin)
    topics = {b.stream: b.mqtt_topic for b in session.scalars(select(StreamBinding)
                                                               .where(StreamBinding.twin_id == twin.id))}
    out = []
    for name, declared in manifest.streams.items():
        key = stream_key(twin.id, name)
        out.append(StreamRead(name=name, description=declared.description, time_field=declared.time_field,
                              key=declared.key, fields=declared.fields, quality=declared.quality,
                              end_offset=hub.end(key), lag=hub.lag(key),
                              mqtt_topic=topics.get(name)))
    return out


def producer_position(session: Session, hub: StreamHub, *, principal: Principal, twin_ref: str, stream: str,
                      producer: str) -> ProducerRead:
    """Where ``producer``'s sequence numbers stand on the twin's stream (to resume without repeats)."""
    twin, _manifest, _declared = resolve(session, principal=principal, twin_ref=twin_ref, stream=stream)
    _check_producer(producer, 0)
    last = hub.producer_last(stream_key(twin.id, stream), producer)
    return ProducerRead(twin_id=twin.id, stream=stream, producer=producer, last_seq=last,
                        next_seq=0 if last is None else last + 1)


def bind_mqtt(session: Session, *, principal: Principal, twin_ref: str, stream: str, topic: str) -> StreamBinding:
    """Map an MQTT topic to a twin's stream; a topic feeds one stream only."""
    twin, _manifest, _declared = resolve(session, principal=principal, twin_ref=twin_ref, stream=stream,
                                         action="stream.manage")
    row = session.get(StreamBinding, (twin.id, stream))
    taken = session.scalar(select(StreamBinding).where(StreamBinding.mqtt_topic == topic))
    if taken is not None and (taken.twin_id, taken.stream) != (twin.id, stream):
        raise Conflict(f"MQTT topic {topic!r} already feeds another stream")
    if row is None and taken is not None:
        # the same binding, committed meanwhile by a request like this one (PostgreSQL reads what others
        # committed statement by statement): it is this one's to keep, not a conflict
        row = taken
    if row is None:
        row = StreamBinding(twin_id=twin.id, stream=stream, mqtt_topic=topic, created_by=principal.name)
        try:
            with session.begin_nested():
                session.add(row)
            return row
        except IntegrityError:
            # Either the topic feeds another stream, or the same binding was just made by another request
            # (PostgreSQL): then it is this one's to change, as if it had been there before.
            row = session.get(StreamBinding, (twin.id, stream), populate_existing=True)
            if row is None:
                raise Conflict(f"MQTT topic {topic!r} already feeds another stream") from None
    row.mqtt_topic = topic
    session.flush()
    return row


def unbind_mqtt(session: Session, *, principal: Principal, twin_ref: str, stream: str) -> None:
    twin, _manifest, _declared = resolve(session, principal=principal, twin_ref=twin_ref, stream=stream,
                                         action="stream.manage")
    row = session.get(StreamBinding, (twin.id, stream))
    if row is None:
        raise NotFound(f"stream {stream} of twin {twin.name} has no MQTT binding")
    lock_for_delete(session, row, NotFound(f"stream {stream} of twin {twin.name} has no MQTT binding"))
    session.delete(row)
    session.flush()


def list_bindings(session: Session) -> list[StreamBinding]:
    """Every binding (for the MQTT bridge, which acts for the engine)."""
    return list(session.scalars(select(StreamBinding).order_by(StreamBinding.mqtt_topic)))


def list_functions(session: Session, hub: StreamHub, *, principal: Principal, twin_ref: str) -> list[FunctionRead]:
    twin = get_twin(session, principal=principal, ref=twin_ref, action="stream.read")
    manifest = manifest_for(session, twin)
    offsets = {c.function: c for c in session.scalars(select(StreamConsumer).where(StreamConsumer.twin_id == twin.id))}
    dead = {name: int(n) for name, n in session.execute(
        select(DeadLetter.function, func.count()).where(DeadLetter.twin_id == twin.id).group_by(DeadLetter.function))}
    out = []
    for name, spec in manifest.functions.items():
        consumer = offsets.get(name)
        offset = consumer.offset if consumer else 0
        out.append(FunctionRead(name=name, stream=spec.stream, entrypoint=spec.entrypoint, trigger=spec.trigger,
                                publishes=list(spec.publishes), joins=spec.inputs[1:], offset=offset,
                                lag=max(hub.end(stream_key(twin.id, spec.stream)) - offset, 0),
                                calls=consumer.calls if consumer else 0, dead_letters=int(dead.get(name, 0)),
                                paused=bool(consumer and consumer.paused_reason is not None),
                                paused_reason=consumer.paused_reason if consumer else None,
                                paused_at=consumer.paused_at if consumer else None))
    return out


def resume_function(session: Session, *, principal: Principal, twin_ref: str, function: str) -> FunctionResumed:
    """Resume a paused function: its checkpoint goes back to the first record of the failed run that paused
    it, whose dead letters are dropped, so those records (and all after) are handled again, by the fixed
    code when the app was updated."""
    twin = get_twin(session, principal=principal, ref=twin_ref, action="stream.manage")
    if function not in manifest_for(session, twin).functions:
        raise FunctionNotFound(f"function: the app of {twin.name} declares no function {function!r}")
    row = session.get(StreamConsumer, (twin.id, function), with_for_update=True)
    if row is None or row.paused_reason is None or row.paused_from is None:
        raise FunctionNotPaused(f"function {function!r} of {twin.name} is not paused")
    replayed = session.execute(delete(DeadLetter).where(
        DeadLetter.twin_id == twin.id, DeadLetter.function == function, DeadLetter.first_offset >= row.paused_from))
    row.offset, row.paused_reason, row.paused_at, row.paused_from = row.paused_from, None, None, None
    bump(session, "functions", {twin.id})  # the function worker takes the records again from there
    session.flush()
    return FunctionResumed(function=function, offset=row.offset,
                           replayed=int(getattr(replayed, "rowcount", 0) or 0))


def dead_letters(session: Session, *, principal: Principal, twin_ref: str, function: str | None = None,
                 limit: int = 100) -> list[DeadLetterRead]:
    twin = get_twin(session, principal=principal, ref=twin_ref, action="stream.read")
    query = select(DeadLetter).where(DeadLetter.twin_id == twin.id)
    if function:
        query = query.where(DeadLetter.function == function)
    rows = session.scalars(query.order_by(DeadLetter.id.desc()).limit(limit))
    return [DeadLetterRead.model_validate(r) for r in rows]


EVENTS_STREAM = "_events"  # what functions emit, per twin, in the stream log


def function_events(session: Session, hub: StreamHub, *, principal: Principal, twin_ref: str,
                    last: int = 100) -> list[dict[str, Any]]:
    """The newest events functions emitted (and workflow runs they asked for), oldest first."""
    twin = get_twin(session, principal=principal, ref=twin_ref, action="stream.read")
    key = stream_key(twin.id, EVENTS_STREAM)
    table = hub.read(key, start=max(hub.end(key) - last, 0), limit=last, time_field="time")
    out = []
    for row in table.to_pylist() if table is not None else []:
        data = json.loads(row["data"]) if row.get("data") else {}
        out.append({"offset": row["_offset"], "time": row["time"], "function": row["function"], "kind": row["kind"],
                    "data": data})
    return out


MAX_QUALITY_RECORDS = 2_000_000
MAX_QUALITY_BYTES = 512 << 20
MAX_QUALITY_WINDOWS = 10_000


def quality_report(session: Session, hub: StreamHub, *, principal: Principal, twin_ref: str, stream: str,
                   start: datetime | None = None, end: datetime | None = None,
                   window: timedelta | None = None) -> QualityReport:
    """Flag shares, failed checks, lateness and completeness of a stream per window of event time (default
    window: the completeness check's, else 1 h)."""
    twin, _manifest, declared = resolve(session, principal=principal, twin_ref=twin_ref, stream=stream)
    start, end = _utc(start), _utc(end)  # a time without zone is UTC, as everywhere in the API
    gap = next((c for c in declared.quality if isinstance(c, GapCheck)), None)
    complete = next((c for c in declared.quality if isinstance(c, CompletenessCheck)), None)
    window = window or (complete.window if complete else timedelta(hours=1))
    if start is not None and end is not None and end <= start:
        raise ValidationFailed.one("to", "must be after from")
    if start is not None and end is not None and (end - start) / window > MAX_QUALITY_WINDOWS:
        raise ValidationFailed.one("window", f"more than {MAX_QUALITY_WINDOWS} windows; choose a longer window")
    if start is not None and end is None and datetime.now(UTC) - start > window * MAX_QUALITY_WINDOWS * 100:
        raise ValidationFailed.one("from", "too far back for this window; give to, or a longer window")
    key = stream_key(twin.id, stream)
    table = hub.read(key, since_us=_us(start), until_us=_us(end), limit=MAX_QUALITY_RECORDS + 1,
                     time_field=declared.time_field, max_bytes=MAX_QUALITY_BYTES)
    if table is not None and table.num_rows > MAX_QUALITY_RECORDS:
        raise ValidationFailed.one("from", f"more than {MAX_QUALITY_RECORDS} records; narrow from/to")
    if table is not None and hub.read(key, start=int(table.column(OFFSET)[-1].as_py()) + 1, since_us=_us(start),
                                      until_us=_us(end), limit=1, time_field=declared.time_field) is not None:
        raise ValidationFailed.one("from", f"more than {MAX_QUALITY_BYTES >> 20} MiB of records; narrow from/to")
    empty = np.zeros(0, dtype=np.int64)
    times = table.column(declared.time_field).cast(pa.int64()).to_numpy() if table is not None else empty
    arrival = table.column(ARRIVAL).cast(pa.int64()).to_numpy() if table is not None else empty
    codes = (pc.index_in(table.column(QUALITY), value_set=pa.array(["good", "suspect", "bad"])).to_numpy(
        zero_copy_only=False).astype(np.int8) if table is not None else np.zeros(0, dtype=np.int8))
    reasons = table.column(CHECKS).to_pylist() if table is not None else []
    sources = (len(pc.unique(table.column(declared.key))) if table is not None and declared.key else 1)
    cadence = (complete.every if complete and complete.every else None) or (gap.every if gap else None)
    labels = [c.label for c in declared.quality if not isinstance(c, CompletenessCheck)]
    if gap is not None and gap.max_delay is not None:
        labels.append("late")
    try:
        return summarise(twin_id=twin.id, stream=stream, times_us=times, arrival_us=arrival, flags=codes,
                         reasons=reasons, sources=sources, start=start, end=end, window=window, cadence=cadence,
                         completeness_min=complete.min if complete else None, checks=labels,
                         max_windows=MAX_QUALITY_WINDOWS)
    except TooManyWindows as exc:
        raise ValidationFailed.one("window", str(exc)) from None
