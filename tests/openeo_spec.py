"""Run the openEO processes specification's tests and examples through the engine's registry and evaluator.

The cases are the specification's own (``tests/data/openeo-processes/tests/*.json5``, 2.0.0-rc.2, Apache-2.0)
and the ``examples`` of the specs the engine serves. Each case becomes the one-node process graph the
official test suite sends to ``POST /result``; it is validated and evaluated in-process (so NaN and
Infinity, which JSON cannot carry, are checked too) and the answer compared the way the suite compares.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import json5
import numpy as np
import xarray as xr
from dateutil.parser import isoparse
from deepdiff import DeepDiff
from filelock import FileLock

from twinengine.auth.principal import SYSTEM
from twinengine.workflows.context import RunContext, running
from twinengine.workflows.evaluate import Evaluator
from twinengine.workflows.executors import LocalExecutor
from twinengine.workflows.graph import parse_graph, validate
from twinengine.workflows.plain import plain_value
from twinengine.workflows.registry import ProcessRegistry

SPEC_TESTS = Path(__file__).parent / "data" / "openeo-processes" / "tests"
_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}")


@dataclass(frozen=True)
class Case:
    process_id: str
    index: int
    arguments: dict[str, Any]
    returns: Any
    throws: bool
    has_returns: bool
    delta: float
    required: tuple[str, ...]
    source: str

    @property
    def id(self) -> str:
        return f"{self.process_id}-{self.source}{self.index}"


# Where pytest lets plugins keep files between runs (``config.cache.mkdir``): .pytest_cache/d/<name>
PARSED = Path(__file__).resolve().parents[1] / ".pytest_cache" / "d" / "openeo-spec"


def spec_tests() -> list[dict[str, Any]]:
    """The specification's test files, parsed. JSON5 takes about 2.7 s of CPU to parse them, and every test
    process that collects the suite needs them: the parse is kept as JSON (which carries NaN and Infinity as
    Python writes them) under pytest's cache folder, named by a hash of the files, so it is never stale."""
    texts = [(path.name, path.read_text(encoding="utf-8")) for path in sorted(SPEC_TESTS.glob("*.json5"))]
    digest = hashlib.sha256(json.dumps(texts).encode()).hexdigest()[:16]
    kept = PARSED / f"{digest}.json"
    try:
        PARSED.mkdir(parents=True, exist_ok=True)
        lock: Any = FileLock(str(PARSED / "parse.lock"))  # the test processes start together: one parses
    except OSError:
        lock = contextlib.nullcontext()  # a read-only checkout parses them in each process
    with lock:
        try:
            return list(json.loads(kept.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            pass
        parsed = [json5.loads(text) for _, text in texts]
        try:  # written whole, then renamed: nothing reads half of it
            partial = kept.with_suffix(f".{os.getpid()}.tmp")
            partial.write_text(json.dumps(parsed), encoding="utf-8")
            os.replace(partial, kept)
        except OSError:
            pass
        return parsed


def spec_cases() -> list[Case]:
    cases = []
    for data in spec_tests():
        for i, test in enumerate(data.get("tests", [])):
            cases.append(Case(data["id"], i, test.get("arguments", {}), test.get("returns"), bool(test.get("throws")),
                              "returns" in test, float(test.get("delta", 1e-10)), tuple(test.get("required", [])),
                              "test"))
    return cases


def example_cases(registry: ProcessRegistry) -> list[Case]:
    cases = []
    for entry in registry.list(include_apps=False):
        for i, example in enumerate(entry.spec.get("examples") or []):
            if "arguments" in example and "returns" in example:
                cases.append(Case(entry.id, i, example["arguments"], example["returns"], False, True, 1e-10, (),
                                  "example"))
    return cases


def has_unencodable(value: Any) -> bool:
    """Arguments the test data encodes by reference (files) cannot be sent as a process graph literal."""
    if isinstance(value, dict):
        return "$ref" in value or any(has_unencodable(v) for v in value.values())
    if isinstance(value, list):
        return any(has_unencodable(v) for v in value)
    return False


def encode(value: Any) -> Any:
    """Test encoding → process graph values: no-data as null, datacubes and labeled arrays as xarray,
    callbacks with ``from_argument`` (the test data's name for callback parameters) as ``from_parameter``."""
    if isinstance(value, dict):
        kind = value.get("type")
        if kind == "nodata":
            return None
        if kind == "datacube":
            return _cube(value)
        if kind == "labeled-array":
            items = value["data"]
            return xr.DataArray([encode(i["value"]) for i in items], dims=["labels"],
                                coords={"labels": [i["key"] for i in items]})
        if set(value) == {"from_argument"}:
            return {"from_parameter": value["from_argument"]}
        return {k: encode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [encode(v) for v in value]
    return value


def _cube(cube: dict[str, Any]) -> xr.DataArray:
    coords = []
    for name in cube["order"]:
        dim = cube["dimensions"][name]
        values = dim["values"]
        if dim["type"] == "temporal":
            values = [np.datetime64(isoparse(v).replace(tzinfo=None), "ns") for v in values]
        coords.append((name, values))
    data = np.asarray(_nan_nodata(cube["data"]), dtype=float) if cube["data"] is not None else None
    if data is None:
        data = np.zeros([len(c[1]) for c in coords])
    out = xr.DataArray(data, coords=coords)
    crs = next((d["reference_system"] for d in cube["dimensions"].values() if "reference_system" in d), None)
    if crs is not None:
        out.attrs["crs"] = crs
    return out


def _nan_nodata(value: Any) -> Any:
    if isinstance(value, list):
        return [_nan_nodata(v) for v in value]
    if isinstance(value, dict) and value.get("type") == "nodata":
        return math.nan
    return math.nan if value is None else value


def decode(value: Any) -> Any:
    """Engine answer → test encoding (datacubes as dicts, labeled arrays as {key, value} lists)."""
    if isinstance(value, xr.DataArray):
        value = value.compute()
        if value.dims == ("labels",):
            pairs = zip(value["labels"].values, value.values, strict=True)
            return {"type": "labeled-array",
                    "data": [{"key": plain_value(k), "value": plain_value(v)} for k, v in pairs]}
        dims = {}
        for name in value.dims:
            coord = value[name].values if name in value.coords else np.arange(value.sizes[name])
            if np.issubdtype(coord.dtype, np.datetime64):
                dims[name] = {"type": "temporal", "values": [_iso(v) for v in coord]}
            else:
                dims[name] = {"values": plain_value(coord)}
        return {"type": "datacube", "order": list(value.dims), "dimensions": dims, "data": plain_value(value.values)}
    if hasattr(value, "compute"):
        value = value.compute()
    return plain_value(value)


def _iso(value: Any) -> str:
    seconds = np.datetime64(value, "s").astype("int64")
    return datetime.fromtimestamp(int(seconds), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def expected(value: Any) -> Any:
    if isinstance(value, dict):
        if value.get("type") == "nodata":
            return None
        if value.get("type") == "datetime":
            return isoparse(value["value"])
        return {k: expected(v) for k, v in value.items()}
    if isinstance(value, list):
        return [expected(v) for v in value]
    return value


def execute(registry: ProcessRegistry, process_id: str, arguments: dict[str, Any]) -> Any:
    """The one-node graph the official suite sends, validated and evaluated in-process."""
    graph_json = {"process_graph": {"node": {"process_id": process_id, "arguments": {}, "result": True}}}
    literal = {k: v for k, v in arguments.items() if not isinstance(v, xr.DataArray)}
    cubes = {k: v for k, v in arguments.items() if isinstance(v, xr.DataArray)}
    graph_json["process_graph"]["node"]["arguments"] = {**literal, **{k: {"from_parameter": k} for k in cubes}}
    graph = parse_graph(graph_json)
    validate(graph, registry, available=set(cubes))
    ctx = RunContext(run_id="spec", principal=SYSTEM, collections=None, results=None,  # type: ignore[arg-type]
                     executor=LocalExecutor())
    with running(ctx):
        return decode(Evaluator(registry, dict(cubes)).run(graph))


def same(want: Any, got: Any, delta: float) -> str | None:
    """None when ``got`` matches ``want`` the way the official suite compares; else what differs."""
    if isinstance(want, datetime):
        try:
            return None if isoparse(str(got)) == want else f"{got!r} is not {want.isoformat()}"
        except ValueError:
            return f"{got!r} is not a date-time"
    if isinstance(want, dict | list):
        if type(want) is not type(got):
            return f"expected a {type(want).__name__}, got {got!r}"
        diff = DeepDiff(want, got, math_epsilon=delta, ignore_numeric_type_changes=True, ignore_nan_inequality=True,
                        exclude_regex_paths=[r"root\['dimensions'\]\[[^\]]+\]\['(reference_system|type|axis)'\]"],
                        exclude_paths=["root['nodata']"] + (["root['data']"] if isinstance(want, dict)
                                                            and want.get("data") is None else []))
        return None if not diff else f"{got!r} differs: {diff}"
    if isinstance(want, bool) or want is None or isinstance(want, str):
        return None if got == want and type(got) is type(want) else f"expected {want!r}, got {got!r}"
    if isinstance(want, float) and math.isnan(want):
        return None if isinstance(got, float) and math.isnan(got) else f"expected NaN, got {got!r}"
    if isinstance(want, int | float):
        if isinstance(got, bool) or not isinstance(got, int | float) or math.isnan(got):
            return f"expected {want!r}, got {got!r}"
        if math.isinf(want):
            return None if got == want else f"expected {want!r}, got {got!r}"
        return None if abs(got - want) <= delta * max(1.0, abs(want)) else f"expected {want!r}, got {got!r}"
    return None if got == want else f"expected {want!r}, got {got!r}"


def is_iso(value: Any) -> bool:
    return isinstance(value, str) and bool(_ISO.match(value))
