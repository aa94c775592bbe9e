"""The picture of forecast verification: skill against lead time, errors against lead time, and the forecast
of one lead against what was observed."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

__all__ = ["plot_verification"]

SKILL = {"nse": "#1b3a5c", "kge": "#4c9a2a", "coverage": "#e0a800"}
ERROR = {"rmse": "#c0392b", "mae": "#e67e22", "crps": "#8e44ad", "bias": "#7f8c8d"}


def plot_verification(path: Path, leads: Sequence[tuple[float, dict[str, float | None]]], *,
                      pairs: Sequence[tuple[datetime, float, float]] = (), pairs_label: str = "",
                      observed: Sequence[tuple[datetime, float]] = (),
                      series: Sequence[Sequence[tuple[datetime, float]]] = (),
                      unit: str | None = None, title: str = "") -> Path:
    """``leads``: (lead in hours, scores) per lead; ``pairs``: (valid time, forecast, observed) of one lead;
    or ``observed`` (time, value) with whole forecasts as ``series``, drawn over it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = 3 if pairs or series else 2
    fig, axes = plt.subplots(panels, 1, figsize=(10, 2.9 * panels + 0.6), squeeze=False, layout="constrained")
    hours = [h for h, _ in leads]
    for ax, names, label in ((axes[0, 0], SKILL, "skill (1 is perfect)"),
                             (axes[1, 0], ERROR, f"error ({unit})" if unit else "error")):
        for name, colour in names.items():
            values = [s.get(name) for _, s in leads]
            if any(v is not None for v in values):
                ax.plot(hours, [float("nan") if v is None else v for v in values], "o-", color=colour, label=name,
                        ms=3, lw=1.3)
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="best", fontsize="small", ncols=4)
    axes[0, 0].set_title("skill by lead time", loc="left")
    axes[1, 0].set_xlabel("lead time (h)")
    if series:
        ax = axes[2, 0]
        ax.plot([t for t, _ in observed], [v for _, v in observed], color="#1b3a5c", lw=1.4, label="observed")
        for i, one in enumerate(series):
            ax.plot([t for t, _ in one], [v for _, v in one], color="#c0392b", lw=1.1, ls="--", alpha=0.8,
                    label="forecasts" if i == 0 else None)
        ax.set_ylabel(unit or "value")
        ax.set_title(pairs_label or "forecasts against observed", loc="left")
        ax.legend(loc="best", fontsize="small")
        ax.grid(alpha=0.3)
        ax.tick_params(axis="x", labelrotation=20)
    elif pairs:
        ax = axes[2, 0]
        ordered = sorted(pairs)
        ax.plot([t for t, _, _ in ordered], [o for _, _, o in ordered], color="#1b3a5c", lw=1.4, label="observed")
        ax.plot([t for t, _, _ in ordered], [f for _, f, _ in ordered], color="#c0392b", lw=1.2, ls="--",
                label="forecast")
        ax.set_ylabel(unit or "value")
        ax.set_title(pairs_label or "forecast against observed", loc="left")
        ax.legend(loc="best", fontsize="small")
        ax.grid(alpha=0.3)
        ax.tick_params(axis="x", labelrotation=20)
    if title:
        fig.suptitle(title)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
