"""The Dataspace Protocol 2025-1 over HTTPS (``dataspace``): the version list and DID document (public), the
catalog, the negotiation and transfer endpoints of both roles under ``/dsp/2025-1`` (the consumer's callbacks
under ``/dsp/2025-1/callback``), the provider's data plane under ``/dsp/data`` (HttpData-PULL) and the consumer's
under ``/dsp/push`` (HttpData-PUSH; its bearer is the one the consumer's request gave, ``dataspace.push``); a
transfer of an EDR collection offer answers OGC API - EDR queries of that one collection under ``/dsp/edr/{pid}``
(its token as bearer, each query an access checked and recorded as a file's is).

These routes take no engine token: each message carries its sender's participant token (``dataspace.identity``),
verified before any unit of work opens (reading the sender's DID document waits on the network). Errors answer
with the spec's error objects; a process of another participant is not found (404).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated, Any

import anyio
from fastapi import Path, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from sqlalchemy.orm import Session

from twinengine.access.extract import Extraction, sources_area
from twinengine.access.listing import collection_document
from twinengine.access.query import footprint as area_of
from twinengine.api.deps import RuntimeDep
from twinengine.api.errors import render
from twinengine.api.request_body import body_chunks
from twinengine.api.route_actions import public
from twinengine.api.routes.access import CollectionId, CommonDep, Coords, QueryType, answer, query_of
from twinengine.api.routing import Router, operation_id
from twinengine.auth import odrl
from twinengine.auth.principal import SYSTEM
from twinengine.dataspace import catalog, dataplane, negotiation, proposals, push, transfer
from twinengine.dataspace.connector import Connector
from twinengine.dataspace.identity import did_document
from twinengine.dataspace.protocol import BASE_PATH, CALLBACK_PATH, DATA_PATH, EDR_PATH, PUSH_PATH, DspError, valid
from twinengine.dataspace.spec import problems
from twinengine.errors import AuthenticationRequired, TokenInvalid, TwinEngineError
from twinengine.runtime import Runtime
from twinengine.store.conflicts import STORE_REFUSALS, store_refusal

__all__ = ["router"]

router = Router(tags=["dataspace-protocol"], generate_unique_id_function=operation_id)
Pid = Annotated[str, Path(max_length=200, description="A process id (providerPid or consumerPid).")]
_MAX_BODY = 1 << 20
_ATTEMPTS = 3  # tries of a message's unit of work the store ended (store.conflicts)
JSON_BODY: dict[str, Any] = {"requestBody": {"required": True, "content": {"application/json": {
    "schema": {"type": "object", "description": "A Dataspace Protocol 2025-1 message (its JSON Schema)."}}}}}
_DSP_ERROR: dict[str, Any] = {"application/json": {"schema": {"$ref": "#/components/schemas/DataspaceError"}}}
# a body over the engine's own limit (``max_request_bytes``) is refused before the route, in the engine's error
_TOO_LARGE: dict[str, Any] = {"application/json": {"schema": {"anyOf": [
    {"$ref": "#/components/schemas/DataspaceError"}, {"$ref": "#/components/schemas/Error"}]}}}
_PROTOCOL_STATUSES = {
    400: "Not a valid message of its kind, or one the process's state does not take",
    401: "No participant token, or one that is not valid (its DID document, signature, audience, expiry)",
    404: "No such process, or one of another participant",
    409: "The store ended the message's unit of work on every try (another message wrote at the same moment)",
}


def _protocol_refusals(*, body: bool) -> dict[int | str, dict[str, Any]]:
    """What a protocol route answers besides success, in the spec's error object (not the engine's)."""
    refusals: dict[int | str, dict[str, Any]] = {
        status: {"description": text, "content": _DSP_ERROR} for status, text in _PROTOCOL_STATUSES.items()}
    if body:
        refusals[413] = {"description": "The message is larger than 1 MiB (the spec's error object), or than the "
                                        "engine takes at all (its own error)", "content": _TOO_LARGE}
    return refusals


_MESSAGE_REFUSALS = _protocol_refusals(body=True)
_READ_REFUSALS = _protocol_refusals(body=False)


def _error_kind(path: str) -> str:
    return "transfer" if "/transfers" in path else "catalog" if "/catalog" in path else "negotiation"


async def _body(request: Request) -> Any:
    raw = await request.body()
    if len(raw) > _MAX_BODY:
        raise DspError(413, "the message is larger than 1 MiB", kind=_error_kind(request.url.path), code="413")
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        raise DspError(400, "the body is not JSON", kind=_error_kind(request.url.path)) from None


def _answer(status: int, body: dict[str, Any]) -> JSONResponse:
    return JSONResponse(body, status_code=status)


async def _protocol(request: Request, runtime: Runtime,
                    handle: Callable[[Session, Connector, str, Any], tuple[int, dict[str, Any]]],
                    *, readonly: bool = False, body: bool = True) -> Response:
    """Verify the sender (no unit of work open), then ``handle`` in a unit of work of its own; the courier is
    woken once it committed. A unit of work the store ended (a deadlock with the courier's, a key another
    message wrote at the same moment) wrote nothing and is repeated: the peer gets the answer the messages in
    sequence give, and after the last try the spec's error object (409), never the engine's own."""
    connector = runtime.dataspace
    kind = _error_kind(request.url.path)
    try:
        message = await _body(request) if body else None
        peer = await anyio.to_thread.run_sync(connector.verify, request.headers.get("authorization"))

        def work() -> tuple[int, dict[str, Any]]:
            for attempt in range(1, _ATTEMPTS + 1):
                try:
                    with runtime.db.session(readonly=readonly) as session:
                        return handle(session, connector, peer, message)
                except STORE_REFUSALS as error:
                    conflict = store_refusal(error)
                    if conflict is None:
                        raise
                    if attempt == _ATTEMPTS:
                        raise DspError(409, conflict.message, kind=kind, code="409") from error
            raise AssertionError("unreachable")

        status, answer = await anyio.to_thread.run_sync(work)
    except DspError as exc:
        if exc.kind != "catalog":
            exc.kind = kind if exc.kind == "negotiation" else exc.kind
        return _answer(exc.status, exc.body())
    except (AuthenticationRequired, TokenInvalid) as exc:
        error = DspError(401, exc.message, kind=kind, code="401")
        return JSONResponse(error.body(), status_code=401, headers={"WWW-Authenticate": "Bearer"})
    if not readonly:
        connector.wake()
    return _answer(status, answer)


# -- discovery ---------------------------------------------------------------------------------------------------

@router.get("/.well-known/dspace-version", name="version", summary="The protocol versions this engine speaks")
@public
def version(runtime: RuntimeDep) -> JSONResponse:
    connector = runtime.dataspace
    body = {"protocolVersions": [{"version": "2025-1", "path": BASE_PATH, "binding": "HTTPS",
                                  "identifierType": "did:web", "serviceId": connector.did,
                                  "auth": {"protocol": "did:web self-issued JWT", "version": "1",
                                           "profile": ["ES256"]}}]}
    assert not problems(body, "VersionResponse")
    return JSONResponse(body)


@router.get("/.well-known/did.json", name="did", summary="This engine's DID document (did:web)")
@public
def did(runtime: RuntimeDep) -> JSONResponse:
    connector = runtime.dataspace
    return JSONResponse(did_document(connector.did, connector.keyring(), connector.base + "/catalog"))


# -- catalog -----------------------------------------------------------------------------------------------------

@router.post(BASE_PATH + "/catalog/request", name="catalog", summary="The catalog this participant may see",
             openapi_extra=JSON_BODY, responses=_MESSAGE_REFUSALS)
@public
async def catalog_request(request: Request, runtime: RuntimeDep) -> Response:
    def handle(session: Session, connector: Connector, peer: str, body: Any) -> tuple[int, dict[str, Any]]:
        msg = valid(body, "CatalogRequestMessage", error_kind="catalog")
        if msg.get("filter"):
            raise DspError(400, "catalog filters are not supported", kind="catalog")
        return 200, catalog.catalog_of(session, connector, peer)

    return await _protocol(request, runtime, handle, readonly=True)


@router.get(BASE_PATH + "/catalog/datasets/{dataset_id}", name="dataset", summary="One dataset of the catalog",
            responses=_READ_REFUSALS)
@public
async def catalog_dataset(request: Request, runtime: RuntimeDep,
                          dataset_id: Annotated[str, Path(max_length=200)]) -> Response:
    def handle(session: Session, connector: Connector, peer: str, _body: Any) -> tuple[int, dict[str, Any]]:
        offer, policy = catalog.visible_offer(session, peer, dataset_id=dataset_id)
        return 200, {"@context": ["https://w3id.org/dspace/2025/1/context.jsonld"],
                     **catalog.dataset_of(offer, connector, policy)}

    return await _protocol(request, runtime, handle, readonly=True, body=False)


# -- negotiations: provider --------------------------------------------------------------------------------------

@router.get(BASE_PATH + "/negotiations/{pid}", name="negotiation", summary="A negotiation (provider side)",
            responses=_READ_REFUSALS)
@public
async def provider_negotiation(request: Request, runtime: RuntimeDep, pid: Pid) -> Response:
    def handle(session: Session, _c: Connector, peer: str, _b: Any) -> tuple[int, dict[str, Any]]:
        return 200, negotiation.as_message(negotiation.find(session, negotiation.Role.PROVIDER, peer, pid))

    return await _protocol(request, runtime, handle, body=False)


@router.post(BASE_PATH + "/negotiations/request", name="negotiation_request", openapi_extra=JSON_BODY,
             summary="Start a negotiation: a contract request (201)", responses=_MESSAGE_REFUSALS)
@public
async def negotiation_request(request: Request, runtime: RuntimeDep) -> Response:
    return await _protocol(request, runtime, lambda s, c, peer, body: negotiation.provider_request(s, c, peer, body))


def _provider_negotiation(kind: str) -> Callable[..., Any]:
    async def endpoint(request: Request, runtime: RuntimeDep, pid: Pid) -> Response:
        return await _protocol(request, runtime, lambda s, c, peer, body: (
            200, negotiation.provider_receive(s, c, peer, pid, kind, body)))

    endpoint.__name__ = f"provider_negotiation_{kind}"
    return public(endpoint)


for _kind, _path in (("request", "request"), ("events", "events"), ("verification", "agreement/verification"),
                     ("termination", "termination")):
    router.add_api_route(BASE_PATH + "/negotiations/{pid}/" + _path, _provider_negotiation(_kind), methods=["POST"],
                         name=f"negotiation_{_kind}_provider", openapi_extra=JSON_BODY, responses=_MESSAGE_REFUSALS,
                         summary=f"A consumer's {_kind} message")


# -- negotiations: consumer callbacks ------------------------------------------------------------------------------

@router.get(CALLBACK_PATH + "/negotiations/{pid}", name="callback_negotiation",
            summary="A negotiation (consumer side)", responses=_READ_REFUSALS)
@public
async def consumer_negotiation(request: Request, runtime: RuntimeDep, pid: Pid) -> Response:
    def handle(session: Session, _c: Connector, peer: str, _b: Any) -> tuple[int, dict[str, Any]]:
        return 200, negotiation.as_message(negotiation.find(session, negotiation.Role.CONSUMER, peer, pid))

    return await _protocol(request, runtime, handle, body=False)


@router.post(CALLBACK_PATH + "/negotiations/offers", name="callback_offer_initial", openapi_extra=JSON_BODY,
             summary="A provider's offer starting a negotiation (201): OFFERED, for its addressee here to take up",
             responses=_MESSAGE_REFUSALS)
@public
async def consumer_offer_initial(request: Request, runtime: RuntimeDep) -> Response:
    return await _protocol(request, runtime, lambda s, c, peer, body: proposals.offered(s, c, peer, body))


def _consumer_negotiation(kind: str) -> Callable[..., Any]:
    async def endpoint(request: Request, runtime: RuntimeDep, pid: Pid) -> Response:
        return await _protocol(request, runtime, lambda s, c, peer, body: (
            200, negotiation.consumer_receive(s, c, peer, pid, kind, body)))

    endpoint.__name__ = f"consumer_negotiation_{kind}"
    return public(endpoint)


for _kind in ("offers", "agreement", "events", "termination"):
    router.add_api_route(CALLBACK_PATH + "/negotiations/{pid}/" + _kind, _consumer_negotiation(_kind),
                         methods=["POST"], name=f"callback_negotiation_{_kind}", openapi_extra=JSON_BODY,
                         responses=_MESSAGE_REFUSALS,
                         summary=f"A provider's {_kind} message")


# -- transfers ---------------------------------------------------------------------------------------------------

@router.get(BASE_PATH + "/transfers/{pid}", name="transfer", summary="A transfer process (provider side)",
            responses=_READ_REFUSALS)
@public
async def provider_transfer(request: Request, runtime: RuntimeDep, pid: Pid) -> Response:
    def handle(session: Session, _c: Connector, peer: str, _b: Any) -> tuple[int, dict[str, Any]]:
        return 200, transfer.as_message(transfer.find(session, transfer.Role.PROVIDER, peer, pid))

    return await _protocol(request, runtime, handle, body=False)


@router.post(BASE_PATH + "/transfers/request", name="transfer_request", openapi_extra=JSON_BODY,
             summary="Request a transfer under an agreement (201)", responses=_MESSAGE_REFUSALS)
@public
async def transfer_request(request: Request, runtime: RuntimeDep) -> Response:
    return await _protocol(request, runtime, lambda s, c, peer, body: transfer.provider_request(s, c, peer, body))


def _transfer_message(kind: str, role: str) -> Callable[..., Any]:
    async def endpoint(request: Request, runtime: RuntimeDep, pid: Pid) -> Response:
        receive = transfer.provider_receive if role == "provider" else transfer.consumer_receive
        return await _protocol(request, runtime, lambda s, c, peer, body: (200, receive(s, peer, pid, kind, body)))

    endpoint.__name__ = f"{role}_transfer_{kind}"
    return public(endpoint)


for _kind in ("start", "completion", "termination", "suspension"):
    router.add_api_route(BASE_PATH + "/transfers/{pid}/" + _kind, _transfer_message(_kind, "provider"),
                         methods=["POST"], name=f"transfer_{_kind}_provider", openapi_extra=JSON_BODY,
                         responses=_MESSAGE_REFUSALS,
                         summary=f"A consumer's transfer {_kind} message")
    router.add_api_route(CALLBACK_PATH + "/transfers/{pid}/" + _kind, _transfer_message(_kind, "consumer"),
                         methods=["POST"], name=f"callback_transfer_{_kind}", openapi_extra=JSON_BODY,
                         responses=_MESSAGE_REFUSALS,
                         summary=f"A provider's transfer {_kind} message")


# -- the data plane (HttpData-PULL) ----------------------------------------------------------------------------------

_DATA_REFUSALS: dict[int | str, dict[str, Any]] = {
    401: {"description": "No bearer: the data address's token, from the provider's transfer start message"},
    403: {"description": "Another transfer's token, an expired one, a transfer not STARTED, or an access the "
                         "agreement's policy refuses"},
}


def _refused(exc: dataplane.DataRefused) -> JSONResponse:
    code = {400: "ValidationFailed", 401: "AuthenticationRequired", 403: "PermissionDenied", 404: "NotFound",
            409: "Conflict"}.get(exc.status, "Refused")
    return JSONResponse({"code": code, "message": exc.reason, "details": []}, status_code=exc.status,
                        headers={"WWW-Authenticate": "Bearer"} if exc.status == 401 else None)


@router.get(DATA_PATH + "/{pid}", name="data_files", summary="The files of a started pull transfer",
            responses=_DATA_REFUSALS)
@public
async def data_files(request: Request, runtime: RuntimeDep, pid: Pid) -> Response:
    connector = runtime.dataspace

    def work() -> dict[str, Any]:
        with runtime.db.session() as session:
            row, agreement = _authorized(session, pid, request.headers.get("authorization"))
            try:
                return dataplane.manifest(session, connector, row, agreement)
            except dataplane.DataRefused:
                session.commit()  # the refusal is recorded
                raise

    try:
        return JSONResponse(await anyio.to_thread.run_sync(work))
    except dataplane.DataRefused as exc:
        return _refused(exc)


def _authorized(session: Session, pid: str, authorization: str | None, footprint: Any = None) -> Any:
    try:
        return dataplane.authorize(session, pid, authorization, footprint=footprint)
    except dataplane.DataRefused:
        session.commit()  # the refusal is recorded (usage, audit) though nothing is served
        raise


@router.get(DATA_PATH + "/{pid}/{name}", name="data_file", summary="One file of a started pull transfer",
            responses={**_DATA_REFUSALS, 200: {"content": {"application/octet-stream": {}}}})
@public
async def data_file(request: Request, runtime: RuntimeDep, pid: Pid,
                    name: Annotated[str, Path(max_length=400)]) -> Response:
    connector = runtime.dataspace

    def work() -> tuple[Any, int, str, str | None]:
        with runtime.db.session() as session:
            row, agreement = _authorized(session, pid, request.headers.get("authorization"))
            try:
                return dataplane.open_file(session, connector, row, agreement, name)
            except dataplane.DataRefused:
                session.commit()
                raise

    try:
        readable, size, sha256, media = await anyio.to_thread.run_sync(work)
    except dataplane.DataRefused as exc:
        return _refused(exc)
    return StreamingResponse(dataplane.stream(readable), media_type=media or "application/octet-stream",
                             headers={"Content-Length": str(size), "ETag": f'"{sha256}"'})


# -- the data plane of an EDR collection offer -------------------------------------------------------------------

def _edr_collection(runtime: Runtime, pid: str, authorization: str | None, collection_id: str | None,
                    query: str, *, record: bool = True, footprint: Any = odrl.METADATA) -> str:
    """The collection transfer ``pid``'s token may query (``collection_id``: the one asked for; None: the
    offer's) over ``footprint`` (the area a query reads; its metadata by default), the access recorded
    (``record`` False: by the caller, once answered); ``DataRefused`` (recorded) otherwise."""
    with runtime.db.session() as session:
        row, agreement = _authorized(session, pid, authorization, footprint)
        try:
            return dataplane.queried_collection(session, row, agreement, collection_id, query=query, record=record)
        except dataplane.DataRefused:
            session.commit()
            raise


async def _edr_answer(work: Callable[[], Any]) -> Response:
    """``work``'s answer in a worker thread: JSON, or the response it made; a refusal of the data plane or an
    engine error as every route of the data plane answers one (the engine's error body)."""
    try:
        found = await anyio.to_thread.run_sync(work)
    except dataplane.DataRefused as exc:
        return _refused(exc)
    except TwinEngineError as exc:
        return render(exc)
    return found if isinstance(found, Response) else JSONResponse(found)


@router.get(EDR_PATH + "/{pid}/collections", name="edr_collections",
            summary="The collection a transfer of an EDR collection offer may query (OGC API - EDR)",
            responses=_DATA_REFUSALS)
@public
async def edr_collections(request: Request, runtime: RuntimeDep, pid: Pid) -> Response:
    root = runtime.dataspace.edr_url(pid)

    def work() -> dict[str, Any]:
        found = _edr_collection(runtime, pid, request.headers.get("authorization"), None, "edr collections")
        return {"links": [{"href": f"{root}/collections", "rel": "self", "type": "application/json"}],
                "collections": [collection_document(runtime.access, found, root)]}

    return await _edr_answer(work)


@router.get(EDR_PATH + "/{pid}/collections/{collection_id}", name="edr_collection",
            summary="The offered collection's EDR metadata, its queries under this transfer's root",
            responses=_DATA_REFUSALS)
@public
async def edr_collection(request: Request, runtime: RuntimeDep, pid: Pid, collection_id: CollectionId) -> Response:
    root = runtime.dataspace.edr_url(pid)

    def work() -> dict[str, Any]:
        found = _edr_collection(runtime, pid, request.headers.get("authorization"), collection_id, "edr collection")
        return collection_document(runtime.access, found, root)

    return await _edr_answer(work)


@router.get(EDR_PATH + "/{pid}/collections/{collection_id}/{query_type}", name="edr_query",
            summary="An EDR query of the offered collection (each one an access under the agreement's policy)",
            responses={**_DATA_REFUSALS,
                       200: {"content": {"application/prs.coverage+json": {}, "application/geo+json": {},
                                         "application/x-netcdf": {}}}})
@public
async def edr_query(request: Request, runtime: RuntimeDep, pid: Pid, collection_id: CollectionId,
                    query_type: Annotated[QueryType, Path(description="An EDR query type.")],
                    common: CommonDep, coords: Coords = None, bbox: Annotated[str | None, Query(max_length=400)] = None,
                    within: float | None = None,
                    within_units: Annotated[str | None, Query(alias="within-units", max_length=16)] = None,
                    corridor_width: Annotated[float | None, Query(alias="corridor-width")] = None,
                    width_units: Annotated[str | None, Query(alias="width-units", max_length=16)] = None) -> Response:
    def work() -> Response:
        query = query_of(common.query, query_type, coords=coords, bbox=bbox, within=within,
                         within_units=within_units, corridor_width=corridor_width, width_units=width_units)
        asked = f"edr {query_type}?{request.url.query}"
        authorization = request.headers.get("authorization")
        found = _edr_collection(runtime, pid, authorization, collection_id, asked, record=False,
                                footprint=area_of(query))

        def sources_permitted(extraction: Extraction) -> None:
            """The cells or stations the values come from, judged too where they may lie outside the area asked
            (the nearest to a point): a policy's area is what leaves, not only what was asked for."""
            sources = sources_area(extraction)
            if sources is None:
                return
            with runtime.db.session() as session:
                try:
                    dataplane.authorize(session, pid, authorization, footprint=sources)
                except dataplane.DataRefused as exc:
                    session.commit()  # recorded (usage, audit); nothing is served
                    raise dataplane.DataRefused(exc.status, "the grid cells or stations that would answer this "
                                                            f"query lie outside the area permitted: {exc.reason}") \
                        from None

        try:
            response = answer(runtime.access, SYSTEM, found, query, common.f,  # the data plane authorised it
                              check=sources_permitted)
        except TwinEngineError as exc:  # its own parameters (too large an area): recorded, nothing served
            with runtime.db.session() as session:
                dataplane.answered(session, pid, query=asked, size=None, problem=exc.message)
            raise
        with runtime.db.session() as session:  # the access with the answer's bytes, as a file's is counted
            dataplane.answered(session, pid, query=asked, size=int(response.headers.get("content-length", 0)))
        return response

    return await _edr_answer(work)


# -- the consumer's data plane (HttpData-PUSH) -------------------------------------------------------------------

MAX_LISTING_BYTES = 4 * 1024 * 1024
_FILE_BODY: dict[str, Any] = {"requestBody": {"required": True, "description": "The file's bytes, streamed.",
                                              "content": {"application/octet-stream": {
                                                  "schema": {"type": "string", "format": "binary"}}}}}


_PUSH_REFUSALS: dict[int | str, dict[str, Any]] = {
    400: {"description": "The listing is not 1 to 10,000 files, each a name, a size and a SHA-256"},
    401: {"description": "No bearer: the one the consumer's transfer request gave"},
    403: {"description": "Another bearer, or the transfer is not STARTED"},
    404: {"description": "No push transfer here, or a file not in the transfer's listing"},
    409: {"description": "A file listed again with other bytes, or one being written already"}}


@router.post(PUSH_PATH + "/{pid}", name="push_listing", openapi_extra=JSON_BODY, responses=_PUSH_REFUSALS,
             summary="A provider's listing of the files it pushes to a started push transfer")
@public
async def push_listing(request: Request, runtime: RuntimeDep, pid: Pid) -> Response:
    body = await request.body()
    try:
        document = json.loads(body) if len(body) <= MAX_LISTING_BYTES else None
    except ValueError:
        document = None
    if document is None:
        return _refused(dataplane.DataRefused(400, "the listing is not JSON (or over 4 MiB)"))
    connector, authorization = runtime.dataspace, request.headers.get("authorization")
    try:
        return JSONResponse(await anyio.to_thread.run_sync(
            lambda: push.accept_listing(connector, pid, authorization, document)))
    except dataplane.DataRefused as exc:
        return _refused(exc)


@router.put(PUSH_PATH + "/{pid}/{name}", name="push_file", openapi_extra=_FILE_BODY,
            responses={**_PUSH_REFUSALS, 201: {"description": "Landed, checked against the listed SHA-256"}},
            summary="One listed file pushed by the provider, streamed into this engine's lake")
@public
async def push_file(request: Request, runtime: RuntimeDep, pid: Pid,
                    name: Annotated[str, Path(max_length=200)]) -> Response:
    declared = request.headers.get("content-length")
    size = int(declared) if declared and declared.isdigit() else None
    connector, authorization = runtime.dataspace, request.headers.get("authorization")
    try:
        landed = await anyio.to_thread.run_sync(
            lambda: push.accept_file(connector, pid, authorization, name, body_chunks(request), size))
    except dataplane.DataRefused as exc:
        return _refused(exc)
    return JSONResponse(landed, status_code=201)
