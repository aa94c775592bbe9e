"""HTTP routes of retraining buffers: policies per twin, fills, their records, and retraining outcomes."""

from __future__ import annotations

from typing import Annotated, Any

import pyarrow as pa
from fastapi import Body, Header, Path, Response, status

from twinengine.api.deps import PrincipalDep, RuntimeDep, SessionDep
from twinengine.api.route_actions import acts
from twinengine.api.routes.streams import ARROW_STREAM, jsonable
from twinengine.api.routing import api_router
from twinengine.streams import buffers
from twinengine.streams.schemas import BufferCreate, BufferFillRead, BufferRead
from twinengine.streams.uncertainty import plain_records
from twinengine.twins.service import manifest_for

__all__ = ["router"]

router = api_router("/twins", tag="streams")

TwinRef = Annotated[str, Path(max_length=64, description="The twin's id (tw-...) or name.")]
BufferName = Annotated[str, Path(max_length=64)]


@router.post("/{twin}/buffers", name="buffer_create", status_code=status.HTTP_201_CREATED,
             summary="A retraining buffer on a stream: sealed by record count, by time, or on request")
@acts("stream.manage")
def buffer_create(twin: TwinRef, body: BufferCreate, session: SessionDep, principal: PrincipalDep,
                  runtime: RuntimeDep) -> BufferRead:
    return buffers.create_buffer(session, runtime.streams, principal=principal, twin_ref=twin, body=body)


@router.get("/{twin}/buffers", name="buffer_list", summary="The twin's retraining buffers and their fills")
@acts("stream.read")
def buffer_list(twin: TwinRef, session: SessionDep, principal: PrincipalDep, runtime: RuntimeDep) -> list[BufferRead]:
    return buffers.list_buffers(session, runtime.streams, principal=principal, twin_ref=twin)


@router.get("/{twin}/buffers/{name}", name="buffer_get", summary="One buffer and its fills")
@acts("stream.read")
def buffer_get(twin: TwinRef, name: BufferName, session: SessionDep, principal: PrincipalDep,
               runtime: RuntimeDep) -> BufferRead:
    _twin, row = buffers.get_buffer(session, principal=principal, twin_ref=twin, name=name)
    return buffers.buffer_read(runtime.streams, row, buffers._fills(session, row))


@router.post("/{twin}/buffers/{name}/seal", name="buffer_seal", status_code=status.HTTP_201_CREATED,
             summary="External trigger: seal what the buffer holds now into a fill")
@acts("stream.manage")
def buffer_seal(twin: TwinRef, name: BufferName, session: SessionDep, principal: PrincipalDep,
                runtime: RuntimeDep) -> BufferFillRead:
    return buffers.seal(session, runtime.streams, principal=principal, twin_ref=twin, name=name)


@router.get("/{twin}/buffers/{name}/fills/{fill}/records", name="buffer_records",
            summary="A fill's records (Arrow IPC with Accept, JSON otherwise)",
            responses={200: {"content": {ARROW_STREAM: {}}}})
@acts("stream.read")
def buffer_records(twin: TwinRef, name: BufferName, fill: Annotated[int, Path(ge=1, le=2**62)], session: SessionDep,
                   principal: PrincipalDep, runtime: RuntimeDep,
                   accept: Annotated[str | None, Header()] = None) -> Any:
    row, found = buffers.read_fill(session, principal=principal, twin_ref=twin, name=name, fill_id=fill)
    from twinengine.twins.models import Twin

    twin_row = session.get(Twin, row.twin_id)
    time_field = manifest_for(session, twin_row).streams[row.stream].time_field if twin_row else None
    table = buffers.fill_table(runtime.streams, found, time_field=time_field, session=session)
    if accept and ARROW_STREAM in accept:
        sink = pa.BufferOutputStream()
        if table.num_columns:
            with pa.ipc.new_stream(sink, table.schema) as writer:
                writer.write_table(table)
        return Response(sink.getvalue().to_pybytes(), media_type=ARROW_STREAM)
    return [jsonable(r) for r in plain_records(table)]


@router.post("/{twin}/buffers/{name}/fills/{fill}/consumed", name="buffer_consumed",
             summary="Record a retraining's outcome; on success the fill is discarded if the policy says so")
@acts("stream.manage")
def buffer_consumed(twin: TwinRef, name: BufferName, fill: Annotated[int, Path(ge=1, le=2**62)],
                    session: SessionDep, principal: PrincipalDep,
                    success: Annotated[bool, Body(embed=True)] = True,
                    note: Annotated[str | None, Body(embed=True, max_length=2000)] = None) -> BufferFillRead:
    return buffers.consume(session, principal=principal, twin_ref=twin, name=name, fill_id=fill, success=success,
                           note=note)
