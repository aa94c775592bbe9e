"""HTTP routes of streams: ingest (JSON lines, JSON, Arrow IPC, WebSocket), history, live events (SSE) of
records and of state changes, MQTT bindings, functions and their dead letters.

Ingest authenticates with a read-only store session: appending touches the log, not the database, so
producers never queue behind the store's single writer.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from functools import partial
from typing import Annotated, Any, TypeVar

import anyio.to_thread
import pyarrow as pa
from fastapi import Depends, Header, Path, Query, Request, Response, WebSocket, WebSocketDisconnect, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.sse import EventSourceResponse, ServerSentEvent
from pydantic import TypeAdapter, ValidationError
from sqlalchemy.orm import Session

from twinengine.api.cookies import check_csrf, request_token
from twinengine.api.deps import PRINCIPAL_SCOPE_KEY, PrincipalDep, RuntimeDep, SessionDep, requires_token
from twinengine.api.held_access import HeldAccess, ended_by
from twinengine.api.route_actions import acts
from twinengine.api.routes.twins import revision_read
from twinengine.api.routing import api_router
from twinengine.api.text import takes_non_finite_numbers
from twinengine.auth.groups import groups_of
from twinengine.auth.issuer import verify_bearer
from twinengine.auth.principal import Principal
from twinengine.catalog.manifest import Stream
from twinengine.compute.quotas import quota_hold
from twinengine.compute.sites import DEFAULT_SITE
from twinengine.errors import TwinEngineError, ValidationFailed
from twinengine.quality.indicators import QualityReport
from twinengine.quality.spec import Flag, parse_duration
from twinengine.runtime import Runtime
from twinengine.streams import service
from twinengine.streams.hub import OFFSET, stream_key
from twinengine.streams.schemas import (
    AppendAck,
    BindingRead,
    BindingWrite,
    DeadLetterRead,
    FunctionEvent,
    FunctionRead,
    FunctionResumed,
    ProducerRead,
    RecordPage,
)
from twinengine.streams.schemas import StreamRead as StreamInfo
from twinengine.streams.uncertainty import plain_records
from twinengine.timeutil import Instant
from twinengine.twins import service as twins
from twinengine.twins.models import Twin
from twinengine.types import INT32_MAX

__all__ = ["jsonable", "router"]

router = api_router("/twins", tag="streams")
T = TypeVar("T")

TwinRef = Annotated[str, Path(max_length=64, description="The twin's id (tw-...) or name.")]
StreamName = Annotated[str, Path(max_length=64, description="A stream the twin's app declares.")]
ARROW_STREAM = "application/vnd.apache.arrow.stream"
_bearer = HTTPBearer(auto_error=False)


def _verify(runtime: Runtime, token: str | None) -> Principal:
    with runtime.db.session(readonly=True) as session:
        return verify_bearer(token, session=session, verifiers=runtime.verifiers)


@requires_token
async def stream_principal(request: Request, runtime: RuntimeDep,
                           credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> Principal:
    principal = await anyio.to_thread.run_sync(_verify, runtime, request_token(request, credentials))
    request.scope[PRINCIPAL_SCOPE_KEY] = principal  # the audit middleware reads it
    check_csrf(request, runtime, principal)
    return principal


StreamPrincipalDep = Annotated[Principal, Depends(stream_principal)]


async def _in_session(runtime: Runtime, fn: Callable[[Session], T]) -> T:
    def run() -> T:
        with runtime.db.session(readonly=True) as session:
            return fn(session)

    return await anyio.to_thread.run_sync(run)


def jsonable(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat().replace("+00:00", "Z") if isinstance(v, datetime) else v for k, v in record.items()}


@router.get("/{twin}/streams", name="list", summary="The twin's streams, their end offsets, lag and MQTT topics")
@acts("stream.read")
def list_streams(twin: TwinRef, session: SessionDep, principal: PrincipalDep, runtime: RuntimeDep) -> list[StreamInfo]:
    return service.describe(session, runtime.streams, principal=principal, twin_ref=twin)


@router.post("/{twin}/streams/{stream}/records", name="append", status_code=status.HTTP_201_CREATED,
             summary="Append a batch (JSON lines, JSON, or Arrow IPC); answered once it is durable",
             openapi_extra={"requestBody": {"required": True, "content": {
                 "application/x-ndjson": {"schema": {"type": "string"}},
                 "application/json": {"schema": {"type": "array", "items": {"type": "object"}}},
                 ARROW_STREAM: {"schema": {"type": "string", "format": "binary"}}}}})
@takes_non_finite_numbers  # records are data: NaN and infinities are values of a field (checked by its type)
@acts("stream.append")
async def append(
    twin: TwinRef,
    stream: StreamName,
    request: Request,
    runtime: RuntimeDep,
    principal: StreamPrincipalDep,
    producer: Annotated[str | None, Query(max_length=128, description="Producer id, for duplicate drop.")] = None,
    seq: Annotated[int | None, Query(ge=0, le=2**62, description="Sequence number of the first record.")] = None,
) -> AppendAck:
    body = await request.body()
    content_type = request.headers.get("content-type", "application/x-ndjson")
    return await _in_session(runtime, lambda s: service.ingest(
        s, runtime.streams, principal=principal, twin_ref=twin, stream=stream, body=body,
        content_type=content_type, producer=producer, seq=seq))


@router.get("/{twin}/streams/{stream}/producers/{producer}", name="producer",
            summary="Where a producer's sequence numbers stand: the last appended and the next to send")
@acts("stream.append")
def producer_position(twin: TwinRef, stream: StreamName,
                      producer: Annotated[str, Path(min_length=1, max_length=128, description="Producer id.")],
                      session: SessionDep, principal: PrincipalDep, runtime: RuntimeDep) -> ProducerRead:
    """A producer that lost count (a restarted sender, ``twin stream send`` again) resumes at ``next_seq``
    instead of having every new record dropped as a repeat."""
    return service.producer_position(session, runtime.streams, principal=principal, twin_ref=twin, stream=stream,
                                     producer=producer)


@router.get("/{twin}/streams/{stream}/records", name="read",
            summary="History by offset or event time, JSON (default) or Arrow IPC (Accept header)",
            responses={200: {"content": {ARROW_STREAM: {}}}})
@acts("stream.read")
async def read(
    twin: TwinRef,
    stream: StreamName,
    runtime: RuntimeDep,
    principal: StreamPrincipalDep,
    start: Annotated[int | None, Query(ge=0, le=2**62, description="First offset (default 0).")] = None,
    last: Annotated[int | None, Query(ge=1, le=100_000, description="The newest N records instead.")] = None,
    since: Annotated[Instant | None, Query(description="Event time from (ISO 8601; UTC without zone).")] = None,
    until: Annotated[Instant | None, Query(description="Event time before.")] = None,
    limit: Annotated[int, Query(ge=1, le=100_000)] = 1000,
    quality: Annotated[list[Flag] | None, Query(description="Only records with these flags (repeat for "
                                                            "several), e.g. quality=good.")] = None,
    accept: Annotated[str | None, Header()] = None,
) -> Any:
    flags = {f.value for f in quality} if quality else None
    row, table, end = await _in_session(runtime, lambda s: service.read_records(
        s, runtime.streams, principal=principal, twin_ref=twin, stream=stream, start=start, since=since,
        until=until, limit=limit, last=last, quality=flags))
    if accept and ARROW_STREAM in accept:
        sink = pa.BufferOutputStream()
        if table is not None:
            with pa.ipc.new_stream(sink, table.schema) as writer:
                writer.write_table(table)
        return Response(sink.getvalue().to_pybytes(), media_type=ARROW_STREAM,
                        headers={"X-End-Offset": str(end)})
    items = [jsonable(r) for r in plain_records(table)] if table is not None else []
    after = items[-1][OFFSET] + 1 if items else (start or 0)
    return RecordPage(twin_id=row.id, stream=stream, count=len(items), next_offset=after, end_offset=end, items=items)


@router.get("/{twin}/streams/{stream}/quality", name="quality",
            summary="Input quality per window of event time: flag shares, failed checks, lateness, completeness")
@acts("stream.read")
async def quality(
    twin: TwinRef,
    stream: StreamName,
    runtime: RuntimeDep,
    principal: StreamPrincipalDep,
    start: Annotated[Instant | None, Query(alias="from", description="Event time from (ISO 8601).")] = None,
    end: Annotated[Instant | None, Query(alias="to", description="Event time before.")] = None,
    window: Annotated[str | None, Query(max_length=32, description="Window length, e.g. 1h, 15min, 1d "
                                                                   "(default: the completeness check's, else 1h).")
                      ] = None,
) -> QualityReport:
    length = _window(window)
    return await _in_session(runtime, lambda s: service.quality_report(
        s, runtime.streams, principal=principal, twin_ref=twin, stream=stream, start=start, end=end,
        window=length))


def _window(text: str | None) -> timedelta | None:
    if text is None:
        return None
    try:
        value = parse_duration(text)
        value = value if isinstance(value, timedelta) else TypeAdapter(timedelta).validate_python(value)
    except (ValueError, ValidationError, OverflowError):
        raise ValidationFailed.one("window", f"{text!r} is not a duration (e.g. 15min, 1h, 1d)") from None
    if not 1 <= value.total_seconds() <= 3660 * 86400:
        raise ValidationFailed.one("window", "a window lasts from 1 s to 3660 days")
    return value


async def stream_target(twin: TwinRef, stream: StreamName, runtime: RuntimeDep,
                        principal: StreamPrincipalDep) -> tuple[Twin, Stream]:
    """Resolved before an event stream starts, so a wrong twin or stream is a 4xx, not a broken stream."""
    row, _manifest, declared = await _in_session(runtime, lambda s: service.resolve(
        s, principal=principal, twin_ref=twin, stream=stream))
    return row, declared


async def twin_target(twin: TwinRef, runtime: RuntimeDep, principal: StreamPrincipalDep) -> Twin:
    return await _in_session(runtime, lambda s: twins.get_twin(s, principal=principal, ref=twin))


@router.get("/{twin}/streams/{stream}/events", name="events", response_class=EventSourceResponse,
            summary="Live records as Server-Sent Events (id = offset; resumes from Last-Event-ID)")
@acts("stream.read")
async def events(
    stream: StreamName,
    request: Request,
    runtime: RuntimeDep,
    target: Annotated[tuple[Twin, Stream], Depends(stream_target)],
    start: Annotated[int | None, Query(ge=0, le=2**62, description="First offset; default: new records only.")] = None,
    count: Annotated[int | None, Query(ge=1, le=10**9, description="Close after this many records.")] = None,
    idle: Annotated[float | None, Query(gt=0, le=86_400, description="Close after this many idle seconds.")] = None,
    last_event_id: Annotated[str | None, Header(max_length=24)] = None,
) -> AsyncIterator[ServerSentEvent]:
    row, declared = target
    hub, key = runtime.streams, stream_key(row.id, stream)
    access = await HeldAccess.of_request(
        request, runtime, lambda s, p: service.resolve(s, principal=p, twin_ref=row.id, stream=stream))
    position = start if start is not None else (int(last_event_id) + 1 if last_event_id and last_event_id.isdigit()
                                                else await anyio.to_thread.run_sync(hub.end, key))
    sent, quiet = 0, 0.0
    while count is None or sent < count:
        try:
            await access.check()
        except TwinEngineError as error:
            yield ended_by(error)
            return
        table = await anyio.to_thread.run_sync(partial(hub.read, key, start=position, time_field=declared.time_field,
                                                       limit=min(1000, (count or 10**9) - sent),
                                                       max_bytes=service.PAGE_BYTES))
        if table is not None:
            quiet = 0.0
            for record in plain_records(table):
                # json.dumps writes NaN and ±Infinity as tokens, as record pages do; encoding `data` nulls them.
                yield ServerSentEvent(raw_data=json.dumps(jsonable(record)), id=str(record[OFFSET]), event="record")
                position, sent = record[OFFSET] + 1, sent + 1
            continue
        if await request.is_disconnected() or (idle is not None and quiet >= idle):
            return
        if not await runtime.notifier.wait(key, 0.5):
            quiet += 0.5
            if quiet % 15 == 0:
                yield ServerSentEvent(comment="keep-alive")


@router.get("/{twin}/state/events", name="state_events", response_class=EventSourceResponse,
            summary="Live state revisions as Server-Sent Events (id = revision)")
@acts("twin.read")
async def state_events(
    request: Request,
    runtime: RuntimeDep,
    principal: StreamPrincipalDep,
    row: Annotated[Twin, Depends(twin_target)],
    after: Annotated[int | None, Query(ge=0, le=INT32_MAX, description="Default: the head revision now.")] = None,
    count: Annotated[int | None, Query(ge=1, le=10**9)] = None,
    idle: Annotated[float | None, Query(gt=0, le=86_400)] = None,
    last_event_id: Annotated[str | None, Header(max_length=24)] = None,
) -> AsyncIterator[ServerSentEvent]:
    position = after if after is not None else (int(last_event_id) if last_event_id and last_event_id.isdigit()
                                                else row.head_revision)
    access = await HeldAccess.of_request(request, runtime, lambda s, p: twins.get_twin(s, principal=p, ref=row.id))
    sent, quiet = 0, 0.0
    while count is None or sent < count:
        try:
            principal = await access.check() or principal
        except TwinEngineError as error:
            yield ended_by(error)
            return
        _, items = await _in_session(runtime, partial(_revisions_after, principal, row.id, position))
        if items:
            quiet = 0.0
            for item in items[: (count or 10**9) - sent]:
                yield ServerSentEvent(data=revision_read(item).model_dump(mode="json"), id=str(item.revision),
                                      event="revision")
                position, sent = item.revision, sent + 1
            continue
        if await request.is_disconnected() or (idle is not None and quiet >= idle):
            return
        if not await runtime.notifier.wait(f"state:{row.id}", 0.5):
            quiet += 0.5


@router.websocket("/{twin}/streams/{stream}/ws", name="ws")
@acts("stream.append")
async def ingest_socket(websocket: WebSocket, twin: str, stream: str, token: str | None = None) -> None:
    """Continuous producers: each message is a batch (JSON ``{"records": [...], "producer", "seq"}``, JSON
    lines, or binary Arrow IPC); each is answered ``{"ack": ...}`` once durable or ``{"error": ...}``. The token
    comes in the ``Authorization`` header, or (browsers set no headers here) as the subprotocols
    ``bearer, <token>``, which no log writes, or as ``?token=`` (redacted in the server's log)."""
    runtime: Runtime = websocket.app.state.runtime
    header = websocket.headers.get("authorization", "")
    offered = _offered_bearer(websocket.scope.get("subprotocols") or [])
    bearer = header[7:] if header.lower().startswith("bearer ") else offered or token
    try:
        principal = await anyio.to_thread.run_sync(_verify, runtime, bearer)
        await _in_session(runtime, lambda s: service.resolve(s, principal=principal, twin_ref=twin, stream=stream,
                                                             action="stream.append"))
    except TwinEngineError as exc:
        await websocket.close(code=1008, reason=exc.message[:120])
        return
    access = HeldAccess(runtime, bearer, lambda s, p: service.resolve(s, principal=p, twin_ref=twin, stream=stream,
                                                                       action="stream.append"))
    await websocket.accept(subprotocol=BEARER_SUBPROTOCOL if offered else None)
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            try:
                principal = await access.check() or principal
            except TwinEngineError as exc:  # the token was revoked or expired, or the grant withdrawn
                await websocket.send_json({"error": exc.to_dict()})
                await websocket.close(code=1008, reason=exc.message[:120])
                return
            try:
                ack = await _in_session(runtime, partial(_ingest_message, runtime=runtime, principal=principal,
                                                         twin=twin, stream=stream, message=message))
                await websocket.send_json({"ack": ack.model_dump(mode="json")})
            except TwinEngineError as exc:
                await websocket.send_json({"error": exc.to_dict()})
    except WebSocketDisconnect:
        return


BEARER_SUBPROTOCOL = "bearer"


def _offered_bearer(subprotocols: list[str]) -> str | None:
    """The token a client offered as the subprotocol after ``bearer`` (``Sec-WebSocket-Protocol: bearer,
    <token>``: the one header a browser's WebSocket sets), or None."""
    for i, name in enumerate(subprotocols[:-1]):
        if name.lower() == BEARER_SUBPROTOCOL:
            return subprotocols[i + 1]
    return None


def _revisions_after(principal: Principal, twin_id: str, after: int, session: Session) -> tuple[Any, list[Any]]:
    return twins.list_revisions(session, principal=principal, ref=twin_id, limit=100, offset=after,
                                newest_first=False)


def _ingest_message(session: Session, *, runtime: Runtime, principal: Principal, twin: str, stream: str,
                    message: Any) -> AppendAck:
    if message.get("bytes") is not None:
        return service.ingest(session, runtime.streams, principal=principal, twin_ref=twin, stream=stream,
                              body=message["bytes"], content_type=ARROW_STREAM)
    text = message.get("text") or ""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        return service.ingest(session, runtime.streams, principal=principal, twin_ref=twin, stream=stream,
                              body=text.encode(), content_type="application/x-ndjson")
    if isinstance(data, dict) and "records" in data:
        return service.ingest_records(session, runtime.streams, principal=principal, twin_ref=twin, stream=stream,
                                      items=data["records"] if isinstance(data["records"], list) else [data["records"]],
                                      producer=data.get("producer"), seq=data.get("seq"))
    return service.ingest_records(session, runtime.streams, principal=principal, twin_ref=twin, stream=stream,
                                  items=data if isinstance(data, list) else [data])


@router.put("/{twin}/streams/{stream}/binding", name="bind", summary="Feed the stream from an MQTT topic")
@acts("stream.manage")
def bind(twin: TwinRef, stream: StreamName, body: BindingWrite, session: SessionDep,
         principal: PrincipalDep) -> BindingRead:
    row = service.bind_mqtt(session, principal=principal, twin_ref=twin, stream=stream, topic=body.mqtt_topic)
    return BindingRead.model_validate(row)


@router.delete("/{twin}/streams/{stream}/binding", name="unbind", status_code=status.HTTP_204_NO_CONTENT,
               summary="Stop feeding the stream from MQTT")
@acts("stream.manage")
def unbind(twin: TwinRef, stream: StreamName, session: SessionDep, principal: PrincipalDep) -> Response:
    service.unbind_mqtt(session, principal=principal, twin_ref=twin, stream=stream)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{twin}/functions", name="functions", summary="Functions on arrival: offsets, lag, calls, failures")
@acts("stream.read")
def functions(twin: TwinRef, session: SessionDep, principal: PrincipalDep, runtime: RuntimeDep) -> list[FunctionRead]:
    found = service.list_functions(session, runtime.streams, principal=principal, twin_ref=twin)
    if found:  # held as the functions' loop holds them (compute.quotas.quota_hold: the one rule)
        owner = twins.get_twin(session, principal=principal, ref=twin, action="stream.read").owner
        held = quota_hold(session, identity=owner, groups=groups_of(session, owner), site=DEFAULT_SITE)
        for function in found:
            function.held = held
    return found


@router.get("/{twin}/functions/dead-letters", name="dead_letters",
            summary="Records functions gave up on after their retries, with the reason")
@acts("stream.read")
def dead_letters(twin: TwinRef, session: SessionDep, principal: PrincipalDep,
                 function: Annotated[str | None, Query(max_length=64)] = None,
                 limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[DeadLetterRead]:
    return service.dead_letters(session, principal=principal, twin_ref=twin, function=function, limit=limit)


@router.post("/{twin}/functions/{function}/resume", name="resume_function",
             summary="Resume a paused function, replaying the dead letters of the run that paused it")
@acts("stream.manage")
def resume_function(twin: TwinRef, function: Annotated[str, Path(max_length=64)], session: SessionDep,
                    principal: PrincipalDep) -> FunctionResumed:
    return service.resume_function(session, principal=principal, twin_ref=twin, function=function)


@router.get("/{twin}/functions/events", name="function_events",
            summary="Events the twin's functions emitted, and the workflow runs they asked for")
@acts("stream.read")
def function_events(twin: TwinRef, session: SessionDep, principal: PrincipalDep, runtime: RuntimeDep,
                    last: Annotated[int, Query(ge=1, le=10_000)] = 100) -> list[FunctionEvent]:
    rows = service.function_events(session, runtime.streams, principal=principal, twin_ref=twin, last=last)
    return [FunctionEvent.model_validate(r) for r in rows]
