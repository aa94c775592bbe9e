"""The Lorenz (1996) model on a ring of n variables, dx_i/dt = (x_{i+1} - x_{i-2}) x_{i-1} - x_i + F,
advanced by classical RK4, and a simulator of its physical twin (a truth run observed with noise).

The twin's state is the keyed property x[0] ... x[n-1]; model time runs ``seconds_per_unit`` seconds per
unit (3600: the usual step dt = 0.05 is 3 minutes), so that observations carry ordinary timestamps.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import numpy as np

N_VARIABLES = 40


def tendency(x: np.ndarray, forcing: float) -> np.ndarray:
    """dx/dt of a state (n,) or of every row of an ensemble (N, n): the ring runs along the last axis."""
    return (np.roll(x, -1, axis=-1) - np.roll(x, 2, axis=-1)) * np.roll(x, 1, axis=-1) - x + forcing


def rk4(x: np.ndarray, h: float, forcing: float) -> np.ndarray:
    k1 = tendency(x, forcing)
    k2 = tendency(x + 0.5 * h * k1, forcing)
    k3 = tendency(x + 0.5 * h * k2, forcing)
    k4 = tendency(x + h * k3, forcing)
    return x + h / 6.0 * (k1 + 2.0 * k2 + 2.0 * k3 + k4)


def names(n: int = N_VARIABLES) -> list[str]:
    return [f"x[{i}]" for i in range(n)]


def step(x: np.ndarray, parameters: dict[str, Any], forcing: dict[str, float], dt: float) -> np.ndarray:
    """The ensemble over ``dt`` seconds (the assimilation's model step, ``state_form: ensemble``: ``x`` is an
    (N, n) array, a member per row, each the state vector x[0] ... x[n-1]; a single member (n,) works too).
    No forcing fields are needed."""
    return rk4(x, dt / float(parameters.get("seconds_per_unit", 3600.0)), float(parameters.get("forcing", 8.0)))


def simulate(*, start: datetime, steps: int, seed: int, dt_units: float = 0.05, obs_std: float = 1.0,
             forcing: float = 8.0, seconds_per_unit: float = 3600.0, spin_up: int = 2000,
             n: int = N_VARIABLES) -> Iterator[tuple[datetime, np.ndarray, np.ndarray]]:
    """(time, truth, observation) every step after a spin-up onto the attractor: every variable observed
    with Gaussian noise of ``obs_std``."""
    rng = np.random.default_rng(seed)
    x = forcing + rng.standard_normal(n)
    for _ in range(spin_up):
        x = rk4(x, dt_units, forcing)
    step_seconds = dt_units * seconds_per_unit
    for k in range(1, steps + 1):
        x = rk4(x, dt_units, forcing)
        yield start + timedelta(seconds=k * step_seconds), x.copy(), x + obs_std * rng.standard_normal(n)
