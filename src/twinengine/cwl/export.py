"""An app's openEO workflow exported as an OGC EO Application Package (``twin app export-cwl``).

The package is one CWL v1.2 document: a Workflow (the app's workflow, its graph parameters as inputs, one
Directory output: a STAC catalog of the run's results) and the CommandLineTool it calls, which runs the workflow
on a twin of an engine and stages the results out (``run_on_engine``, copied in whole: Python's standard library
only, so any Python 3 image runs it). What the OGC Best Practice and ``eoap-validator``'s eoap-package profile
ask is there: ids other than ``main``, a label and doc on every process, input, output and step, a
``DockerRequirement`` (under ``requirements``: the tool needs a Python, which the image gives),
``ResourceRequirement`` bounds, ``NetworkAccess`` (it calls the engine), ``s:softwareVersion`` (the app's
version). No ``$schemas`` (cwltool would try to fetch them). The engine's token is no input (a job's inputs are
logged and kept): the tool reads ``TWIN_TOKEN`` from its environment (``cwltool --preserve-environment
TWIN_TOKEN``). Parameters the engine fills itself (a graph default,
the twin's state through ``initial_state``) are optional and left to the engine when not given.
"""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from pathlib import Path
from typing import Any

from twinengine.catalog.manifest import Manifest
from twinengine.errors import ValidationFailed

__all__ = ["IMAGE", "export_app", "export_workflow"]

IMAGE = "docker.io/library/python:3.11-slim"
RESOURCES = {"coresMin": 1, "coresMax": 1, "ramMin": 256, "ramMax": 1024}
_SCRIPT = "run_on_engine.py"
_TYPES = {"string": "string", "number": "double", "integer": "long", "boolean": "boolean"}


def _script() -> str:
    return resources.files("twinengine.cwl").joinpath(_SCRIPT).read_text()


def _cwl_type(schema: Any) -> tuple[str, str]:
    """The CWL type of an openEO parameter schema (without its ``null``) and how the tool reads it
    (``text``: the file's text, ``json``: JSON); objects, arrays and mixed types are ``Any``, as JSON."""
    alternatives = schema if isinstance(schema, list) else [schema]
    kinds = set()
    for alternative in alternatives:
        kind = alternative.get("type") if isinstance(alternative, dict) else None
        kinds |= set(kind) if isinstance(kind, list) else {kind}
    kinds.discard("null")
    if len(kinds) == 1 and (only := next(iter(kinds))) in _TYPES:
        return _TYPES[str(only)], "text" if only == "string" else "json"
    return "Any", "json"


def _doc(parameter: dict[str, Any], workflow: str, state: dict[str, tuple[str, ...]]) -> str:
    text = str(parameter.get("description") or parameter["name"]).rstrip(".") + "."
    if parameter["name"] in state:
        props = state[parameter["name"]]
        said = props[0] if len(props) == 1 else f"{', '.join(props[:-1])} or {props[-1]}, whichever is newer"
        text += f" Not given: the twin's state property {said} (initial_state)."
    elif "default" in parameter:
        text += f" Not given: the workflow's default, {json.dumps(parameter['default'])}."
    return text


def export_workflow(manifest: Manifest, app_dir: Path, workflow: str, *, image: str = IMAGE) -> dict[str, Any]:
    """The application package of ``workflow`` of the app in ``app_dir`` (its manifest ``manifest``)."""
    spec = manifest.workflows.get(workflow)
    if spec is None:
        raise ValidationFailed.one("workflow", f"{manifest.ref} has no workflow {workflow!r} (it has "
                                               f"{', '.join(manifest.workflows) or 'none'})")
    graph_text = (app_dir / spec.process_graph).read_bytes()
    graph = json.loads(graph_text)
    parameters: list[dict[str, Any]] = list(graph.get("parameters") or [])
    ident = f"{manifest.name}-{workflow}".replace("_", "-")
    tool_id = f"{ident}-on-engine"
    state = spec.start_sources()
    inputs: dict[str, Any] = {
        "engine": {"type": "string", "label": "Engine", "doc": "URL of the twinengine to run on, e.g. "
                                                               "https://engine.example.org."},
        "twin": {"type": "string", "label": "Twin", "doc": f"Name or id of a twin of {manifest.ref} there."},
    }
    kinds: dict[str, str] = {}
    for parameter in parameters:
        kind, read = _cwl_type(parameter.get("schema", {}))
        optional = "default" in parameter or parameter.get("optional") or parameter["name"] in state
        name = parameter["name"]
        if name in inputs:
            raise ValidationFailed.one(f"workflows.{workflow}.parameters.{name}", "the name is the package's own "
                                                                                 "input (engine or twin)")
        inputs[name] = {"type": ["null", kind] if optional else kind, "label": name,
                        "doc": _doc(parameter, workflow, state)}
        kinds[name] = read
    description = spec.description or graph.get("description") or graph.get("summary") or workflow
    graph_sha = hashlib.sha256(graph_text).hexdigest()
    doc = (f"{description.rstrip('.')}. The openEO workflow {workflow} of the twinengine app {manifest.ref} "
           f"(process graph SHA-256 {graph_sha}), run on a twin of that app version on an engine; its results "
           "come back as a STAC catalog (the run as an item, its files and its W3C PROV document as assets).")
    output_doc = "STAC catalog of the run's results: one item (the run), its files and provenance as assets."
    tool = {
        "class": "CommandLineTool", "id": tool_id,
        "label": f"Run {workflow} of {manifest.ref} on an engine",
        "doc": f"Runs the workflow {workflow} on the twin through the engine's API, waits for the run, and writes "
               "its files, checked against their SHA-256, as a STAC catalog in results/.",
        "requirements": {
            "DockerRequirement": {"dockerPull": image},
            "ResourceRequirement": dict(RESOURCES),
            "NetworkAccess": {"networkAccess": True},
            "InitialWorkDirRequirement": {"listing": [
                {"entryname": _SCRIPT, "entry": _script()},
                {"entryname": "kinds.json", "entry": json.dumps(kinds)},
                *({"entryname": f"parameters/{name}", "entry": f"$(inputs.{name})"} for name in kinds)]},
        },
        "baseCommand": ["python3", _SCRIPT],
        "arguments": ["--app", manifest.ref, "--workflow", workflow],
        "inputs": {
            "engine": {**inputs["engine"], "inputBinding": {"prefix": "--engine"}},
            "twin": {**inputs["twin"], "inputBinding": {"prefix": "--twin"}},
            **{name: dict(inputs[name]) for name in kinds},
        },
        "outputs": {"results": {"type": "Directory", "label": "Results", "doc": output_doc,
                                "outputBinding": {"glob": "results"}}},
    }
    main = {
        "class": "Workflow", "id": ident, "label": f"{manifest.ref}: {workflow}", "doc": doc,
        "inputs": inputs,
        "outputs": {"results": {"type": "Directory", "label": "Results", "doc": output_doc,
                                "outputSource": "run/results"}},
        "steps": {"run": {"label": f"Run {workflow}", "doc": f"Runs {workflow} on the twin and stages its "
                                                             "results out.",
                          "run": f"#{tool_id}", "in": {name: name for name in inputs}, "out": ["results"]}},
    }
    document = {
        "cwlVersion": "v1.2",
        "$namespaces": {"s": "https://schema.org/"},
        "s:softwareVersion": manifest.version,
        "s:name": f"{manifest.ref} {workflow}",
        "s:description": description,
        "$graph": [main, tool],
    }
    # no object twice (through JSON): a YAML writer would alias it, and CWL's loader resolves ids in place
    return dict(json.loads(json.dumps(document)))


def export_app(app_dir: Path, *, workflow: str | None = None, image: str = IMAGE) -> dict[str, dict[str, Any]]:
    """The packages of every workflow of the app in ``app_dir`` (or of ``workflow``), by file name."""
    from twinengine.catalog.validate import check_app_dir

    manifest, problems = check_app_dir(app_dir)
    if manifest is None or problems:
        raise ValidationFailed(problems) if problems else ValidationFailed.one("twinapp.yaml", "no manifest")
    names = [workflow] if workflow is not None else list(manifest.workflows)
    return {f"{manifest.name}-{name}.cwl": export_workflow(manifest, app_dir, name, image=image) for name in names}
