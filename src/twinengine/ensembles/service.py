"""Ensembles of a twin's workflow: N members that differ by perturbed parameters, by forks, or by a list
of parameter sets. Submitting checks everything and draws the members' parameters (seeded) before
anything is stored, then stores the ensemble (a run of kind ``ensemble``) and its members (runs of kind
``member``) in one transaction; ``ensembles.run`` executes it.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import ValidationError
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from twinengine.auth.policy import require
from twinengine.auth.principal import Principal
from twinengine.catalog.manifest import Manifest
from twinengine.compute.hooks import before_queue
from twinengine.ensembles.schemas import EnsembleCreate, EnsembleDeclaration, EnsembleRead, MemberRead
from twinengine.errors import InvalidInput, Problem, RunNotFound, ValidationFailed, join_loc
from twinengine.quality.perturb import bounds_of, draw
from twinengine.store.base import utcnow
from twinengine.twins import service as twins
from twinengine.twins.models import Twin
from twinengine.twins.validation import check_parameters
from twinengine.workflows import service as runs
from twinengine.workflows.graph import graph_hash, parse_graph, validate
from twinengine.workflows.initial_state import member_values, start_read, starting_values
from twinengine.workflows.models import RunNode, WorkflowRun
from twinengine.workflows.schemas import RunStatus
from twinengine.workflows.site_queues import site_queues
from twinengine.workflows.udp import user_registry

if TYPE_CHECKING:
    from twinengine.workflows.engine import WorkflowEngine

__all__ = ["KIND", "MEMBER_KIND", "declaration", "ensemble_read", "get_ensemble", "submit_ensemble"]

KIND, MEMBER_KIND = "ensemble", "member"


def declaration(manifest: Manifest, workflow: str) -> EnsembleDeclaration:
    """The workflow's ``ensemble:`` block (empty when it declares none); a bad one names its place."""
    spec = manifest.workflows.get(workflow)
    raw = (spec.model_extra or {}).get("ensemble") if spec is not None else None
    try:
        found = EnsembleDeclaration.model_validate(raw or {})
    except ValidationError as exc:
        raise ValidationFailed([Problem(join_loc(["workflows", workflow, "ensemble", *e["loc"]]), e["msg"])
                                for e in exc.errors()]) from None
    for stat, prop in found.state.items():
        if prop not in manifest.state:
            raise ValidationFailed.one(f"workflows.{workflow}.ensemble.state.{stat}",
                                       f"{prop!r} is not a state property of {manifest.ref}")
    return found


class _Parameters:
    """Where a parameter name lives: the workflow's process graph, or the twin's app parameters."""

    def __init__(self, process: dict[str, Any], manifest: Manifest, workflow: str) -> None:
        self.workflow = {p["name"]: p for p in process.get("parameters") or []}
        self.app = dict(manifest.parameters.get("properties") or {})
        self.name = workflow

    def where(self, loc: str, name: str) -> str:
        if name in self.workflow:
            return "workflow"
        if name in self.app:
            return "twin"
        raise ValidationFailed.one(loc, f"no parameter {name!r}: workflow {self.name} declares "
                                        f"{', '.join(self.workflow) or 'none'}; the app's parameters are "
                                        f"{', '.join(self.app) or 'none'}")

    def schema(self, name: str) -> dict[str, Any]:
        spec = self.workflow.get(name, {}).get("schema") if name in self.workflow else self.app.get(name)
        return spec if isinstance(spec, dict) else {}


def _perturbed(body: EnsembleCreate, decl: EnsembleDeclaration, params: _Parameters, base: dict[str, Any],
               twin: Twin, count: int, seed: int) -> list[dict[str, Any]]:
    specs = body.perturb if body.perturb is not None else decl.perturb
    loc = "perturb" if body.perturb is not None else f"workflows.{params.name}.ensemble.perturb"
    if not specs:
        raise ValidationFailed.one("perturb", f"workflow {params.name} declares no perturbations: give perturb, "
                                              "parameter_sets or forks")
    rng = np.random.default_rng(seed)
    sets: list[dict[str, Any]] = [{} for _ in range(count)]
    for name in sorted(specs):
        kind = params.where(f"{loc}.{name}", name)
        value = base.get(name) if kind == "workflow" else twin.parameters.get(name)
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise ValidationFailed.one(f"{loc}.{name}", f"only numbers can be perturbed; {name} is {value!r}")
        drawn_values = draw(specs[name], value, count, rng, params.schema(name))
        if not all(np.isfinite(drawn_values)):
            raise ValidationFailed.one(f"{loc}.{name}", "the distribution gives values too large to represent")
        for member, drawn in zip(sets, drawn_values, strict=True):
            member[name] = drawn
    return sets


def _start_bounds(manifest: Manifest, workflow: str, params: _Parameters) -> dict[str, tuple[float, float]]:
    """The range a state-given parameter's members are kept in: its state property's and its schema's."""
    spec = manifest.workflows.get(workflow)
    out = {}
    for parameter, props in (spec.start_sources() if spec is not None else {}).items():
        low, high = bounds_of(params.schema(parameter))
        declared = [manifest.state[prop] for prop in props if prop in manifest.state]
        if declared and all(d.minimum is not None for d in declared):  # the loosest of the properties' ranges
            low = max(low, min(float(d.minimum) for d in declared if d.minimum is not None))
        if declared and all(d.maximum is not None for d in declared):
            high = min(high, max(float(d.maximum) for d in declared if d.maximum is not None))
        out[parameter] = (low, high)
    return out


def _threshold(body: EnsembleCreate, decl: EnsembleDeclaration, base: dict[str, Any]) -> float | None:
    if body.threshold is not None:
        return float(body.threshold)
    if decl.threshold is None:
        return None
    if decl.threshold.value is not None:
        return float(decl.threshold.value)
    value = base.get(decl.threshold.parameter or "")
    return float(value) if isinstance(value, int | float) else None


def _split(sets: list[dict[str, Any]], params: _Parameters, loc: str) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """Each member's overrides as (workflow parameters, twin parameters), every name checked."""
    out = []
    for i, values in enumerate(sets):
        wf: dict[str, Any] = {}
        tw: dict[str, Any] = {}
        for name, value in values.items():
            (wf if params.where(f"{loc}[{i}].{name}", name) == "workflow" else tw)[name] = value
        out.append((wf, tw))
    return out


def submit_ensemble(session: Session, engine: WorkflowEngine, *, principal: Principal, twin_ref: str,
                    body: EnsembleCreate, max_members: int, parallel: int = 4) -> WorkflowRun:
    """Check the request, draw the members, store the ensemble (queued) and its members (created)."""
    require(principal, "workflow.run")
    twin = twins.get_twin(session, principal=principal, ref=twin_ref, action="twin.operate")
    manifest = twins.manifest_for(session, twin)
    process = runs.twin_workflow_process(session, engine, twin, body.workflow)
    decl = declaration(manifest, body.workflow)
    params = _Parameters(process, manifest, body.workflow)
    modes = [m for m in ("forks", "parameter_sets") if getattr(body, m) is not None]
    if len(modes) > 1:
        raise ValidationFailed.one(modes[1], "give one of members (perturbed), forks or parameter_sets")
    sizes = {"forks": len(body.forks or []), "parameter_sets": len(body.parameter_sets or [])}
    count = sizes[modes[0]] if modes else body.members
    if count is None:
        raise ValidationFailed.one("members", "how many members? give members (>= 1), forks or parameter_sets")
    if modes and body.members is not None and body.members != count:
        raise ValidationFailed.one("members", f"{body.members} members but {count} {modes[0]}")
    if count > max_members:
        raise ValidationFailed.one(modes[0] if modes else "members",
                                   f"{count} members is above the most this engine runs ({max_members}, "
                                   "setting ensemble_max_members)")
    seed = body.seed if body.seed is not None else secrets.randbits(63)
    from_state, start = starting_values(session, principal=principal, twin=twin, manifest=manifest,
                                        workflow=body.workflow, given=body.parameters, start=body.start)
    base = runs.bind_parameters(process, {**from_state, **body.parameters},
                                {"twin_id": twin.id, "twin_name": twin.name, "twin_parameters": dict(twin.parameters)})
    member_twins = [twin] * count
    starts: list[tuple[dict[str, Any], dict[str, Any] | None]] = [(from_state, start)] * count
    if body.forks is not None:
        member_twins, starts = [], []
        for i, ref in enumerate(body.forks):
            other = twins.get_twin(session, principal=principal, ref=ref, action="twin.operate")
            if other.app_name != twin.app_name:
                raise ValidationFailed.one(f"forks[{i}]", f"twin {other.name} is of app {other.app_name}, not "
                                                          f"{twin.app_name}")
            member_twins.append(other)
            starts.append(starting_values(session, principal=principal, twin=other, manifest=manifest,
                                          workflow=body.workflow, given=body.parameters, start=body.start))
        overrides: list[tuple[dict[str, Any], dict[str, Any]]] = [({}, {}) for _ in range(count)]
    elif body.parameter_sets is not None:
        overrides = _split([dict(s) for s in body.parameter_sets], params, "parameter_sets")
    else:
        sets = _perturbed(body, decl, params, base, twin, count, seed)
        perturbed = set(body.perturb if body.perturb is not None else decl.perturb)
        drawn = member_values(start, count, np.random.default_rng([seed, 1]), skip=perturbed | set(body.parameters),
                              bounds=_start_bounds(manifest, body.workflow, params))
        for name, values in drawn.items():  # members start from the analysis' spread, not one value
            for member, value in zip(sets, values, strict=True):
                member[name] = value
        overrides = _split(sets, params, "perturb")
    graph = parse_graph(process)
    validate(graph, user_registry(session, engine.registry, principal.name), app_version=twin.app_version,
             available=set(runs.ENGINE_PARAMETERS))
    now = utcnow()
    ensemble_id = f"ens-{secrets.token_hex(8)}"
    rows, members = [], []
    for i, ((wf, tw), member_twin) in enumerate(zip(overrides, member_twins, strict=True)):
        run_id = f"run-{secrets.token_hex(8)}"
        twin_parameters = {**member_twin.parameters, **tw}
        if tw:
            _, problems = check_parameters(manifest, twin_parameters)
            if problems:
                loc = "parameter_sets" if body.parameter_sets is not None else "perturb"
                raise ValidationFailed([Problem(f"{loc}[{i}].{p.loc.removeprefix('parameters.')}", p.msg)
                                        for p in problems])
        engine_values = {"run_id": run_id, "twin_id": member_twin.id, "twin_name": member_twin.name,
                         "twin_parameters": twin_parameters}
        member_state, member_start = starts[i]
        try:
            bound = runs.bind_parameters(process, {**member_state, **body.parameters, **wf}, engine_values)
        except ValidationFailed:
            raise
        except InvalidInput as exc:  # a drawn or listed value the workflow's schema refuses
            raise ValidationFailed.one(f"{'parameter_sets' if body.parameter_sets else 'perturb'}[{i}]",
                                       exc.message) from None
        members.append({"index": i, "run": run_id, "twin": member_twin.id, "parameters": {**wf, **tw}})
        rows.append(WorkflowRun(
            id=run_id, kind=MEMBER_KIND, owner=principal.name, title=f"{body.workflow} of {member_twin.name}, "
            f"member {i} of {ensemble_id}", twin_id=member_twin.id, twin_name=member_twin.name,
            app=f"{twin.app_name}@{twin.app_version}", workflow=body.workflow, process=process,
            graph_sha256=graph_hash(process), parameters=bound,
            options={"role": principal.role.value, "ensemble": ensemble_id, "member": i,
                     "groups": sorted(principal.groups),  # its usage record's groups: the owner's when submitted
                     **({"manifest_retry": process["x-retry"]} if "x-retry" in process else {}),
                     **({"start": member_start} if member_start is not None else {})},
            status=RunStatus.CREATED, progress=0.0, assets=[], created_at=now, updated_at=now,
            executor=engine.executor.name))
    options = body.options.model_dump(mode="json") | {"role": principal.role.value, "parallel": parallel,
                                                       "on_twin": True}
    if "x-retry" in process:
        options["manifest_retry"] = process["x-retry"]
    if start is not None:
        options["start"] = start
    before_queue(session, principal=principal, options=options, process=process,  # its site; quotas
                 app=f"{twin.app_name}@{twin.app_version}", queues=site_queues)
    options["ensemble"] = {
        "mode": modes[0] if modes else "perturb", "seed": seed if not modes else None, "members": members,
        "threshold": _threshold(body, decl, base), "state": dict(decl.state),
        "quantiles": body.quantiles or decl.quantiles or [0.05, 0.5, 0.95]}
    ensemble = WorkflowRun(id=ensemble_id, kind=KIND, owner=principal.name,
                           title=f"{body.workflow} of {twin.name}, ensemble of {count}", twin_id=twin.id,
                           twin_name=twin.name, app=f"{twin.app_name}@{twin.app_version}", workflow=body.workflow,
                           process=process, graph_sha256=graph_hash(process), parameters=base, options=options,
                           status=RunStatus.QUEUED, progress=0.0, assets=[], created_at=now, updated_at=now,
                           queued_at=now, executor=engine.executor.name)
    session.add(ensemble)
    session.flush()
    session.add_all(rows)
    session.flush()
    session.execute(insert(RunNode), [{"run_id": r.id, "node_id": n.id, "process_id": n.process_id,
                                       "namespace": n.namespace, "status": "pending", "attempts": 0}
                                      for r in rows for n in graph.nodes.values()])
    return ensemble


def get_ensemble(session: Session, *, principal: Principal, ensemble_id: str) -> WorkflowRun:
    run = runs.get_run(session, principal=principal, run_id=ensemble_id)
    if run.kind != KIND:
        raise RunNotFound(f"no ensemble {ensemble_id!r} (it is a run of kind {run.kind})")
    return run


def ensemble_read(session: Session, run: WorkflowRun) -> EnsembleRead:
    spec = run.options.get("ensemble") or {}
    listed = spec.get("members") or []
    statuses = {row.id: row.status for row in session.execute(select(WorkflowRun.id, WorkflowRun.status).where(
        WorkflowRun.id.in_([m["run"] for m in listed])))}
    members = [MemberRead(index=m["index"], run_id=m["run"], status=RunStatus(statuses.get(m["run"], "error")),
                          twin_id=m.get("twin"), parameters=m.get("parameters") or {}) for m in listed]
    value = run.value if isinstance(run.value, dict) else None
    return EnsembleRead(id=run.id, status=RunStatus(run.status), progress=run.progress, twin_id=run.twin_id,
                        twin_name=run.twin_name, workflow=run.workflow, mode=str(spec.get("mode", "perturb")),
                        seed=spec.get("seed"), threshold=spec.get("threshold"), members=members,
                        statistics=value, assets=run.assets, error=run.error, created_at=run.created_at,
                        finished_at=run.finished_at, start=start_read(run.options))
