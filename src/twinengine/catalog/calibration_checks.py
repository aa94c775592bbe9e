"""Cross-references of a manifest's ``calibration:`` section: its parameters are numeric parameters of the schema
with bounds inside the schema's, its observed and forcing fields numeric fields of the stream. Each problem names
its place (``calibration.parameters.reservoir_hours.max``); the service checks a request's bounds the same way."""

from __future__ import annotations

import math
from typing import Any

from twinengine.catalog.manifest import Manifest
from twinengine.errors import Problem

__all__ = ["calibration_entrypoints", "check_calibration", "parameter_bounds"]


def parameter_bounds(manifest: Manifest, name: str, low: float | None, high: float | None,
                     loc: str) -> tuple[tuple[float, float] | None, list[Problem]]:
    """The bounds of parameter ``name``: those given, else the schema's; each must lie within the schema's."""
    schema: dict[str, Any] = manifest.parameters.get("properties", {}).get(name) or {}
    if not schema:
        known = ", ".join(k for k, v in manifest.parameters.get("properties", {}).items()
                          if isinstance(v, dict) and v.get("type") in ("number", "integer"))
        return None, [Problem(loc, f"the app has no parameter {name!r} (numeric ones: {known or 'none'})")]
    if schema.get("type") not in ("number", "integer"):
        return None, [Problem(loc, f"parameter {name!r} is not a number")]
    floor, ceiling = schema.get("minimum"), schema.get("maximum")  # inclusive: they serve as defaults
    above, below = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
    problems: list[Problem] = []
    lo = low if low is not None else floor
    hi = high if high is not None else ceiling
    if lo is None:
        problems.append(Problem(f"{loc}.min", f"the schema gives {name!r} no minimum: give one"))
    if hi is None:
        problems.append(Problem(f"{loc}.max", f"the schema gives {name!r} no maximum: give one"))
    if problems or lo is None or hi is None:
        return None, problems
    if (floor is not None and lo < floor) or (above is not None and lo <= above):
        limit = f"minimum {floor:g}" if floor is not None else f"above {above:g}"
        problems.append(Problem(f"{loc}.min", f"{lo:g} is below what the schema allows for {name!r} ({limit})"))
    if (ceiling is not None and hi > ceiling) or (below is not None and hi >= below):
        limit = f"maximum {ceiling:g}" if ceiling is not None else f"below {below:g}"
        problems.append(Problem(f"{loc}.max", f"{hi:g} is above what the schema allows for {name!r} ({limit})"))
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo >= hi:
        problems.append(Problem(loc, f"bounds [{lo:g}, {hi:g}] must be finite with min < max"))
    return (None if problems else (float(lo), float(hi))), problems


def check_calibration(manifest: Manifest) -> list[Problem]:
    """Problems of the section's references: parameters in the schema, the observed and forcing fields
    declared numeric fields of the stream."""
    spec = manifest.calibration
    if spec is None:
        return []
    problems: list[Problem] = []
    for name, given in spec.parameters.items():
        problems += parameter_bounds(manifest, name, given.min, given.max, f"calibration.parameters.{name}")[1]
    stream = manifest.streams.get(spec.observed.stream)
    if stream is None:
        problems.append(Problem("calibration.observed.stream",
                                f"stream {spec.observed.stream!r} is not declared under streams"))
        return problems
    wanted = [("calibration.observed.field", spec.observed.field)]
    wanted += [(f"calibration.model.forcing.{k}", v) for k, v in spec.model.forcing.items()]
    for loc, field in wanted:
        got = stream.fields.get(field)
        if got is None:
            problems.append(Problem(loc, f"stream {spec.observed.stream!r} has no field {field!r} "
                                         f"(fields: {', '.join(stream.fields)})"))
        elif got.type.value not in ("float", "integer"):
            problems.append(Problem(loc, f"field {field!r} is {got.type.value}, not a number"))
    return problems


def calibration_entrypoints(manifest: Manifest) -> list[tuple[str, str, str]]:
    """The section's entrypoint, as ``declared_entrypoints`` lists them: (loc, kind, module:function)."""
    spec = manifest.calibration
    if spec is None:
        return []
    return [("calibration.model.entrypoint", "calibration_model", spec.model.entrypoint)]
