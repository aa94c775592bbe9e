"""A CWL application package as the engine reads it: the document, its main process, inputs and outputs.

An OGC EO Application Package is a CWL v1.2 document (often a ``$graph`` of a Workflow ``main`` and its
CommandLineTools) whose File and Directory inputs and outputs are staged in and out, Directories as STAC
catalogs. The engine checks its shape here (what it must know to deploy, describe and run it, each problem
naming its place in the document); cwltool validates the rest in a sandboxed worker.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import yaml

from twinengine.errors import Problem, ValidationFailed

__all__ = ["FILE_TYPES", "JOB_CONTROL", "Package", "PackageInput", "PackageOutput", "job_control_options",
           "parse_package"]

VERSIONS = ("v1.0", "v1.1", "v1.2")
PROCESS_CLASSES = ("Workflow", "CommandLineTool", "ExpressionTool")
FILE_TYPES = ("File", "Directory")
MAX_PACKAGE_BYTES = 4 << 20
JOB_CONTROL = ("sync-execute", "async-execute", "dismiss")  # OGC API - Processes 1.0, all a package may take
_SCALARS = {"string": {"type": "string"}, "int": {"type": "integer"}, "long": {"type": "integer"},
            "float": {"type": "number"}, "double": {"type": "number"}, "boolean": {"type": "boolean"},
            "Any": {}, "File": {"type": "string", "format": "uri"}, "Directory": {"type": "string", "format": "uri"}}


@dataclass(frozen=True)
class PackageInput:
    id: str
    type: Any  # the CWL type, as written
    optional: bool
    default: Any
    label: str | None
    doc: str | None

    @property
    def kind(self) -> str | None:
        """``File`` or ``Directory`` (also for arrays of them), else None."""
        return _file_kind(self.type)


@dataclass(frozen=True)
class PackageOutput:
    id: str
    type: Any
    label: str | None
    doc: str | None


@dataclass(frozen=True)
class Package:
    """A parsed package: the document as given, its main process's id, label, inputs and outputs."""

    document: dict[str, Any]
    process_id: str
    fragment: str | None  # ``main`` of a ``$graph``, run as ``package.cwl#main``
    label: str | None
    doc: str | None
    version: str
    inputs: list[PackageInput]
    outputs: list[PackageOutput]
    job_control: tuple[str, ...] = JOB_CONTROL  # an application package's processDescription may narrow it

    @property
    def sha256(self) -> str:
        return hashlib.sha256(json.dumps(self.document, sort_keys=True).encode()).hexdigest()

    def description(self, process_id: str | None = None) -> dict[str, Any]:
        """The OGC process description of the package (OGC API - Processes - Part 1)."""
        return {
            "id": process_id or self.process_id,
            "title": self.label or process_id or self.process_id,
            **({"description": self.doc} if self.doc else {}),
            "version": self.version,
            "jobControlOptions": list(self.job_control),
            "outputTransmission": ["value", "reference"],
            "inputs": {i.id: _input_description(i) for i in self.inputs},
            "outputs": {o.id: {"title": o.label or o.id, **({"description": o.doc} if o.doc else {}),
                               "schema": _schema(_required_type(o.type))} for o in self.outputs},
        }


def parse_package(source: Any, *, where: str = "package") -> Package:
    """The package of ``source`` (a dict, or JSON or YAML text); raises ``ValidationFailed`` naming the place of
    each problem under ``where``. A DockerRequirement under ``requirements`` is refused: no container runtime
    runs packages here (as a hint it is not needed, and the commands run in the sandbox without it)."""
    document = _load(source, where)
    version = document.get("cwlVersion")
    if version not in VERSIONS:
        raise ValidationFailed.one(f"{where}.cwlVersion", f"a CWL document of version {', '.join(VERSIONS)} is "
                                                          f"required (found {version!r})")
    main, place, fragment = _main_process(document, where)
    _refuse_containers(document, where)
    process_id = str(main.get("id") or "main").lstrip("#").rpartition("/")[2] or "main"
    inputs = [_input(entry, f"{place}.inputs[{i}]") for i, entry in enumerate(_entries(main.get("inputs"),
                                                                                          f"{place}.inputs"))]
    outputs = [_output(entry, f"{place}.outputs[{i}]") for i, entry in enumerate(_entries(main.get("outputs"),
                                                                                            f"{place}.outputs"))]
    software = main.get("s:softwareVersion") or document.get("s:softwareVersion")
    return Package(document=document, process_id=process_id, fragment=fragment, label=_text(main.get("label")),
                   doc=_text(main.get("doc")), version=str(software) if software else "1.0.0", inputs=inputs,
                   outputs=outputs)


def job_control_options(value: Any, where: str) -> tuple[str, ...]:
    """The ``jobControlOptions`` an application package's ``processDescription`` declares: how its jobs may be
    run (``sync-execute``, ``async-execute``: at least one) and whether they may be dismissed (``dismiss``)."""
    if not isinstance(value, list) or not value:
        raise ValidationFailed.one(where, f"a list of {', '.join(JOB_CONTROL)} is required")
    for i, option in enumerate(value):
        if option not in JOB_CONTROL:
            raise ValidationFailed.one(f"{where}[{i}]", f"one of {', '.join(JOB_CONTROL)} is required "
                                                        f"(found {option!r})")
    if not {"sync-execute", "async-execute"} & set(value):
        raise ValidationFailed.one(where, "sync-execute, async-execute or both are required: a process runs one "
                                          "way or the other")
    return tuple(option for option in JOB_CONTROL if option in value)


def _load(source: Any, where: str) -> dict[str, Any]:
    if isinstance(source, bytes | str):
        text = source.decode() if isinstance(source, bytes) else source
        if len(text.encode()) > MAX_PACKAGE_BYTES:
            raise ValidationFailed.one(where, f"a package of at most {MAX_PACKAGE_BYTES} bytes is accepted")
        try:
            source = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ValidationFailed.one(where, f"neither JSON nor YAML: {str(exc)[:300]}") from None
    if not isinstance(source, dict):
        raise ValidationFailed.one(where, "a CWL document (an object) is required")
    return source


def _main_process(document: dict[str, Any], where: str) -> tuple[dict[str, Any], str, str | None]:
    graph = document.get("$graph")
    if graph is None:
        if document.get("class") not in PROCESS_CLASSES:
            raise ValidationFailed.one(f"{where}.class", f"one of {', '.join(PROCESS_CLASSES)} is required")
        return document, where, None
    if not isinstance(graph, list) or not graph or not all(isinstance(p, dict) for p in graph):
        raise ValidationFailed.one(f"{where}.$graph", "a list of processes is required")
    for i, process in enumerate(graph):
        if process.get("class") not in PROCESS_CLASSES:
            raise ValidationFailed.one(f"{where}.$graph[{i}].class",
                                       f"one of {', '.join(PROCESS_CLASSES)} is required")
    named = [i for i, p in enumerate(graph) if str(p.get("id", "")).lstrip("#") == "main"]
    workflows = [i for i, p in enumerate(graph) if p.get("class") == "Workflow"]
    chosen = named[0] if named else workflows[0] if len(workflows) == 1 else None
    if chosen is None:
        raise ValidationFailed.one(f"{where}.$graph", "a process with id main (or a single Workflow) is required")
    fragment = str(graph[chosen].get("id") or "main").lstrip("#")
    return graph[chosen], f"{where}.$graph[{chosen}]", fragment


def _refuse_containers(document: dict[str, Any], where: str) -> None:
    graph = document.get("$graph")
    processes = [(f"{where}.$graph[{i}]", p) for i, p in enumerate(graph)] if isinstance(graph, list) \
        else [(where, document)]
    for place, process in processes:
        requirements = process.get("requirements") or []
        names = list(requirements) if isinstance(requirements, dict) else [
            r.get("class") for r in requirements if isinstance(r, dict)]
        if "DockerRequirement" in names:
            raise ValidationFailed.one(f"{place}.requirements.DockerRequirement", (
                "a container image is required by this package, and no container runtime runs packages on this "
                "engine: declare it under hints (its commands then run in the engine's sandbox, with the system's "
                "tools) or run the package where a container runtime is offered"))


def _entries(value: Any, where: str) -> list[dict[str, Any]]:
    """CWL's two spellings of inputs and outputs (a list with ids, or a map by id) as a list with ids."""
    if value is None:
        return []
    if isinstance(value, dict):
        return [({"id": key, "type": entry} if not isinstance(entry, dict) else {"id": key, **entry})
                for key, entry in value.items()]
    if isinstance(value, list) and all(isinstance(e, dict) for e in value):
        return value
    raise ValidationFailed.one(where, "a list or a map of parameters is required")


def _short_id(entry: dict[str, Any], where: str) -> str:
    raw = entry.get("id")
    if not isinstance(raw, str) or not raw.strip("#"):
        raise ValidationFailed.one(f"{where}.id", "an id is required")
    return raw.lstrip("#").rpartition("/")[2]


def _input(entry: dict[str, Any], where: str) -> PackageInput:
    if "type" not in entry:
        raise ValidationFailed.one(f"{where}.type", "a type is required")
    kind = entry["type"]
    return PackageInput(id=_short_id(entry, where), type=kind, optional=_optional(kind) or "default" in entry,
                        default=entry.get("default"), label=_text(entry.get("label")), doc=_text(entry.get("doc")))


def _output(entry: dict[str, Any], where: str) -> PackageOutput:
    if "type" not in entry:
        raise ValidationFailed.one(f"{where}.type", "a type is required")
    return PackageOutput(id=_short_id(entry, where), type=entry["type"], label=_text(entry.get("label")),
                         doc=_text(entry.get("doc")))


def _text(value: Any) -> str | None:
    if isinstance(value, list):
        value = "\n".join(str(v) for v in value)
    return str(value) if value is not None else None


def _optional(kind: Any) -> bool:
    if isinstance(kind, str):
        return kind.endswith("?") or kind == "null"
    if isinstance(kind, list):
        return "null" in kind
    return False


def _required_type(kind: Any) -> Any:
    """The type without its ``null`` (``T?`` or ``[null, T]``)."""
    if isinstance(kind, str) and kind.endswith("?"):
        return kind[:-1]
    if isinstance(kind, list):
        rest = [k for k in kind if k != "null"]
        return rest[0] if len(rest) == 1 else rest
    return kind


def _file_kind(kind: Any) -> str | None:
    kind = _required_type(kind)
    if isinstance(kind, str):
        kind = kind.removesuffix("[]")
        return kind if kind in FILE_TYPES else None
    if isinstance(kind, dict) and kind.get("type") == "array":
        return _file_kind(kind.get("items"))
    return None


def _schema(kind: Any) -> dict[str, Any]:
    """The JSON schema of a CWL type, as an OGC process description gives it."""
    kind = _required_type(kind)
    if isinstance(kind, list):
        return {"oneOf": [_schema(k) for k in kind]}
    if isinstance(kind, str):
        if kind.endswith("[]"):
            return {"type": "array", "items": _schema(kind[:-2])}
        if kind == "stdout" or kind == "stderr":
            return dict(_SCALARS["File"])
        return dict(_SCALARS.get(kind, {}))
    if isinstance(kind, dict):
        if kind.get("type") == "array":
            return {"type": "array", "items": _schema(kind.get("items"))}
        if kind.get("type") == "enum":
            return {"type": "string", "enum": [str(s).rpartition("/")[2] for s in kind.get("symbols") or []]}
        if kind.get("type") == "record":
            return {"type": "object"}
    return {}


def _input_description(entry: PackageInput) -> dict[str, Any]:
    described: dict[str, Any] = {"title": entry.label or entry.id, "minOccurs": 0 if entry.optional else 1,
                                 "maxOccurs": 1, "schema": _schema(entry.type)}
    if entry.doc:
        described["description"] = entry.doc
    if entry.default is not None and not isinstance(entry.default, dict):
        described["schema"] = {**described["schema"], "default": entry.default}
    if entry.kind is not None:
        described["description"] = (entry.doc + " " if entry.doc else "") + (
            "A STAC catalog (Directory): the URL of a STAC item or a run's result." if entry.kind == "Directory"
            else "A file: the URL of a lake file or a run's result.")
    return described


def problems_of(exc: ValidationFailed) -> list[Problem]:
    return list(exc.problems)
