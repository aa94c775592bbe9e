"""The picture of forecast verification: skill against lead time, errors against lead time, the forecast of
one lead (or whole forecasts with their spread) against what was observed, and an ensemble's rank histogram."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path

__all__ = ["plot_history", "plot_verification"]

SKILL = {"nse": "#1b3a5c", "kge": "#4c9a2a", "coverage": "#e0a800"}
ERROR = {"rmse": "#c0392b", "mae": "#e67e22", "crps": "#8e44ad", "bias": "#7f8c8d"}


Scores = Sequence[tuple[float, dict[str, float | None]]]


def plot_verification(path: Path, leads: Scores, *,
                      pairs: Sequence[tuple[datetime, float, float]] = (), pairs_label: str = "",
                      observed: Sequence[tuple[datetime, float]] = (),
                      series: Sequence[Sequence[tuple[datetime, float]]] = (),
                      bands: Sequence[Sequence[tuple[datetime, float, float]]] = (), bands_label: str = "",
                      others: Mapping[str, Scores] | None = None,
                      ranks: Sequence[float] | None = None, ranks_label: str = "",
                      reliability: Sequence[tuple[float, float, int]] = (), reliability_label: str = "",
                      unit: str | None = None, title: str = "") -> Path:
    """``leads``: (lead in hours, scores) per lead; ``others``: more forecasting systems' scores by name (e.g.
    an ensemble beside the single forecasts), dashed; ``pairs``: (valid time, forecast, observed) of one lead;
    or ``observed`` (time, value) with whole forecasts as ``series`` and ensembles' intervals as ``bands``
    (time, lower, upper), drawn over it; ``ranks``: a rank histogram (relative frequency per rank);
    ``reliability``: bins (forecast probability, observed frequency, count) of a reliability diagram."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = pairs or series or bands
    panels = 2 + bool(shown) + (ranks is not None) + bool(reliability)
    fig, axes = plt.subplots(panels, 1, figsize=(10, 2.9 * panels + 0.6), squeeze=False, layout="constrained")
    systems: list[tuple[str, Scores, str]] = [("", leads, "o-"), *((f" ({k})", v, "s--")
                                                                   for k, v in (others or {}).items())]
    for ax, names, label in ((axes[0, 0], SKILL, "skill (1 is perfect)"),
                             (axes[1, 0], ERROR, f"error ({unit})" if unit else "error")):
        for suffix, scored, style in systems:
            for name, colour in names.items():
                values = [s.get(name) for _, s in scored]
                if any(v is not None for v in values):
                    ax.plot([h for h, _ in scored], [float("nan") if v is None else v for v in values], style,
                            color=colour, label=name + suffix, ms=3, lw=1.3)
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="best", fontsize="small", ncols=4)
    axes[0, 0].set_title("skill by lead time", loc="left")
    axes[1, 0].set_xlabel("lead time (h)")
    if series or bands:
        ax = axes[2, 0]
        for i, band in enumerate(bands):
            ax.fill_between([t for t, _, _ in band], [lo for _, lo, _ in band], [hi for _, _, hi in band],
                            color="#8e44ad", alpha=0.22, lw=0, label=(bands_label or "ensemble interval") if i == 0
                            else None)
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
    if reliability:
        ax = axes[-1 - (ranks is not None), 0]
        top = max(c for _, _, c in reliability)
        ax.plot([0, 1], [0, 1], color="#1b3a5c", ls=":", lw=1.2, label="reliable")
        ax.scatter([f for f, _, _ in reliability], [o for _, o, _ in reliability],
                   s=[20 + 180 * c / top for _, _, c in reliability], color="#e0a800", alpha=0.8,
                   edgecolors="#7f6000", label="bins (size: forecasts in the bin)")
        ax.set_xlim(-0.02, 1.02)
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel("forecast probability of exceeding the threshold")
        ax.set_ylabel("observed frequency")
        ax.set_title(reliability_label or "reliability", loc="left")
        ax.legend(loc="upper left", fontsize="small")
        ax.grid(alpha=0.3)
    if ranks is not None:
        ax = axes[-1, 0]
        ax.bar(range(1, len(ranks) + 1), ranks, color="#8e44ad", alpha=0.8, label="observed rank")
        ax.axhline(1 / max(len(ranks), 1), color="#1b3a5c", ls=":", lw=1.2, label="calibrated (flat)")
        ax.set_xlabel("rank of the observation among the members")
        ax.set_ylabel("relative frequency")
        ax.set_title(ranks_label or "rank histogram", loc="left")
        ax.legend(loc="best", fontsize="small")
        ax.grid(alpha=0.3, axis="y")
    if title:
        fig.suptitle(title)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_history(path: Path, items: Sequence[tuple[datetime, str, dict[str, float | None]]], *,
                 unit: str | None = None, title: str = "") -> Path:
    """Kept scores over time: ``items`` are (period start, series label, scores); skill (NSE, KGE, coverage)
    above, errors (RMSE, CRPS) below, one line per series and score."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 1, figsize=(10, 6.4), sharex=True, squeeze=False, layout="constrained")
    labels = sorted({label for _, label, _ in items})
    styles = ("o-", "s--", "^-.", "d:")
    for ax, names, ylabel in ((axes[0, 0], SKILL, "skill (1 is perfect)"),
                              (axes[1, 0], {k: ERROR[k] for k in ("rmse", "crps")},
                               f"error ({unit})" if unit else "error")):
        for n, label in enumerate(labels):
            chosen = sorted((t, s) for t, lab, s in items if lab == label)
            for name, colour in names.items():
                values = [s.get(name) for _, s in chosen]
                if any(v is not None for v in values):
                    ax.plot([t for t, _ in chosen], [float("nan") if v is None else v for v in values],
                            styles[n % len(styles)], color=colour, label=f"{name} {label}", ms=3, lw=1.2)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="best", fontsize="x-small", ncols=2)
    axes[0, 0].set_title("kept scores per period of valid time", loc="left")
    axes[1, 0].set_xlabel("period (UTC)")
    axes[1, 0].tick_params(axis="x", labelrotation=20)
    if title:
        fig.suptitle(title)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
