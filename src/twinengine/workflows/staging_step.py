"""The staging step of a run (compute.staging): before its graph is evaluated, the run's lake inputs are
replicated near the site it was placed on; the progress is kept in the run's options (``staging``, shown by
the runs API), the run's log says what was staged, and its outputs go to the endpoint that held its inputs.
The run's usage record reads the bytes staging transferred from there; an ensemble has no usage record of
its own, so its staging is noted on its first member too, whose record is charged with it."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twinengine.auth.principal import Principal
from twinengine.compute.staging import Staging, describe, stage
from twinengine.workflows.models import WorkflowRun

if TYPE_CHECKING:
    from twinengine.workflows.engine import WorkflowEngine

__all__ = ["stage_run"]


def stage_run(engine: WorkflowEngine, run_id: str, *, principal: Principal, options: dict[str, Any],
              process: dict[str, Any], log: Callable[[str, str], None], check: Callable[[], None],
              parameter_sets: list[dict[str, Any]], members: list[str] | None = None) -> None:
    """Stage the run's inputs for its site (nothing when the engine has no lake or the run no site);
    ``parameter_sets``: its parameters (an ensemble's members'); ``members``: an ensemble's member runs,
    whose outputs go where the ensemble's do."""
    lake = engine.services.get("lake")
    site = options.get("site")
    if lake is None or not site:
        return

    def report(staging: Staging) -> None:
        options["staging"] = staging.to_dict()
        with engine.db.session() as session:
            run = session.get(WorkflowRun, run_id)
            if run is not None:
                run.options = {**(run.options or {}), "staging": options["staging"]}

    staging = stage(engine.db, lake, run_id=run_id, owner=principal, site=str(site), process=process,
                    worker=str(engine.worker_id)[:64], report=report, check=check,
                    parameter_sets=parameter_sets)
    if staging is None:
        return
    report(staging)
    if members:
        _charge(engine, members[0], {**staging.to_dict(), "ensemble": run_id})
    log("warning" if staging.error else "info", describe(staging))
    send = getattr(engine.results, "send_outputs", None)
    if staging.outputs_endpoint and send is not None:
        for each in [run_id, *(members or [])]:
            send(each, staging.outputs_endpoint)


def _charge(engine: WorkflowEngine, member_id: str, staging: dict[str, Any]) -> None:
    """Note an ensemble's staging on the member whose usage record pays for it."""
    with engine.db.session() as session:
        run = session.get(WorkflowRun, member_id)
        if run is not None:
            run.options = {**(run.options or {}), "staging": staging}
