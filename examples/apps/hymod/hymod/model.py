"""Hymod (Boyle 2001), as in spotpy's Python example (MIT licence, T. Houska): a soil store of distributed
capacity, three quick linear reservoirs in series and one slow reservoir, stepped once per day."""

from __future__ import annotations

from typing import Any

SECONDS_PER_DAY = 86400.0


def _excess(storage: float, cmax: float, bexp: float, rain: float, pet: float) -> tuple[float, float, float]:
    """Rain beyond the soil's capacity (two parts) and the soil's new storage after evaporation."""
    full = cmax * (1 - abs(1 - (bexp + 1) * storage / cmax) ** (1 / (bexp + 1)))
    er1 = max(rain - cmax + full, 0.0)
    rain -= er1
    filled = min((full + rain) / cmax, 1.0)
    new = (cmax / (bexp + 1)) * (1 - abs(1 - filled) ** (bexp + 1))
    er2 = max(rain - (new - storage), 0.0)
    evaporation = (1 - ((cmax / (bexp + 1)) - new) / (cmax / (bexp + 1))) * pet
    return er1, er2, max(new - evaporation, 0.0)


def _reservoir(storage: float, inflow: float, rate: float) -> tuple[float, float]:
    storage = (1 - rate) * storage + (1 - rate) * inflow
    return storage, (rate / (1 - rate)) * storage


def hymod(rain: list[float], pet: list[float], cmax: float, bexp: float, alpha: float, ks: float,
          kq: float) -> list[float]:
    """Daily outflow (mm/day) for daily rain and potential evaporation (mm/day)."""
    soil, slow, quick = 0.0, 0.0, [0.0, 0.0, 0.0]
    out = []
    for p, e in zip(rain, pet, strict=True):
        er1, er2, soil = _excess(soil, cmax, bexp, p, e)
        effective = er1 + er2
        slow, slow_out = _reservoir(slow, (1 - alpha) * effective, ks)
        flow = alpha * effective
        for i in range(3):
            quick[i], flow = _reservoir(quick[i], flow, kq)
        out.append(slow_out + flow)
    return out


def simulate(parameters: dict[str, Any], forcing: dict[str, list[Any]]) -> list[float]:
    """Discharge (l/s) at each day of ``forcing`` (rain and pet in mm/day): what calibration compares."""
    factor = float(parameters.get("area_km2", 1.783)) * 1e6 / SECONDS_PER_DAY  # mm/day over the area, in l/s
    flows = hymod([float(r) for r in forcing["rain"]], [float(e) for e in forcing["pet"]], parameters["cmax"],
                  parameters["bexp"], parameters["alpha"], parameters["Ks"], parameters["Kq"])
    return [q * factor for q in flows]
