"""openEO batch jobs (runs of kind ``job``) and user-defined processes (``/process_graphs``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Body, Depends, Path, Query, Request, Response, status
from sqlalchemy import select

from twinengine.api.deps import PrincipalDep, RuntimeDep, SessionDep, authorized
from twinengine.api.route_actions import acts, signed_in
from twinengine.api.routing import Router
from twinengine.errors import ProcessGraphNotFound, RunNotFinished
from twinengine.store.base import lock_for_delete
from twinengine.workflows import service, udp
from twinengine.workflows.extents import union_extent
from twinengine.workflows.graph import parse_process
from twinengine.workflows.models import UserProcess, WorkflowRun
from twinengine.workflows.openeo.errors import OpenEORoute

__all__ = ["router"]

router = Router(route_class=OpenEORoute, tags=["openeo"])
JobId = Annotated[str, Path(max_length=40)]
_STATUS = {"created": "created", "queued": "queued", "running": "running", "finished": "finished",
           "error": "error", "canceled": "canceled"}


def _iso(value: Any) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def job_json(run: WorkflowRun, *, full: bool) -> dict[str, Any]:
    body: dict[str, Any] = {"id": run.id, "status": _STATUS[run.status], "progress": run.progress,
                            "created": _iso(run.created_at), "updated": _iso(run.updated_at)}
    if run.title is not None:  # the schema allows a string or nothing, not null
        body["title"] = run.title
    if run.description is not None:
        body["description"] = run.description
    if full:
        body["process"] = run.process
    return body


@router.post("/jobs", name="jobs_create", status_code=status.HTTP_201_CREATED, response_class=Response)
@acts("workflow.run")
def create_job(request: Request, session: SessionDep, runtime: RuntimeDep, principal: PrincipalDep,
               body: Annotated[dict[str, Any], Body()]) -> Response:
    run = service.submit(session, runtime.workflows, principal=principal, process=body.get("process"), kind="job",
                         title=body.get("title"), description=body.get("description"), queue=False)
    location = f"{str(request.base_url).rstrip('/')}/openeo/1.2/jobs/{run.id}"
    return Response(status_code=201, headers={"Location": location, "OpenEO-Identifier": run.id})


@router.get("/jobs", name="jobs_list")
@signed_in
def list_jobs(session: SessionDep, principal: PrincipalDep,
              limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict[str, Any]:
    rows, _ = service.list_runs(session, principal=principal, kind="job,sync,run", limit=limit)
    return {"jobs": [job_json(r, full=False) for r in rows], "links": []}


@router.get("/jobs/{job_id}", name="jobs_get")
@acts("twin.read")
def get_job(job_id: JobId, session: SessionDep, principal: PrincipalDep) -> dict[str, Any]:
    return job_json(service.get_run(session, principal=principal, run_id=job_id), full=True)


@router.patch("/jobs/{job_id}", name="jobs_update", status_code=status.HTTP_204_NO_CONTENT,
              response_class=Response)
@acts("workflow.cancel")
def update_job(job_id: JobId, session: SessionDep, runtime: RuntimeDep, principal: PrincipalDep,
               body: Annotated[dict[str, Any], Body()]) -> Response:
    service.update_run(session, runtime.workflows, principal=principal, run_id=job_id, title=body.get("title"),
                       description=body.get("description"), process=body.get("process"))
    return Response(status_code=204)


@router.delete("/jobs/{job_id}", name="jobs_delete", status_code=status.HTTP_204_NO_CONTENT,
               response_class=Response)
@acts("workflow.cancel")
def delete_job(job_id: JobId, runtime: RuntimeDep, principal: PrincipalDep) -> Response:
    """A running job is stopped first (openEO: computations are stopped and computed results are deleted)."""
    service.stop_and_delete_run(runtime.workflows, principal=principal, run_id=job_id)
    return Response(status_code=204)


@router.post("/jobs/{job_id}/results", name="jobs_start", status_code=status.HTTP_202_ACCEPTED,
             response_class=Response)
@acts("twin.read")
def start_job(job_id: JobId, session: SessionDep, runtime: RuntimeDep, principal: PrincipalDep) -> Response:
    service.start_run(session, principal=principal, run_id=job_id)
    runtime.workflows.notify(session)
    return Response(status_code=202)


@router.delete("/jobs/{job_id}/results", name="jobs_cancel", status_code=status.HTTP_204_NO_CONTENT,
               response_class=Response)
@acts("workflow.cancel")
def cancel_job(job_id: JobId, session: SessionDep, runtime: RuntimeDep, principal: PrincipalDep) -> Response:
    run = service.cancel_run(session, principal=principal, run_id=job_id)
    if run.id in runtime.workflows.executing:
        runtime.workflows.cancel([run.id])
    return Response(status_code=204)


@router.get("/jobs/{job_id}/logs", name="jobs_logs")
@acts("twin.read")
def job_logs(job_id: JobId, session: SessionDep, principal: PrincipalDep,
             offset: Annotated[str | None, Query(max_length=20)] = None,
             level: Annotated[str | None, Query(pattern="^(error|warning|info|debug)$")] = None) -> dict[str, Any]:
    start = int(offset) if offset and offset.isdigit() else None
    rows = service.list_logs(session, principal=principal, run_id=job_id, offset=start,
                             level=None if level == "debug" else level)
    return {"logs": [{"id": str(r.id), "code": r.node_id or "", "level": r.level, "message": r.message,
                      "time": _iso(r.at)} for r in rows], "links": []}


@router.get("/jobs/{job_id}/results", name="jobs_results")
@acts("twin.read")
def job_results(job_id: JobId, request: Request, session: SessionDep, principal: PrincipalDep) -> dict[str, Any]:
    run = service.get_run(session, principal=principal, run_id=job_id)
    if run.status != "finished":
        raise RunNotFinished(f"job {run.id} is {run.status}; results exist once it finished")
    root = f"{str(request.base_url).rstrip('/')}/openeo/1.2/jobs/{run.id}/results"
    assets = {a["name"]: {"href": f"{root}/assets/{a['name']}", "type": a["type"], "roles": a.get("roles", ["data"]),
                          "file:size": a["size"], "file:checksum": "1220" + a["sha256"], "title": a["name"]}
              for a in run.assets}
    # where and when the results lie, from what save_result kept (a result without x and y is unlocated)
    extent = union_extent([a["extent"] for a in run.assets if a.get("extent")])
    located: dict[str, Any] = {"geometry": None}
    if "bbox" in extent:
        west, south, east, north = extent["bbox"]
        located = {"bbox": extent["bbox"], "geometry": {"type": "Polygon", "coordinates": [[
            [west, south], [east, south], [east, north], [west, north], [west, south]]]}}
    times = {k: extent[k] for k in ("start_datetime", "end_datetime") if k in extent}
    return {"type": "Feature", "stac_version": "1.0.0", "id": run.id, **located,
            "properties": {"datetime": _iso(run.finished_at), **times, "created": _iso(run.created_at)},
            "assets": assets, "stac_extensions": ["https://stac-extensions.github.io/file/v2.1.0/schema.json"],
            "links": [{"rel": "self", "href": root, "type": "application/json"},
                      {"rel": "provenance", "href": f"{str(request.base_url).rstrip('/')}/api/v1/runs/{run.id}/"
                                                    "provenance", "type": "application/json"}]}


# One's user-defined processes are one's own (any role), but not a scoped token's unless a scope lists them.
_UDP_SCOPE = Depends(authorized("workflow.process.manage"))


@router.get("/process_graphs", name="udp_list", dependencies=[_UDP_SCOPE])
@acts("workflow.process.manage")
def list_udps(session: SessionDep, principal: PrincipalDep) -> dict[str, Any]:
    rows = session.scalars(select(UserProcess).where(UserProcess.owner == principal.name).order_by(UserProcess.id))
    return {"processes": [{"id": r.id, **{k: v for k, v in r.process.items() if k != "process_graph"}}
                          for r in rows], "links": []}


def _udp(session: Any, owner: str, udp_id: str) -> UserProcess:
    row: UserProcess | None = session.get(UserProcess, (owner, udp_id))
    if row is None:
        raise ProcessGraphNotFound(f"no user-defined process {udp_id!r}")
    return row


@router.get("/process_graphs/{process_graph_id}", name="udp_get", dependencies=[_UDP_SCOPE])
@acts("workflow.process.manage")
def get_udp(process_graph_id: Annotated[str, Path(max_length=120)], session: SessionDep,
            principal: PrincipalDep) -> dict[str, Any]:
    row = _udp(session, principal.name, process_graph_id)
    return {**row.process, "id": row.id}


@router.put("/process_graphs/{process_graph_id}", name="udp_put", dependencies=[_UDP_SCOPE],
            status_code=status.HTTP_200_OK, response_class=Response)
@acts("workflow.process.manage")
def put_udp(process_graph_id: Annotated[str, Path(max_length=120, pattern=r"^\w+$")], session: SessionDep,
            runtime: RuntimeDep, principal: PrincipalDep, body: Annotated[dict[str, Any], Body()]) -> Response:
    udp.put(session, runtime.workflows.registry, principal, process_graph_id, parse_process(body))
    return Response(status_code=200)


@router.delete("/process_graphs/{process_graph_id}", name="udp_delete", dependencies=[_UDP_SCOPE],
               status_code=status.HTTP_204_NO_CONTENT, response_class=Response)
@acts("workflow.process.manage")
def delete_udp(process_graph_id: Annotated[str, Path(max_length=120)], session: SessionDep,
               principal: PrincipalDep) -> Response:
    row = _udp(session, principal.name, process_graph_id)
    lock_for_delete(session, row, ProcessGraphNotFound(f"no user-defined process {process_graph_id!r}"))
    session.delete(row)
    return Response(status_code=204)
