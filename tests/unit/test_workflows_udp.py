"""User-defined processes without a store: lookup by namespace, parameters and defaults, nesting,
recursion refused naming the node, cacheability, and validation that reaches into the stored graph."""

from __future__ import annotations

from typing import Any

import pytest

from twinengine.errors import ProcessGraphInvalid, ProcessParameterMissing, ProcessUnsupported
from twinengine.workflows.evaluate import Evaluator
from twinengine.workflows.graph import parse_graph, validate
from twinengine.workflows.processes import build_registry
from twinengine.workflows.udp import calls, with_processes

BASE = build_registry()


def udp(graph: dict[str, Any], *params: str, **defaults: Any) -> dict[str, Any]:
    parameters = [{"name": p, "schema": {}} for p in params]
    parameters += [{"name": k, "schema": {}, "default": v, "optional": True} for k, v in defaults.items()]
    return {"process_graph": graph, "parameters": parameters}


AFFINE = udp({"m": {"process_id": "multiply", "arguments": {"x": {"from_parameter": "x"},
                                                            "y": {"from_parameter": "a"}}},
              "s": {"process_id": "add", "arguments": {"x": {"from_node": "m"}, "y": {"from_parameter": "b"}},
                    "result": True}}, "x", "a", b=1)


def run(registry: Any, graph: dict[str, Any]) -> Any:
    parsed = parse_graph({"process_graph": graph})
    validate(parsed, registry)
    return Evaluator(registry, {}).run(parsed)


def test_parameters_defaults_and_namespaces() -> None:
    registry = with_processes(BASE, {"affine": AFFINE})
    assert run(registry, {"n": {"process_id": "affine", "arguments": {"x": 3, "a": 2}, "result": True}}) == 7
    assert run(registry, {"n": {"process_id": "affine", "namespace": "user", "arguments": {"x": 3, "a": 2, "b": 0},
                                "result": True}}) == 6
    with pytest.raises(ProcessUnsupported, match="'n'"):
        run(BASE, {"n": {"process_id": "affine", "arguments": {"x": 3, "a": 2}, "result": True}})
    with pytest.raises(ProcessParameterMissing, match=r"'n'.*'a'"):
        run(registry, {"n": {"process_id": "affine", "arguments": {"x": 3}, "result": True}})


def test_a_user_process_comes_before_a_predefined_one_of_the_same_id() -> None:
    absolute = udp({"n": {"process_id": "multiply", "arguments": {"x": {"from_parameter": "x"}, "y": 10},
                          "result": True}}, "x")
    registry = with_processes(BASE, {"absolute": absolute})
    assert run(registry, {"n": {"process_id": "absolute", "arguments": {"x": -2}, "result": True}}) == -20
    assert run(registry, {"n": {"process_id": "absolute", "namespace": "backend", "arguments": {"x": -2},
                                "result": True}}) == 2


def test_nested_calls_and_cycles() -> None:
    twice = udp({"n": {"process_id": "affine", "arguments": {"x": {"from_parameter": "x"}, "a": 2, "b": 0},
                       "result": True}}, "x")
    loop_a = udp({"n": {"process_id": "loop_b", "arguments": {"x": {"from_parameter": "x"}}, "result": True}}, "x")
    loop_b = udp({"n": {"process_id": "apply", "arguments": {"data": {"from_parameter": "x"}, "process": {
        "process_graph": {"c": {"process_id": "loop_a", "namespace": "user",
                                "arguments": {"x": {"from_parameter": "x"}}, "result": True}}}}, "result": True}}, "x")
    assert calls(loop_b, {"loop_a", "loop_b"}) == {"loop_a"}  # found inside the callback
    registry = with_processes(BASE, {"affine": AFFINE, "twice": twice, "loop_a": loop_a, "loop_b": loop_b})
    assert run(registry, {"n": {"process_id": "twice", "arguments": {"x": 4}, "result": True}}) == 8
    assert set(registry.user_refused) == {"loop_a", "loop_b"}
    with pytest.raises(ProcessGraphInvalid, match=r"node 'n'.*loop_a -> loop_b -> loop_a"):
        run(registry, {"n": {"process_id": "loop_a", "arguments": {"x": 1}, "result": True}})


def test_validation_reaches_into_the_stored_graph() -> None:
    broken = udp({"n": {"process_id": "no_such_thing", "arguments": {}, "result": True}})
    registry = with_processes(BASE, {"broken": broken})
    with pytest.raises(ProcessUnsupported, match="'outer/n'"):
        validate(parse_graph({"process_graph": {"outer": {"process_id": "broken", "arguments": {},
                                                          "result": True}}}), registry)


def test_cacheable_unless_it_reads_data_or_runs_code() -> None:
    reads = udp({"l": {"process_id": "load_collection", "arguments": {"id": "rain", "spatial_extent": None,
                                                                      "temporal_extent": None}, "result": True}})
    via = udp({"n": {"process_id": "reads", "arguments": {}, "result": True}})
    registry = with_processes(BASE, {"affine": AFFINE, "reads": reads, "via": via})
    assert registry.get("affine").cacheable
    assert not registry.get("reads").cacheable and not registry.get("via").cacheable
    changed = with_processes(BASE, {"affine": {**AFFINE, "summary": "changed"}})
    assert registry.get("affine").version != with_processes(BASE, {"affine": udp(
        {"n": {"process_id": "add", "arguments": {"x": 1, "y": 1}, "result": True}})}).get("affine").version
    assert changed.get("affine").version == registry.get("affine").version  # the graph, not the metadata
