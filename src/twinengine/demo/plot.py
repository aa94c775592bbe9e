"""The demo's picture: river level (observed and what-if), the alert threshold, and rain."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from twinengine.figures import save_figure

__all__ = ["plot_corrections", "plot_histograms", "plot_levels"]


def plot_levels(path: Path, *, times: Sequence[datetime], levels: Sequence[float], rain: Sequence[float],
                threshold: float | None, fork_times: Sequence[datetime] = (), fork_levels: Sequence[float] = (),
                fork_label: str = "what-if", title: str = "") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_rain, ax_level) = plt.subplots(2, 1, figsize=(10, 6), sharex=True,
                                            gridspec_kw={"height_ratios": [1, 2.4]}, layout="constrained")
    if len(times) > 1:
        width = (times[1] - times[0]) * 0.9
        ax_rain.bar(times, rain, width=width, color="#4a90d9")
    ax_rain.invert_yaxis()
    ax_rain.set_ylabel("rain (mm/h)")
    ax_rain.set_title(title, loc="left")
    ax_level.plot(times, levels, color="#1b3a5c", lw=1.4, label="reported level")
    if fork_times:
        ax_level.plot(fork_times, fork_levels, color="#d9534f", lw=1.4, ls="--", label=fork_label)
        ax_level.axvline(fork_times[0], color="#d9534f", lw=0.8, alpha=0.5)
    if threshold is not None:
        ax_level.axhline(threshold, color="#f0ad4e", lw=1.2, ls=":", label=f"alert threshold {threshold:g} m")
    ax_level.set_ylabel("level (m)")
    ax_level.set_xlabel("time (UTC)")
    fig.autofmt_xdate()
    return _finish(fig, ax_level, path)


def plot_corrections(path: Path, *, times: Sequence[datetime], observed: Sequence[float],
                     series: dict[str, Sequence[float]], title: str = "") -> Path:
    """Observed level against the simulation and the model-corrected simulations (one line per label)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 4.5), layout="constrained")
    x: list[Any] = list(times)
    ax.plot(x, observed, color="#1b3a5c", lw=1.6, label="observed level")
    for (label, values), style in zip(series.items(), ("--", "-.", "-", ":"), strict=False):
        ax.plot(x[-len(values):], values, lw=1.2, ls=style, label=label)
    ax.set_ylabel("level (m)")
    ax.set_xlabel("time (UTC)")
    ax.set_title(title, loc="left")
    fig.autofmt_xdate()
    return _finish(fig, ax, path)


def plot_histograms(path: Path, samples: dict[str, Sequence[float] | Any], *, xlabel: str, title: str = "",
                    bins: int = 60) -> Path:
    """Normalised histograms of several samples on shared bins (one step line per label)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    values = {label: np.asarray(v, dtype=float).ravel() for label, v in samples.items()}
    low = min(float(v.min()) for v in values.values())
    high = max(float(v.max()) for v in values.values())
    edges = np.linspace(low, high, bins + 1)
    fig, ax = plt.subplots(figsize=(8, 4.5), layout="constrained")
    for label, v in values.items():
        ax.hist(v, bins=edges.tolist(), density=True, histtype="step", lw=1.6, label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("density")
    ax.set_title(title, loc="left")
    return _finish(fig, ax, path)


def plot_traces(path: Path, series: dict[str, Any], *, rate: float, xlabel: str, ylabel: str,
                title: str = "") -> Path:
    """Several sampled series over time on one axis (``rate`` samples per second)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(9, 4.5), layout="constrained")
    for label, values in series.items():
        values = np.asarray(values, dtype=float)
        ax.plot(np.arange(values.size) / rate, values, lw=0.6, label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, loc="left")
    return _finish(fig, ax, path)


def _finish(fig: Any, ax: Any, path: Path) -> Path:
    """Every plot's end: the legend top right, a light grid, written as PNG and the figure freed."""
    ax.legend(loc="upper right")
    ax.grid(alpha=0.3)
    return save_figure(fig, path)
