"""HTTP routes of ensembles, scenarios and comparisons under ``/api/v1``. An ensemble is also a run:
``GET /runs/{id}`` shows its status and percent."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Body, Path, Query, status

from twinengine.api.deps import PrincipalDep, RuntimeDep, SessionDep
from twinengine.api.route_actions import acts, public
from twinengine.api.routing import api_router, long_running
from twinengine.ensembles import compare as comparing
from twinengine.ensembles import scenarios
from twinengine.ensembles import service as ensembles
from twinengine.ensembles.schemas import EnsembleCreate, EnsembleRead
from twinengine.workflows.sync import hold, run_now

__all__ = ["router"]

router = api_router(tag="ensembles")

TwinRef = Annotated[str, Path(max_length=64)]
RunId = Annotated[str, Path(max_length=40, pattern=r"^[A-Za-z0-9-]+$")]


@router.post("/twins/{twin}/ensembles", name="create", status_code=status.HTTP_202_ACCEPTED,
             summary="Run a workflow of the twin's app as an ensemble (perturbed parameters, forks or sets)")
@long_running
@acts("workflow.run", "twin.operate")
def create_ensemble(twin: TwinRef, body: EnsembleCreate, session: SessionDep, runtime: RuntimeDep,
                    principal: PrincipalDep) -> EnsembleRead:
    engine, settings = runtime.workflows, runtime.settings
    run = ensembles.submit_ensemble(session, engine, principal=principal, twin_ref=twin, body=body,
                                    max_members=settings.ensemble_max_members, parallel=settings.ensemble_parallel)
    if body.mode == "sync":
        hold(engine, run)  # stored as this request's: the engine's own background worker cannot take it too
        session.commit()
        run = run_now(engine, session, run.id)
    else:
        engine.notify(session)
    return ensembles.ensemble_read(session, run)


@router.get("/ensembles/{run_id}", name="get", summary="An ensemble: members, status, percent, statistics")
@acts("twin.read")
def get_ensemble(run_id: RunId, session: SessionDep, principal: PrincipalDep) -> EnsembleRead:
    return ensembles.ensemble_read(session, ensembles.get_ensemble(session, principal=principal,
                                                                   ensemble_id=run_id))


@router.post("/scenarios", name="scenario_run", status_code=status.HTTP_202_ACCEPTED,
             summary="Fork a twin per branch of a scenario document and run its workflow on each fork")
@acts("workflow.run", "twin.read")
def run_scenario(doc: Annotated[dict[str, Any], Body()], session: SessionDep, runtime: RuntimeDep,
                 principal: PrincipalDep) -> scenarios.ScenarioRun:
    engine, settings = runtime.workflows, runtime.settings
    result = scenarios.run_scenario(session, engine, principal=principal, doc=doc,
                                    max_members=settings.ensemble_max_members, parallel=settings.ensemble_parallel)
    engine.notify(session)
    return result


@router.get("/scenarios/schema", name="scenario_schema", summary="JSON Schema of scenario documents")
@public
def scenario_schema() -> dict[str, Any]:
    return scenarios.scenario_schema()


@router.get("/compare", name="compare", summary="Twins (a twin and its forks) side by side")
@acts("twin.read")
def compare(session: SessionDep, principal: PrincipalDep,
            twin: Annotated[list[str], Query(max_length=comparing.MAX_TWINS)],
            prop: Annotated[list[str] | None, Query(alias="property", max_length=32)] = None,
            workflow: Annotated[str | None, Query(max_length=64)] = None) -> comparing.Comparison:
    return comparing.compare(session, principal=principal, refs=twin, properties=prop, workflow=workflow)
