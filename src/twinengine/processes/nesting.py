"""Nested processes (OGC API - Processes - Part 3): an input of an execute request may be the output of another
process, given as ``{"process": URL, "inputs": {...}, "outputs": {"<id>": {}}}``; the whole request compiles to one
openEO process graph, a node per process and a node ``ogc_output`` picking the output a nested process hands on,
so the nesting runs as one run of the engine with one provenance.

Only this engine's processes nest (a URL whose path ends ``/processes/{id}``, on this engine or as a path): a
remote process would make the engine call out to what a caller names. Depth and size are bounded.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlparse

from twinengine.errors import ValidationFailed

__all__ = ["MAX_DEPTH", "MAX_PROCESSES", "OUTPUT_SPEC", "Compiler", "is_nested", "ogc_output"]

MAX_DEPTH = 8
MAX_PROCESSES = 64

OUTPUT_SPEC: dict[str, Any] = {
    "id": "ogc_output",
    "summary": "One output of a process's outputs (OGC API - Processes nested processes)",
    "description": "Returns `data[output]`: the output a nested process hands on to the process it is input of.",
    "categories": ["ogc"],
    "parameters": [
        {"name": "data", "description": "A process's outputs by id.", "schema": {"type": "object"}},
        {"name": "output", "description": "The output's id.", "schema": {"type": "string"}},
    ],
    "returns": {"description": "The output's value.", "schema": {}},
}


def ogc_output(data: Any, output: Any) -> Any:
    from twinengine.errors import ProcessParameterInvalid

    if not isinstance(data, dict) or output not in data:
        have = ", ".join(data) if isinstance(data, dict) else type(data).__name__
        raise ProcessParameterInvalid(f"output: the nested process has no output {output!r} (it has {have})")
    return data[output]


def is_nested(value: Any) -> bool:
    return isinstance(value, dict) and isinstance(value.get("process"), str)


Describe = Callable[[str], dict[str, Any]]
CheckInputs = Callable[[dict[str, Any], Any, str, Callable[[Any], bool]], dict[str, Any]]


class Compiler:
    """Compiles an execute request, nested processes included, into openEO graph nodes."""

    def __init__(self, describe: Describe, check_inputs: CheckInputs, node_of: Callable[[str, dict[str, Any]],
                 dict[str, Any]], origin: str | None = None) -> None:
        self.describe, self.check_inputs, self.node_of, self.origin = describe, check_inputs, node_of, origin
        self.nodes: dict[str, dict[str, Any]] = {}

    def process_id(self, url: str, where: str) -> str:
        parsed = urlparse(url)
        if (parsed.scheme or parsed.netloc) and self.origin is not None and \
                f"{parsed.scheme}://{parsed.netloc}" != self.origin.rstrip("/"):
            raise ValidationFailed.one(f"{where}.process", "only a process of this engine nests here (a remote "
                                                           "process is not called)")
        head, _, process_id = parsed.path.rstrip("/").rpartition("/")
        if not head.endswith("/processes") or not process_id:
            raise ValidationFailed.one(f"{where}.process", "the URL of a process (.../processes/{id}) is required")
        return process_id

    def compile(self, process_id: str, inputs: Any, where: str = "inputs", depth: int = 0) -> str:
        """Nodes for ``process_id`` on ``inputs`` (their nested processes first); the id of its node."""
        if depth > MAX_DEPTH:
            raise ValidationFailed.one(where, f"processes nest at most {MAX_DEPTH} deep")
        if len(self.nodes) >= MAX_PROCESSES:
            raise ValidationFailed.one(where, f"at most {MAX_PROCESSES} processes are nested in one request")
        description = self.describe(process_id)
        checked = self.check_inputs(description, inputs, where, is_nested)
        arguments: dict[str, Any] = {}
        for name, value in checked.items():
            arguments[name] = self._nested(value, f"{where}.{name}", depth) if is_nested(value) else value
        node_id = f"p{len(self.nodes)}"
        self.nodes[node_id] = self.node_of(process_id, arguments)
        return node_id

    def _nested(self, value: dict[str, Any], where: str, depth: int) -> dict[str, str]:
        inner = self.process_id(value["process"], where)
        node = self.compile(inner, value.get("inputs"), f"{where}.inputs", depth + 1)
        declared = list(self.describe(inner).get("outputs") or {})
        wanted = list(value.get("outputs") or {}) or declared[:1]
        if len(wanted) != 1 or wanted[0] not in declared:
            raise ValidationFailed.one(f"{where}.outputs", f"one output of {inner} is required (it has "
                                                           f"{', '.join(declared) or 'none'})")
        pick = f"p{len(self.nodes)}"
        self.nodes[pick] = {"process_id": "ogc_output", "namespace": "ogc",
                            "arguments": {"data": {"from_node": node}, "output": wanted[0]}}
        return {"from_node": pick}
