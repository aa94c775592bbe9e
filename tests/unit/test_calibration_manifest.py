"""The manifest's ``calibration:`` section: river-reach's and hymod's validate; wrong references, bounds outside
the schema and an incomplete prior are problems naming their place."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from twinengine.catalog.validate import check_manifest_data

APPS = Path(__file__).resolve().parents[2] / "examples" / "apps"
REACH = yaml.safe_load((APPS / "river-reach" / "twinapp.yaml").read_text())


@pytest.mark.parametrize("app", ["river-reach", "hymod"])
def test_the_examples_declare_a_valid_calibration(app: str) -> None:
    manifest, problems = check_manifest_data(yaml.safe_load((APPS / app / "twinapp.yaml").read_text()))
    assert problems == [] and manifest is not None and manifest.calibration is not None
    assert manifest.calibration.parameters


def _problems(change: dict[str, Any]) -> dict[str, str]:
    data = copy.deepcopy(REACH)
    data["calibration"].update(change)
    _, problems = check_manifest_data(data)
    return {p.loc: p.msg for p in problems}


def test_references_and_bounds_are_checked_against_the_manifest() -> None:
    found = _problems({"parameters": {"reservoir_hours": {"min": 1}, "runoff_coefficient": {"max": 1.5},
                                      "area": {}, "station": {}}})
    assert "no maximum" in found["calibration.parameters.reservoir_hours.max"]
    assert "maximum 1" in found["calibration.parameters.runoff_coefficient.max"]
    assert "no parameter 'area'" in found["calibration.parameters.area"]
    assert "not a number" in found["calibration.parameters.station"]
    found = _problems({"parameters": {"reservoir_hours": {"min": 0, "max": 5}}})
    assert "above 0" in found["calibration.parameters.reservoir_hours.min"]  # exclusiveMinimum: 0
    found = _problems({"observed": {"stream": "gauges", "field": "station"},
                       "model": {"entrypoint": "river_reach.calibration:simulate", "forcing": {"rain": "snow"}}})
    assert "not a number" in found["calibration.observed.field"]
    assert "no field 'snow'" in found["calibration.model.forcing.rain"]
    found = _problems({"observed": {"stream": "radar", "field": "level"}})
    assert "not declared" in found["calibration.observed.stream"]


def test_the_section_itself_is_strict() -> None:
    found = _problems({"runs": 0, "method": "newton"})
    assert any(loc.startswith("calibration.runs") for loc in found)
    assert any(loc.startswith("calibration.method") for loc in found)
    found = _problems({"parameters": {"runoff_coefficient": {"prior": {"distribution": "normal", "mean": 0.5}}}})
    assert any("needs mean and sd" in msg for msg in found.values())
