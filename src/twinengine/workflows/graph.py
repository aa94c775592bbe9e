"""openEO process graphs: parse the JSON, check it against the registry before anything runs.

A graph is a flat map of nodes (``process_id``, ``namespace``, ``arguments``, ``result``); arguments hold
literals, ``{"from_node": id}``, ``{"from_parameter": name}`` and callbacks (``{"process_graph": {...}}``).
Checks: one result node, references that resolve, no cycles, known processes, required arguments present,
no undeclared arguments, literal values of the declared JSON type. Each failure names the node.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from graphlib import CycleError, TopologicalSorter
from typing import TYPE_CHECKING, Any

from twinengine.errors import (
    ProcessGraphInvalid,
    ProcessGraphMissing,
    ProcessParameterInvalid,
    ProcessParameterMissing,
    ProcessParameterUnsupported,
)
from twinengine.workflows.registry import ProcessRegistry

if TYPE_CHECKING:
    from jsonschema import Draft7Validator

__all__ = ["Graph", "Node", "graph_hash", "parse_graph", "parse_process", "references", "validate"]

MAX_NODES = 20_000


@dataclass
class Node:
    id: str
    process_id: str
    namespace: str | None
    arguments: dict[str, Any]
    result: bool = False
    description: str | None = None


@dataclass
class Graph:
    """A parsed (sub-)graph: nodes, the result node, an execution order, and its callbacks by path."""

    nodes: dict[str, Node]
    result: str
    order: list[str]
    depends: dict[str, set[str]]
    parameters: list[dict[str, Any]] = field(default_factory=list)
    callbacks: dict[tuple[str, str], Graph] = field(default_factory=dict)

    def count(self) -> int:
        return len(self.nodes) + sum(cb.count() for cb in self.callbacks.values())


def graph_hash(process: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of a process (graph + parameters): what provenance and caching key on."""
    return hashlib.sha256(json.dumps(process, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def parse_process(body: Any) -> dict[str, Any]:
    """Accept ``{"process_graph": {...}, "parameters": [...]}``, ``{"process": {...}}`` or a bare node map."""
    if isinstance(body, dict) and isinstance(body.get("process"), dict):
        body = body["process"]
    if not isinstance(body, dict) or not body:
        raise ProcessGraphMissing("a process graph (a map of nodes with process_id) is required")
    if "process_graph" in body:
        if not isinstance(body["process_graph"], dict) or not body["process_graph"]:
            raise ProcessGraphMissing("process_graph must be a non-empty map of nodes")
        return body
    if all(isinstance(v, dict) and "process_id" in v for v in body.values()):
        return {"process_graph": body}
    raise ProcessGraphMissing("a process graph (a map of nodes with process_id) is required")


def references(value: Any) -> tuple[set[str], set[str]]:
    """(from_node ids, from_parameter names) used in an argument value, not descending into callbacks."""
    nodes: set[str] = set()
    params: set[str] = set()
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if "from_node" in item and len(item) == 1:
                nodes.add(str(item["from_node"]))
            elif "from_parameter" in item and len(item) == 1:
                params.add(str(item["from_parameter"]))
            elif "process_graph" in item and isinstance(item["process_graph"], dict):
                continue
            else:
                stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return nodes, params


def _callbacks(value: Any, path: str, out: list[tuple[str, dict[str, Any]]]) -> None:
    if isinstance(value, dict):
        if "process_graph" in value and isinstance(value["process_graph"], dict) and len(value) <= 2:
            out.append((path, value))
            return
        for k, v in value.items():
            _callbacks(v, f"{path}.{k}", out)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _callbacks(v, f"{path}[{i}]", out)


def parse_graph(process: dict[str, Any], *, where: str = "") -> Graph:
    """Structure only: nodes, one result, references resolve, no cycles. Recurse into callbacks."""
    raw = process.get("process_graph")
    if not isinstance(raw, dict) or not raw:
        raise ProcessGraphMissing(f"{where or 'process'}: process_graph must be a non-empty map of nodes")
    if len(raw) > MAX_NODES:
        raise ProcessGraphInvalid(f"process graph has {len(raw)} nodes; the limit is {MAX_NODES}")
    nodes: dict[str, Node] = {}
    for node_id, data in raw.items():
        label = f"{where}{node_id}"
        if not isinstance(data, dict) or not isinstance(data.get("process_id"), str) or not data["process_id"]:
            raise ProcessGraphInvalid(f"node {label!r}: process_id is required", node=label)
        arguments = data.get("arguments", {})
        if not isinstance(arguments, dict):
            raise ProcessGraphInvalid(f"node {label!r}: arguments must be a map", node=label)
        namespace = data.get("namespace")
        if namespace is not None and not isinstance(namespace, str):
            raise ProcessGraphInvalid(f"node {label!r}: namespace must be a string", node=label)
        nodes[str(node_id)] = Node(str(node_id), data["process_id"], namespace, arguments,
                                   bool(data.get("result", False)), data.get("description"))
    results = [n.id for n in nodes.values() if n.result]
    if len(results) != 1:
        raise ProcessGraphInvalid(f"{where or 'process graph'}: exactly one node must have result: true "
                                  f"(found {len(results)})")
    depends: dict[str, set[str]] = {}
    callbacks: dict[tuple[str, str], Graph] = {}
    for node in nodes.values():
        deps, _ = references(node.arguments)
        for dep in deps:
            if dep not in nodes:
                raise ProcessGraphInvalid(f"node {where}{node.id!r}: from_node {dep!r} does not exist",
                                          node=f"{where}{node.id}")
        depends[node.id] = deps
        found: list[tuple[str, dict[str, Any]]] = []
        for name, value in node.arguments.items():
            _callbacks(value, name, found)
        for path, sub in found:
            callbacks[(node.id, path)] = parse_graph(sub, where=f"{where}{node.id}.{path}/")
    try:
        order = list(TopologicalSorter(depends).static_order())
    except CycleError as exc:
        cycle = " -> ".join(str(n) for n in exc.args[1])
        first = f"{where}{exc.args[1][0]}"
        raise ProcessGraphInvalid(f"node {first!r} is part of a cycle: {cycle}", node=first) from None
    params = process.get("parameters") or []
    if not isinstance(params, list) or not all(isinstance(p, dict) and isinstance(p.get("name"), str)
                                               for p in params):
        raise ProcessGraphInvalid("parameters must be a list of {name, schema, ...}")
    return Graph(nodes, results[0], order, depends, params, callbacks)


def _is_literal(value: Any) -> bool:
    nodes, params = references(value)
    found: list[tuple[str, dict[str, Any]]] = []
    _callbacks(value, "", found)
    return not nodes and not params and not found


def _schema_validator(schema: Any) -> Draft7Validator | None:
    from jsonschema import Draft7Validator  # here: the API answers before it imports jsonschema

    if isinstance(schema, list):
        schema = {"anyOf": schema}
    if not isinstance(schema, dict) or not schema:
        return None
    return Draft7Validator(schema)


_VALIDATORS: dict[str, Draft7Validator | None] = {}
# A process whose description says so (arccos, arcsin, ln, log) answers NaN for a value outside its schema's
# range: the range describes the meaningful values, and such a value is no error (the specification's tests
# send -2 and 2 to arccos and expect NaN).
_NAN_OUT_OF_RANGE = "`NaN` is returned for values"
_BOUNDS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")


def _unbounded(schema: Any) -> Any:
    """``schema`` without its range (in a list of alternatives, in each)."""
    if isinstance(schema, list):
        return [_unbounded(s) for s in schema]
    if isinstance(schema, dict):
        return {k: v for k, v in schema.items() if k not in _BOUNDS}
    return schema


def _type_problem(schema: Any, value: Any) -> str | None:
    key = json.dumps(schema, sort_keys=True, default=str)
    if key not in _VALIDATORS:
        if len(_VALIDATORS) > 4096:
            _VALIDATORS.clear()
        _VALIDATORS[key] = _schema_validator(schema)
    validator = _VALIDATORS[key]
    if validator is None:
        return None
    error = next(iter(validator.iter_errors(value)), None)
    if error is None:
        return None
    return "does not match the declared type" + (f" ({error.message[:160]})" if error.message else "")


def validate(graph: Graph, registry: ProcessRegistry, *, app_version: str | None = None,
             available: set[str] | None = None, where: str = "", _checked: set[str] | None = None) -> None:
    """Check every node against its process spec. ``available`` are the parameter names in scope.

    The graph of a user-defined process a node calls is checked too (once per process), naming the node.
    """
    scope = set(available or ()) | {p["name"] for p in graph.parameters}
    checked = _checked if _checked is not None else set()
    for node in graph.nodes.values():
        label = f"{where}{node.id}"
        entry = registry.get(node.process_id, node.namespace, app_version=app_version, node=label)
        if entry.process is not None and entry.id not in checked:
            checked.add(entry.id)
            defined = parse_graph(entry.process, where=f"{label}/")
            validate(defined, registry, available={p["name"] for p in entry.parameters}, where=f"{label}/",
                     _checked=checked)
        declared = {p["name"]: p for p in entry.parameters}
        for name in node.arguments:
            if name not in declared:
                raise ProcessParameterUnsupported(
                    f"node {label!r}: process {node.process_id!r} has no parameter {name!r} "
                    f"(it takes {', '.join(declared) or 'none'})", node=label)
        for name, param in declared.items():
            if name not in node.arguments and not param.get("optional", False) and "default" not in param:
                raise ProcessParameterMissing(
                    f"node {label!r}: process {node.process_id!r} requires argument {name!r}", node=label)
        for name, value in node.arguments.items():
            _, used = references(value)
            unknown = used - scope
            if unknown and not where:
                raise ProcessParameterMissing(
                    f"node {label!r}: argument {name!r} refers to parameter {sorted(unknown)[0]!r}, "
                    "which the process graph does not declare", node=label)
            if _is_literal(value):
                schema = declared[name].get("schema")
                if _NAN_OUT_OF_RANGE in str(entry.spec.get("description", "")):
                    schema = _unbounded(schema)
                problem = _type_problem(schema, value)
                if problem:
                    raise ProcessParameterInvalid(
                        f"node {label!r}: argument {name!r} of {node.process_id!r} {problem}", node=label)
    for (node_id, path), callback in graph.callbacks.items():
        node = graph.nodes[node_id]
        entry = registry.get(node.process_id, node.namespace, app_version=app_version)
        arg = path.split(".")[0].split("[")[0]
        inner = next((p for p in entry.parameters if p["name"] == arg), {})
        names = _callback_parameter_names(inner.get("schema"))
        validate(callback, registry, app_version=app_version, available=scope | names,
                 where=f"{where}{node_id}.{path}/", _checked=checked)


def _callback_parameter_names(schema: Any) -> set[str]:
    names: set[str] = set()
    for item in schema if isinstance(schema, list) else [schema]:
        if isinstance(item, dict):
            for param in item.get("parameters") or []:
                if isinstance(param, dict) and "name" in param:
                    names.add(str(param["name"]))
    return names
