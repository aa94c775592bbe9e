"""The figure of a calibration: the objective over the model runs, and the posterior's marginals."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from twinengine.calibration.evaluator import Run
from twinengine.calibration.objectives import Objective, loss
from twinengine.calibration.summary import Summary
from twinengine.figures import save_figure

__all__ = ["plot_calibration"]

Array = npt.NDArray[np.float64]


def plot_calibration(path: Path, runs: Sequence[Run], objective: Objective, summary: Summary,
                     samples: Array | None, *, title: str | None = None) -> Path:
    """Left: every run's objective and the best so far; right: a histogram per parameter of the posterior
    sample with its median, interval and the best run (the best alone when there is no sample)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = summary.names
    fig, axes = plt.subplots(1, 1 + len(names), figsize=(4.2 * (1 + len(names)), 3.6), squeeze=False)
    ax = axes[0][0]
    values = np.array([r.score for r in runs], dtype="float64")
    index = np.arange(len(values))
    finite = np.isfinite(values)
    ax.plot(index[finite], values[finite], ".", ms=2, alpha=0.4, color="tab:gray", label="run")
    losses = np.array([loss(objective, v) for v in values])
    best = np.minimum.accumulate(np.where(np.isfinite(losses), losses, np.inf))
    shown = np.isfinite(best)
    if shown.any():
        sign = {Objective.NSE: (1.0, -1.0), Objective.KGE: (1.0, -1.0), Objective.LIKELIHOOD: (0.0, -1.0)}
        offset, factor = sign.get(objective, (0.0, 1.0))  # back from the loss to the objective's own value
        ax.plot(index[shown], offset + factor * best[shown], "-", color="tab:blue", label="best so far")
        low, high = np.nanpercentile(values[finite], [5, 100]) if objective is not Objective.RMSE \
            else (np.nanmin(values[finite]), np.nanpercentile(values[finite], 95))
        if math.isfinite(low) and math.isfinite(high) and high > low:
            ax.set_ylim(low - 0.05 * (high - low), high + 0.05 * (high - low))
    ax.set_xlabel("model run")
    ax.set_ylabel(objective.value.upper() if objective is not Objective.LIKELIHOOD else "log-likelihood")
    ax.legend(loc="best", fontsize="small")
    for i, name in enumerate(names):
        ax = axes[0][i + 1]
        if samples is not None and len(samples):
            ax.hist(samples[:, i], bins=30, color="tab:orange", alpha=0.7)
            if name in summary.interval:
                a, b = summary.interval[name]
                ax.axvspan(a, b, color="tab:orange", alpha=0.15, label=f"{summary.level:.0%} interval")
                ax.axvline(summary.median[name], color="tab:red", lw=1, label="median")
        if name in summary.best:
            ax.axvline(summary.best[name], color="tab:blue", lw=1.5, ls="--", label="best run")
        ax.set_xlabel(name)
        ax.set_yticks([])
        ax.legend(loc="best", fontsize="x-small")
    fig.tight_layout(rect=(0, 0, 1, 0.92 if title else 1))
    return save_figure(fig, path, title=title)
