"""Means with autocorrelation-corrected errors: the integrated autocorrelation time with Sokal's window.

tau_int = 1 + 2 sum_{t=1}^{W} rho(t), with W the smallest window such that W >= c tau_int(W) (c = 5; Sokal,
"Monte Carlo methods in statistical mechanics", 1996; the same convention as emcee's ``autocorr``). The error
of the mean of N correlated samples is sqrt(var * tau_int / N).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Estimate", "estimate", "integrated_time"]


def _autocorrelation(series: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Normalised autocorrelation of each row of (chains, n), averaged over chains (FFT, zero-padded)."""
    x = series - series.mean(axis=1, keepdims=True)
    n = x.shape[1]
    size = 1 << (2 * n - 1).bit_length()
    f = np.fft.rfft(x, n=size, axis=1)
    acf = np.fft.irfft(f * np.conjugate(f), n=size, axis=1)[:, :n].mean(axis=0)
    return np.asarray(acf / acf[0]) if acf[0] > 0 else np.zeros(n)


def integrated_time(series: np.ndarray[Any, Any], c: float = 5.0) -> float:
    """tau_int of a series (n,) or of chains (chains, n); 1 for uncorrelated samples."""
    chains = np.atleast_2d(np.asarray(series, dtype=float))
    rho = _autocorrelation(chains)
    taus = 2.0 * np.cumsum(rho) - 1.0
    window = np.arange(len(taus)) < c * taus
    w = int(np.argmin(window)) if not window.all() else len(taus) - 1
    return float(max(taus[w], 1.0))


@dataclass(frozen=True)
class Estimate:
    mean: float
    error: float
    tau: float

    def as_dict(self, prefix: str) -> dict[str, float]:
        return {prefix: self.mean, f"{prefix}_err": self.error, f"{prefix}_tau": self.tau}


def estimate(series: np.ndarray[Any, Any]) -> Estimate:
    """Mean over all samples of (n,) or (chains, n) and its error corrected by tau_int."""
    chains = np.atleast_2d(np.asarray(series, dtype=float))
    tau = integrated_time(chains)
    count = chains.size
    return Estimate(float(chains.mean()), math.sqrt(float(chains.var()) * tau / count), tau)
