"""Independence Metropolis with the flow as proposal, and the effective sample size of its weights.

Proposals x_i ~ q carry log weights log w_i = -S(x_i) - log q(x_i). The chain moves from x to the next
proposal x' with probability min(1, w(x') / w(x)); the chain is exact for exp(-S)/Z whatever q is, and the
acceptance rate says how close q is to it. ESS per sample = (sum w)^2 / (N sum w^2), in (0, 1].
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lattice_phi4.action import observables
from lattice_phi4.stats import estimate

__all__ = ["chain_summary", "ess_per_sample", "independence_metropolis"]


def ess_per_sample(log_w: np.ndarray[Any, Any]) -> float:
    """Effective sample size of importance weights, per sample."""
    log_w = np.asarray(log_w, dtype=float)
    shifted = np.exp(log_w - log_w.max())
    return float(shifted.sum() ** 2 / (len(shifted) * (shifted ** 2).sum()))


def independence_metropolis(log_w: np.ndarray[Any, Any], seed: int = 0) -> tuple[np.ndarray[Any, Any], float]:
    """Index of the proposal the chain holds at each step, and the acceptance rate (the first is taken)."""
    log_w = np.asarray(log_w, dtype=float)
    rng = np.random.default_rng(seed)
    log_u = np.log(rng.uniform(size=len(log_w)))
    held = np.empty(len(log_w), dtype=int)
    current, accepted = 0, 0
    for i in range(len(log_w)):
        if i and log_u[i] < log_w[i] - log_w[current]:
            current, accepted = i, accepted + 1
        held[i] = current
    return held, accepted / max(len(log_w) - 1, 1)


def chain_summary(phi: np.ndarray[Any, Any], log_q: np.ndarray[Any, Any], action: np.ndarray[Any, Any],
                  seed: int = 0) -> tuple[dict[str, float], np.ndarray[Any, Any]]:
    """The chain's statistics (acceptance, ESS, <phi^2>, chi_2 with errors) and its configurations."""
    log_w = -np.asarray(action, dtype=float) - np.asarray(log_q, dtype=float)
    held, rate = independence_metropolis(log_w, seed)
    configs = np.asarray(phi, dtype=float)[held]
    obs = observables(configs)
    summary = {"acceptance_rate": rate, "ess_per_sample": ess_per_sample(log_w), "samples": float(len(held)),
               **estimate(obs["phi2"]).as_dict("phi2"), **estimate(obs["m2_over_v"]).as_dict("chi2")}
    return summary, configs
