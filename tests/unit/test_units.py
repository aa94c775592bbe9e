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


def test_a_height_datum_after_the_unit_is_read_as_unit_and_datum() -> None:
    assert units.split_datum("m asl") == ("m", "asl")
    assert units.split_datum("m a.s.l.") == ("m", "asl")
    assert units.split_datum("m AOD") == ("m", "AOD")
    assert units.split_datum("m") == ("m", None)
    assert units.split_datum("asl") == ("asl", None)  # a datum alone is no unit
    assert units.split_datum("m3 s-1") == ("m3 s-1", None)


def test_a_unit_read_only_through_an_unusual_prefix_is_noted_with_what_it_was_read_as() -> None:
    note = units.unusual_prefixes("m3/hh")
    assert note is not None and "cubic metre per hectohour" in note and "100 hours" in note
    for text in ("ds", "kd", "mh", "dam"):
        assert units.unusual_prefixes(text) is not None, text
    for text in [*UNITS, "ms", "km/h", "hl", "dm", "mm"]:
        assert units.unusual_prefixes(text) is None, text
