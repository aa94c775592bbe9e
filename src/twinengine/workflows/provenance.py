"""W3C PROV-JSON of a run: what it used (graph, parameters, app, datasets with versions, processes), what
it generated (assets with checksums, twin revisions), who it acted for, built with the ``prov`` library."""

from __future__ import annotations

import json
from typing import Any

from prov.model import ProvDocument

from twinengine._version import __version__
from twinengine.quality.pedigree import input_quality
from twinengine.workflows.models import WorkflowRun

__all__ = ["run_provenance"]

NAMESPACE = "urn:twinengine:"


def run_provenance(run: WorkflowRun, *, processes: list[dict[str, Any]], inputs: list[dict[str, Any]],
                   state_writes: list[dict[str, Any]], app_sha256: str | None,
                   informants: list[str] | None = None) -> dict[str, Any]:
    """``informants``: runs whose results this run used (an ensemble's members)."""
    doc = ProvDocument()
    doc.add_namespace("twin", NAMESPACE)
    activity = doc.activity(f"twin:run/{run.id}", run.started_at, run.finished_at,
                            {"prov:type": "twin:WorkflowRun", "twin:status": str(run.status),
                             "twin:kind": run.kind, "twin:executor": run.executor or ""})
    owner = doc.agent(f"twin:identity/{run.owner}", {"prov:type": "prov:Person"})
    engine = doc.agent(f"twin:engine/{__version__}", {"prov:type": "prov:SoftwareAgent",
                                                      "twin:version": __version__})
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
    for other in informants or ():
        member = doc.activity(f"twin:run/{other}", other_attributes={"prov:type": "twin:WorkflowRun"})
        doc.wasInformedBy(activity, member)
    report = input_quality(inputs)
    activity.add_attributes({"twin:inputQuality": report["flag"]})
    generated = {"twin:inputQuality": report["flag"]} if report["flag"] != "good" else {}
    used_inputs = []
    for entry in report["inputs"]:  # each input once, with the flags of the records the run used
        counts = entry["records"] or {}
        entity = doc.entity(f"twin:collection/{entry['collection']}/{entry['version'] or 'unversioned'}",
                            {"prov:type": "twin:Dataset", "twin:collection": entry["collection"],
                             "twin:version": entry["version"] or "", "twin:quality": entry["flag"],
                             **{f"twin:{flag}Records": n for flag, n in counts.items()}})
        doc.used(activity, entity)
        used_inputs.append(entity)
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
