"""A run's record (``crates.record``) as the metadata of a Provenance Run Crate (Workflow Run RO-Crate profiles
0.5, on RO-Crate 1.1): the run as a CreateAction of its procedure (the ComputationalWorkflow), each step as a
HowToStep whose tool ran as a CreateAction of its own, controlled by a ControlAction, and all of them organised by
the engine (an OrganizeAction); values as PropertyValues of FormalParameters, connected as the procedure connects
them (ParameterConnection); the person as the agent. The workflow-run terms are given inline (the same IRIs as
``https://w3id.org/ro/terms/workflow-run/context``), so reading a crate needs only the RO-Crate 1.1 context."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

from twinengine.crates.record import Output, RunRecord, Step

__all__ = ["CONTEXT", "PROFILES", "metadata", "readme"]

WFRUN = "https://w3id.org/ro/terms/workflow-run#"
CONTEXT: list[Any] = ["https://w3id.org/ro/crate/1.1/context", {
    term: WFRUN + term for term in ("ContainerImage", "DockerImage", "ParameterConnection", "SIFImage",
                                    "connection", "containerImage", "environment", "registry", "resourceUsage",
                                    "sha256", "sourceParameter", "tag", "targetParameter")}]
PROFILES = {"https://w3id.org/ro/wfrun/process/0.5": "Process Run Crate",
            "https://w3id.org/ro/wfrun/workflow/0.5": "Workflow Run Crate",
            "https://w3id.org/ro/wfrun/provenance/0.5": "Provenance Run Crate",
            "https://w3id.org/workflowhub/workflow-ro-crate/1.0": "Workflow RO-Crate"}
PROJECT_URL = "https://github.com/twinengine/twinengine"
LANGUAGES = {
    "openeo": ("openEO process graph", "https://api.openeo.org/", "1.2.0"),
    "twinengine-training": ("twinengine training request", PROJECT_URL, "1"),
    "twinengine-calibration": ("twinengine calibration request", PROJECT_URL, "1"),
    "twinengine-assimilation": ("twinengine assimilation request", PROJECT_URL, "1"),
    "twinengine-ensemble": ("twinengine ensemble request", PROJECT_URL, "1"),
}
OPENEO_PROCESSES = "https://processes.openeo.org/"
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")
COMPLETED, FAILED = "http://schema.org/CompletedActionStatus", "http://schema.org/FailedActionStatus"


def when(value: datetime | None) -> str | None:
    """ISO 8601 with milliseconds and ``+00:00``, as the profiles' patterns ask."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="milliseconds")


def _slug(text: str) -> str:
    return _UNSAFE.sub("_", text)[:120] or "_"


def _ref(ident: str) -> dict[str, str]:
    return {"@id": ident}


def _kind_of(value: Any) -> str:
    if isinstance(value, bool):
        return "Boolean"
    if isinstance(value, int):
        return "Integer"
    if isinstance(value, float):
        return "Float"
    if isinstance(value, str):
        return "Text"
    return "PropertyValue"


def _text(value: Any) -> Any:
    """A PropertyValue's value: a plain scalar as it is, anything else as canonical JSON text."""
    if isinstance(value, bool | int | float | str):
        return value
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def _references(value: Any, key: str) -> set[str]:
    """Every ``{key: name}`` inside an argument value (callbacks' own graphs left out)."""
    found: set[str] = set()
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if len(item) == 1 and key in item:
                found.add(str(item[key]))
            elif "process_graph" not in item:
                stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found


def _ran(step: Step) -> bool:
    return step.status in ("finished", "cached", "error", "succeeded", "done")


class _Graph:
    def __init__(self) -> None:
        self.entities: dict[str, dict[str, Any]] = {}

    def add(self, entity: dict[str, Any]) -> dict[str, str]:
        self.entities[entity["@id"]] = _compact(entity)
        return _ref(entity["@id"])


def _compact(entity: dict[str, Any]) -> dict[str, Any]:
    """No empty values, and a list of one as its value (RO-Crate 1.1's compacted JSON-LD)."""
    out = {}
    for key, value in entity.items():
        if value is None or value == []:
            continue
        out[key] = value[0] if isinstance(value, list) and len(value) == 1 and key != "@type" else value
    return out


def metadata(record: RunRecord, *, procedure_size: int, readme_size: int, record_size: int, license_id: str | None,
             carried: dict[str, str]) -> dict[str, Any]:
    """The crate's ``ro-crate-metadata.json``. ``carried``: output name → its path in the crate, for the outputs
    the crate holds (the others are named with their checksums)."""
    g = _Graph()
    proc = record.procedure_name
    published = when(record.ended or record.created)  # each file's sdDatePublished: when the run made it
    person = g.add({"@id": f"#person-{_slug(record.owner)}", "@type": "Person", "name": record.owner,
                    "affiliation": _ref("#operator")})
    operator = g.add({"@id": "#operator", "@type": "Organization", "name": f"the twinengine at site {record.site}",
                      "url": PROJECT_URL})
    engine = g.add({"@id": f"{PROJECT_URL}/releases/tag/v{record.engine_version}", "@type": "SoftwareApplication",
                    "name": "twinengine", "softwareVersion": record.engine_version, "url": PROJECT_URL})
    profiles = [g.add({"@id": pid, "@type": "CreativeWork", "name": name, "version": pid.rsplit("/", 1)[1]})
                for pid, name in PROFILES.items()]
    if license_id:
        lic = g.add({"@id": f"https://spdx.org/licenses/{license_id}", "@type": "CreativeWork", "name": license_id,
                     "description": f"The licence {record.app or 'the app'} declares ({license_id})."})
    else:
        lic = g.add({"@id": "#license", "@type": "CreativeWork", "name": "No licence stated",
                     "description": "The run's app declares no licence: ask its owner before reusing its outputs."})
    lang_name, lang_url, lang_version = LANGUAGES[record.procedure_language]
    language = g.add({"@id": f"#language-{record.procedure_language}", "@type": "ComputerLanguage",
                      "name": lang_name, "url": lang_url, "version": lang_version})
    status = COMPLETED if record.status in ("finished", "succeeded", "done") else FAILED
    actions: list[dict[str, str]] = []
    main_id = f"#run-{_slug(record.id)}"

    # -- the procedure's parameters and the values this run gave them
    workflow_inputs, main_objects = [], []
    for name, value in sorted(record.parameters.items()):
        param = g.add({"@id": f"#param-{_slug(name)}", "@type": "FormalParameter", "name": name,
                       "additionalType": _kind_of(value), "description": f"parameter {name} of the procedure"})
        workflow_inputs.append(param)
        main_objects.append(g.add({"@id": f"#value-{_slug(name)}", "@type": "PropertyValue", "name": name,
                                   "value": _text(value), "exampleOfWork": param}))
    for name, seed in sorted(record.seeds.items()):
        main_objects.append(g.add({"@id": f"#seed-{_slug(name)}", "@type": "PropertyValue", "name": f"seed {name}",
                                   "propertyID": "seed", "value": seed}))
    if record.start:
        main_objects.append(g.add({"@id": "#start", "@type": "PropertyValue", "name": "initial state",
                                   "propertyID": "startRevision", "value": _text(record.start),
                                   "description": "the twin's state revision the run started from"}))
    for i, item in enumerate(record.inputs):
        main_objects.append(g.add({
            "@id": f"#input-{i}-{_slug(item.name)}", "@type": "Dataset", "name": item.name,
            "identifier": item.id, "version": item.version, "sha256": item.sha256, "contentSize": (
                str(item.size) if item.size is not None else None), "additionalType": item.kind,
            "description": item.description or f"{item.kind} {item.name} (a reference: not copied into the crate)"}))
    for model in record.models:
        entity = g.add({
            "@id": f"#model-{_slug(model.registered)}-{_slug(model.version)}", "@type": "Dataset",
            "name": f"{model.registered} version {model.version}", "version": model.version,
            "additionalType": "model version", "identifier": f"{model.registered}/{model.version}",
            "sha256": model.sha256, "description": f"model {model.model} ({model.role}); trained by "
                                                   f"{model.training_run or 'unknown'}; gate: "
                                                   f"{model.gate or 'no decision kept'}"})
        if model.role == "used":
            main_objects.append(entity)

    # -- outputs
    workflow_outputs, main_results, parts = [], [], []
    for output in record.outputs:
        param = g.add({"@id": f"#output-{_slug(output.name)}", "@type": "FormalParameter", "name": output.name,
                       "additionalType": "File", "description": f"output {output.name}"})
        workflow_outputs.append(param)
        ident = carried.get(output.name) or f"#file-{_slug(output.name)}"
        entity = g.add({"@id": ident, "@type": "File", "name": output.name, "encodingFormat": output.media_type,
                        "contentSize": str(output.size), "sha256": output.sha256, "exampleOfWork": param,
                        "sdDatePublished": published,
                        "description": output.description or (
                            "" if output.name in carried else "not carried: too large; its size and SHA-256 name it")})
        main_results.append(entity)
        if output.name in carried:
            parts.append(entity)

    # -- steps, their tools and the values that connect them
    steps, tools, controls, workflow_connections = [], [], [], []
    ran = [s for s in record.steps if _ran(s)]
    result_step = record.steps[-1].id if record.steps else None
    for position, step in enumerate(record.steps):
        slug = _slug(step.id)
        tool_id = f"#tool-{slug}"
        tool_inputs, tool_objects, connections = [], [], []
        for arg, value in sorted(step.arguments.items()):
            param = g.add({"@id": f"{tool_id}-in-{_slug(arg)}", "@type": "FormalParameter", "name": arg,
                           "additionalType": _kind_of(value) if not isinstance(value, dict) else "PropertyValue",
                           "description": f"argument {arg} of {step.tool}"})
            tool_inputs.append(param)
            tool_objects.append(g.add({"@id": f"#value-{slug}-{_slug(arg)}", "@type": "PropertyValue", "name": arg,
                                       "value": _text(value), "exampleOfWork": param}))
            for source in sorted(_references(value, "from_parameter")):
                if source in record.parameters:
                    connections.append(g.add({"@id": f"#connection-{slug}-{_slug(arg)}-param-{_slug(source)}",
                                              "@type": "ParameterConnection",
                                              "sourceParameter": _ref(f"#param-{_slug(source)}"),
                                              "targetParameter": param}))
            for source in sorted(_references(value, "from_node")):
                connections.append(g.add({"@id": f"#connection-{slug}-{_slug(arg)}-node-{_slug(source)}",
                                          "@type": "ParameterConnection",
                                          "sourceParameter": _ref(f"#tool-{_slug(source)}-out"),
                                          "targetParameter": param}))
        out = g.add({"@id": f"{tool_id}-out", "@type": "FormalParameter", "name": "result",
                     "additionalType": "PropertyValue", "description": f"what {step.tool} returned"})
        url = step.url or (f"{OPENEO_PROCESSES}#{step.tool}" if record.procedure_language == "openeo"
                           and step.namespace in (None, "predefined") else PROJECT_URL)
        tool = g.add({"@id": tool_id, "@type": "SoftwareApplication", "name": f"{step.tool} (step {step.id})",
                      "url": url, "softwareVersion": step.version or record.engine_version,
                      "description": step.description or (f"process {step.tool} of namespace "
                                                          f"{step.namespace or 'predefined'}"),
                      "input": tool_inputs, "output": [out]})
        steps.append(g.add({"@id": f"#step-{slug}", "@type": "HowToStep", "name": step.id, "position": str(position),
                            "workExample": tool, "connection": connections}))
        result = g.add({"@id": f"#value-{slug}-out", "@type": "PropertyValue", "name": f"result of {step.id}",
                        "value": step.status, "exampleOfWork": out,
                        "description": "kept only as the run's outputs (a step's own value is not kept)"})
        if not _ran(step):
            continue
        tools.append(tool)
        step_status = FAILED if step.status == "error" else COMPLETED
        action = g.add({"@id": f"#action-{slug}", "@type": "CreateAction", "name": f"{step.tool} ({step.id})",
                        "description": f"step {step.id} of run {record.id}: {step.status}",
                        "instrument": tool, "agent": person, "object": tool_objects, "result": [result],
                        "startTime": when(step.started or record.started),
                        "endTime": when(step.ended or record.ended), "actionStatus": step_status,
                        "error": (record.error or {}).get("message") if step_status == FAILED else None})
        actions.append(action)
        controls.append(g.add({"@id": f"#control-{slug}", "@type": "ControlAction", "name": f"orchestrate {step.id}",
                               "instrument": _ref(f"#step-{slug}"), "object": action, "actionStatus": step_status}))
    if result_step is not None and any(s.id == result_step for s in ran):
        for output in record.outputs:
            workflow_connections.append(g.add({
                "@id": f"#connection-output-{_slug(output.name)}", "@type": "ParameterConnection",
                "sourceParameter": _ref(f"#tool-{_slug(result_step)}-out"),
                "targetParameter": _ref(f"#output-{_slug(output.name)}")}))

    usage = [g.add({"@id": f"#usage-{_slug(k)}", "@type": "PropertyValue", "name": k, "propertyID": k,
                    "value": round(float(v), 6), "unitCode": "SEC" if k.endswith("seconds") else "C62"})
             for k, v in sorted(record.usage.items())]
    site = g.add({"@id": f"#site-{_slug(record.site)}", "@type": "PropertyValue", "name": "site",
                  "propertyID": "site", "value": record.site})
    environment = [site]
    if record.executor:
        environment.append(g.add({"@id": "#executor", "@type": "PropertyValue", "name": "executor",
                                  "propertyID": "executor", "value": record.executor}))
    if record.remote:
        environment.append(g.add({"@id": "#remote", "@type": "PropertyValue", "name": "remote run",
                                  "propertyID": "remoteRun", "value": _text(record.remote)}))
    main = g.add({"@id": main_id, "@type": "CreateAction", "name": record.name,
                  "description": record.description, "instrument": _ref(proc), "agent": person,
                  "object": main_objects, "result": main_results, "startTime": when(record.started or record.created),
                  "endTime": when(record.ended or record.started or record.created), "actionStatus": status,
                  "error": (record.error or {}).get("message") if status == FAILED else None,
                  "environment": environment, "resourceUsage": usage,
                  "isPartOf": _ref(f"#run-{_slug(record.part_of)}") if record.part_of else None,
                  "hasPart": [_ref(f"#run-{_slug(p)}") for p in record.parts]})
    for other in [*record.parts, *([record.part_of] if record.part_of else [])]:
        g.add({"@id": f"#run-{_slug(other)}", "@type": "Thing", "name": f"run {other}", "identifier": other})
    organize = g.add({"@id": "#organize", "@type": "OrganizeAction", "name": f"twinengine ran {record.id}",
                      "instrument": engine, "agent": person, "object": controls, "result": main,
                      "startTime": when(record.started or record.created),
                      "endTime": when(record.ended or record.started or record.created), "actionStatus": status,
                      "error": (record.error or {}).get("message") if status == FAILED else None})
    g.add({"@id": proc, "@type": ["File", "SoftwareSourceCode", "ComputationalWorkflow", "HowTo"],
           "name": record.workflow or record.procedure_name, "programmingLanguage": language,
           "conformsTo": _ref("https://bioschemas.org/profiles/ComputationalWorkflow/1.0-RELEASE"),
           "version": record.app.partition("@")[2] if record.app else record.procedure_sha256[:12],
           "url": PROJECT_URL, "encodingFormat": "application/json", "contentSize": str(procedure_size),
           "sha256": record.procedure_sha256, "sdDatePublished": published, "input": workflow_inputs,
           "output": workflow_outputs,
           "hasPart": tools, "step": steps, "connection": workflow_connections,
           "description": f"{record.kind} procedure of run {record.id}"
                          + (f" (app {record.app}, archive sha256 {record.app_sha256})" if record.app else "")})
    g.add({"@id": "README.md", "@type": "File", "name": "README", "about": _ref("./"),
           "encodingFormat": "text/markdown", "contentSize": str(readme_size), "sdDatePublished": published})
    g.add({"@id": "twinengine-run.json", "@type": "File", "name": "the run's record",
           "encodingFormat": "application/json", "contentSize": str(record_size), "sdDatePublished": published,
           "description": "what `twin runs rerun CRATE` reads"})
    root = {"@id": "./", "@type": "Dataset", "name": f"{record.name} ({record.id})",
            "description": record.description, "datePublished": published,
            "license": lic, "author": person, "publisher": operator, "conformsTo": profiles,
            "mainEntity": _ref(proc),
            "hasPart": [_ref(proc), _ref("README.md"), _ref("twinengine-run.json"), *parts],
            "mentions": [main, organize, *actions, *controls], "identifier": record.id}
    descriptor = {"@id": "ro-crate-metadata.json", "@type": "CreativeWork",
                  "conformsTo": [_ref("https://w3id.org/ro/crate/1.1"),
                                 _ref("https://w3id.org/workflowhub/workflow-ro-crate/1.0")], "about": _ref("./")}
    # The run's own action first among the entities: readers that take "the first execution" find it (the
    # specification's competency question 11 takes one CreateAction mentioned by the root, in store order).
    first = g.entities.pop(main_id)
    graph = [_compact(descriptor), _compact(root), first, *g.entities.values()]
    return {"@context": CONTEXT, "@graph": graph}


def readme(record: RunRecord, outputs: list[Output]) -> str:
    """The crate's README.md: the run in a few lines, for a person who opens the zip."""
    lines = [f"# {record.name}", "", record.description, "",
             f"- run `{record.id}` ({record.kind}), {record.status}, by {record.owner}",
             f"- started {when(record.started) or '-'}, ended {when(record.ended) or '-'}",
             f"- engine twinengine {record.engine_version}, site {record.site}"]
    if record.app:
        lines.append(f"- app {record.app} (archive sha256 {record.app_sha256 or 'unknown'})")
    if record.seeds:
        lines.append("- seeds: " + ", ".join(f"{k} {v}" for k, v in sorted(record.seeds.items())))
    lines += ["", "Inputs (references, not copied):", ""]
    lines += [f"- {i.kind} `{i.name}` version {i.version or '-'} sha256 {i.sha256 or 'unknown'}" for i in record.inputs]
    lines += ["", "Outputs:", ""]
    lines += [f"- `{o.name}` {o.size} bytes sha256 {o.sha256}" + ("" if o.carried else " (not carried)")
              for o in outputs]
    lines += ["", "Run it again: `twin runs rerun crate.zip` (on any twinengine that has the app and inputs).", ""]
    return "\n".join(lines)
