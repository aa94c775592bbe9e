"""Uncertainty carried by a value: its shapes, how the state log keeps it, its declaration per property."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from twinengine.catalog.manifest import StateProperty
from twinengine.quality.ensemble_stats import derive, peak_uncertainty, stack_members
from twinengine.quality.stored import pack, unpack
from twinengine.quality.uncertainty import Uncertainty, convert_uncertainty, describe
from twinengine.twins.schemas import PropertyValue, PropertyWrite
from twinengine.twins.validation import check_uncertainty


@pytest.mark.parametrize("given", [
    {"std": 0.3},
    {"std": 0},
    {"quantiles": {"0.05": 1.7, "0.5": 2.1, "0.95": 2.6}},
    {"quantiles": {"0.5": 2.0, "0.9": 2.0}},  # equal quantiles are fine
    {"members": [1.9, 2, 2.4]},
    {"std": 0.3, "members": [1.9, 2.3]},
])
def test_well_formed_shapes(given: dict[str, Any]) -> None:
    assert Uncertainty.model_validate(given).plain() == given


@pytest.mark.parametrize(("given", "loc", "text"), [
    ({"std": -0.1}, ("std",), "greater than or equal to 0"),
    ({"std": "0.3"}, ("std",), "valid number"),
    ({"std": float("nan")}, ("std",), "finite"),
    ({"quantiles": {"0.5": 2.1, "0.05": 1.7}}, ("quantiles",), "levels must increase"),
    ({"quantiles": {"0.05": 2.5, "0.95": 2.1}}, ("quantiles",), "must not decrease"),
    ({"quantiles": {"1.5": 2.1}}, ("quantiles", "1.5", "[key]"), "outside (0, 1)"),
    ({"quantiles": {"0": 2.1}}, ("quantiles", "0", "[key]"), "outside (0, 1)"),
    ({"quantiles": {"median": 2.1}}, ("quantiles", "median", "[key]"), "not a quantile level"),
    ({"quantiles": {}}, ("quantiles",), "at least 1"),
    ({"members": [1.0, "2.0"]}, ("members", 1), "valid number"),
    ({"members": [1.0, True]}, ("members", 1), "valid number"),
    ({"members": [1.0, None]}, ("members", 1), "valid number"),
    ({"variance": 0.09}, ("variance",), "Extra inputs"),
    ({}, (), "at least one of"),
])
def test_malformed_shapes_name_the_field(given: dict[str, Any], loc: tuple[Any, ...], text: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Uncertainty.model_validate(given)
    error = caught.value.errors()[0]
    assert error["loc"] == loc and text in error["msg"]


def test_a_write_names_the_path_of_a_bad_form() -> None:
    with pytest.raises(ValidationError) as caught:
        PropertyWrite.model_validate({"value": 2.1, "uncertainty": {"members": [1, "x"]}})
    assert caught.value.errors()[0]["loc"] == ("uncertainty", "members", 1)


@pytest.mark.parametrize(("value", "uncertainty"), [
    (2.1, None), (2.1, {"std": 0.3}), ({"a": 1}, None), ([1, 2], None), (None, None),
    ({"value": 1, "uncertainty": 2}, None),  # an object value that looks like the envelope round-trips
    (2, {"members": [1.0, 3.0]}),
])
def test_pack_and_unpack_round_trip(value: Any, uncertainty: dict[str, Any] | None) -> None:
    assert unpack(pack(value, uncertainty)) == (value, uncertainty, None)


def test_plain_values_are_stored_as_before() -> None:
    assert pack(2.1, None) == 2.1 and pack({"a": 1}, None) == {"a": 1}
    assert pack(2.1, {"std": 0.3}) == {"value": 2.1, "uncertainty": {"std": 0.3}}


def test_unpack_orders_quantiles_by_level() -> None:
    # PostgreSQL's jsonb orders keys shorter first: "0.5" before "0.05"
    stored = {"value": 2.1, "uncertainty": {"quantiles": {"0.5": 2.1, "0.05": 1.7, "0.95": 2.6}}}
    _, uncertainty, _ = unpack(stored)
    assert uncertainty is not None and list(uncertainty["quantiles"]) == ["0.05", "0.5", "0.95"]


def test_responses_leave_out_an_absent_uncertainty() -> None:
    plain = PropertyValue(value=1.0, unit="m", timestamp="2026-01-01T00:00:00Z", revision=1)
    assert "uncertainty" not in plain.model_dump(mode="json")
    carried = PropertyValue(value=1.0, unit="m", timestamp="2026-01-01T00:00:00Z", revision=1,
                            uncertainty={"std": 0.1})
    assert carried.model_dump(mode="json")["uncertainty"] == {"std": 0.1}


def test_declaration_takes_one_form_or_a_list() -> None:
    assert StateProperty.model_validate({"type": "number", "uncertainty": "std"}).uncertainty == ["std"]
    both = StateProperty.model_validate({"type": "number", "uncertainty": ["quantiles", "members"]})
    assert [f.value for f in both.uncertainty] == ["quantiles", "members"]
    assert StateProperty.model_validate({"type": "number"}).uncertainty == []


@pytest.mark.parametrize(("declared", "text"), [
    ({"type": "string", "uncertainty": "std"}, "number and integer properties only"),
    ({"type": "number", "uncertainty": "variance"}, "std"),
    ({"type": "number", "uncertainty": ["std", "std"]}, "twice"),
])
def test_bad_declarations(declared: dict[str, Any], text: str) -> None:
    with pytest.raises(ValidationError, match=text):
        StateProperty.model_validate(declared)


def test_only_declared_forms_are_accepted() -> None:
    declared = StateProperty.model_validate({"type": "number", "unit": "m", "uncertainty": "std"})
    given = Uncertainty(std=0.2, quantiles={"0.5": 1.0})
    _, problems = check_uncertainty("reported.level", declared, given, None)
    assert [p.loc for p in problems] == ["reported.level.uncertainty.quantiles"]
    assert "std only" in problems[0].msg
    undeclared = StateProperty.model_validate({"type": "number"})
    _, problems = check_uncertainty("reported.rain", undeclared, Uncertainty(std=0.2), None)
    assert [p.loc for p in problems] == ["reported.rain.uncertainty.std"] and "declares no" in problems[0].msg


def test_uncertainty_is_stored_in_the_declared_unit() -> None:
    declared = StateProperty.model_validate({"type": "number", "unit": "m", "uncertainty": ["std", "quantiles",
                                                                                            "members"]})
    given = Uncertainty(std=30, quantiles={"0.1": 150, "0.9": 210}, members=[170, 190])
    stored, problems = check_uncertainty("reported.level", declared, given, "cm")
    assert problems == [] and stored is not None
    assert stored["std"] == pytest.approx(0.3)
    assert stored["quantiles"] == pytest.approx({"0.1": 1.5, "0.9": 2.1})
    assert stored["members"] == pytest.approx([1.7, 1.9])


def test_an_offset_moves_quantiles_and_members_but_not_the_std() -> None:
    kelvin = convert_uncertainty({"std": 2.0, "members": [10.0]}, lambda c: c + 273.15)
    assert kelvin == {"std": pytest.approx(2.0), "members": [pytest.approx(283.15)]}


def test_describe() -> None:
    assert describe(None) == ""
    assert describe(Uncertainty(std=0.3, quantiles={"0.05": 1.7, "0.95": 2.6}, members=[1.0, 2.0])) == (
        "±0.3, q0.05=1.7 q0.95=2.6, 2 members")


def test_the_ensemble_peak_in_the_forms_declared() -> None:
    members = stack_members([[1.0, 3.0], [2.0, 2.5], [0.5, 4.0]])
    stats = derive(members, quantiles=[0.95, 0.05, 0.5])  # declared in any order, written increasing
    spread = peak_uncertainty(stats, ["std", "quantiles", "members"])
    assert spread is not None
    assert spread["members"] == [3.0, 2.5, 4.0]
    assert spread["std"] == pytest.approx(float(np.std([3.0, 2.5, 4.0], ddof=1)), abs=1e-6)
    assert list(spread["quantiles"]) == ["0.05", "0.5", "0.95"]
    assert Uncertainty(**spread).quantiles is not None  # valid as written
    assert peak_uncertainty(stats, []) is None
