"""Process graphs without a store: parsing, validation against the registry, evaluation with callbacks,
parameters, the cache plan, retries, and typed arguments."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import xarray as xr

from twinengine.errors import ProcessFailed, ProcessGraphInvalid, ProcessGraphMissing, ProcessParameterMissing
from twinengine.workflows.evaluate import Evaluator, RetryPolicy, coerce
from twinengine.workflows.graph import graph_hash, parse_graph, parse_process, validate
from twinengine.workflows.processes import build_registry
from twinengine.workflows.registry import ProcessRegistry

REGISTRY = build_registry()


def cube() -> xr.DataArray:
    return xr.DataArray(np.arange(24.0).reshape(2, 3, 4), dims=("t", "y", "x"),
                        coords={"t": np.array(["2026-01-01", "2026-01-02"], dtype="datetime64[ns]"),
                                "y": [1.0, 2.0, 3.0], "x": [1.0, 2.0, 3.0, 4.0]})


def registry_with(**funcs: Any) -> ProcessRegistry:
    registry = ProcessRegistry(REGISTRY.list(include_apps=False))
    for name, func in funcs.items():
        registry.register({"id": name, "parameters": [{"name": "x", "schema": {}, "optional": True}],
                           "returns": {}}, func)
    return registry


def test_callbacks_with_positional_and_outer_parameters() -> None:
    registry = registry_with(cube=lambda x=None: cube())
    process = {"parameters": [{"name": "factor", "schema": {"type": "number"}}], "process_graph": {
        "c": {"process_id": "cube", "arguments": {}},
        "r": {"process_id": "reduce_dimension", "arguments": {"data": {"from_node": "c"}, "dimension": "t",
              "reducer": {"process_graph": {"m": {"process_id": "mean", "arguments": {
                  "data": {"from_parameter": "data"}}, "result": True}}}}},
        "a": {"process_id": "apply", "arguments": {"data": {"from_node": "r"}, "process": {"process_graph": {
            "x": {"process_id": "multiply", "arguments": {"x": {"from_parameter": "x"},
                                                          "y": {"from_parameter": "factor"}}, "result": True}}}},
              "result": True}}}
    graph = parse_graph(process)
    validate(graph, registry)
    out = Evaluator(registry, {"factor": 3}).run(graph)
    np.testing.assert_allclose(out.values, cube().mean("t").values * 3)


def test_only_needed_nodes_and_outputs_run() -> None:
    calls: list[str] = []

    def tracked(name: str) -> Any:
        def run(x: Any = None) -> Any:
            calls.append(name)
            return name

        return run

    registry = registry_with(a=tracked("a"), b=tracked("b"), sink=tracked("sink"))
    graph = parse_graph({"process_graph": {
        "a": {"process_id": "a", "arguments": {}},
        "unused_input": {"process_id": "b", "arguments": {}},
        "uses": {"process_id": "sink", "arguments": {"x": {"from_node": "unused_input"}}},
        "out": {"process_id": "a", "arguments": {"x": {"from_node": "a"}}, "result": True}}})
    Evaluator(registry, {}).run(graph)
    assert sorted(calls) == ["a", "a", "b", "sink"]  # the sink (nobody consumes it) runs too


class DictCache:
    def __init__(self) -> None:
        self.data: dict[str, Any] = {}

    def get(self, key: str) -> Any:
        return self.data[key]

    def put(self, key: str, value: Any) -> None:
        self.data[key] = value


def test_cached_result_skips_its_inputs_and_keys_follow_content() -> None:
    calls: list[int] = []

    def count(x: Any = None) -> int:
        calls.append(1)
        return len(calls)

    registry = registry_with(count=count)
    process = {"process_graph": {"c": {"process_id": "count", "arguments": {}},
                                 "r": {"process_id": "add", "arguments": {"x": {"from_node": "c"}, "y": 1},
                                       "result": True}}}
    cache = DictCache()
    first = Evaluator(registry, {}, cache=cache)
    assert first.run(parse_graph(process)) == 2
    second = Evaluator(registry, {}, cache=cache)
    assert second.run(parse_graph(process)) == 2 and len(calls) == 1 and second.skipped == {"c"}
    changed = {"process_graph": {**process["process_graph"], "r": {"process_id": "add", "arguments": {
        "x": {"from_node": "c"}, "y": 2}, "result": True}}}
    third = Evaluator(registry, {}, cache=cache)
    assert third.run(parse_graph(changed)) == 3 and len(calls) == 1  # c came from the cache
    assert first.keys["r"] != third.keys["r"] and first.keys["c"] == third.keys["c"]
    assert graph_hash(process) != graph_hash(changed)


def test_retries_then_failure_names_the_node() -> None:
    attempts: list[int] = []

    def flaky(x: Any = None) -> str:
        attempts.append(1)
        if len(attempts) < 3:
            raise RuntimeError("try again")
        return "ok"

    registry = registry_with(flaky=flaky)
    graph = parse_graph({"process_graph": {"f": {"process_id": "flaky", "arguments": {}, "result": True}}})
    assert Evaluator(registry, {}, retry=lambda _n: RetryPolicy(3, 0.0), sleep=lambda _s: None).run(graph) == "ok"
    attempts.clear()
    with pytest.raises(ProcessFailed, match=r"node 'f' \(flaky\) failed: try again"):
        Evaluator(registry, {}, retry=lambda _n: RetryPolicy(2, 0.0), sleep=lambda _s: None).run(graph)


def test_structure_errors() -> None:
    with pytest.raises(ProcessGraphMissing):
        parse_process({})
    with pytest.raises(ProcessGraphInvalid, match="exactly one node"):
        parse_graph({"process_graph": {"a": {"process_id": "add", "arguments": {"x": 1, "y": 1}}}})
    with pytest.raises(ProcessGraphInvalid, match="from_node 'b' does not exist"):
        parse_graph({"process_graph": {"a": {"process_id": "add", "arguments": {"x": {"from_node": "b"}, "y": 1},
                                             "result": True}}})
    graph = parse_graph({"process_graph": {"a": {"process_id": "add", "arguments": {
        "x": {"from_parameter": "p"}, "y": 1}, "result": True}}})
    with pytest.raises(ProcessParameterMissing, match="no value for parameter 'p'"):
        Evaluator(REGISTRY, {}).run(graph)


def test_typed_arguments() -> None:
    bbox = coerce({"west": 1, "east": 2, "south": 3, "north": 4})
    assert type(bbox).__name__ == "BoundingBox" and bbox.west == 1
    assert type(coerce(["2026-01-01", None])).__name__ == "TemporalInterval"
    assert coerce("t") == "t" and coerce(3) == 3 and coerce([1, 2]) == [1, 2]
