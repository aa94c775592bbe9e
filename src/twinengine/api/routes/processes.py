"""OGC API - Processes under ``/ogcapi``: landing page, conformance, API description, processes, execution, and
Part 2 (deploy, replace, undeploy CWL application packages; ``/package``). Jobs are in ``processes_jobs``.

Execution without ``Prefer: respond-async`` waits for the run (as openEO's ``/result`` does) and answers with
the results and a ``Link`` to the job (``rel="monitor"``); with it, the job is stored and queued and the answer
is its status (201, ``Location``). Either way the job is a run of the engine.
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Any

from fastapi import Body, Depends, Header, Path, Query, Request, Response
from fastapi.responses import JSONResponse

from twinengine.api.deps import PrincipalDep, RuntimeDep, SessionDep
from twinengine.api.route_actions import acts, public
from twinengine.api.routes import processes_jobs as jobs
from twinengine.api.routes.ogc_errors import OgcRoute, ogc_error
from twinengine.api.routes.ogc_views import (
    BASE,
    MONITOR,
    base_url,
    job_url,
    link,
    results_response,
    status_info,
)
from twinengine.api.routing import Router, long_running
from twinengine.auth.principal import Principal
from twinengine.errors import ChecksumMismatch, ValidationFailed
from twinengine.processes import deploying
from twinengine.processes import service as processes
from twinengine.runtime import Runtime
from twinengine.workflows.sync import hold, run_now

__all__ = ["CONFORMANCE", "router"]

router = Router(prefix=BASE, tags=["processes"], route_class=OgcRoute)
ProcessId = Annotated[str, Path(max_length=120, pattern=r"^[A-Za-z0-9_.\-]+$")]


async def _raw_body(request: Request) -> bytes:
    """The request's bytes: a package comes as CWL (YAML or JSON) or as an OGC application package (JSON)."""
    return await request.body()


RawBody = Annotated[bytes, Depends(_raw_body)]

CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/ogc-process-description",
    "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/json",
    "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/oas30",
    "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/job-list",
    "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/dismiss",
    "http://www.opengis.net/spec/ogcapi-processes-2/1.0/conf/deploy-replace-undeploy",
    "http://www.opengis.net/spec/ogcapi-processes-2/1.0/conf/ogcapppkg",
    "http://www.opengis.net/spec/ogcapi-processes-2/1.0/conf/cwl",
    "http://www.opengis.net/spec/ogcapi-processes-3/1.0/conf/nested-processes",
]


@router.get("", name="landing", summary="Landing page of OGC API - Processes", include_in_schema=False)
@router.get("/", name="landing_page", summary="Landing page of OGC API - Processes")
@public
def landing(request: Request) -> dict[str, Any]:
    root = base_url(request)
    return {"title": "twinengine OGC API - Processes",
            "description": "Processes of this engine (echo and deployed CWL application packages); jobs are its "
                           "workflow runs.",
            "links": [link(root + "/", "self", "application/json", "this document"),
                      link(root + "/api", "service-desc", "application/vnd.oai.openapi+json;version=3.0",
                           "the API definition"),
                      link(str(request.base_url).rstrip("/") + "/docs", "service-doc", "text/html",
                           "the API documentation"),
                      link(root + "/conformance", "http://www.opengis.net/def/rel/ogc/1.0/conformance",
                           "application/json", "conformance classes"),
                      link(root + "/processes", "http://www.opengis.net/def/rel/ogc/1.0/processes",
                           "application/json", "processes"),
                      link(root + "/jobs", "http://www.opengis.net/def/rel/ogc/1.0/job-list", "application/json",
                           "jobs")]}


@router.get("/conformance", name="conformance", summary="Conformance classes of OGC API - Processes")
@public
def conformance() -> dict[str, Any]:
    return {"conformsTo": CONFORMANCE}


@router.get("/api", name="api", summary="The OpenAPI description of OGC API - Processes' paths")
@public
def api(request: Request) -> JSONResponse:
    whole = request.app.openapi()
    paths = {p: v for p, v in whole.get("paths", {}).items() if p == BASE or p.startswith(BASE + "/")}
    return JSONResponse({**whole, "paths": paths}, media_type="application/vnd.oai.openapi+json;version=3.0")


@router.get("/processes", name="process_list", summary="Processes: echo and the deployed CWL packages")
@public
def process_list(request: Request, session: SessionDep,
                 limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                 offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0) -> dict[str, Any]:
    found, total = processes.list_processes(session, limit=limit, offset=offset)
    root = base_url(request)
    for summary in found:
        summary["links"] = [link(f"{root}/processes/{summary['id']}", "self", "application/json",
                                 "process description")]
    links = [link(f"{root}/processes?limit={limit}&offset={offset}", "self", "application/json")]
    if offset + len(found) < total:
        links.append(link(f"{root}/processes?limit={limit}&offset={offset + limit}", "next", "application/json"))
    return {"processes": found, "links": links}


@router.get("/processes/{process_id}", name="process_get", summary="A process, described (OGC process description)")
@public
def process_get(process_id: ProcessId, request: Request, session: SessionDep) -> dict[str, Any]:
    description = processes.describe(session, process_id)
    root = base_url(request)
    description["links"] = [
        link(f"{root}/processes/{process_id}", "self", "application/json", "this description"),
        link(f"{root}/processes/{process_id}/execution", "http://www.opengis.net/def/rel/ogc/1.0/execute",
             "application/json", "execute"),
    ] + ([] if process_id in processes.BUILT_IN else [
        link(f"{root}/processes/{process_id}/package", "http://www.opengis.net/def/rel/ogc/1.0/application-package",
             "application/cwl+json", "the CWL application package")])
    return description


@router.post("/processes/{process_id}/execution", name="execute", response_class=Response,
             summary="Execute a process: synchronously, or as a job with Prefer: respond-async")
@long_running
@acts("workflow.run")
def execute(process_id: ProcessId, request: Request, session: SessionDep, runtime: RuntimeDep,
            principal: PrincipalDep, body: Annotated[Any, Body()] = None,
            prefer: Annotated[str | None, Header(max_length=200)] = None) -> Response:
    engine = runtime.workflows
    asked = "respond-async" in (prefer or "").replace(" ", "").split(",")
    asynchronous = processes.runs_asynchronously(processes.describe(session, process_id), asked=asked)
    run = processes.execute(session, engine, principal=principal, process_id=process_id, body=body,
                            asynchronous=asynchronous, origin=str(request.base_url))
    if asynchronous:
        session.commit()  # the job exists before its status is answered
        stored = processes.job_of(session, principal=principal, job_id=run.id)
        return JSONResponse(status_info(request, *stored), status_code=201,
                            headers={"Location": job_url(request, run.id),
                                     **({"Preference-Applied": "respond-async"} if asked else {})})
    hold(engine, run)
    session.commit()
    run = run_now(engine, session, run.id, time_limit=engine.sync_timeout)
    found, job = processes.job_of(session, principal=principal, job_id=run.id)
    monitor = f'<{job_url(request, run.id)}>; rel="{MONITOR}"'
    if found.status != "finished":
        error = found.error or {"code": "Internal", "message": f"the run ended as {found.status}"}
        status = 500 if error.get("code") in ("Internal", "EngineRestarted") else 400
        failed = ogc_error(status, str(error.get("code")), str(error.get("message")))
        failed.headers["Link"] = monitor
        return failed
    answer = results_response(request, runtime, found, job)
    answer.headers["Link"] = monitor
    return answer


# -- Part 2: deploy, replace, undeploy ------------------------------------------------------------------------


def _lake_reader(request: Request, runtime: Runtime, principal: Principal) -> deploying.HrefReader:
    """How a package deployed by reference is read: a lake file of this engine, as the caller (its grants, its
    checksum), in a read-only unit of work of its own (nothing else is fetched: ``deploying.lake_href``)."""

    def read_did(did: str) -> bytes:
        from twinengine.cwl.package import MAX_PACKAGE_BYTES
        from twinengine.lake.replicas import open_replica

        with runtime.db.session(readonly=True) as session:
            readable = open_replica(session, runtime.workflows.services["lake"], principal=principal, did=did,
                                    db=runtime.db)
        data = b""
        for chunk in readable.read():
            data += chunk
            if len(data) > MAX_PACKAGE_BYTES:
                raise ValidationFailed.one("executionUnit.href", f"a package of at most {MAX_PACKAGE_BYTES} bytes "
                                                                 "is accepted")
        if hashlib.sha256(data).hexdigest() != readable.checksums.sha256:
            raise ChecksumMismatch(f"{did}: the bytes read do not match its registered SHA-256")
        return data

    def read(href: str) -> bytes:
        return deploying.lake_href(href, origin=str(request.base_url), read_did=read_did)

    return read



@router.post("/processes", name="deploy", status_code=201, response_class=Response,
             summary="Deploy a CWL application package as a process (OGC API - Processes - Part 2)")
@long_running
@acts("app.publish")
def deploy(request: Request, session: SessionDep, runtime: RuntimeDep, principal: PrincipalDep, body: RawBody,
           app: Annotated[str | None, Query(max_length=130, pattern=r"^[a-z0-9][a-z0-9-]*(@[\w.+-]+)?$",
                                            description="The app version (name@version, or name: its latest) "
                                                        "the process is pinned to.")] = None
           ) -> Response:
    package = deploying.checked_package(runtime.workflows.services.get("cwl"), body,
                                        request.headers.get("content-type", ""),
                                        read_href=_lake_reader(request, runtime, principal))
    row = deploying.deploy(session, principal=principal, package=package, app=app)
    location = f"{base_url(request)}/processes/{row.id}"
    summary = {k: v for k, v in row.process.items() if k not in ("inputs", "outputs")}
    return JSONResponse({**summary, "links": [link(location, "self", "application/json")]}, status_code=201,
                        headers={"Location": location})


@router.put("/processes/{process_id}", name="replace", status_code=204, response_class=Response,
            summary="Replace a deployed process with a new package (Part 2)")
@long_running
@acts("app.publish")
def replace(process_id: ProcessId, request: Request, session: SessionDep, runtime: RuntimeDep,
            principal: PrincipalDep, body: RawBody) -> Response:
    package = deploying.checked_package(runtime.workflows.services.get("cwl"), body,
                                        request.headers.get("content-type", ""),
                                        read_href=_lake_reader(request, runtime, principal))
    deploying.deploy(session, principal=principal, package=package, replace=process_id)
    return Response(status_code=204)


@router.delete("/processes/{process_id}", name="undeploy", status_code=204, response_class=Response,
               summary="Undeploy a deployed process (Part 2)")
@acts("app.publish")
def undeploy(process_id: ProcessId, session: SessionDep, principal: PrincipalDep) -> Response:
    processes.undeploy(session, principal=principal, process_id=process_id)
    return Response(status_code=204)


@router.get("/processes/{process_id}/package", name="package", response_class=Response,
            summary="The CWL application package a process was deployed with (Part 2)")
@acts("app.read")
def package(process_id: ProcessId, session: SessionDep, principal: PrincipalDep) -> Response:
    document = processes.package_of(session, principal=principal, process_id=process_id)
    return JSONResponse(document, media_type="application/cwl+json")


router.include_router(jobs.router)
