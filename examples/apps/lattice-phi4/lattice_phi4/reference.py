"""The reference: local Metropolis with checkerboard updates, vectorised over sites and independent chains.

Sites of one colour have all their neighbours on the other colour, so a half-sweep proposes phi_x + delta u
(u uniform in [-1, 1]) at every site of one colour at once and accepts each with min(1, exp(-dS_x)), where
dS_x is the change of the site's terms of the action in ``action.py`` (its four bonds and its potential).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lattice_phi4.action import observables
from lattice_phi4.stats import estimate

__all__ = ["checkerboard", "metropolis", "reference_summary"]


def checkerboard(size: int) -> np.ndarray[Any, Any]:
    """True on the even sites (x + y even) of a size x size lattice."""
    return np.asarray((np.add.outer(np.arange(size), np.arange(size)) % 2) == 0)


def _local(value: np.ndarray[Any, Any], neighbours: np.ndarray[Any, Any], m2: float,
           lam: float) -> np.ndarray[Any, Any]:
    return np.asarray(-2.0 * value * neighbours + (4.0 + m2) * value ** 2 + lam * value ** 4)


def metropolis(size: int, m2: float, lam: float, *, sweeps: int, chains: int = 16, thermalise: int = 200,
               delta: float = 1.0, seed: int = 0) -> tuple[np.ndarray[Any, Any], float]:
    """Configurations (chains, sweeps, L, L) after each sweep, and the acceptance rate."""
    rng = np.random.default_rng(seed)
    phi = rng.normal(0.0, 0.5, size=(chains, size, size))
    even = checkerboard(size)
    out = np.empty((chains, sweeps, size, size))
    accepted = proposed = 0
    for sweep in range(thermalise + sweeps):
        for colour in (even, ~even):
            neighbours = (np.roll(phi, 1, -1) + np.roll(phi, -1, -1) + np.roll(phi, 1, -2)
                          + np.roll(phi, -1, -2))
            trial = phi + delta * rng.uniform(-1.0, 1.0, size=phi.shape)
            d_s = _local(trial, neighbours, m2, lam) - _local(phi, neighbours, m2, lam)
            accept = colour & (np.log(rng.uniform(size=phi.shape)) < -d_s)
            phi = np.where(accept, trial, phi)
            if sweep >= thermalise:
                accepted += int(accept.sum())
                proposed += int(colour.sum()) * chains
        if sweep >= thermalise:
            out[:, sweep - thermalise] = phi
    return out, accepted / max(proposed, 1)


def reference_summary(size: int, m2: float, lam: float, *, sweeps: int, chains: int = 16,
                      seed: int = 0) -> dict[str, float]:
    """<phi^2> and chi_2 with autocorrelation-corrected errors, from ``chains`` independent chains."""
    configs, rate = metropolis(size, m2, lam, sweeps=sweeps, chains=chains, seed=seed)
    obs = observables(configs)
    return {**estimate(obs["phi2"]).as_dict("phi2"), **estimate(obs["m2_over_v"]).as_dict("chi2"),
            "acceptance_rate": rate, "samples": float(configs.shape[0] * configs.shape[1])}
