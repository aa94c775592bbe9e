"""The lattice action and the observables, shared by the flow's target and the reference chain.

Standard form of the flow-sampling literature (Albergo, Kanwar, Shanahan, Phys. Rev. D 100, 034515 (2019),
eq. (2); Albergo et al., arXiv:2101.08176, section 3), in d = 2 dimensions on a periodic L x L lattice:

    S(phi) = sum_x [ -2 sum_{mu=1,2} phi_x phi_{x+mu}  +  (4 + m2) phi_x^2  +  lam phi_x^4 ]

(the "-2 sum_mu phi_x phi_{x+mu} + 2d phi_x^2" part is the discretised (d phi)^2; 2d = 4). The defaults
m2 = -4, lam = 8 put the mass term to zero: the symmetric phase near the transition, where local updates
slow down and a flow helps.

Observables per configuration: ``phi2`` = mean_x phi_x^2 and ``m2_over_v`` = M^2 / V with M = sum_x phi_x, whose
mean is the two-point susceptibility chi_2 = sum_x <phi_0 phi_x> (Z2 symmetry: <phi> = 0, so it is connected).
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["action", "observables"]


def action(phi: np.ndarray[Any, Any], m2: float, lam: float) -> np.ndarray[Any, Any]:
    """S of each configuration; ``phi`` has shape (..., L, L)."""
    hop = phi * (np.roll(phi, -1, axis=-1) + np.roll(phi, -1, axis=-2))
    site = -2.0 * hop + (4.0 + m2) * phi ** 2 + lam * phi ** 4
    return np.asarray(site.sum(axis=(-2, -1)))


def observables(phi: np.ndarray[Any, Any]) -> dict[str, np.ndarray[Any, Any]]:
    """Per-configuration phi^2 (site mean), magnetisation M and M^2/V; ``phi`` has shape (n, L, L)."""
    volume = phi.shape[-1] * phi.shape[-2]
    magnetisation = phi.sum(axis=(-2, -1))
    return {"phi2": (phi ** 2).mean(axis=(-2, -1)), "magnetisation": magnetisation,
            "m2_over_v": magnetisation ** 2 / volume}
