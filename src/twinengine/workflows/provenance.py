"""W3C PROV-JSON of a run: what it used (graph, parameters, app, the twin's state revision it started from,
datasets with versions, processes), what
it generated (assets with checksums, twin revisions), who it acted for, built with the ``prov`` library.

A run's end keeps only the facts (``run_lineage``: the run's columns hold the rest) and the document is
rendered from them when asked for (``provenance_of``): the same document, without building one at the end of
every run. That cost 0.8 ms of the interpreter and about 200 objects of reference cycles per run (a PROV
document's records and their bundle hold each other), which the collector then had to find while every
thread, the event loop included, waited. Runs that ended before the lineage was kept have their document
stored as it was built.
"""

from __future__ import annotations

import json
from typing import Any

from twinengine._version import __version__
from twinengine.compute.provenance import placement_attributes
from twinengine.quality.pedigree import input_quality
from twinengine.workflows.models import WorkflowRun

__all__ = ["model_used", "provenance_of", "run_lineage", "run_provenance"]

NAMESPACE = "urn:twinengine:"


def run_lineage(*, processes: list[dict[str, Any]], inputs: list[dict[str, Any]],
                state_writes: list[dict[str, Any]], app_sha256: str | None,
                informants: list[str] | None = None, models: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """What a run's PROV document needs beyond the run's own columns, as it is when the run ends (the app's
    archive of a ``-dev`` version may change later; so may the engine, and a model's champion)."""
    return {"processes": processes, "inputs": inputs, "state_writes": state_writes, "app_sha256": app_sha256,
            "informants": informants or [], "engine_version": __version__, "models": models or []}


def provenance_of(run: WorkflowRun) -> dict[str, Any] | None:
    """The run's PROV-JSON document; None while it has not ended."""
    if run.provenance is not None:
        return run.provenance
    if run.lineage is None:
        return None
    return run_provenance(run, **run.lineage)


def run_provenance(run: WorkflowRun, *, processes: list[dict[str, Any]], inputs: list[dict[str, Any]],
                   state_writes: list[dict[str, Any]], app_sha256: str | None,
                   informants: list[str] | None = None, engine_version: str = __version__,
                   models: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """``informants``: runs whose results this run used (an ensemble's members); ``engine_version``: the
    engine that ran it; ``models``: the model versions ``predict`` used (``model_used``)."""
    from prov.model import ProvDocument  # 0.1 s of imports, paid by the first document asked for

    doc = ProvDocument()
    doc.add_namespace("twin", NAMESPACE)
    activity = doc.activity(f"twin:run/{run.id}", run.started_at, run.finished_at,
                            {"prov:type": "twin:WorkflowRun", "twin:status": str(run.status),
                             "twin:kind": run.kind, "twin:executor": run.executor or "",
                             **placement_attributes(run.options)})
    owner = doc.agent(f"twin:identity/{run.owner}", {"prov:type": "prov:Person"})
    engine = doc.agent(f"twin:engine/{engine_version}", {"prov:type": "prov:SoftwareAgent",
                                                         "twin:version": engine_version})
    doc.wasAssociatedWith(activity, owner)
    doc.wasAssociatedWith(activity, engine)
    doc.actedOnBehalfOf(engine, owner)
    graph = doc.entity(f"twin:graph/{run.graph_sha256}", {"prov:type": "twin:ProcessGraph",
                                                          "twin:sha256": run.graph_sha256})
    doc.used(activity, graph)
    params = {k: v for k, v in run.parameters.items() if k != "run_id"}
    doc.used(activity, doc.entity(f"twin:parameters/{run.id}", {
        "prov:type": "twin:Parameters", "prov:value": json.dumps(params, sort_keys=True, default=str)}))
    if run.app:
        app = doc.entity(f"twin:app/{run.app}", {"prov:type": "twin:AppVersion", "twin:sha256": app_sha256 or ""})
        doc.used(activity, app)
        doc.wasDerivedFrom(graph, app)
    if run.twin_id:
        doc.used(activity, doc.entity(f"twin:twin/{run.twin_id}", {"prov:type": "twin:Twin",
                                                                   "twin:name": run.twin_name or ""}))
        _started_from(doc, activity, run)
    for other in informants or ():
        member = doc.activity(f"twin:run/{other}", other_attributes={"prov:type": "twin:WorkflowRun"})
        doc.wasInformedBy(activity, member)
    report = input_quality(inputs)
    activity.add_attributes({"twin:inputQuality": report["flag"]})
    generated = {"twin:inputQuality": report["flag"]} if report["flag"] != "good" else {}
    used_inputs = []
    for entry in report["inputs"]:  # each input once, with the flags of the records the run used
        counts = entry["records"] or {}
        version = entry["version"]  # None: its source keeps no version; the dataset is named alone
        entity = doc.entity(f"twin:collection/{entry['collection']}" + (f"/{version}" if version else ""),
                            {"prov:type": "twin:Dataset", "twin:collection": entry["collection"],
                             **({"twin:version": version} if version else {}), "twin:quality": entry["flag"],
                             **{f"twin:{flag}Records": n for flag, n in counts.items()}})
        doc.used(activity, entity)
        used_inputs.append(entity)
    for used in models or ():
        _model_version(doc, activity, used)
    for proc in processes:
        ns = proc.get("namespace") or "predefined"
        doc.used(activity, doc.entity(f"twin:process/{ns}/{proc['id']}", {
            "prov:type": "twin:Process", "twin:namespace": ns, "twin:version": proc.get("version") or ""}))
    for asset in run.assets:
        entity = doc.entity(f"twin:result/{run.id}/{asset['name']}", {
            "prov:type": "twin:Asset", "twin:sha256": asset["sha256"], "twin:size": asset["size"],
            "twin:mediaType": asset["type"]} | ({"twin:lakeDid": asset["did"]} if asset.get("did") else {})
            | generated)
        doc.wasGeneratedBy(entity, activity, run.finished_at)
        doc.wasAttributedTo(entity, owner)
        for source in used_inputs:
            doc.wasDerivedFrom(entity, source)
    for write in state_writes:
        entity = doc.entity(f"twin:twin/{write['twin']}/revision/{write['revision']}",
                            {"prov:type": "twin:StateRevision"} | generated)
        doc.wasGeneratedBy(entity, activity)
    result: dict[str, Any] = json.loads(doc.serialize(format="json") or "{}")
    return result


def _started_from(doc: Any, activity: Any, run: WorkflowRun) -> None:
    """The twin's state revision the run started from (``workflows.initial_state``): used, as its initial state,
    with the parameters it gave."""
    start = (run.options or {}).get("start")
    if not isinstance(start, dict) or start.get("revision") is None:
        return
    given = {name: entry for name, entry in (start.get("parameters") or {}).items() if entry.get("source") == "state"}
    entity = doc.entity(f"twin:twin/{run.twin_id}/revision/{start['revision']}", {
        "prov:type": "twin:StateRevision", "twin:role": "initial state", "twin:validAt": start.get("time") or "",
        "prov:value": json.dumps({name: {"property": e["property"], "value": e.get("value")}
                                  for name, e in given.items()}, sort_keys=True, default=str)})
    doc.used(activity, entity)


def model_used(*, twin_id: str, model: str, registered: str, version: str, training_run: str | None,
               accepted: bool | None, reason: str | None) -> dict[str, Any]:
    """A model version a run's ``predict`` used, as its lineage keeps it: which training run made it and
    what the gate said of it (None: no decision is kept, e.g. a version registered outside the engine)."""
    return {"twin": twin_id, "model": model, "registered": registered, "version": version,
            "training_run": training_run, "gate": None if accepted is None else "accepted" if accepted else "rejected",
            "gate_reason": reason}


def _model_version(doc: Any, activity: Any, used: dict[str, Any]) -> None:
    """The version as an entity the run used, generated by its training run (an activity of its own)."""
    attributes = {"prov:type": "twin:ModelVersion", "twin:model": used["model"], "twin:version": used["version"],
                  "twin:registeredModel": used["registered"]}
    if used.get("gate"):
        attributes |= {"twin:gateDecision": used["gate"], "twin:gateReason": used.get("gate_reason") or ""}
    if used.get("training_run"):
        attributes["twin:trainingRun"] = used["training_run"]
    entity = doc.entity(f"twin:model/{used['registered']}/{used['version']}", attributes)
    doc.used(activity, entity)
    if used.get("training_run"):
        training = doc.activity(f"twin:training/{used['training_run']}",
                                other_attributes={"prov:type": "twin:TrainingRun"})
        doc.wasGeneratedBy(entity, training)
