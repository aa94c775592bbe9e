"""The engine's unit registry is cf_xarray's definitions on a pint registry of its own (imported without
xarray): both must read and convert CF/UDUNITS units alike."""

from __future__ import annotations

import pytest

from twinengine import units

UNITS = ["m", "mm/h", "m3 s-1", "m s-1", "m2 s-2", "kg m-2 s-1", "W m-2", "hPa", "degC", "K", "%", "1", "km2",
         "degrees_north", "degrees_east", "psu", "year", "d", "h"]
CONVERSIONS = [(1.0, "mm/h", "m s-1"), (20.0, "degC", "K"), (5.0, "%", "1"), (1.0, "year", "d"),
               (3.0, "m3 s-1", "l/s"), (1013.0, "hPa", "Pa")]


def test_units_read_as_cf_xarray_reads_them() -> None:
    from cf_xarray.units import units as cf

    for text in UNITS:
        assert str(units._registry().parse_units(text)) == str(cf.parse_units(text)), text
    for value, source, target in CONVERSIONS:
        expected = float(cf.Quantity(value, cf.parse_units(source)).to(cf.parse_units(target)).magnitude)
        assert units.convert(value, source, target) == pytest.approx(expected, rel=1e-12)


def test_bad_and_incompatible_units_are_unit_errors() -> None:
    with pytest.raises(units.UnitError):
        units.check_unit("furlongs per frobnicate")
    with pytest.raises(units.UnitError):
        units.convert(1.0, "m", "s")
