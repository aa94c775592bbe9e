"""Reference models with known behaviour, for tests and benchmarks of the filters.

Lorenz-96 and Lorenz-63 are the standard chaotic test beds whose published filter scores (Sakov & Oke 2008,
Sakov et al. 2012) tell whether an implementation is right. The linear reservoir is a scalar
linear-Gaussian system whose exact Kalman filter gives the answer an ensemble filter must converge to.
All model steps take a state (n,) or an ensemble (N, n) and advance every row.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from twinengine.assimilation._checks import Array

__all__ = ["KalmanResult", "LinearReservoir", "lorenz63_step", "lorenz96_step", "rk4_step", "steps"]


def rk4_step(f: Callable[[Array], Array], x: Array, dt: float) -> Array:
    """One classical fourth-order Runge-Kutta step of dx/dt = f(x)."""
    k1 = f(x)
    k2 = f(x + 0.5 * dt * k1)
    k3 = f(x + 0.5 * dt * k2)
    k4 = f(x + dt * k3)
    return x + dt / 6.0 * (k1 + 2.0 * k2 + 2.0 * k3 + k4)


def lorenz96_tendency(x: Array, forcing: float = 8.0) -> Array:
    """dx_i/dt = (x_{i+1} - x_{i-2}) x_{i-1} - x_i + F on a ring (last axis)."""
    return (np.roll(x, -1, axis=-1) - np.roll(x, 2, axis=-1)) * np.roll(x, 1, axis=-1) - x + forcing


def lorenz96_step(x: Array, dt: float = 0.05, forcing: float = 8.0) -> Array:
    """One RK4 step of Lorenz-96 (Sakov & Oke 2008 use n = 40, F = 8, dt = 0.05)."""
    return rk4_step(lambda v: lorenz96_tendency(v, forcing), np.asarray(x, dtype=float), dt)


def lorenz63_tendency(x: Array, sigma: float = 10.0, rho: float = 28.0, beta: float = 8.0 / 3.0) -> Array:
    """The Lorenz (1963) system with its classical parameters; state (x, y, z) on the last axis."""
    a, b, c = x[..., 0], x[..., 1], x[..., 2]
    return np.stack([sigma * (b - a), a * (rho - c) - b, a * b - beta * c], axis=-1)


def lorenz63_step(x: Array, dt: float = 0.01) -> Array:
    """One RK4 step of Lorenz-63."""
    return rk4_step(lorenz63_tendency, np.asarray(x, dtype=float), dt)


def steps(step: Callable[[Array], Array], count: int) -> Callable[[Array], Array]:
    """The model advanced ``count`` steps: the forecast between two observation times."""
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")

    def advance(x: Array) -> Array:
        for _ in range(count):
            x = step(x)
        return x

    return advance


@dataclass(frozen=True)
class KalmanResult:
    """Exact Kalman filter output for the scalar reservoir."""

    forecast_mean: Array
    forecast_var: Array
    analysis_mean: Array
    analysis_var: Array


@dataclass(frozen=True)
class LinearReservoir:
    """A linear reservoir: storage x_{k+1} = a x_k + inflow + w_k, observed as y_k = x_k + v_k.

    w ~ N(0, q) and v ~ N(0, r). It is linear and Gaussian, so the Kalman filter is the exact posterior and
    its analysis variance tends to the fixed point of the Riccati recursion: an exact target for the
    ensemble filters.
    """

    a: float = 0.9
    inflow: float = 1.0
    q: float = 1.0
    r: float = 1.0

    def step(self, x: Array, rng: np.random.Generator | None = None) -> Array:
        """Advance states (any shape) one step; with ``rng`` the model noise is added (stochastic forecast)."""
        out = self.a * np.asarray(x, dtype=float) + self.inflow
        if rng is not None:
            out = out + rng.normal(0.0, np.sqrt(self.q), np.shape(out))
        return out

    def simulate(self, x0: float, count: int, rng: np.random.Generator) -> tuple[Array, Array]:
        """A truth run of ``count`` steps after x0 and its observations (both (count,))."""
        truth = np.empty(count)
        x = float(x0)
        for k in range(count):
            x = self.a * x + self.inflow + rng.normal(0.0, np.sqrt(self.q))
            truth[k] = x
        return truth, truth + rng.normal(0.0, np.sqrt(self.r), count)

    def steady_analysis_var(self) -> float:
        """The limit of the analysis variance: the positive root of P = (a² P + q) r / (a² P + q + r)."""
        a2, q, r = self.a**2, self.q, self.r
        # With F = a² P + q the forecast variance, F = a² F r / (F + r) + q gives F² + (r - a² r - q) F - q r = 0.
        b = r - a2 * r - q
        forecast = (-b + np.sqrt(b * b + 4.0 * q * r)) / 2.0
        return float(forecast * r / (forecast + r))

    def kalman_filter(self, ys: object, m0: float, p0: float) -> KalmanResult:
        """The exact filter over observations ``ys`` starting from N(m0, p0) one step before the first one."""
        obs = np.asarray(ys, dtype=float)
        out = {k: np.empty(obs.size) for k in ("fm", "fv", "am", "av")}
        m, p = float(m0), float(p0)
        for k, yk in enumerate(obs):
            m, p = self.a * m + self.inflow, self.a**2 * p + self.q
            out["fm"][k], out["fv"][k] = m, p
            gain = p / (p + self.r)
            m, p = m + gain * (yk - m), (1.0 - gain) * p
            out["am"][k], out["av"][k] = m, p
        return KalmanResult(out["fm"], out["fv"], out["am"], out["av"])
