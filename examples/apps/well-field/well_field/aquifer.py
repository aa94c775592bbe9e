"""The aquifer under the well field: Theis (1935) drawdown around the production well, its pumping changes
superposed in time, so the head at each observation well follows from the aquifer's transmissivity T and
storativity S. Plain Python (no scipy in the app's environment): the exponential integral is a series below 1
and a continued fraction above.

Units: T in m2/d, S without unit, distances in m, rates in m3/d, heads in m.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

__all__ = ["exp1", "heads", "theis_drawdown"]

EULER = 0.5772156649015329


def exp1(u: float) -> float:
    """The exponential integral E1(u) = W(u), the Theis well function, for u > 0 (relative error ~1e-15)."""
    if u <= 0:
        return math.inf
    if u < 1.0:
        total, term, k = 0.0, 1.0, 1
        while True:
            term *= -u / k
            step = -term / k
            total += step
            if abs(step) < 1e-17 * max(abs(total), 1e-300):
                return -EULER - math.log(u) + total
            k += 1
    b, c, d = u + 1.0, 1e300, 1.0 / (u + 1.0)  # Lentz's continued fraction (Numerical Recipes, expint)
    h = d
    for i in range(1, 200):
        an = -float(i * i)
        b += 2.0
        d = 1.0 / (an * d + b)
        c = b + an / c
        delta = c * d
        h *= delta
        if abs(delta - 1.0) < 1e-15:
            break
    return h * math.exp(-u)


def theis_drawdown(distance: float, days: float, rate: float, T: float, S: float) -> float:
    """Drawdown (m) ``days`` after a well started pumping ``rate`` m3/d, ``distance`` m away."""
    if days <= 0:
        return 0.0
    return rate / (4 * math.pi * T) * exp1(distance * distance * S / (4 * T * days))


def _days(value: Any) -> float:
    when = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return when.timestamp() / 86400.0


def heads(parameters: dict[str, Any], forcing: dict[str, list[Any]]) -> list[float]:
    """The head at every reading: ``static_head`` minus the drawdown of each change of the production well's
    rate since it happened (a change takes effect at the first reading that reports it). ``forcing`` holds
    ``time``, ``distance`` (of the reading's well from the production well) and ``rate`` (None: unchanged)."""
    T, S = float(parameters["T"]), float(parameters["S"])
    static = float(parameters.get("static_head", 50.0))
    times = [_days(t) for t in forcing["time"]]
    changes: list[tuple[float, float]] = []
    current = 0.0
    for i in sorted(range(len(times)), key=times.__getitem__):
        rate = forcing["rate"][i]
        if rate is not None and float(rate) != current:
            changes.append((times[i], float(rate) - current))
            current = float(rate)
    out = []
    for when, distance in zip(times, forcing["distance"], strict=True):
        if distance is None:
            out.append(math.nan)
            continue
        drawdown = sum(theis_drawdown(float(distance), when - start, step, T, S) for start, step in changes
                       if start < when)
        out.append(static - drawdown)
    return out
