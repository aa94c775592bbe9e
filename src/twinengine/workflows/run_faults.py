"""A plain run (not an ensemble's member) on a site lost under it (``compute.faults``): the site is probed
and marked down, the run is placed again without it (nor any site lost under it before), staged there and
rerun there, up to ``MAX_MOVES`` times. Its log, its
placement (its provenance) and its options (``faults``) tell the move; the lost attempt's usage is recorded
(status ``lost``); work waiting on a silent site is stopped within a heartbeat interval plus a probe, as
members' work is."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from twinengine.auth.principal import Principal
from twinengine.compute.faults import replace
from twinengine.compute.hooks import record_lost_attempt
from twinengine.compute.metering import Meter, start_meter
from twinengine.compute.site_executors import endpoints_near, executor_for
from twinengine.compute.sites import DEFAULT_SITE
from twinengine.errors import TwinEngineError
from twinengine.store.base import utcnow
from twinengine.workflows.context import RunContext
from twinengine.workflows.models import WorkflowRun
from twinengine.workflows.site_queues import site_queues

if TYPE_CHECKING:
    from twinengine.compute.site_executors import SiteExecutors

# The workflow engine (``workflows.engine``) is typed loosely here: the runner imports this module, and the
# engine's module imports the runner, so naming it would close a circle of imports.
WorkflowEngine = Any

__all__ = ["MAX_MOVES", "lost_attempt", "move_run", "record_move", "site_lost_rerun", "watching"]

MAX_MOVES = 3  # sites a run may lose before its failure is its own: a fault is rare; three in a row is not one
Log = Callable[[str, str], None]  # (level, message)
Progress = Callable[[int, int], None]


class Attempt(Protocol):
    """What the runner's hooks lend an attempt: its meter (replaced for the rerun), its log, cancellation."""

    meter: Meter

    def log(self, level: str, message: str, node: str | None = None) -> None: ...

    def check_canceled(self) -> None: ...


def _sites(engine: WorkflowEngine) -> SiteExecutors | None:
    sites: SiteExecutors | None = engine.services.get("sites")
    return sites


def watching(engine: WorkflowEngine, site: str, progress: Progress) -> Progress:
    """``progress`` that also stops work waiting on ``site`` once that site is down."""
    sites = _sites(engine)
    if sites is None or not site or site == DEFAULT_SITE:
        return progress
    watch = sites.watch

    def watched(done: int, total: int) -> None:
        watch.check(site)
        progress(done, total)

    return watched


def site_lost_rerun(engine: WorkflowEngine, run_id: str, *, principal: Principal, options: dict[str, Any],
                    process: dict[str, Any], app: str | None, log: Log) -> str | None:
    """After the run failed on its site: the site it reruns on when its own was lost (probed now), or None
    (the failure is the run's own, it ran on ``local``, it has lost ``MAX_MOVES`` sites already, or no site
    can take it). ``options`` gets the new site, and the move in ``faults``."""
    site = str(options.get("site") or DEFAULT_SITE)
    sites = _sites(engine)
    moves = list(options.get("faults") or [])
    if sites is None or site == DEFAULT_SITE or len(moves) >= MAX_MOVES:
        return None
    reason = sites.watch.lost(site)
    if reason is None:
        return None
    sites.forget(site)
    try:
        with engine.db.session(readonly=True) as session:
            placed = replace(session, owner=principal.name, groups=principal.groups, options=options,
                             process=process, app=app, lost={site, *(str(m["site"]) for m in moves)},
                             running_sites=site_queues(session))
    except TwinEngineError as exc:
        log("error", f"site {site} was lost under this run ({reason}); no other site can rerun it: {exc.message}")
        return None
    log("warning", f"site {site} was lost under this run ({reason}); rerun on site {placed.site}")
    record_move(engine, run_id, site, reason, placed.site, placed.reasons, move=True)
    options["site"] = placed.site
    options["faults"] = [*moves, {"site": site, "rerun_on": placed.site}]
    return placed.site


def record_move(engine: WorkflowEngine, run_id: str, lost: str, reason: str, new: str, reasons: list[str], *,
                move: bool) -> None:
    """The run's placement tells the move (its provenance reads it); a moved run's site becomes the new one."""
    with engine.db.session() as session:
        run = session.get(WorkflowRun, run_id)
        if run is None:
            return
        options = dict(run.options or {})
        placement = dict(options.get("placement") or {"site": options.get("site") or DEFAULT_SITE})
        placement["reasons"] = [*placement.get("reasons", []), f"site {lost} was lost mid-run: {reason}",
                                *(f"placed again: {r}" for r in reasons)]
        if move:
            options["site"] = placement["site"] = new
        options["placement"] = placement
        options["faults"] = [*options.get("faults", []), {"site": lost, "reason": reason, "rerun_on": new,
                                                           "at": utcnow().isoformat()}]
        run.options = options


def lost_attempt(engine: WorkflowEngine, run_id: str, meter: Meter, site: str) -> None:
    """Record what an attempt lost with ``site`` used (``compute.hooks.record_lost_attempt``), now: it ended."""
    with engine.db.session() as session:
        record_lost_attempt(session, session.get(WorkflowRun, run_id), meter, site=site)


def move_run(engine: WorkflowEngine, run_id: str, *, principal: Principal, options: dict[str, Any],
             process: dict[str, Any], app: str | None, parameters: dict[str, Any], ctx: RunContext,
             attempt: Attempt) -> bool:
    """After the run's graph failed: when its site was lost, place it again (``site_lost_rerun``), record
    the lost attempt's usage, drop what it kept, point ``ctx`` at the new site and stage the run's inputs
    there. False when the failure is the run's own (or it cannot move): the caller raises it."""
    lost = str(options.get("site") or DEFAULT_SITE)
    if site_lost_rerun(engine, run_id, principal=principal, options=options, process=process, app=app,
                       log=attempt.log) is None:
        return False
    lost_attempt(engine, run_id, attempt.meter, lost)
    attempt.meter = start_meter()  # the rerun's own usage (its site noted by executor_for)
    if ctx.assets:  # what the lost attempt kept is not the run's result
        ctx.assets.clear()
        engine.results.delete(run_id)
    ctx.inputs.clear()
    ctx.executor, ctx.near = executor_for(engine, options), endpoints_near(engine, options.get("site"))
    if (stage := engine.services.get("staging")) is not None:  # its inputs near the new site (compute.staging)
        stage(engine, run_id, principal=principal, options=options, process=process, log=attempt.log,
              check=attempt.check_canceled, parameter_sets=[parameters])
    return True
