"""Physical units in CF/UDUNITS syntax (``m3 s-1``, ``mm/h``, ``degC``), via pint and cf_xarray's registry.

The registry is loaded on first use: it is only needed when a manifest or a state write carries units.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from typing import Any

__all__ = ["UnitError", "check_unit", "convert"]


class UnitError(ValueError):
    """Raised when a unit string cannot be parsed or two units measure different things."""


@lru_cache(maxsize=1)
def _registry() -> Any:
    # cf_xarray redefines some of pint's units on purpose (UDUNITS meanings); its notices are not news.
    logging.getLogger("pint.util").setLevel(logging.ERROR)
    from cf_xarray.units import units

    return units


@lru_cache(maxsize=1024)
def _parse(text: str) -> Any:
    try:
        return _registry().parse_units(text)
    except Exception as exc:  # pint raises several unrelated types for bad input
        raise UnitError(f"{text!r} is not a unit in CF/UDUNITS syntax (e.g. 'm', 'mm/h', 'm3 s-1')") from exc


def check_unit(text: str) -> str:
    """Return ``text`` unchanged if it parses as a unit, else raise UnitError."""
    _parse(text)
    return text


def convert(value: float, from_unit: str, to_unit: str) -> float:
    """Convert a number between compatible units; raise UnitError if they measure different things."""
    if from_unit == to_unit:
        return value
    source, target = _parse(from_unit), _parse(to_unit)
    try:
        return float(_registry().Quantity(value, source).to(target).magnitude)
    except Exception as exc:
        raise UnitError(f"{from_unit!r} cannot be converted to {to_unit!r}") from exc
