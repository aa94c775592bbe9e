"""The colour scale of a variable: declared, from the table of common quantities, or from the data."""

from __future__ import annotations

import numpy as np
import pytest

from twinengine.access.legend import legend_for


@pytest.mark.parametrize(("name", "attrs", "expected"), [
    ("rain", {"units": "mm h-1"}, (0.0, 20.0, 0.1, "default")),
    ("pr", {"units": "kg m-2 s-1", "standard_name": "precipitation_flux"}, (0.0, 20 / 3600, 0.1 / 3600, "default")),
    ("tp", {"units": "m"}, (0.0, 0.05, 0.0001, "default")),
    ("t2m", {"units": "K"}, (230.0, 320.0, None, "default")),
    ("temp", {"units": "degC"}, (-40.0, 45.0, None, "default")),
    ("cloud_cover", {"units": "%"}, (0.0, 100.0, None, "default")),
    ("rain", {"units": "mm h-1", "valid_range": np.array([0.0, 50.0])}, (0.0, 50.0, 0.1, "declared")),
    ("rain", {"units": "mm h-1", "display_range": "0 5", "display_floor": 0.5}, (0.0, 5.0, 0.5, "declared")),
    ("x", {"units": "K", "valid_min": 250, "valid_max": 300}, (250.0, 300.0, None, "declared")),
])
def test_the_scale_comes_from_the_attributes_then_the_table(name: str, attrs: dict[str, object],
                                                             expected: tuple[float, float, float | None, str]) -> None:
    legend = legend_for(name, attrs, np.array([1e6]))
    assert (legend.lo, legend.hi, legend.floor, legend.source) == pytest.approx(expected)


def test_an_unknown_quantity_takes_the_data_range_and_a_flat_one_a_unit_span() -> None:
    data = np.array([[2.0, np.nan], [5.0, 3.0]])
    assert legend_for("stuff", {"units": "widgets"}, data) == legend_for("stuff", {}, data)
    found = legend_for("stuff", {"units": "widgets"}, data)
    assert (found.lo, found.hi, found.floor, found.source) == (2.0, 5.0, None, "data")
    flat = legend_for("stuff", {}, np.full(4, 1.99e-19))
    assert (flat.lo, flat.hi) == (pytest.approx(1.99e-19), pytest.approx(1.0)) and flat.source == "data"
    assert legend_for("stuff", {"valid_range": [3, 1]}, data).source == "data"  # a reversed range is no range
