"""Drift detection on model inputs or residuals: the two-sample Kolmogorov-Smirnov test (scipy) and the
population stability index (PSI, over numpy with quantile bins of the reference).

A detector compares a reference sample (what the model was trained on) with a recent one, feature by feature.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

__all__ = ["DriftReport", "DriftSpec", "detect", "psi"]


class DriftSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    method: Literal["ks", "psi"] = "ks"
    threshold: float = Field(default=0.01, gt=0, description="ks: p-value below which a feature drifted; "
                                                              "psi: index above which it drifted (0.2 is usual).")
    bins: int = Field(default=10, ge=2, le=100, description="psi: quantile bins of the reference.")
    min_samples: int = Field(default=30, ge=2, description="Fewer recent samples: no verdict.")


@dataclass
class DriftReport:
    drifted: bool
    method: str
    scores: list[float]  # per feature: p-value (ks) or PSI
    threshold: float
    samples: tuple[int, int]

    def to_dict(self) -> dict[str, Any]:
        return {"drifted": self.drifted, "method": self.method, "scores": self.scores, "threshold": self.threshold,
                "samples": list(self.samples)}


def psi(reference: np.ndarray[Any, Any], recent: np.ndarray[Any, Any], bins: int = 10) -> float:
    """Population stability index of one feature: sum (q - p) ln(q / p) over quantile bins of the reference."""
    edges = np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)))
    if edges.size < 2:
        edges = np.array([reference.min() - 0.5, reference.max() + 0.5])
    edges[0], edges[-1] = -np.inf, np.inf
    p = np.histogram(reference, edges)[0] / reference.size
    q = np.histogram(recent, edges)[0] / recent.size
    p, q = np.clip(p, 1e-6, None), np.clip(q, 1e-6, None)
    return float(np.sum((q - p) * np.log(q / p)))


def detect(spec: DriftSpec, reference: np.ndarray[Any, Any], recent: np.ndarray[Any, Any]) -> DriftReport:
    """Compare two samples (n rows of features, or n values) feature by feature; drifted when any feature is."""
    ref = np.asarray(reference, dtype=float).reshape(len(reference), -1)
    new = np.asarray(recent, dtype=float).reshape(len(recent), -1)
    if ref.shape[1] != new.shape[1]:
        raise ValueError(f"reference has {ref.shape[1]} features, recent {new.shape[1]}")
    if len(new) < spec.min_samples or len(ref) < spec.min_samples:
        return DriftReport(False, spec.method, [], spec.threshold, (len(ref), len(new)))
    if spec.method == "ks":
        from scipy import stats  # 0.7 s to import: paid by the first drift test, not by every engine start

        scores = [float(stats.ks_2samp(ref[:, j], new[:, j]).pvalue) for j in range(ref.shape[1])]
        drifted = any(s < spec.threshold for s in scores)
    else:
        scores = [psi(ref[:, j], new[:, j], spec.bins) for j in range(ref.shape[1])]
        drifted = any(s > spec.threshold for s in scores)
    return DriftReport(drifted, spec.method, scores, spec.threshold, (len(ref), len(new)))
