"""The staging step of a run (compute.staging): before its graph is evaluated, the run's lake inputs are
replicated near the site it was placed on; the progress is kept in the run's options (``staging``, shown by
the runs API), the run's log says what was staged, and its outputs go to the endpoint that held its inputs.
The run's usage record reads the bytes staging transferred from there; an ensemble has no usage record of
its own, so its staging is noted on its first member too, whose record is charged with it.

A run moved to another site after its own was lost is staged again there, the same way: its earlier staging
is kept in ``earlier`` (its record and provenance tell both), and its outputs stay where they were sent."""

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
    whose outputs go where the ensemble's do (the first is charged with the staging)."""
    lake = engine.services.get("lake")
    site = options.get("site")
    if lake is None or not site:
        return
    before = dict(options.get("staging") or {})  # a staging for a site lost since (the run was moved)
    earlier = _earlier(before, str(site))

    def report(staging: Staging) -> None:
        if earlier and before.get("outputs_endpoint"):  # outputs stay where the first staging sent them
            staging.outputs_endpoint = before["outputs_endpoint"]
        options["staging"] = staging.to_dict() | ({"earlier": earlier} if earlier else {})
        with engine.db.session() as session:
            run = session.get(WorkflowRun, run_id)
            if run is not None:
                run.options = {**(run.options or {}), "staging": options["staging"]}

    staging = stage(engine.db, lake, run_id=run_id, owner=principal, site=str(site), process=process,
                    worker=str(engine.worker_id)[:64], report=report, check=check,
                    parameter_sets=parameter_sets)
    if staging is None:
        if earlier:  # its new site lists no endpoint near it: it reads its inputs where they are
            report(Staging(site=str(site), endpoints=[], percent=100.0))
            log("info", f"site {before['site']} was lost; site {site} has no endpoint near it: its inputs are read "
                        "where they are")
        return
    report(staging)
    if members:
        _charge(engine, members[0], {**staging.to_dict(), "ensemble": run_id})
    told = describe(staging)
    log("warning" if staging.error else "info", f"{told} (again: site {before['site']} was lost)" if earlier else told)
    send = getattr(engine.results, "send_outputs", None)
    if staging.outputs_endpoint and send is not None:
        for each in [run_id, *(members or [])]:
            send(each, staging.outputs_endpoint)


def _earlier(before: dict[str, Any], site: str) -> list[dict[str, Any]]:
    """The stagings a run had for sites lost under it, when it is now staged for ``site``."""
    if not before or before.get("site") == site:
        return []
    return [*(before.get("earlier") or []), {k: v for k, v in before.items() if k != "earlier"}]


def _charge(engine: WorkflowEngine, member_id: str, staging: dict[str, Any]) -> None:
    """Note an ensemble's staging on the member whose usage record pays for it (a staging again, after a
    site was lost, adds to what that member was charged before)."""
    with engine.db.session() as session:
        run = session.get(WorkflowRun, member_id)
        if run is not None:
            noted = dict((run.options or {}).get("staging") or {})
            if noted.get("ensemble") == staging["ensemble"]:
                staging = {**staging, "earlier": [*(noted.pop("earlier", None) or []), noted]}
            run.options = {**(run.options or {}), "staging": staging}
