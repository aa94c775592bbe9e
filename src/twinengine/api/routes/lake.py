"""HTTP routes of the lake: endpoints, identifiers, uploads and downloads, rules, transfers, verify, import."""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Iterator
from typing import Annotated, Any

import anyio
import anyio.to_thread
from fastapi import Header, Path, Query, Request, Response, status
from fastapi.responses import StreamingResponse
from sqlalchemy import select

from twinengine.api.deps import PrincipalDep, RuntimeDep, SessionDep
from twinengine.api.request_body import body_chunks
from twinengine.api.route_actions import acts
from twinengine.api.routing import api_router
from twinengine.auth.policy import require
from twinengine.auth.principal import GROUP_NAME_PATTERN
from twinengine.errors import InvalidInput, RuleNotFound
from twinengine.lake import dids, endpoints, grants, importer, removal, replicas, rules, terms, uploads
from twinengine.lake.models import Did, Endpoint, Transfer
from twinengine.lake.schemas import (
    DID_PATTERN,
    ENDPOINT_NAME,
    AttachBody,
    DidCreate,
    DidPage,
    DidRead,
    DidType,
    EndpointCreate,
    EndpointPage,
    EndpointRead,
    EndpointUpdate,
    ImportResult,
    ImportStac,
    ReplicaRead,
    RuleCreate,
    RulePage,
    RuleRead,
    RuleState,
    TransferRead,
    UploadResult,
    VerifyRequest,
    VerifyResult,
)
from twinengine.lake.storage import CHUNK
from twinengine.types import INT32_MAX

__all__ = ["UPLOAD_PATH", "router"]

router = api_router("/lake", tag="lake")
UPLOAD_PATH = "/api/v1/lake/uploads"

DidPath = Annotated[str, Path(pattern=DID_PATTERN, description="scope:name")]
EndpointPath = Annotated[str, Path(pattern=ENDPOINT_NAME)]
RuleId = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$")]
Limit = Annotated[int, Query(ge=1, le=1000)]
Offset = Annotated[int, Query(ge=0, le=INT32_MAX)]




# -- endpoints ----------------------------------------------------------------------------------------------

@router.post("/endpoints", name="endpoint_add", status_code=status.HTTP_201_CREATED,
             summary="Add a storage endpoint (providers)")
@acts("lake.endpoint.manage")
def endpoint_add(body: EndpointCreate, session: SessionDep, principal: PrincipalDep,
                 runtime: RuntimeDep) -> EndpointRead:
    row = endpoints.add_endpoint(session, runtime.lake, principal=principal, spec=body)
    return endpoints.endpoint_read(session, runtime.lake, row)


@router.get("/endpoints", name="endpoint_list", summary="Storage endpoints with usage")
@acts("lake.endpoint.read")
def endpoint_list(session: SessionDep, principal: PrincipalDep, runtime: RuntimeDep) -> EndpointPage:
    rows = endpoints.list_endpoints(session, principal=principal)
    return EndpointPage(items=[endpoints.endpoint_read(session, runtime.lake, r) for r in rows], total=len(rows))


@router.get("/endpoints/{name}", name="endpoint_get", summary="One storage endpoint")
@acts("lake.endpoint.read")
def endpoint_get(name: EndpointPath, session: SessionDep, principal: PrincipalDep,
                 runtime: RuntimeDep) -> EndpointRead:
    endpoints.list_endpoints(session, principal=principal)
    return endpoints.endpoint_read(session, runtime.lake, endpoints.get_endpoint(session, name))


@router.patch("/endpoints/{name}", name="endpoint_set", summary="Change attributes, quota, switches, credential")
@acts("lake.endpoint.manage")
def endpoint_set(name: EndpointPath, body: EndpointUpdate, session: SessionDep, principal: PrincipalDep,
                 runtime: RuntimeDep) -> EndpointRead:
    row = endpoints.update_endpoint(session, runtime.lake, principal=principal, name=name, change=body)
    return endpoints.endpoint_read(session, runtime.lake, row)


@router.delete("/endpoints/{name}", name="endpoint_remove", status_code=status.HTTP_204_NO_CONTENT,
               summary="Remove an empty endpoint")
@acts("lake.endpoint.manage")
def endpoint_remove(name: EndpointPath, session: SessionDep, principal: PrincipalDep) -> None:
    endpoints.remove_endpoint(session, principal=principal, name=name)


# -- identifiers ----------------------------------------------------------------------------------------------

@router.post("/dids", name="did_add", status_code=status.HTTP_201_CREATED,
             summary="Register a dataset or container")
@acts("lake.write")
def did_add(body: DidCreate, session: SessionDep, principal: PrincipalDep, runtime: RuntimeDep) -> DidRead:
    row = dids.add_did(session, principal=principal, did=body.did, type=DidType(body.type), meta=body.meta,
                       geometry=body.geometry, bbox=body.bbox, start=body.start_time, end=body.end_time,
                       tuning=runtime.lake.tuning, group=body.group, twin=body.twin)
    return dids.did_read(session, row)


@router.get("/dids", name="did_list", summary="Files, datasets and containers")
@acts("lake.read")
def did_list(session: SessionDep, principal: PrincipalDep,
             scope: Annotated[str | None, Query(max_length=64)] = None, type: DidType | None = None,
             prefix: Annotated[str | None, Query(max_length=255)] = None,
             q: Annotated[str | None, Query(max_length=200, description="words each found in the scope or "
                                                                       "name, any case")] = None,
             limit: Limit = 100, offset: Offset = 0) -> DidPage:
    rows, total = dids.list_dids(session, principal=principal, scope=scope, type=type, name_prefix=prefix,
                                 search=q, limit=limit, offset=offset)
    held = terms.copy_terms_of(session, rows)  # a copy's terms in the list too: is it still usable, and why not
    items = [dids.did_read(session, r, details=False) for r in rows]
    for row, item in zip(rows, items, strict=True):
        item.terms = held.get(row.id)
    return DidPage(items=items, total=total)


@router.post("/dids/{did:path}/members", name="did_attach", summary="Add files to a dataset, or datasets and "
                                                                    "containers to a container")
@acts("lake.write")
def did_attach(did: DidPath, body: AttachBody, session: SessionDep, principal: PrincipalDep) -> DidRead:
    row = dids.attach(session, principal=principal, parent=did, children=body.children)
    return dids.did_read(session, row, visible=grants.Readers(session, principal))


_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def _byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(start, end inclusive) of a single-range ``Range`` header; None means the whole file."""
    if not header:
        return None
    match = _RANGE.match(header.strip())
    if not match or match.groups() == ("", ""):
        raise InvalidInput(f"Range: {header!r} is not a single byte range (bytes=a-b, bytes=a-, bytes=-n)")
    first, last = match.groups()
    if first == "":
        start, end = max(0, size - int(last)), size - 1
    else:
        start, end = int(first), min(int(last), size - 1) if last else size - 1
    if start >= size or start > end:
        return (-1, -1)
    return start, end


@router.get("/dids/{did:path}/content", name="did_download", response_class=StreamingResponse,
            summary="A file's bytes from an available replica; Range requests; ?verify=true re-reads it first",
            responses={200: {"content": {"application/octet-stream": {}}}, 206: {"description": "Partial"}})
@acts("lake.read")
def did_download(did: DidPath, session: SessionDep, principal: PrincipalDep, runtime: RuntimeDep,
                 endpoint: Annotated[str | None, Query(pattern=ENDPOINT_NAME)] = None, verify: bool = False,
                 range_header: Annotated[str | None, Header(alias="Range")] = None) -> Response:
    readable = replicas.open_replica(session, runtime.lake, principal=principal, did=did, endpoint=endpoint,
                                     verify=verify, db=runtime.db)
    size = readable.checksums.bytes
    digest = base64.b64encode(bytes.fromhex(readable.checksums.sha256)).decode()
    headers = {"Accept-Ranges": "bytes", "ETag": f'"{readable.checksums.sha256}"',
               "Repr-Digest": f"sha-256=:{digest}:", "X-Lake-Adler32": readable.checksums.adler32,
               "X-Lake-Endpoint": readable.endpoint}
    span = _byte_range(range_header, size)
    media = readable.media_type or "application/octet-stream"
    if span == (-1, -1):
        return Response(status_code=416, headers={"Content-Range": f"bytes */{size}"})
    if span is None:
        return StreamingResponse(readable.read(), media_type=media,
                                 headers={**headers, "Content-Length": str(size)})
    start, end = span
    headers.update({"Content-Range": f"bytes {start}-{end}/{size}", "Content-Length": str(end - start + 1)})
    return StreamingResponse(readable.read(start, end - start + 1), status_code=206, media_type=media,
                             headers=headers)


@router.get("/dids/{did:path}", name="did_get", summary="One identifier with its replicas or members")
@acts("lake.read")
def did_get(did: DidPath, session: SessionDep, principal: PrincipalDep) -> DidRead:
    readers = grants.Readers(session, principal)
    row = grants.require_read(session, principal, dids.get_did(session, did), readers=readers)
    return dids.did_read(session, row, visible=readers)


@router.delete("/dids/{did:path}", name="did_remove", status_code=status.HTTP_204_NO_CONTENT,
               summary="Remove a DID with its rules and replicas (its creator or an admin)")
@acts("lake.write")
def did_remove(did: DidPath, principal: PrincipalDep, runtime: RuntimeDep) -> None:
    removal.delete_did(runtime.db, runtime.lake, principal=principal, did=did)


# -- uploads ----------------------------------------------------------------------------------------------------

def _rebuffer(chunks: Iterator[bytes], size: int = CHUNK, *, flush_after: float = 1.0) -> Iterator[bytes]:
    """The body in chunks of ``size`` for the writer, or what has come once ``flush_after`` seconds passed since
    the last one: a slow sender's bytes reach its temp file and heartbeat as they arrive, so the reaper, which
    takes a temp file silent for ``lake_stale_after`` for abandoned, never removes one still being sent."""
    buffer = bytearray()
    last = time.monotonic()
    for chunk in chunks:
        buffer += chunk
        if len(buffer) >= size or time.monotonic() - last >= flush_after:
            yield bytes(buffer)
            buffer.clear()
            last = time.monotonic()
    if buffer:
        yield bytes(buffer)


def _upload_threads(request: Request, size: int) -> anyio.CapacityLimiter:
    """Uploads wait on their clients' bytes while holding a thread: they get threads of their own, so slow
    senders cannot take the few threads every other request shares (``request_threads``)."""
    state = request.app.state
    if getattr(state, "upload_threads", None) is None:
        state.upload_threads = anyio.CapacityLimiter(size)
    limiter: anyio.CapacityLimiter = state.upload_threads
    return limiter


_UPLOAD_BODY: dict[str, Any] = {"requestBody": {"required": True, "description": "The file's bytes, streamed.",
                                                "content": {"application/octet-stream": {
                                                    "schema": {"type": "string", "format": "binary"}}}}}


@router.post("/uploads", name="upload", openapi_extra=_UPLOAD_BODY,
             responses={200: {"model": UploadResult, "description": "The same bytes were there already"},
                        201: {"model": UploadResult, "description": "Stored and checksummed"}})
@acts("lake.write")
async def upload(request: Request, response: Response, principal: PrincipalDep, runtime: RuntimeDep,
                 did: Annotated[str, Query(pattern=DID_PATTERN)],
                 endpoint: Annotated[str, Query(pattern=ENDPOINT_NAME)],
                 dataset: Annotated[str | None, Query(pattern=DID_PATTERN)] = None,
                 group: Annotated[str | None, Query(pattern=GROUP_NAME_PATTERN, max_length=64,
                                                    description="The group whose file it is (its members read "
                                                                "it); default: the dataset's group")] = None,
                 sha256: Annotated[str | None, Query(max_length=68)] = None,
                 adler32: Annotated[str | None, Query(max_length=8)] = None,
                 media_type: Annotated[str | None, Query(max_length=128)] = None) -> UploadResult:
    """Stream a file into the lake. Checksums are computed while the bytes flow; a declared sha256/adler32 that
    does not match rejects the upload and leaves nothing behind."""
    expected = uploads.Expected.parse(sha256, adler32)
    declared = request.headers.get("content-length")
    size = int(declared) if declared and declared.isdigit() else None
    flush_after = runtime.lake.tuning.heartbeat.total_seconds()

    def work() -> UploadResult:
        outcome = uploads.upload(runtime.db, runtime.lake, principal=principal, did=did, endpoint=endpoint,
                                 chunks=_rebuffer(body_chunks(request), flush_after=flush_after), size_hint=size,
                                 expected=expected, dataset=dataset, media_type=media_type, group=group)
        with runtime.db.session(readonly=True) as session:
            return UploadResult(created=outcome.created, file=dids.did_read(session, dids.get_did(session, did)))

    limiter = _upload_threads(request, runtime.settings.lake_upload_threads)
    result = await anyio.to_thread.run_sync(work, limiter=limiter)
    response.status_code = status.HTTP_201_CREATED if result.created else status.HTTP_200_OK
    return result


# -- rules and transfers ----------------------------------------------------------------------------------------

@router.post("/rules", name="rule_add", status_code=status.HTTP_201_CREATED, summary="Add a replication rule")
@acts("lake.rule.create")
def rule_add(body: RuleCreate, session: SessionDep, principal: PrincipalDep) -> RuleRead:
    rule = rules.add_rule(session, principal=principal, did=body.did, copies=body.copies,
                          expression=body.endpoints, lifetime=body.lifetime, comment=body.comment)
    return rules.rule_read(session, rule)


@router.get("/rules", name="rule_list", summary="Replication rules, with progress")
@acts("lake.rule.read")
def rule_list(session: SessionDep, principal: PrincipalDep,
              did: Annotated[str | None, Query(pattern=DID_PATTERN)] = None, state: RuleState | None = None,
              limit: Limit = 100, offset: Offset = 0) -> RulePage:
    rows, total = rules.list_rules(session, principal=principal, did=did, state=state, limit=limit, offset=offset)
    return RulePage(items=[rules.rule_read(session, r) for r in rows], total=total)


@router.get("/rules/{rule_id}", name="rule_get", summary="One rule: state, lock counts, percent, last error")
@acts("lake.rule.read")
def rule_get(rule_id: RuleId, session: SessionDep, principal: PrincipalDep) -> RuleRead:
    require(principal, "lake.rule.read")
    rule = rules.get_rule(session, rule_id)
    hidden = not grants.runs_storage(principal) and not grants.may_read(session, principal,
                                                                        session.get_one(Did, rule.did_id))
    if hidden:  # as a rule that is not there
        raise RuleNotFound(f"no replication rule {rule_id!r}")
    return rules.rule_read(session, rule)


@router.delete("/rules/{rule_id}", name="rule_remove", status_code=status.HTTP_204_NO_CONTENT,
               summary="Remove a rule; replicas nothing else needs are deleted after the grace period")
@acts("lake.rule.read")
def rule_remove(rule_id: RuleId, session: SessionDep, principal: PrincipalDep, runtime: RuntimeDep) -> None:
    rules.delete_rule(session, principal=principal, rule_id=rule_id, grace=runtime.lake.tuning.tombstone_grace)


@router.post("/rules/{rule_id}/suspend", name="rule_suspend", summary="Stop working on a rule")
@acts("lake.rule.read")
def rule_suspend(rule_id: RuleId, session: SessionDep, principal: PrincipalDep) -> RuleRead:
    return rules.rule_read(session, rules.set_suspended(session, principal=principal, rule_id=rule_id,
                                                        suspended=True))


@router.post("/rules/{rule_id}/resume", name="rule_resume", summary="Work on a suspended rule again")
@acts("lake.rule.read")
def rule_resume(rule_id: RuleId, session: SessionDep, principal: PrincipalDep) -> RuleRead:
    return rules.rule_read(session, rules.set_suspended(session, principal=principal, rule_id=rule_id,
                                                        suspended=False))


@router.get("/transfers", name="transfer_list", summary="Transfers, newest first")
@acts("lake.rule.read")
def transfer_list(session: SessionDep, principal: PrincipalDep,
                  rule_id: Annotated[str | None, Query(pattern=r"^[0-9a-f]{32}$")] = None,
                  state: Annotated[str | None, Query(pattern=r"^(QUEUED|ACTIVE|DONE|FAILED|CANCELLED)$")] = None,
                  limit: Limit = 100) -> list[TransferRead]:
    require(principal, "lake.rule.read")
    readers = grants.Readers(session, principal)  # transfers of files the caller may read
    query = select(Transfer).order_by(Transfer.id.desc())
    if rule_id:
        query = query.where(Transfer.rule_id == rule_id)
    if state:
        query = query.where(Transfer.state == state)
    names = {e.id: e.name for e in session.scalars(select(Endpoint))}
    out: list[TransferRead] = []
    everything = grants.runs_storage(principal)
    for t in session.scalars(query.limit(limit) if everything else query):
        did = session.get_one(Did, t.did_id)
        if not everything and not readers(did):
            continue
        if len(out) == limit:
            break
        out.append(TransferRead(id=t.id, did=did.did, source=names.get(t.source_endpoint_id or -1),
                                destination=names[t.dest_endpoint_id], rule_id=t.rule_id, state=t.state,
                                attempts=t.attempts, bytes_done=t.bytes_done, last_error=t.last_error,
                                next_attempt_at=t.next_attempt_at, updated_at=t.updated_at))
    return out


# -- verify and import ----------------------------------------------------------------------------------------

@router.get("/replicas", name="replica_list", summary="Replicas under a DID and/or on an endpoint")
@acts("lake.read")
def replica_list(session: SessionDep, principal: PrincipalDep,
                 did: Annotated[str | None, Query(pattern=DID_PATTERN)] = None,
                 endpoint: Annotated[str | None, Query(pattern=ENDPOINT_NAME)] = None) -> list[ReplicaRead]:
    ids = replicas.replicas_to_verify(session, principal=principal, did=did, endpoint=endpoint, action="lake.read")
    return dids.replicas_by_id(session, ids)


@router.post("/replicas/{replica_id}/verify", name="replica_verify",
             summary="Re-read one replica; a corrupted or missing one becomes BAD and is repaired from a good copy")
@acts("lake.verify")
def replica_verify(replica_id: Annotated[int, Path(ge=1, le=2**62)], principal: PrincipalDep,
                   runtime: RuntimeDep) -> VerifyResult:
    return replicas.verify_ids(runtime.db, runtime.lake, principal=principal, ids=[replica_id])


@router.post("/verify", name="verify", summary="Re-read every replica of a DID and/or on an endpoint")
@acts("lake.verify")
def verify(body: VerifyRequest, principal: PrincipalDep, runtime: RuntimeDep) -> VerifyResult:
    return replicas.verify(runtime.db, runtime.lake, principal=principal, did=body.did, endpoint=body.endpoint)


@router.post("/imports/stac", name="import_stac", summary="Import a collection's items and assets from a STAC API")
@acts("lake.import")
def import_stac(body: ImportStac, principal: PrincipalDep, runtime: RuntimeDep) -> ImportResult:
    return importer.import_stac(runtime.db, runtime.lake, principal=principal, spec=body)
