"""Executing an ensemble: the shared part of the graph once (again on another site when its site is lost
under it), the members in parallel, then the statistics over the ``member`` dimension, kept as a netCDF
result (in the lake when results go there) and written to the twin's state in one revision, with the
members' run ids as lineage. The members' forecasts
(``save_forecast``) are recorded as one forecast with every member, so verification scores the ensemble
(CRPS, spread/skill, rank histogram). Nothing is written from an ensemble with a failed member.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import select, update

from twinengine.auth.groups import groups_of
from twinengine.auth.principal import Principal, Role
from twinengine.compute.hooks import record_execution, record_lost_attempt
from twinengine.compute.metering import Meter, start_meter
from twinengine.compute.site_executors import endpoints_near, executor_for
from twinengine.errors import MemberFailed, TwinEngineError
from twinengine.quality.ensemble_stats import derive, peak_uncertainty, stack_members, summary
from twinengine.quality.pedigree import input_quality, value_quality
from twinengine.quality.uncertainty import Uncertainty
from twinengine.store.base import utcnow
from twinengine.twins import service as twins
from twinengine.twins.schemas import PropertyWrite
from twinengine.workflows.context import RunContext, running
from twinengine.workflows.evaluate import Canceled
from twinengine.workflows.forecast_processes import record
from twinengine.workflows.graph import parse_graph
from twinengine.workflows.initial_state import hindcast_from
from twinengine.workflows.members import Member, MemberOutcome, MemberSet
from twinengine.workflows.models import RunLog, WorkflowRun
from twinengine.workflows.results import describe_results
from twinengine.workflows.run_faults import watching
from twinengine.workflows.runner import record_run_end
from twinengine.workflows.schemas import RunStatus
from twinengine.workflows.udp import user_registry

if TYPE_CHECKING:
    import xarray as xr

    from twinengine.workflows.engine import WorkflowEngine

__all__ = ["DEFAULT_PARALLEL", "execute_ensemble"]

log = logging.getLogger("twinengine.quality")

DEFAULT_PARALLEL = 4
SHARED_SHARE = 10.0  # percent of the progress bar the shared part stands for


class _Progress:
    """The ensemble's percent and logs, written as members end."""

    def __init__(self, engine: WorkflowEngine, run_id: str, total: int) -> None:
        self.engine, self.run_id, self.total, self.done = engine, run_id, total, 0
        self.lock = threading.Lock()

    def log(self, level: str, message: str, node: str | None = None) -> None:
        with self.engine.db.session() as session:
            session.add(RunLog(run_id=self.run_id, level=level, node_id=node, message=message, at=utcnow()))

    def set(self, percent: float) -> None:
        with self.engine.db.session() as session:
            session.execute(update(WorkflowRun).where(WorkflowRun.id == self.run_id).values(
                progress=round(min(99.0, percent), 2), heartbeat_at=utcnow(), updated_at=utcnow()))

    def member_done(self, outcome: MemberOutcome) -> None:
        with self.lock:
            self.done += 1
            percent = SHARED_SHARE + (100.0 - SHARED_SHARE) * self.done / self.total
        self.set(percent)
        if outcome.status != RunStatus.FINISHED:
            self.log("error", f"member {outcome.run_id} ended as {outcome.status}: "
                              f"{(outcome.error or {}).get('message', '')}")


def _context(engine: WorkflowEngine, run_id: str, principal: Principal, twin_id: str | None, site: str,
             progress: _Progress) -> RunContext:
    """The ensemble's own context on ``site`` (its shared part computes there): work waiting on a site that
    is lost is stopped (``workflows.run_faults.watching``)."""
    ctx = RunContext(run_id=run_id, principal=principal, collections=engine.collections, results=engine.results,
                     executor=executor_for(engine, {"site": site}), db=engine.db, twin=twin_id,
                     udf_timeout=engine.udf_timeout, udf_memory_bytes=engine.udf_memory_bytes,
                     services=engine.services, near=endpoints_near(engine, site))
    ctx.log = lambda level, message: progress.log(level, message, ctx.node)
    ctx.compute_progress = watching(engine, site, lambda _done, _total: _check_canceled(engine, run_id))
    return ctx


def _check_canceled(engine: WorkflowEngine, run_id: str) -> None:
    """Stops the ensemble's staging when it is canceled."""
    if run_id in engine.cancel_requests:
        raise Canceled()


def execute_ensemble(engine: WorkflowEngine, run_id: str) -> str:
    """Run a claimed ensemble to its end; returns its final status. Never raises for a failing member."""
    with engine.db.session(readonly=True) as session:
        run = session.get(WorkflowRun, run_id)
        if run is None:
            return "missing"
        process, options, owner, twin_id, app = run.process, dict(run.options), run.owner, run.twin_id, run.app
        app_version = run.app.partition("@")[2] if run.app else None
        registry = user_registry(session, engine.registry, owner)
        groups = groups_of(session, owner)
        spec = options["ensemble"]
        params = {row.id: row.parameters for row in session.execute(select(WorkflowRun.id, WorkflowRun.parameters)
                                                                   .where(WorkflowRun.id.in_(
                                                                       [m["run"] for m in spec["members"]])))}
    principal = Principal(name=owner, role=Role(options.get("role", "user")), issuer="internal", groups=groups)
    progress = _Progress(engine, run_id, len(spec["members"]))
    ctx = _context(engine, run_id, principal, twin_id, str(options.get("site") or ""), progress)
    members = [Member(run_id=m["run"], parameters=params[m["run"]], twin_id=m.get("twin")) for m in spec["members"]]
    graph = parse_graph(process)
    group = MemberSet(engine=engine, ensemble_id=run_id, graph=graph, registry=registry, principal=principal,
                      options=options, app_version=app_version, members=members)
    group.faults.process, group.faults.app, group.faults.note = process, app, progress.log  # a lost site's story

    def stage(site: str, charge: str | None = None) -> None:
        """The ensemble's inputs near ``site`` (compute.staging), charged to ``charge`` or its first member."""
        if (staging := engine.services.get("staging")) is None:
            return
        ids = [m.run_id for m in members]
        staged = {**options, "site": site}
        staging(engine, run_id, principal=principal, options=staged, process=process, log=progress.log,
                check=lambda: _check_canceled(engine, run_id), parameter_sets=[m.parameters for m in members],
                members=[charge, *(i for i in ids if i != charge)] if charge else ids)
        if "staging" in staged:
            options["staging"] = staged["staging"]

    group.faults.restage = stage  # a site lost under the ensemble: its inputs staged near the next one
    engine.executing.add(run_id)
    status, error, value = RunStatus.FINISHED, None, None
    meter: Meter | None = None
    try:
        if options.get("site"):
            stage(str(options["site"]))
        progress.log("info", f"ensemble of {len(members)} members ({spec['mode']}) on executor "
                             f"{ctx.executor.name} (site {options.get('site') or 'local'}), "
                             f"{options.get('parallel', DEFAULT_PARALLEL)} at a time")
        since = time.monotonic()
        meter = start_meter()  # the shared part's usage: the ensemble's own record (each member writes its own)
        try:
            shared = group.evaluate_shared(ctx)
        except Canceled:
            raise
        except Exception:  # its site lost under it: placed again, staged there and rerun (workflows.member_faults)
            moved = group.faults.shared_moved(since)
            if moved is None:
                raise
            _lost_shared_part(engine, run_id, meter, site=str(options.get("site") or ""))
            ctx = _context(engine, run_id, principal, twin_id, moved, progress)
            meter = start_meter()
            shared = group.evaluate_shared(ctx)
        meter.stop()  # before the members start: their CPU is theirs, not shared with this record
        progress.log("info", f"shared by every member, evaluated once: {', '.join(shared) or 'nothing'}")
        progress.set(SHARED_SHARE)
        outcomes = group.run(parallel=int(options.get("parallel", DEFAULT_PARALLEL)), done=progress.member_done)
        if run_id in engine.cancel_requests or any(o.status == RunStatus.CANCELED for o in outcomes):
            raise Canceled()
        failed = [o for o in outcomes if o.status != RunStatus.FINISHED]
        if failed:
            first = failed[0].error or {}
            raise MemberFailed(f"{len(failed)} of {len(outcomes)} members failed, e.g. {failed[0].run_id}: "
                               f"{first.get('message', failed[0].status)}; nothing was written")
        value = _conclude(engine, ctx, spec, outcomes, principal, twin_id, options)
    except Canceled:
        overdue = engine.overdue.pop(run_id, None)  # its identity lost the twin (``twins.standing``)
        if overdue is not None:
            status, error = RunStatus.ERROR, overdue
            progress.log("error", overdue["message"])
        else:
            status = RunStatus.CANCELED
            progress.log("info", "canceled")
    except TwinEngineError as exc:
        status, error = RunStatus.ERROR, {"code": exc.code, "message": exc.message, "details": exc.details}
        progress.log("error", f"{exc.code}: {exc.message}")
    except Exception as exc:  # a bug: record it, keep the worker alive
        log.exception("ensemble %s failed", run_id)
        status, error = RunStatus.ERROR, {"code": "Internal", "message": f"{type(exc).__name__}: {exc}"}
        progress.log("error", f"internal error: {type(exc).__name__}: {exc}")
    finally:
        engine.executing.discard(run_id)
        engine.cancel_requests.discard(run_id)
    if status != RunStatus.FINISHED and ctx.assets:  # nothing kept from an ensemble that did not end well
        ctx.assets.clear()
        engine.results.delete(run_id)
    _store_end(engine, run_id, status, error, value, ctx, [m.run_id for m in members], meter)
    if status == RunStatus.FINISHED:
        describe_results(ctx)
    return str(status)


def _conclude(engine: WorkflowEngine, ctx: RunContext, spec: dict[str, Any], outcomes: list[MemberOutcome],
              principal: Principal, twin_id: str | None, options: dict[str, Any]) -> dict[str, Any]:
    values = [_series(o.value) for o in outcomes]
    for outcome, value in zip(outcomes, values, strict=True):
        if not _numeric(value):
            raise MemberFailed(f"member {outcome.run_id}'s result is not a number or a series of numbers; an "
                               "ensemble's statistics need one")
    threshold = spec.get("threshold")
    try:
        stacked = stack_members(values)
    except ValueError as exc:
        raise MemberFailed(f"the members' results cannot be stacked: {exc}") from None
    stats = derive(stacked, quantiles=spec["quantiles"], threshold=threshold)
    stats = stats.assign_coords(run=("member", [o.run_id for o in outcomes]))
    _keep(ctx, stats)
    out = summary(stats) | {"member_runs": [o.run_id for o in outcomes]}
    member_state = _member_state(outcomes)
    if member_state:
        out["member_state"] = member_state
    with running(ctx):  # before the state: a forecast the store refuses fails the ensemble before any state
        recorded = _record_forecasts(ctx, spec, outcomes)
    if recorded:
        out["forecasts"] = recorded
    past = hindcast_from(options)  # a hindcast's statistics are past: the twin's state now is not theirs to write
    written = None if past is not None else _write_state(ctx, spec.get("state") or {}, out, principal, twin_id, stats)
    if written is not None:
        out["state_revision"] = written
    return out


def _record_forecasts(ctx: RunContext, spec: dict[str, Any], outcomes: list[MemberOutcome]) -> list[str]:
    """Per ``save_forecast`` node, the members' forecasts as one: the members' mean with every member, the
    ensemble's quantiles (the outermost pair is its interval) and, with a threshold, the share of members
    above it. Recorded as the ensemble's run."""
    ids = []
    for node in sorted(outcomes[0].forecasts):
        bodies = [o.forecasts.get(node) for o in outcomes]
        first = bodies[0]
        if first is None or any(b is None or b["property"] != first["property"] for b in bodies):
            raise MemberFailed(f"the members' forecasts of node {node!r} differ in what they forecast")
        series = [b["values"] for b in bodies if b is not None]
        if len({len(v) for v in series}) != 1:
            raise MemberFailed(f"the members' forecasts of node {node!r} have different lengths")
        members = np.asarray(series, dtype="float64").T  # (step, member)
        body = {k: first[k] for k in ("property", "step", "issued_at", "valid_times", "model", "model_version",
                                      "twin") if first.get(k) is not None}
        body |= {"values": members.mean(axis=1).tolist(), "members": members.tolist(),
                 "quantiles": {str(float(q)): np.quantile(members, float(q), axis=1).tolist()
                               for q in spec["quantiles"]}}
        threshold = spec.get("threshold")
        if threshold is not None:
            body["probabilities"] = {str(float(threshold)): (members > float(threshold)).mean(axis=1).tolist()}
        ids.append(record(body, ctx.run_id))
    return ids


def _series(value: Any) -> Any:
    if isinstance(value, dict) and "data" in value:  # a cube as JSON
        return value["data"]
    return value


def _numeric(value: Any) -> bool:
    if isinstance(value, list):
        return bool(value) and all(_numeric(v) for v in value)
    return isinstance(value, int | float) and not isinstance(value, bool)


def _member_state(outcomes: list[MemberOutcome]) -> dict[str, Any]:
    """Per state property the members would have written: their values and mean (a share for booleans)."""
    names = set().union(*(o.state for o in outcomes))
    out = {}
    for name in sorted(names):
        got = [o.state.get(name) for o in outcomes]
        numbers = [float(v) for v in got if isinstance(v, int | float)]
        out[name] = {"values": got, "mean": round(float(np.mean(numbers)), 6) if numbers else None}
    return out


def _keep(ctx: RunContext, stats: xr.Dataset) -> None:
    path = ctx.results.scratch(ctx.run_id) / "ensemble.nc"
    stats.to_netcdf(path, engine="h5netcdf")
    ctx.assets.append(ctx.results.keep(ctx.run_id, path, name="ensemble.nc", media_type="application/x-netcdf",
                                       fmt="netCDF"))


def _write_state(ctx: RunContext, targets: dict[str, str], out: dict[str, Any], principal: Principal,
                 twin_id: str | None, stats: xr.Dataset) -> int | None:
    if not targets or twin_id is None:
        return None
    peak = out["peak"]
    picks: dict[str, Any] = {"probability": peak.get("exceedance"), "mean_peak": peak["mean"],
                             "spread_peak": peak["spread"],
                             "summary": {"run": ctx.run_id, "members": out["members"], "threshold": out["threshold"],
                                         "peak": peak, "member_runs": out["member_runs"]}}
    reported = {prop: PropertyWrite(value=picks[stat]) for stat, prop in targets.items() if picks[stat] is not None}
    if not reported:
        return None
    with ctx.db.session() as session:  # type: ignore[union-attr]
        mean = targets.get("mean_peak")
        if mean in reported:  # the peak mean with its uncertainty, in the forms its property declares
            declared = twins.manifest_for(session, twins.get_twin(session, principal=principal, ref=twin_id)).state
            forms = declared[mean].uncertainty if mean in declared else []
            spread = peak_uncertainty(stats, [f.value for f in forms])
            if spread is not None:
                reported[mean] = PropertyWrite(value=picks["mean_peak"], uncertainty=Uncertainty(**spread))
        row, revision = twins.write_state(session, principal=principal, ref=twin_id, reported=reported, desired={},
                                          message=f"ensemble {ctx.run_id} of {out['members']} members",
                                          quality=value_quality(input_quality(ctx.inputs), ctx.run_id))
    ctx.state_writes.append({"twin": row.id, "revision": revision.revision})
    ctx.note_state(row.id, revision.changes)
    return revision.revision


def _store_end(engine: WorkflowEngine, run_id: str, status: str, error: dict[str, Any] | None, value: Any,
               ctx: RunContext, members: list[str], meter: Meter | None) -> None:
    with engine.db.session() as session:
        record_run_end(session, run_id, status, error, value, ctx, processes=[], informants=members)
        if meter is not None:  # what the shared part used (None: the ensemble ended before it began); its
            # staging is charged to its first member
            record_execution(session, session.get(WorkflowRun, run_id), meter, status=status, staging=False)


def _lost_shared_part(engine: WorkflowEngine, run_id: str, meter: Meter, *, site: str) -> None:
    """The shared part's attempt lost with its site: recorded as ``lost`` there, as a member's would be."""
    with engine.db.session() as session:
        record_lost_attempt(session, session.get(WorkflowRun, run_id), meter, site=site)
