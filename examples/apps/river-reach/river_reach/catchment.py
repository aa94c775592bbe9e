"""Rainfall-runoff physics of the reach: a linear reservoir and a power-law rating curve.

Storage S (mm) gains the effective rain c·P and drains at S/k, so dS/dt = c·P - S/k. The outflow S/k
(mm/h) over an area A (km²) is a discharge of S/k · A / 3.6 m³/s. The rating curve Q = a (h - h0)^b
gives the level h for a discharge Q.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

MM_PER_HOUR_KM2_TO_M3S = 1.0 / 3.6


@dataclass(frozen=True)
class RatingCurve:
    a: float = 18.0
    b: float = 1.6
    datum_m: float = 0.2

    def level(self, discharge_m3s: float) -> float:
        return self.datum_m + (max(discharge_m3s, 0.0) / self.a) ** (1.0 / self.b)

    def discharge(self, level_m: float) -> float:
        return self.a * max(level_m - self.datum_m, 0.0) ** self.b


@dataclass
class Catchment:
    area_km2: float = 120.0
    runoff_coefficient: float = 0.45
    reservoir_hours: float = 6.0
    base_flow_m3s: float = 1.5
    storage_mm: float = field(default=2.0)

    @classmethod
    def from_parameters(cls, parameters: dict[str, Any]) -> Catchment:
        return cls(area_km2=parameters.get("area_km2", 120.0),
                   runoff_coefficient=parameters.get("runoff_coefficient", 0.45),
                   reservoir_hours=parameters.get("reservoir_hours", 6.0),
                   base_flow_m3s=parameters.get("base_flow_m3s", 1.5))

    def step(self, rain_mm_h: float, hours: float) -> float:
        """Advance by ``hours`` under constant rain; return the discharge (m³/s) at the end.

        Integrated exactly (rain is constant over the step), so long steps stay stable.
        """
        k = self.reservoir_hours
        equilibrium = self.runoff_coefficient * rain_mm_h * k
        self.storage_mm = equilibrium + (self.storage_mm - equilibrium) * math.exp(-hours / k)
        return self.discharge()

    def discharge(self) -> float:
        return self.storage_mm / self.reservoir_hours * self.area_km2 * MM_PER_HOUR_KM2_TO_M3S + self.base_flow_m3s

    def storage_for(self, discharge_m3s: float) -> float:
        """The storage whose outflow gives ``discharge_m3s`` (the inverse of ``discharge``; none below base flow).

        The reservoir's outflow is a function of its storage alone, so a gauged level says the storage now, up
        to the gauge's error: a start for a twin whose storage no assimilation has corrected yet.
        """
        runoff = max(discharge_m3s - self.base_flow_m3s, 0.0)
        return runoff * self.reservoir_hours / (self.area_km2 * MM_PER_HOUR_KM2_TO_M3S)
