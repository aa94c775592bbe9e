"""Trends of annual index series, the trends the generator planted, and an ensemble's confidence interval.

Recovered trends are ordinary least-squares slopes per decade: of the index itself (days per decade for
``tx90p``, heat waves and fire-danger days), and of its logarithm for ``rx1day`` (percent per decade: the
generator scales every rain amount by ``1 + alpha dT``, so log Rx1day moves by log(1 + alpha dT) whatever the
rain's distribution).

Planted trends follow from the generator's construction alone (no xclim, no sampling):

- ``tx90p``: anomalies are N(0, sigma^2) and stationary over the baseline, so the baseline's 90th
  percentile is ``clim + z90 sigma`` and a day of warming dT exceeds it with probability
  ``1 - Phi(z90 - dT / sigma)``; the expected count of each year is the sum over its days;
- ``rx1day``: ``log(1 + alpha dT)`` at each year's middle.

The planted trend is the OLS slope of those expected yearly values, the same estimator as for the members.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from climate_extremes.generator import ALPHA, SIGMA_T, Config, warming

__all__ = ["PLANTED", "confidence_interval", "index_trends", "planted_trends", "slope_per_decade"]

PLANTED = ("tx90p", "rx1day")  # indices whose trend the generator plants in closed form
LOG_INDICES = frozenset({"rx1day"})


def slope_per_decade(years: Sequence[float], values: Sequence[float]) -> float:
    """OLS slope of ``values`` against ``years``, times ten."""
    x, y = np.asarray(years, dtype=float), np.asarray(values, dtype=float)
    x = x - x.mean()
    return float(10.0 * (x * (y - y.mean())).sum() / (x * x).sum())


def index_trends(indices: dict[str, Any]) -> dict[str, float]:
    """``{"<index>_trend": slope per decade}`` of each index series in ``indices`` (rx1day in % per decade)."""
    years = indices["years"]
    out = {}
    for name, values in indices.items():
        if name == "years":
            continue
        if name in LOG_INDICES:
            out[f"{name}_trend"] = round(100.0 * slope_per_decade(years, np.log(np.asarray(values, float))), 5)
        else:
            out[f"{name}_trend"] = round(slope_per_decade(years, values), 5)
    return out


def planted_trends(parameters: dict[str, Any]) -> dict[str, float]:
    """The trends per decade the generator planted for ``tx90p`` (days) and ``rx1day`` (%)."""
    cfg = Config.from_parameters(parameters)
    times = cfg.times()
    times = times[times.year >= cfg.start_year]
    d_t = warming(cfg, times)
    z90 = float(stats.norm.ppf(0.9))
    frame = pd.DataFrame({"year": times.year, "p": stats.norm.sf(z90 - d_t / SIGMA_T), "dt": d_t})
    yearly = frame.groupby("year").agg(count=("p", "sum"), dt=("dt", "mean"))
    years = yearly.index.to_numpy(dtype=float)
    return {"tx90p_trend": round(slope_per_decade(years, yearly["count"].to_numpy()), 5),
            "rx1day_trend": round(100.0 * slope_per_decade(years, np.log1p(ALPHA * yearly["dt"].to_numpy())), 5)}


def confidence_interval(values: Sequence[float], level: float = 0.99) -> tuple[float, float, float]:
    """(mean, low, high): Student's t interval of the members' mean at ``level``."""
    x = np.asarray(values, dtype=float)
    mean = float(x.mean())
    if x.size < 2:
        return mean, -math.inf, math.inf
    half = float(stats.t.ppf(0.5 + level / 2, x.size - 1) * x.std(ddof=1) / math.sqrt(x.size))
    return mean, mean - half, mean + half
