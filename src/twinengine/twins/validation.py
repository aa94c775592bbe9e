"""Checking what users send a twin against its app: parameters against the JSON Schema, state writes
against the declared properties (type, unit, range, forms of uncertainty)."""

from __future__ import annotations

import copy
import math
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from twinengine.catalog.manifest import Manifest, StateProperty, StateType
from twinengine.errors import Problem, ValidationFailed, join_loc
from twinengine.quality.uncertainty import Uncertainty, convert_uncertainty
from twinengine.twins.schemas import PropertyWrite
from twinengine.units import UnitError, convert

__all__ = ["apply_defaults", "check_parameters", "check_uncertainty", "check_value", "write_of"]


def apply_defaults(schema: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """Fill top-level ``default``s from the schema, so a twin records the parameters it really runs with."""
    filled = copy.deepcopy(values)
    for key, spec in (schema.get("properties") or {}).items():
        if key not in filled and isinstance(spec, dict) and "default" in spec:
            filled[key] = copy.deepcopy(spec["default"])
    return filled


def check_parameters(manifest: Manifest, values: dict[str, Any]) -> tuple[dict[str, Any], list[Problem]]:
    """Validate twin parameters; every problem is located as ``parameters.<path>``."""
    from jsonschema import Draft202012Validator  # here: the API answers before it imports jsonschema

    filled = apply_defaults(manifest.parameters, values)
    validator = Draft202012Validator(manifest.parameters)
    problems = []
    for error in sorted(validator.iter_errors(filled), key=lambda e: list(map(str, e.absolute_path))):
        path: list[Any] = ["parameters", *error.absolute_path]
        if error.validator == "required" and isinstance(error.instance, dict):
            missing = [k for k in error.validator_value if k not in error.instance]
            path += missing[:1]
        problems.append(Problem(join_loc(path), error.message))
    return filled, problems


INT_MIN, INT_MAX = -(2**63), 2**63 - 1  # what an integer property holds: the stores' signed 64-bit integers
_FLOAT_LIMIT = 2**1024  # an integer at least this large has no float64


def _range_problem(kind: StateType, value: Any) -> str | None:
    """Why a number of the declared type cannot be kept as it is (the stores hold 64-bit integers and
    floats; beyond them a value came back as null or rounded), or None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if kind is StateType.INTEGER and not INT_MIN <= value <= INT_MAX:
        return f"{_shown(value)} is beyond a 64-bit integer ({INT_MIN} to {INT_MAX})"
    if kind is StateType.NUMBER and isinstance(value, int) and not -_FLOAT_LIMIT < value < _FLOAT_LIMIT:
        return f"{_shown(value)} is beyond a 64-bit float (about -1.8e308 to 1.8e308)"
    return None


def _shown(value: Any) -> str:
    if isinstance(value, int) and value.bit_length() > 200:
        return f"an integer of about {int(value.bit_length() * 0.30103)} digits"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _nested_problem(value: Any, loc: str) -> Problem | None:
    """The first integer beyond 64 bits inside an object or array value (JSON keeps it; the stores do not)."""
    stack: list[tuple[str, Any]] = [(loc, value)]
    while stack:
        where, item = stack.pop()
        if isinstance(item, int) and not isinstance(item, bool) and not INT_MIN <= item <= INT_MAX:
            return Problem(where, f"{_shown(item)} is beyond a 64-bit integer ({INT_MIN} to {INT_MAX}); "
                                  "send it as a float or a string")
        if isinstance(item, dict):
            stack.extend((f"{where}.{k}", v) for k, v in item.items())
        elif isinstance(item, list):
            stack.extend((f"{where}[{i}]", v) for i, v in enumerate(item))
    return None


def _type_ok(kind: StateType, value: Any) -> bool:
    if kind is StateType.NUMBER:
        return isinstance(value, int | float) and not isinstance(value, bool) and (
            isinstance(value, int) or math.isfinite(value))
    if kind is StateType.INTEGER:
        return (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, float) and value.is_integer())
    if kind is StateType.STRING:
        return isinstance(value, str)
    if kind is StateType.BOOLEAN:
        return isinstance(value, bool)
    if kind is StateType.OBJECT:
        return isinstance(value, dict)
    return isinstance(value, list)


def check_value(
    loc: str, declared: StateProperty, value: Any, unit: str | None
) -> tuple[Any, str | None, list[Problem]]:
    """Validate one written value; numbers in a compatible unit are converted to the declared unit.

    Returns (value to store, unit to store, problems).
    """
    if not _type_ok(declared.type, value):
        if isinstance(value, float) and not math.isfinite(value) and declared.type in (StateType.NUMBER,
                                                                                        StateType.INTEGER):
            return value, unit, [Problem(f"{loc}.value", f"{value} is not a finite number; state holds only "
                                                         "finite numbers")]
        shown = "null" if value is None else type(value).__name__
        return value, unit, [Problem(f"{loc}.value", f"expected {declared.type.value}, got {shown}")]
    beyond = _range_problem(declared.type, value)
    if beyond is not None:
        return value, unit, [Problem(f"{loc}.value", beyond)]
    if declared.type in (StateType.OBJECT, StateType.ARRAY):
        nested = _nested_problem(value, f"{loc}.value")
        if nested is not None:
            return value, unit, [nested]
    if declared.type is StateType.INTEGER:
        value = int(value)
    stored_unit = declared.unit
    if unit is not None and unit != declared.unit:
        if declared.unit is None:
            return value, unit, [Problem(f"{loc}.unit", "this property has no unit; leave unit out")]
        try:
            value = convert(float(value), unit, declared.unit)
        except UnitError as exc:
            return value, unit, [Problem(f"{loc}.unit", f"{exc} (the property is in {declared.unit!r})")]
        if not math.isfinite(value):
            return value, unit, [Problem(f"{loc}.value", f"in {declared.unit!r} the value is beyond a 64-bit float")]
        if declared.type is StateType.INTEGER:
            value = round(value)
            beyond = _range_problem(declared.type, value)
            if beyond is not None:
                return value, unit, [Problem(f"{loc}.value", f"in {declared.unit!r}, {beyond}")]
    problems = []
    if declared.minimum is not None and value < declared.minimum:
        problems.append(Problem(f"{loc}.value", f"{value} is below the minimum {declared.minimum}"))
    if declared.maximum is not None and value > declared.maximum:
        problems.append(Problem(f"{loc}.value", f"{value} is above the maximum {declared.maximum}"))
    if declared.enum is not None and value not in declared.enum:
        problems.append(Problem(f"{loc}.value", f"{value!r} is not one of {declared.enum!r}"))
    return value, stored_unit, problems


def check_uncertainty(loc: str, declared: StateProperty, uncertainty: Uncertainty | None, unit: str | None
                      ) -> tuple[dict[str, Any] | None, list[Problem]]:
    """The forms a value carries must be declared by its property; they are stored in the declared unit
    (the shape itself was checked at the edge by ``Uncertainty``)."""
    if uncertainty is None:
        return None, []
    allowed = declared.uncertainty
    problems = [Problem(f"{loc}.uncertainty.{form.value}",
                        f"this property declares no uncertainty (add 'uncertainty: {form.value}' to it in "
                        "twinapp.yaml)" if not allowed else
                        f"this property declares uncertainty as {', '.join(f.value for f in allowed)} only")
                for form in uncertainty.forms() if form not in allowed]
    plain = uncertainty.plain()
    if problems or unit is None or declared.unit is None or unit == declared.unit:
        return plain, problems
    source, target = unit, declared.unit
    try:
        return convert_uncertainty(plain, lambda x: float(convert(x, source, target))), problems
    except UnitError:  # check_value reports the unit
        return plain, problems


def write_of(loc: str, value: Any, declared: StateProperty | None, timestamp: datetime | None = None
             ) -> PropertyWrite:
    """A value computed by app code or a workflow, as a write: ``{"value": 2.1, "uncertainty": {...}}`` carries
    its uncertainty to a property that declares one; anything else is the value itself."""
    if (declared is not None and declared.uncertainty and isinstance(value, dict) and "value" in value
            and set(value) <= {"value", "uncertainty"}):
        try:
            return PropertyWrite.model_validate({"value": value["value"], "timestamp": timestamp,
                                                 "uncertainty": value.get("uncertainty")})
        except ValidationError as exc:
            raise ValidationFailed([Problem(join_loc([loc, *e["loc"]]), e["msg"]) for e in exc.errors()]) from None
    return PropertyWrite(value=value, timestamp=timestamp)
