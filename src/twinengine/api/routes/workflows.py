"""HTTP routes of workflow runs and triggers under ``/api/v1`` (the openEO API lives in ``openeo/``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Body, Header, Path, Query, status
from fastapi.responses import FileResponse, JSONResponse

from twinengine.api.deps import PrincipalDep, RuntimeDep, SessionDep
from twinengine.api.route_actions import acts, public
from twinengine.api.routing import api_router, long_running
from twinengine.errors import NotFound, RunNotFinished
from twinengine.types import INT32_MAX
from twinengine.workflows import service, triggers
from twinengine.workflows.provenance import provenance_of
from twinengine.workflows.schemas import (
    LogRead,
    RunCreate,
    RunPage,
    RunRead,
    TriggerCreate,
    TriggerCreated,
    TriggerRead,
    TwinRunCreate,
)
from twinengine.workflows.sync import hold, run_now
from twinengine.workflows.views import run_page_items, run_read, trigger_read

__all__ = ["router"]

router = api_router(tag="workflows")

RunId = Annotated[str, Path(max_length=40, pattern=r"^[A-Za-z0-9-]+$")]
TwinRef = Annotated[str, Path(max_length=64)]


@router.post("/twins/{twin}/runs", name="twin_run", status_code=status.HTTP_202_ACCEPTED,
             summary="Run a workflow of the twin's app (async: queued; sync: answered when it ended), "
                     "or as a what-if on a new fork of it")
@long_running
@acts("workflow.run", "twin.operate")
def twin_run(twin: TwinRef, body: TwinRunCreate, session: SessionDep, runtime: RuntimeDep,
             principal: PrincipalDep) -> RunRead:
    engine = runtime.workflows
    if body.what_if is not None:
        run = service.submit_what_if(session, engine, principal=principal, twin_ref=twin, workflow=body.workflow,
                                     parameters=body.parameters, options=body.options, name=body.what_if.name,
                                     at_revision=body.what_if.at_revision, start=body.start,
                                     keep_for=runtime.settings.what_if_ttl)
    else:
        run = service.submit_twin_workflow(session, engine, principal=principal, twin_ref=twin,
                                           workflow=body.workflow, parameters=body.parameters, options=body.options,
                                           start=body.start)
    if body.mode == "sync":
        hold(engine, run)
        session.commit()
        run = run_now(engine, session, run.id, time_limit=engine.sync_timeout)
    else:
        engine.notify(session)
    return run_read(session, run)


@router.post("/runs", name="create", status_code=status.HTTP_202_ACCEPTED,
             summary="Run an ad-hoc openEO process graph (optionally acting on a twin)")
@long_running
@acts("workflow.run")
def create_run(body: RunCreate, session: SessionDep, runtime: RuntimeDep, principal: PrincipalDep) -> RunRead:
    engine = runtime.workflows
    run = service.submit(session, engine, principal=principal, process=body.process, parameters=body.parameters,
                         twin_ref=body.twin, title=body.title, options=body.options)
    if body.mode == "sync":
        hold(engine, run)
        session.commit()
        run = run_now(engine, session, run.id, time_limit=engine.sync_timeout)
    else:
        engine.notify(session)
    return run_read(session, run)


@router.get("/runs", name="list", summary="Runs you started (all, for admins), or a twin's runs")
@acts("twin.read")
def list_runs(session: SessionDep, principal: PrincipalDep,
              twin: Annotated[str | None, Query(max_length=64)] = None,
              run_status: Annotated[str | None, Query(alias="status", pattern="^(created|queued|running|finished|"
                                                                             "error|canceled)$")] = None,
              limit: Annotated[int, Query(ge=1, le=500)] = 50,
              offset: Annotated[int, Query(ge=0, le=INT32_MAX)] = 0) -> RunPage:
    rows, total = service.list_runs(session, principal=principal, twin_ref=twin, status=run_status, limit=limit,
                                    offset=offset)
    return RunPage(items=run_page_items(session, rows), total=total)


@router.get("/runs/{run_id}", name="get", summary="A run: status, progress, per-node status and timings")
@acts("twin.read")
def get_run(run_id: RunId, session: SessionDep, principal: PrincipalDep) -> RunRead:
    return run_read(session, service.get_run(session, principal=principal, run_id=run_id))


@router.post("/runs/{run_id}/cancel", name="cancel", summary="Cancel a queued or running run")
@acts("workflow.cancel")
def cancel_run(run_id: RunId, session: SessionDep, runtime: RuntimeDep, principal: PrincipalDep) -> RunRead:
    run = service.cancel_run(session, principal=principal, run_id=run_id)
    if run.id in runtime.workflows.executing:
        runtime.workflows.cancel([run.id])
    return run_read(session, run)


@router.get("/runs/{run_id}/logs", name="logs", summary="Log entries of a run, oldest first")
@acts("twin.read")
def run_logs(run_id: RunId, session: SessionDep, principal: PrincipalDep,
             offset: Annotated[int | None, Query(ge=0, le=2**62)] = None,
             limit: Annotated[int, Query(ge=1, le=10_000)] = 1000) -> list[LogRead]:
    rows = service.list_logs(session, principal=principal, run_id=run_id, offset=offset, limit=limit)
    return [LogRead.model_validate(r) for r in rows]


@router.get("/runs/{run_id}/provenance", name="provenance", summary="W3C PROV-JSON document of a run",
            response_class=JSONResponse)
@acts("twin.read")
def provenance(run_id: RunId, session: SessionDep, principal: PrincipalDep) -> JSONResponse:
    run = service.get_run(session, principal=principal, run_id=run_id)
    document = provenance_of(run)
    if document is None:
        raise RunNotFinished(f"run {run.id} is {run.status}; its provenance is known when it ends")
    return JSONResponse(document, media_type="application/json")


@router.get("/runs/{run_id}/results/{name}", name="result", response_class=FileResponse,
            summary="Download an output of a run (supports HTTP Range)")
@acts("twin.read")
def result(run_id: RunId, name: Annotated[str, Path(max_length=200)], session: SessionDep, runtime: RuntimeDep,
           principal: PrincipalDep) -> FileResponse:
    run = service.get_run(session, principal=principal, run_id=run_id)
    asset = next((a for a in run.assets if a["name"] == name), None)
    if asset is None:
        raise NotFound(f"run {run.id} has no output {name!r}")
    return FileResponse(runtime.workflows.results.path(run.id, name), media_type=asset["type"], filename=name,
                        headers={"Repr-Digest": f"sha-256=:{_b64(asset['sha256'])}:"})


def _b64(hexdigest: str) -> str:
    import base64

    return base64.b64encode(bytes.fromhex(hexdigest)).decode()


@router.get("/twins/{twin}/triggers", name="triggers_list", summary="Triggers of a twin (manifest and own)")
@acts("twin.read")
def list_triggers(twin: TwinRef, session: SessionDep, runtime: RuntimeDep,
                  principal: PrincipalDep) -> list[TriggerRead]:
    rows = triggers.list_triggers(session, principal=principal, twin_ref=twin, arrivals=runtime.workflows.arrivals)
    return [trigger_read(t) for t in rows]


@router.post("/twins/{twin}/triggers", name="triggers_create", status_code=status.HTTP_201_CREATED,
             summary="Add a trigger (cron, webhook, dataset, ...) to a twin")
@acts("twin.operate")
def create_trigger(twin: TwinRef, body: TriggerCreate, session: SessionDep, runtime: RuntimeDep,
                   principal: PrincipalDep) -> TriggerCreated:
    row, secret = triggers.create_trigger(session, principal=principal, twin_ref=twin, body=body,
                                          arrivals=runtime.workflows.arrivals)
    return TriggerCreated(**trigger_read(row).model_dump(), secret=secret)


@router.delete("/twins/{twin}/triggers/{name}", name="triggers_delete", status_code=status.HTTP_204_NO_CONTENT,
               summary="Remove a trigger")
@acts("twin.operate")
def delete_trigger(twin: TwinRef, name: Annotated[str, Path(max_length=64)], session: SessionDep,
                   principal: PrincipalDep) -> None:
    triggers.delete_trigger(session, principal=principal, twin_ref=twin, name=name)


@router.post("/hooks/{trigger_id}", name="webhook", status_code=status.HTTP_202_ACCEPTED,
             summary="Fire a webhook trigger (authenticated by its secret, not a token)",
             responses={401: {"description": "The secret is missing or wrong"}})
@public
def webhook(trigger_id: Annotated[str, Path(max_length=40)], session: SessionDep, runtime: RuntimeDep,
            body: Annotated[dict[str, Any] | None, Body()] = None,
            secret: Annotated[str | None, Header(alias="X-Twin-Trigger-Secret", max_length=200)] = None,
            delivery: Annotated[str | None, Header(alias="X-Twin-Delivery", max_length=200)] = None) -> dict[str, Any]:
    run = triggers.fire_webhook(session, runtime.workflows, trigger_id=trigger_id, secret=secret, data=body or {},
                                delivery=delivery)
    return {"run_id": run.id if run else None, "duplicate": run is None}
