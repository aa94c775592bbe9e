"""Checking state writes and twin parameters against the app's declarations."""

from __future__ import annotations

from typing import Any

import pytest

from twinengine.catalog.manifest import Manifest, StateProperty
from twinengine.twins.validation import check_parameters, check_value


def prop(**kwargs: Any) -> StateProperty:
    return StateProperty.model_validate(kwargs)


@pytest.mark.parametrize(("declared", "value", "ok"), [
    ({"type": "number"}, 1.5, True),
    ({"type": "number"}, 2, True),
    ({"type": "number"}, True, False),
    ({"type": "number"}, "1.5", False),
    ({"type": "integer"}, 3, True),
    ({"type": "integer"}, 3.0, True),
    ({"type": "integer"}, 3.5, False),
    ({"type": "string"}, "x", True),
    ({"type": "string"}, 1, False),
    ({"type": "boolean"}, False, True),
    ({"type": "boolean"}, 0, False),
    ({"type": "object"}, {"a": 1}, True),
    ({"type": "object"}, [1], False),
    ({"type": "array"}, [1, 2], True),
    ({"type": "array"}, None, False),
])
def test_types(declared: dict[str, Any], value: Any, ok: bool) -> None:
    _, _, problems = check_value("reported.p", prop(**declared), value, None)
    assert (problems == []) is ok
    if not ok:
        assert problems[0].loc == "reported.p.value"


@pytest.mark.parametrize("kind", ["number", "integer"])
@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_numbers_are_refused_saying_why(kind: str, value: float) -> None:
    _, _, problems = check_value("reported.p", prop(type=kind), value, None)
    assert len(problems) == 1 and problems[0].loc == "reported.p.value"
    assert problems[0].msg == f"{value} is not a finite number; state holds only finite numbers"


def test_compatible_units_are_converted_to_the_declared_unit() -> None:
    value, unit, problems = check_value("reported.level", prop(type="number", unit="m"), 125, "cm")
    assert problems == [] and unit == "m" and value == pytest.approx(1.25)
    value, unit, _ = check_value("reported.q", prop(type="number", unit="m3 s-1"), 3600, "m3/h")
    assert value == pytest.approx(1.0) and unit == "m3 s-1"


def test_incompatible_or_unexpected_units_are_refused() -> None:
    _, _, problems = check_value("reported.level", prop(type="number", unit="m"), 1, "kg")
    assert problems[0].loc == "reported.level.unit" and "'m'" in problems[0].msg
    _, _, problems = check_value("reported.flag", prop(type="boolean"), True, "m")
    assert problems[0].loc == "reported.flag.unit"


def test_range_and_enum() -> None:
    level = prop(type="number", unit="m", minimum=0, maximum=10)
    assert check_value("d.level", level, -1, None)[2][0].msg.startswith("-1 is below")
    assert "above" in check_value("d.level", level, 2000, "cm")[2][0].msg  # 20 m after conversion
    assert check_value("d.mode", prop(type="string", enum=["a", "b"]), "c", None)[2][0].loc == "d.mode.value"


def manifest(parameters: dict[str, Any]) -> Manifest:
    return Manifest.model_validate({"name": "m", "version": "1.0.0", "title": "t", "domain": "d",
                                    "authors": [{"name": "a"}], "license": "MIT", "parameters": parameters})


def test_parameters_get_defaults_and_located_problems() -> None:
    m = manifest({"type": "object", "additionalProperties": False, "required": ["station"],
                  "properties": {"station": {"type": "string"},
                                 "area": {"type": "number", "minimum": 0, "default": 5},
                                 "rating": {"type": "object", "properties": {"a": {"type": "number"}}}}})
    filled, problems = check_parameters(m, {"station": "S1"})
    assert problems == [] and filled == {"station": "S1", "area": 5}
    _, problems = check_parameters(m, {"area": -1, "rating": {"a": "x"}, "extra": 1})
    found = {p.loc: p.msg for p in problems}
    assert "parameters.station" in found  # missing required names the field
    assert "parameters.area" in found
    assert "parameters.rating.a" in found
    assert any("extra" in msg for msg in found.values())


def test_an_internal_property_is_the_app_s_and_cannot_be_a_users_setting() -> None:
    assert prop(type="array", internal=True).internal
    with pytest.raises(ValueError, match="internal property is the app's own bookkeeping"):
        prop(type="number", internal=True, desired_only=True)
