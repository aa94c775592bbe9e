"""How far generated showers are from reference ones: the CaloChallenge 2022 results paper's metrics
(arXiv:2410.21611), written from its description.

- ``separation_power``: the triangular discrimination of two normalised histograms,
  S = 1/2 sum_i (h1_i - h2_i)^2 / (h1_i + h2_i), 0 for equal shapes, 1 for disjoint ones; bins from the
  reference's range.
- ``kpd``: kernel physics distance, the unbiased estimate of the squared MMD with the polynomial kernel
  k(x, y) = (x.y/d + 1)^4 on features standardised by the reference, over batches, with its standard error.
- ``fpd``: Frechet distance of Gaussians fitted to the same standardised features (at the sample size; the
  paper extrapolates to infinite size).
- ``classifier_auc``: a gradient-boosted classifier on high-level features, trained on one part of the two
  samples and scored (ROC AUC) on a held-out part; 0.5 means it cannot tell them apart.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import linalg

__all__ = ["Distance", "classifier_auc", "fpd", "kpd", "separation_power", "standardise"]


@dataclass(frozen=True)
class Distance:
    value: float
    error: float


def separation_power(reference: np.ndarray, generated: np.ndarray, bins: int = 50) -> float:
    """Triangular discrimination of the two samples' histograms on ``bins`` bins over the reference's range
    (values outside it fall in the edge bins, so a shifted sample is not hidden)."""
    lo, hi = float(np.min(reference)), float(np.max(reference))
    edges = np.linspace(lo, hi if hi > lo else lo + 1.0, bins + 1)
    h1 = np.histogram(np.clip(reference, edges[0], edges[-1]), edges)[0].astype(float)
    h2 = np.histogram(np.clip(generated, edges[0], edges[-1]), edges)[0].astype(float)
    h1, h2 = h1 / h1.sum(), h2 / h2.sum()
    both = h1 + h2
    return float(0.5 * np.sum(np.divide((h1 - h2) ** 2, both, out=np.zeros_like(both), where=both > 0)))


def standardise(reference: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    """Each array scaled by the reference's mean and spread (a constant column stays 0)."""
    mean, std = reference.mean(axis=0), reference.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    return [(a - mean) / std for a in (reference, *others)]


def _mmd2(x: np.ndarray, y: np.ndarray) -> float:
    d = x.shape[1]
    kxx, kyy, kxy = (x @ x.T / d + 1) ** 4, (y @ y.T / d + 1) ** 4, (x @ y.T / d + 1) ** 4
    n, m = len(x), len(y)
    return float((kxx.sum() - np.trace(kxx)) / (n * (n - 1)) + (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
                 - 2 * kxy.mean())


def kpd(reference: np.ndarray, generated: np.ndarray, *, batches: int = 10, batch_size: int = 2000,
        seed: int = 0) -> Distance:
    """Mean of the unbiased MMD^2 over ``batches`` random batches of each sample, and its standard error."""
    x, y = standardise(reference, generated)
    rng = np.random.default_rng(seed)
    size = min(batch_size, len(x), len(y))
    values = [_mmd2(x[rng.choice(len(x), size, replace=False)], y[rng.choice(len(y), size, replace=False)])
              for _ in range(batches)]
    return Distance(float(np.mean(values)), float(np.std(values, ddof=1) / np.sqrt(batches)))


def fpd(reference: np.ndarray, generated: np.ndarray) -> float:
    """|mu_1 - mu_2|^2 + Tr(S_1 + S_2 - 2 (S_1 S_2)^(1/2)) of the standardised features."""
    x, y = standardise(reference, generated)
    s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    root = linalg.sqrtm(s1 @ s2)
    root = np.real(root)
    return float(np.sum((x.mean(0) - y.mean(0)) ** 2) + np.trace(s1 + s2 - 2 * root))


def classifier_auc(reference: np.ndarray, generated: np.ndarray, *, seed: int = 0, held_out: float = 0.3) -> float:
    """ROC AUC on a held-out part of a classifier trained to tell ``generated`` rows from ``reference`` rows."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import train_test_split

    x = np.vstack([reference, generated])
    y = np.r_[np.zeros(len(reference)), np.ones(len(generated))]
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=held_out, random_state=seed, stratify=y)
    model = HistGradientBoostingClassifier(max_iter=200, learning_rate=0.1, early_stopping=True,
                                           validation_fraction=0.2, random_state=seed)
    model.fit(x_train, y_train)
    return float(roc_auc_score(y_test, model.predict_proba(x_test)[:, 1]))
