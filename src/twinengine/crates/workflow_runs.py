"""The record of a workflow run (kinds run, job, sync, member, ensemble; and runs sent whole to another engine):
its graph, bound parameters, the state revision it started from, what it loaded (with checksums), the model
versions ``predict`` used, each node with its start and end, its outputs from the result store and its usage."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from twinengine._version import __version__
from twinengine.catalog.models import AppVersion
from twinengine.compute.models import UsageRecord
from twinengine.crates.inputs import collection_input
from twinengine.crates.record import Input, ModelUse, Output, RunRecord, Step
from twinengine.crates.stream_inputs import RecordSelection, with_checksum
from twinengine.streams.checksum import RecordsChecksum
from twinengine.twins.models import Twin
from twinengine.workflows.graph import parse_graph
from twinengine.workflows.models import RunNode, WorkflowRun
from twinengine.workflows.results import ResultStore
from twinengine.workflows.stream_processes import QUALITY_KEPT

__all__ = ["ENGINE_VALUES", "canonical", "workflow_record"]

ENGINE_VALUES = ("run_id", "twin_id", "twin_name", "twin_parameters")  # bound by the engine, not asked for
KINDS = {"run": "workflow", "job": "workflow", "sync": "workflow", "member": "member", "ensemble": "ensemble"}


def canonical(value: Any) -> bytes:
    """The canonical JSON a graph's sha256 is taken of (``workflows.graph.graph_hash``)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def _usage(session: Session, run_ids: list[str]) -> dict[str, float]:
    row = session.execute(select(func.coalesce(func.sum(UsageRecord.core_seconds), 0.0),
                                 func.coalesce(func.sum(UsageRecord.wall_seconds), 0.0),
                                 func.count(UsageRecord.id)).where(UsageRecord.run_id.in_(run_ids))).one()
    return {"core_seconds": float(row[0]), "wall_seconds": float(row[1])} if row[2] else {}


def _outputs(run: WorkflowRun, results: ResultStore, carry_bytes: int) -> list[Output]:
    outputs = []
    for asset in run.assets or []:
        try:
            path: Path | None = results.path(run.id, asset["name"])
        except FileNotFoundError:
            path = None
        here = path is not None and path.is_file()
        carried = here and int(asset["size"]) <= carry_bytes
        outputs.append(Output(name=asset["name"], size=int(asset["size"]), sha256=asset["sha256"],
                              media_type=asset.get("type") or "application/octet-stream", carried=carried,
                              path=path if carried else None,
                              description="" if here else "no longer kept by the engine"))
    return outputs


def _stream_input(session: Session, entry: dict[str, Any], name: str, version: str | None) -> Input:
    """A stream the run read with ``load_stream``: its records up to offset ``version`` in the time extent and
    flags the run asked for, with the checksum the run took of them (runs before it was taken have none)."""
    found = Input(id=name, kind="stream", name=name.removeprefix("stream:"), version=version,
                  description=f"the stream's records load_stream read, up to offset {version}",
                  properties={"quality": entry.get("quality")} if entry.get("quality") else {})
    if not entry.get("sha256"):
        return found
    twin_id, _, stream = name.removeprefix("stream:").partition("/")
    twin = session.get(Twin, twin_id)
    kept = QUALITY_KEPT.get(str(entry.get("quality_kept") or "any"))
    selection = RecordSelection(twin=twin.name if twin is not None else twin_id, stream=stream,
                                ranges=[(0, int(version or 0))], since=entry.get("since"), until=entry.get("until"),
                                quality=list(kept) if kept is not None else None, taken="run")
    return with_checksum(found, selection, RecordsChecksum(sha256=str(entry["sha256"]), records=int(entry["records"]),
                                                           bytes=int(entry["bytes"])))


def _related_input(entry: dict[str, Any], name: str, version: str | None) -> Input:
    """The related twins ``load_related_twins`` read: their ids, or their reported state, with the SHA-256 of what
    the run read (runs before it was taken have none)."""
    what = "reported state" if entry.get("state") else "ids"
    when = f"as of {entry['at']}" if entry.get("at") else "as they were when the run read them"
    properties = {"twins": entry["twins"]} if entry.get("twins") is not None else {}
    return Input(id=name, kind="related", name=name.removeprefix("related:"), version=version,
                 sha256=entry.get("sha256") or None, size=entry.get("bytes"), properties=properties,
                 description=f"the related twins' {what}, {when}, as canonical JSON")


def _inputs(session: Session, lineage: dict[str, Any], collections: Any) -> list[Input]:
    seen: dict[tuple[str, str | None], Input] = {}
    for entry in lineage.get("inputs") or []:
        name, version = str(entry.get("collection")), entry.get("version")
        if (name, version) in seen:
            continue
        if name.startswith("stream:"):
            found = _stream_input(session, entry, name, version)
        elif name.startswith("related:"):
            found = _related_input(entry, name, version)
        else:
            found = collection_input(collections, name, version)
        seen[(name, version)] = found
    return list(seen.values())


def _steps(run: WorkflowRun, nodes: list[RunNode], processes: list[dict[str, Any]]) -> list[Step]:
    graph = parse_graph(run.process)
    versions = {(p.get("namespace") or "predefined", p["id"]): p.get("version") for p in processes}
    by_id = {n.node_id: n for n in nodes}
    order = [n for n in graph.order if n in graph.nodes]
    result = next((n for n in order if graph.nodes[n].result), None)
    if result is not None:  # the result node last: the crate connects its value to the outputs
        order = [n for n in order if n != result] + [result]
    steps = []
    for node_id in order:
        node = graph.nodes[node_id]
        row = by_id.get(node_id)
        ns = node.namespace or "predefined"
        steps.append(Step(id=node_id, tool=node.process_id, namespace=node.namespace,
                          version=versions.get((ns, node.process_id)), status=row.status if row else "pending",
                          started=row.started_at if row else None, ended=row.finished_at if row else None,
                          arguments=dict(node.arguments)))
    return steps


def _nondeterministic(session: Session, run: WorkflowRun) -> str | None:
    """What the app says of its workflow's determinism (``workflows.<name>.nondeterministic`` in its manifest)."""
    if not run.app or not run.workflow:
        return None
    name, _, version = run.app.partition("@")
    manifest = session.scalar(select(AppVersion.manifest).where(AppVersion.name == name, AppVersion.version == version))
    spec = ((manifest or {}).get("workflows") or {}).get(run.workflow) or {}
    said = spec.get("nondeterministic") if isinstance(spec, dict) else None
    return str(said) if said else None


def workflow_record(session: Session, run: WorkflowRun, *, results: ResultStore, collections: Any,
                    carry_bytes: int) -> RunRecord:
    lineage = dict(run.lineage or {})
    options = dict(run.options or {})
    kind = KINDS.get(run.kind, "workflow")
    if options.get("remote"):
        kind = "remote"
    procedure = canonical(run.process)
    parameters = {k: v for k, v in (run.parameters or {}).items() if k != "run_id"}
    seeds = {k: int(v) for k, v in parameters.items() if "seed" in k.lower() and isinstance(v, int)
             and not isinstance(v, bool)}
    parts: list[str] = []
    steps: list[Step]
    ensemble = options.get("ensemble") if kind == "ensemble" else None
    if isinstance(ensemble, dict):
        if ensemble.get("seed") is not None:
            seeds["ensemble"] = int(ensemble["seed"])
        parts = [m["run"] for m in ensemble.get("members") or []]
        members = {r.id: r for r in session.scalars(select(WorkflowRun).where(WorkflowRun.id.in_(parts)))}
        declared = {p.get("name") for p in (run.process or {}).get("parameters") or [] if isinstance(p, dict)}
        shared_names = sorted(n for n in declared if n in parameters)  # what each member took from the ensemble
        steps = [Step(id=f"member-{m['index']}", tool="member run", namespace="engine",
                      status=members[m["run"]].status if m["run"] in members else "pending",
                      started=members[m["run"]].started_at if m["run"] in members else None,
                      ended=members[m["run"]].finished_at if m["run"] in members else None,
                      arguments={"run": m["run"], **{k: {"from_parameter": k} for k in shared_names
                                                     if k not in (m.get("parameters") or {})},
                                 **{f"set.{k}": v for k, v in (m.get("parameters") or {}).items()}},
                      description=f"member {m['index']}: a run of the workflow with its own parameters")
                 for m in ensemble.get("members") or []]
        steps.append(Step(id="statistics", tool="ensemble statistics", namespace="engine", status=run.status,
                          started=run.started_at, ended=run.finished_at,
                          arguments={f"member-{m['index']}": {"from_node": f"member-{m['index']}"}
                                     for m in ensemble.get("members") or []},
                          description="quantiles, mean, spread and exceedance over the members"))
    else:
        nodes = list(session.scalars(select(RunNode).where(RunNode.run_id == run.id)))
        steps = _steps(run, nodes, lineage.get("processes") or [])
    twin_values = {k: parameters.get(k) for k in ("twin_parameters",) if k in parameters}
    record = RunRecord(
        id=run.id, kind=kind, name=run.title or run.workflow or f"run {run.id}",
        description=(run.description or f"{kind} run {run.id}" + (f" of workflow {run.workflow}" if run.workflow
                                                                 else "") + (f" on twin {run.twin_name}"
                                                                             if run.twin_name else "")),
        status=str(run.status), owner=run.owner, created=run.created_at, started=run.started_at,
        ended=run.finished_at, procedure=run.process, procedure_name="process-graph.json",
        procedure_language="openeo", procedure_sha256=hashlib.sha256(procedure).hexdigest(),
        engine_version=str(lineage.get("engine_version") or __version__), app=run.app,
        app_sha256=lineage.get("app_sha256"), twin=run.twin_name, twin_id=run.twin_id, workflow=run.workflow,
        parameters=parameters, seeds=seeds, inputs=_inputs(session, lineage, collections),
        outputs=_outputs(run, results, carry_bytes),
        models=[ModelUse(registered=m["registered"], version=str(m["version"]), model=m["model"],
                         training_run=m.get("training_run"), gate=m.get("gate")) for m in lineage.get("models") or []],
        steps=steps, parts=parts, part_of=options.get("ensemble") if kind == "member" else None,
        site=str(options.get("site") or "local"), executor=run.executor,
        usage=_usage(session, [run.id]), error=run.error, remote=options.get("remote"),
        start=options.get("start"), nondeterministic=_nondeterministic(session, run),
        rerun_of=options.get("rerun_of"))
    record.rerun = {"type": "ensemble" if kind == "ensemble" else "workflow", "run_kind": run.kind,
                    "options": {k: options[k] for k in ("site", "exclude_sites", "retry", "node_retry")
                                if k in options}, **twin_values}
    if isinstance(ensemble, dict):
        record.rerun["ensemble"] = {k: ensemble.get(k) for k in ("mode", "seed", "members", "threshold",
                                                                   "quantiles")}
    if kind == "member":  # run again as an ensemble of one with its own parameters (twin ones included)
        ensemble_row = session.get(WorkflowRun, str(options.get("ensemble")))
        spec = dict((ensemble_row.options or {}).get("ensemble") or {}) if ensemble_row is not None else {}
        mine = [m for m in spec.get("members") or [] if m.get("run") == run.id]
        record.rerun = {**record.rerun, "type": "ensemble", "member": options.get("member"),
                        "ensemble": {"mode": "parameter_sets", "members": mine, "threshold": spec.get("threshold"),
                                     "quantiles": spec.get("quantiles")}}
    return record
