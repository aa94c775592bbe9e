"""Pictures of ensembles and scenario branches: an ensemble's members with its mean and quantile band
against the threshold, and branches side by side (their forecast series with bands, and chosen properties)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from twinengine.ensembles.compare import Comparison
from twinengine.figures import save_figure

__all__ = ["plot_comparison", "plot_ensemble"]


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_ensemble(path: Path, members: Sequence[Sequence[float]], statistics: dict[str, Any], *,
                  title: str = "", unit: str = "") -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(10, 3.8), layout="constrained")
    for values in members:
        ax.plot(range(len(values)), values, color="#9db4c8", lw=0.7, alpha=0.8)
    series = statistics["series"]
    bands = series["quantiles"]
    keys = sorted(bands, key=float)
    steps = range(len(series["mean"]))
    if len(keys) >= 2:
        ax.fill_between(steps, bands[keys[0]], bands[keys[-1]], color="#1b3a5c", alpha=0.18,
                        label=f"{float(keys[0]):.0%}-{float(keys[-1]):.0%} of members")
    ax.plot(steps, series["mean"], color="#1b3a5c", lw=2, label=f"mean of {statistics['members']} members")
    threshold = statistics.get("threshold")
    if threshold is not None:
        chance = statistics["peak"].get("exceedance")
        ax.axhline(threshold, color="#c0392b", ls="--", lw=1.2,
                   label=f"threshold {threshold:g} (P(exceeded) = {chance:.0%})" if chance is not None else
                   f"threshold {threshold:g}")
    ax.set_xlabel("step")
    ax.set_ylabel(unit or "value")
    ax.legend(loc="upper right", fontsize="small")
    if title:
        ax.set_title(title, loc="left")
    return save_figure(fig, path)


def plot_comparison(path: Path, table: Comparison, *, title: str = "") -> Path:
    plt = _pyplot()
    numeric = [p for p in table.properties
               if any(isinstance(t.state.get(p), int | float) for t in table.twins)]
    with_series = [t for t in table.twins if t.series is not None]
    panels = (1 if with_series else 0) + (1 if numeric else 0)
    fig, axes = plt.subplots(1, max(panels, 1), figsize=(6 * max(panels, 1), 3.8), squeeze=False,
                             layout="constrained")
    slot = 0
    if with_series:
        ax = axes[0, slot]
        slot += 1
        for twin in with_series:
            series = twin.series
            assert series is not None
            steps = range(len(series.values))
            (line,) = ax.plot(steps, [v if v is not None else float("nan") for v in series.values], lw=1.8,
                              label=twin.name + (f" (P {series.exceedance:.0%})" if series.exceedance is not None
                                                 else ""))
            if series.low is not None and series.high is not None:
                ax.fill_between(steps, series.low, series.high, color=line.get_color(), alpha=0.15)
        ax.set_xlabel("step")
        ax.set_title("latest forecast of each branch", loc="left")
        ax.legend(fontsize="small")
    if numeric:
        ax = axes[0, slot]
        width = 0.8 / max(len(table.twins), 1)
        for i, twin in enumerate(table.twins):
            values = [float(twin.state.get(p) or 0.0) for p in numeric]
            ax.bar([j + i * width for j in range(len(numeric))], values, width=width, label=twin.name)
        ax.set_xticks([j + width * (len(table.twins) - 1) / 2 for j in range(len(numeric))], numeric,
                      rotation=15, fontsize="small")
        ax.set_title("state", loc="left")
        ax.legend(fontsize="small")
    return save_figure(fig, path, title=title)
