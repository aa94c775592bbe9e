"""The openEO API 1.2: capabilities, credentials, collections, processes, file formats, synchronous
results, batch jobs, user-defined processes and validation, over the engine's workflow service.

Identities have no passwords: ``GET /credentials/basic`` takes an engine token as the basic-auth password
of its identity and hands it back as the access token (clients then send ``Bearer basic//<token>``).
"""

from __future__ import annotations

import base64
import binascii
import sys
from importlib import metadata
from typing import Annotated, Any

from fastapi import Body, Depends, Path, Query, Request, Response
from fastapi.responses import FileResponse, JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBasic, HTTPBearer

from twinengine._version import __version__
from twinengine.api.deps import PrincipalDep, RuntimeDep, SessionDep, get_principal, requires_token
from twinengine.api.route_actions import acts, public, signed_in
from twinengine.api.routes import openeo_jobs as jobs
from twinengine.api.routing import Router, long_running
from twinengine.auth.issuer import verify_bearer
from twinengine.auth.oidc import OidcVerifier
from twinengine.auth.principal import Principal, Role
from twinengine.collections.stac import stac_collection
from twinengine.errors import (
    AuthenticationRequired,
    NotFound,
    ProcessingTimeLimit,
    ResultTooLarge,
    RunNotFinished,
    TokenInvalid,
)
from twinengine.workflows import service
from twinengine.workflows.formats import FORMATS
from twinengine.workflows.openeo.errors import OpenEORoute
from twinengine.workflows.result_size import refuse
from twinengine.workflows.sync import hold, refuse_result, run_now

__all__ = ["API_VERSION", "BASE", "routers"]

API_VERSION = "1.2.0"
BASE = "/openeo/1.2"

well_known = Router(tags=["openeo"], route_class=OpenEORoute)
router = Router(prefix=BASE, tags=["openeo"], route_class=OpenEORoute)
routers = (well_known, router)

ENDPOINTS = [
    ("/", ["GET"]), ("/conformance", ["GET"]), ("/credentials/basic", ["GET"]), ("/credentials/oidc", ["GET"]),
    ("/me", ["GET"]), ("/collections", ["GET"]), ("/collections/{collection_id}", ["GET"]),
    ("/processes", ["GET"]), ("/processes/{namespace}", ["GET"]), ("/file_formats", ["GET"]),
    ("/result", ["POST"]), ("/jobs", ["GET", "POST"]), ("/jobs/{job_id}", ["GET", "PATCH", "DELETE"]),
    ("/jobs/{job_id}/results", ["GET", "POST", "DELETE"]), ("/jobs/{job_id}/logs", ["GET"]),
    ("/process_graphs", ["GET"]), ("/process_graphs/{process_graph_id}", ["GET", "PUT", "DELETE"]),
    ("/validation", ["POST"]), ("/udf_runtimes", ["GET"]),
]
CONFORMANCE = ["https://api.openeo.org/1.2.0", "https://api.stacspec.org/v1.0.0/core",
               "https://api.stacspec.org/v1.0.0/collections"]


_basic = requires_token(HTTPBasic(auto_error=False, description="Your identity as user name, an engine token as "
                                                             "password."))


def _root(request: Request) -> str:
    return str(request.base_url).rstrip("/") + BASE


@well_known.get("/.well-known/openeo", name="well_known", summary="openEO API versions this engine serves")
@public
def versions(request: Request) -> dict[str, Any]:
    return {"versions": [{"url": _root(request) + "/", "api_version": API_VERSION, "production": True}]}


@router.get("/", name="capabilities", summary="openEO capabilities")
@public
def capabilities(request: Request, runtime: RuntimeDep) -> dict[str, Any]:
    root = _root(request)
    oidc = any(isinstance(v, OidcVerifier) for v in runtime.verifiers)
    endpoints = [(p, m) for p, m in ENDPOINTS if oidc or p != "/credentials/oidc"]  # the spec wants >= 1 provider
    return {"api_version": API_VERSION, "backend_version": __version__, "stac_version": "1.0.0",
            "type": "Catalog", "id": "twinengine", "title": "twinengine",
            "description": "openEO API of twinengine: process graphs run on Dask over the engine's collections.",
            "production": True,
            "endpoints": [{"path": p, "methods": m} for p, m in endpoints],
            "links": [{"rel": "self", "href": root + "/", "type": "application/json"},
                      {"rel": "data", "href": root + "/collections", "type": "application/json"},
                      {"rel": "conformance", "href": root + "/conformance", "type": "application/json"},
                      {"rel": "version-history", "href": str(request.base_url) + ".well-known/openeo",
                       "type": "application/json"}]}


@router.get("/conformance", name="conformance")
@public
def conformance() -> dict[str, Any]:
    return {"conformsTo": CONFORMANCE}


@router.get("/credentials/basic", name="credentials_basic",
            summary="Exchange an engine token (as the basic-auth password) for an openEO access token",
            dependencies=[Depends(_basic)], responses={401: {"description": "No basic credentials, or a token that "
                                                                             "is not valid or not the user's"}})
@signed_in
def credentials_basic(request: Request, session: SessionDep, runtime: RuntimeDep) -> dict[str, Any]:
    header = request.headers.get("Authorization", "")
    if not header.lower().startswith("basic "):
        raise AuthenticationRequired("send HTTP basic auth: your identity as user name, an engine token as password")
    try:
        user, _, password = base64.b64decode(header[6:]).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise AuthenticationRequired("malformed basic credentials") from None
    principal = verify_bearer(password, session=session, verifiers=runtime.verifiers)
    if principal.name != user:
        raise TokenInvalid(f"the token belongs to {principal.name!r}, not {user!r}")
    return {"access_token": password}


@router.get("/credentials/oidc", name="credentials_oidc", summary="OpenID Connect providers this engine trusts",
            responses={404: {"description": "No OpenID Connect provider is configured"}})
@public
def credentials_oidc(runtime: RuntimeDep) -> dict[str, Any]:
    """The configured providers (``TWIN_OIDC_PROVIDERS``); clients then send ``Bearer oidc/<id>/<token>``.
    Without any, the endpoint is not offered (openEO requires at least one provider in the list)."""
    providers = [v.describe() for v in runtime.verifiers if isinstance(v, OidcVerifier)]
    if not providers:
        raise NotFound("no OpenID Connect provider is configured (TWIN_OIDC_PROVIDERS)")
    return {"providers": providers}


@router.get("/me", name="me")
@signed_in
def me(principal: PrincipalDep) -> dict[str, Any]:
    return {"user_id": principal.name, "name": principal.name, "info": {"role": principal.role.value},
            "links": []}


_bearer = HTTPBearer(auto_error=False, description="A token (optional unless TWIN_OPENEO_PUBLIC_COLLECTIONS=false).")


# An anonymous caller owns nothing and holds no grant: it sees the collections everyone may read, never a
# lake dataset of a twin, a run or a user (lake.grants).
ANONYMOUS = Principal(name="", role=Role.USER, issuer="anonymous")


async def collection_access(request: Request, runtime: RuntimeDep,
                            credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
                            ) -> Principal:
    """The caller: collections are public by default (openEO allows anonymous discovery); a token that comes
    along is still checked, and ``openeo_public_collections=false`` requires one."""
    if credentials is None and runtime.settings.openeo_public_collections:
        return ANONYMOUS
    return await get_principal(request, runtime, credentials)


CollectionAccess = Annotated[Principal, Depends(collection_access)]


@router.get("/collections", name="collections")
@public
def collections(request: Request, runtime: RuntimeDep, access: CollectionAccess) -> dict[str, Any]:
    root = _root(request)
    return {"collections": [stac_collection(info, base_url=root) for info in runtime.collections.list(access)],
            "links": [{"rel": "self", "href": root + "/collections"}]}


@router.get("/collections/{collection_id}", name="collection")
@public
def collection(collection_id: Annotated[str, Path(max_length=128)], request: Request, runtime: RuntimeDep,
               access: CollectionAccess) -> dict[str, Any]:
    runtime.collections.require_readable(collection_id, access)  # as the listing: one it may not read is not there
    return stac_collection(runtime.collections.info(collection_id), base_url=_root(request))


@router.get("/processes", name="processes", summary="Every process: openEO standard, engine and app processes")
@public
def processes(runtime: RuntimeDep) -> dict[str, Any]:
    return {"processes": [e.public_spec() for e in runtime.workflows.registry.list()], "links": []}


@router.get("/processes/{namespace}", name="processes_namespace", summary="Processes of one namespace")
@public
def processes_namespace(namespace: Annotated[str, Path(max_length=130)], runtime: RuntimeDep) -> dict[str, Any]:
    wanted = None if namespace in ("backend", "predefined") else namespace
    entries = [e for e in runtime.workflows.registry.list() if e.namespace == wanted]
    if not entries:
        raise NotFound(f"no processes in namespace {namespace!r}")
    return {"processes": [e.public_spec() for e in entries], "links": []}


@router.get("/file_formats", name="file_formats")
@public
def file_formats() -> dict[str, Any]:
    return {"input": {"netCDF": {"title": "Network Common Data Form", "gis_data_types": ["raster"],
                                 "parameters": {}}},
            "output": {name: fmt.describe() for name, fmt in FORMATS.items()}}


# Run errors answered with their own status (others are the graph's fault: 400)
_RUN_ERROR_STATUS = {"Internal": 500, "EngineRestarted": 500, ProcessingTimeLimit.code: ProcessingTimeLimit.status,
                     ResultTooLarge.code: ResultTooLarge.status}


@router.post("/result", name="result", response_class=Response,
             summary="Process synchronously and download the result")
@long_running
@acts("workflow.run")
def result(session: SessionDep, runtime: RuntimeDep, principal: PrincipalDep,
           body: Annotated[dict[str, Any], Body()]) -> Response:
    engine = runtime.workflows
    run = service.submit(session, engine, principal=principal, process=body.get("process"), kind="sync",
                         title=body.get("title"))
    hold(engine, run)
    session.commit()
    run = run_now(engine, session, run.id, time_limit=engine.sync_timeout)
    if run.status != "finished":
        error = run.error or {"code": "Internal", "message": f"run ended as {run.status}"}
        from twinengine.workflows.openeo.errors import openeo_error

        status = _RUN_ERROR_STATUS.get(error["code"], 400)
        return openeo_error(status, error["code"], error["message"])
    # The run kept its result within sync_max_result_bytes (``workflows.result_size``); checked again here
    # for results it did not write itself, and refused then as it would have been.
    limit = engine.sync_max_result_bytes
    if not run.assets:  # a small cube or value nobody saved: the run's JSON value is the result
        answer = JSONResponse(run.value, headers={"OpenEO-Identifier": run.id,
                                                  "Link": f'</api/v1/runs/{run.id}/provenance>; rel="provenance"'})
        if limit is not None and len(answer.body) > limit:
            too_large = refuse(limit, size=len(answer.body))
            refuse_result(engine, session, run, too_large)
            raise too_large
        return answer
    asset = run.assets[0]
    size = engine.results.path(run.id, asset["name"]).stat().st_size
    if limit is not None and size > limit:
        too_large = refuse(limit, size=size)
        refuse_result(engine, session, run, too_large)
        raise too_large
    return FileResponse(engine.results.path(run.id, asset["name"]), media_type=asset["type"],
                        headers={"OpenEO-Identifier": run.id,
                                 "Link": f'</api/v1/runs/{run.id}/provenance>; rel="provenance"'})


@router.post("/validation", name="validation", summary="Validate a process graph without running it")
@signed_in
def validation(runtime: RuntimeDep, principal: PrincipalDep, session: SessionDep,
               body: Annotated[dict[str, Any], Body()]) -> dict[str, Any]:
    from twinengine.errors import TwinEngineError
    from twinengine.workflows.openeo.errors import OPENEO_CODES

    try:
        service.check_graph(runtime.workflows, body, session=session, owner=principal.name)
    except TwinEngineError as exc:
        return {"errors": [{"code": OPENEO_CODES.get(exc.code, exc.code), "message": exc.message}]}
    return {"errors": []}


router.include_router(jobs.router)


@router.get("/jobs/{job_id}/results/assets/{name}", name="job_asset", response_class=FileResponse,
            summary="One asset of a finished job (supports HTTP Range)")
@acts("twin.read")
def job_asset(job_id: Annotated[str, Path(max_length=40)], name: Annotated[str, Path(max_length=200)],
              session: SessionDep, runtime: RuntimeDep, principal: PrincipalDep,
              download: Annotated[bool, Query()] = False) -> FileResponse:
    run = service.get_run(session, principal=principal, run_id=job_id)
    if run.status != "finished":
        raise RunNotFinished(f"job {run.id} is {run.status}")
    asset = next((a for a in run.assets if a["name"] == name), None)
    if asset is None:
        raise NotFound(f"job {run.id} has no asset {name!r}")
    return FileResponse(runtime.workflows.results.path(run.id, name), media_type=asset["type"],
                        filename=name if download else None)



_UDF_LIBRARIES = ("numpy", "xarray", "pandas", "dask", "scipy", "openeo")


@router.get("/udf_runtimes", name="udf_runtimes", summary="The UDF runtime run_udf offers: Python and its libraries")
@public
def udf_runtimes() -> dict[str, Any]:
    """UDFs run in this engine's Python (``run_udf``, runtime ``Python``) with the libraries installed here."""
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    libraries = {}
    for name in _UDF_LIBRARIES:
        try:
            libraries[name] = {"version": metadata.version(name)}
        except metadata.PackageNotFoundError:
            continue
    return {"Python": {"title": "Python", "type": "language", "default": version,
                       "description": "Python code defining `apply_datacube(cube, context)` or `udf(data, context)`, "
                                      "run in a separate process with a time and a memory limit.",
                       "versions": {version: {"libraries": libraries}},
                       "links": [{"rel": "about", "href": "https://docs.python.org/3/"}]}}
