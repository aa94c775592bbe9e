"""A simulator of the physical twin: storms over the catchment, the reach's response, noisy gauges.

Storms arrive at random (Poisson), last a few hours and rain with a bell-shaped intensity; the
catchment turns rain into discharge and the rating curve into level; both gauges add noise.
Seeded, so a run can be repeated exactly.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from river_reach.catchment import Catchment, RatingCurve


@dataclass(frozen=True)
class GaugeReading:
    time: datetime
    station: str
    rain: float  # mm/h, as the rain gauge reads it
    level: float  # m, as the level gauge reads it
    discharge: float  # m³/s, the true discharge behind the level
    storage: float  # mm held in the catchment


@dataclass(frozen=True)
class _Storm:
    start_h: float
    duration_h: float
    peak_mm_h: float

    def intensity(self, t_h: float) -> float:
        x = (t_h - self.start_h) / self.duration_h
        return self.peak_mm_h * math.sin(math.pi * x) ** 2 if 0.0 <= x <= 1.0 else 0.0


class ReachSimulator:
    """Produces gauge readings every ``step`` from ``start`` on."""

    def __init__(self, station: str, catchment: Catchment, rating: RatingCurve, *, start: datetime,
                 step: timedelta = timedelta(minutes=15), seed: int = 7, storms_per_day: float = 0.8,
                 level_noise_m: float = 0.01, rain_noise: float = 0.05) -> None:
        self.station = station
        self.catchment = catchment
        self.rating = rating
        self.start = start
        self.step = step
        self.rng = random.Random(seed)
        self.storms_per_day = storms_per_day
        self.level_noise_m = level_noise_m
        self.rain_noise = rain_noise
        self._storms: list[_Storm] = []
        self._next_storm_h = self.rng.expovariate(storms_per_day / 24.0) * 0.3

    def _rain(self, t_h: float) -> float:
        while self._next_storm_h <= t_h + 24.0:
            self._storms.append(_Storm(self._next_storm_h, self.rng.uniform(3.0, 10.0),
                                       self.rng.gammavariate(2.0, 4.0)))
            self._next_storm_h += self.rng.expovariate(self.storms_per_day / 24.0)
        return sum(s.intensity(t_h) for s in self._storms)

    def readings(self, hours: float) -> Iterator[GaugeReading]:
        step_h = self.step.total_seconds() / 3600.0
        steps = round(hours / step_h)
        for i in range(1, steps + 1):
            t_h = i * step_h
            rain = self._rain(t_h - step_h / 2)
            discharge = self.catchment.step(rain, step_h)
            level = self.rating.level(discharge) + self.rng.gauss(0.0, self.level_noise_m)
            rain_read = max(rain * (1.0 + self.rng.gauss(0.0, self.rain_noise)), 0.0)
            yield GaugeReading(time=self.start + i * self.step, station=self.station, rain=round(rain_read, 3),
                               level=round(level, 4), discharge=round(discharge, 3),
                               storage=round(self.catchment.storage_mm, 3))


@dataclass(frozen=True)
class Faults:
    """What went wrong with the gauges and where (reading indices of the series before the gap)."""

    spike_at: int
    stuck_at: int
    stuck_for: int
    gap_at: int
    gap_for: int


def with_faults(readings: list[GaugeReading], *, spike_m: float = 3.0, stuck_for: int = 8,
                gap_for: int = 8) -> tuple[list[GaugeReading], Faults]:
    """The readings as a failing gauge would send them: one level spike (+``spike_m``), a stuck level sensor
    (the same value ``stuck_for`` times) and a gap of ``gap_for`` readings the logger never sent. The faults
    sit in the second half of the series, apart from each other."""
    n = len(readings)
    if n < 4 * (stuck_for + gap_for):
        raise ValueError(f"{n} readings are too few to place the faults apart")
    spike_at, stuck_at, gap_at = n // 2, n // 2 + n // 8, n // 2 + n // 4
    faults = Faults(spike_at, stuck_at, stuck_for, gap_at, gap_for)
    out = list(readings)
    out[spike_at] = replace(out[spike_at], level=round(out[spike_at].level + spike_m, 4))
    for i in range(stuck_at + 1, stuck_at + stuck_for):
        out[i] = replace(out[i], level=out[stuck_at].level)
    del out[gap_at: gap_at + gap_for]
    return out, faults
