"""OGC API - Processes jobs: the list (Job List), one job's status, its results, and dismissing it (Dismiss).

A job is a run of the engine: the list holds every run the caller may see (those started through openEO or
the engine's own API too, without a ``processID``), newest first, a page at a time (``processes.jobs``).
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import Path, Query, Request, Response
from fastapi.responses import JSONResponse

from twinengine.api.deps import PrincipalDep, RuntimeDep, SessionDep
from twinengine.api.route_actions import acts
from twinengine.api.routes.ogc_errors import OgcRoute, ogc_error
from twinengine.api.routes.ogc_views import base_url, link, output_values, raw_output, results_response, status_info
from twinengine.api.routing import Router
from twinengine.errors import Conflict, RunNotFinished
from twinengine.processes import jobs
from twinengine.processes import service as processes
from twinengine.workflows import service as runs

__all__ = ["router"]

router = Router(tags=["processes"], route_class=OgcRoute)
JobId = Annotated[str, Path(max_length=200)]  # an unknown id of any reasonable length is a 404


@router.get("/jobs", name="job_list", summary="Jobs (the caller's runs), newest first, filtered as Part 1 asks")
@acts("twin.read")
def job_list(request: Request, session: SessionDep, principal: PrincipalDep,
             limit: Annotated[int, Query(ge=1, le=1000)] = 100,
             after: Annotated[str | None, Query(max_length=200, description="The keyset of the next page, as the "
                                                "previous page's next link gives it.")] = None,
             offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
             job_type: Annotated[list[str] | None, Query(alias="type", max_length=200)] = None,
             process_id: Annotated[list[str] | None, Query(alias="processID", max_length=2000)] = None,
             job_status: Annotated[list[str] | None, Query(alias="status", max_length=200)] = None,
             when: Annotated[str | None, Query(alias="datetime", max_length=100)] = None,
             min_duration: Annotated[float | None, Query(alias="minDuration")] = None,
             max_duration: Annotated[float | None, Query(alias="maxDuration")] = None) -> JSONResponse:
    where = jobs.parse_filter(types=job_type, process_ids=process_id, statuses=job_status, when=when,
                              min_duration=min_duration, max_duration=max_duration)
    page = jobs.list_jobs(session, principal=principal, limit=limit, after=after, where=where, offset=offset)
    root = base_url(request)
    kept = [(key, value) for key, value in request.query_params.multi_items() if key not in ("after", "offset")]
    links = [link(f"{root}/jobs?{urlencode(request.query_params.multi_items())}".rstrip("?"), "self",
                  "application/json")]
    if page.after is not None:
        links.append(link(f"{root}/jobs?{urlencode([*kept, ('after', page.after)])}", "next", "application/json"))
    # as plain JSON: a page of up to 1000 documents of plain values needs no walk through FastAPI's encoder
    return JSONResponse({"jobs": [status_info(request, run, process) for run, process in page.rows],
                         "links": links})


@router.get("/jobs/{job_id}", name="job_status", summary="A job's status")
@acts("twin.read")
def job_status(job_id: JobId, request: Request, session: SessionDep, principal: PrincipalDep) -> dict[str, Any]:
    return status_info(request, *processes.job_of(session, principal=principal, job_id=job_id))


@router.delete("/jobs/{job_id}", name="job_dismiss", summary="Dismiss a job: cancel it, or remove it and its results")
@acts("workflow.cancel")
def job_dismiss(job_id: JobId, request: Request, session: SessionDep, runtime: RuntimeDep,
                principal: PrincipalDep) -> dict[str, Any]:
    run, job = processes.job_of(session, principal=principal, job_id=job_id)
    if job is not None and not processes.dismissable(session, job.process_id):
        raise Conflict(f"process {job.process_id} does not let its jobs be dismissed (its jobControlOptions lack "
                       "dismiss): the job runs to its end and keeps its results")
    if run.status in ("queued", "running", "created"):
        run = runs.cancel_run(session, principal=principal, run_id=run.id)
        if run.id in runtime.workflows.executing:
            runtime.workflows.cancel([run.id])
        info = status_info(request, run, job)
    else:
        info = status_info(request, run, job)
        runs.delete_run(session, runtime.workflows, principal=principal, run_id=run.id)
    info["status"], info["message"] = "dismissed", "dismissed"
    info["links"] = [entry for entry in info["links"] if entry["rel"] == "self"]
    return info


def _finished(session: Any, principal: Any, job_id: str) -> tuple[Any, Any]:
    run, job = processes.job_of(session, principal=principal, job_id=job_id)
    if run.status != "finished":
        raise RunNotFinished(f"job {run.id} is {status_word(run.status)}; its results exist once it succeeded")
    return run, job


def status_word(status: str) -> str:
    return {"queued": "accepted", "created": "accepted", "error": "failed", "canceled": "dismissed"}.get(
        status, status)


@router.get("/jobs/{job_id}/results", name="job_results", response_class=Response,
            summary="A successful job's results, as its execution asked (document or raw)")
@acts("twin.read")
def job_results(job_id: JobId, request: Request, session: SessionDep, runtime: RuntimeDep,
                principal: PrincipalDep) -> Response:
    run, job = processes.job_of(session, principal=principal, job_id=job_id)
    if run.status == "error":
        error = run.error or {"code": "Internal", "message": "failed"}
        return ogc_error(500 if error.get("code") == "Internal" else 400, str(error.get("code")),
                         f"job {run.id} failed: {error.get('message')}")
    run, job = _finished(session, principal, job_id)
    return results_response(request, runtime, run, job)


@router.get("/jobs/{job_id}/results/{output_id}", name="job_output", response_class=Response,
            summary="One output of a successful job, as itself")
@acts("twin.read")
def job_output(job_id: JobId, output_id: Annotated[str, Path(max_length=120)], request: Request,
               session: SessionDep, runtime: RuntimeDep, principal: PrincipalDep) -> Response:
    run, _job = _finished(session, principal, job_id)
    values = output_values(runtime, run)
    if output_id not in values:
        return ogc_error(404, "NotFound", f"job {run.id} has no output {output_id!r} (it has "
                                          f"{', '.join(values) or 'none'})")
    return raw_output(request, runtime, run, output_id, values[output_id])
