"""The picture of input quality: per stream, the share of good / suspect / bad records in each window
(stacked bars) with the window's completeness as a line; and the inputs of a run or model version with their
records per flag."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from twinengine.quality.indicators import QualityReport
from twinengine.quality.pedigree import QualityReport as InputsReport

__all__ = ["plot_inputs", "plot_quality"]

COLOURS = {"good": "#4c9a2a", "suspect": "#e0a800", "bad": "#c0392b"}


def plot_quality(path: Path, reports: Sequence[QualityReport], *, title: str = "") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(max(len(reports), 1), 1, figsize=(10, 2.8 * max(len(reports), 1) + 0.6),
                             squeeze=False, layout="constrained")
    for ax, report in zip(axes[:, 0], reports, strict=False):
        starts = [w.start for w in report.windows]
        width = (report.window_s / 86400.0) * 0.9  # matplotlib dates are in days
        bottom = [0.0] * len(starts)
        for flag in ("good", "suspect", "bad"):
            shares = [w.shares[flag] for w in report.windows]
            ax.bar(starts, shares, width=width, bottom=bottom, align="edge", color=COLOURS[flag], label=flag)
            bottom = [b + s for b, s in zip(bottom, shares, strict=True)]
        if report.cadence_s:
            ax.step(starts, [w.completeness if w.completeness is not None else float("nan") for w in report.windows],
                    where="post", color="#1b3a5c", lw=1.4, label="completeness")
            if report.completeness_min is not None:
                ax.axhline(report.completeness_min, color="#1b3a5c", ls=":", lw=1)
        ax.set_ylim(0, 1.05)
        ax.set_ylabel("share of records")
        t = report.total
        ax.set_title(f"{report.stream}: {t.records} records, {t.good} good, {t.suspect} suspect, {t.bad} bad"
                     + (f", completeness {t.completeness:.0%}" if t.completeness is not None else ""), loc="left")
        ax.legend(loc="lower left", fontsize="small", ncols=4)
    if title:
        fig.suptitle(title)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_inputs(path: Path, report: InputsReport) -> Path:
    """A quality report's inputs as horizontal bars of their records per flag (unchecked inputs: no bar)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    inputs = report.inputs
    fig, ax = plt.subplots(figsize=(10, 1.2 + 0.5 * max(len(inputs), 1)), layout="constrained")
    labels = [f"{i.collection} ({i.flag})" for i in inputs]
    left = [0.0] * len(inputs)
    for flag in ("good", "suspect", "bad"):
        counts = [float((i.records or {}).get(flag, 0)) for i in inputs]
        ax.barh(labels, counts, left=left, color=COLOURS[flag], label=flag)
        left = [a + b for a, b in zip(left, counts, strict=True)]
    ax.invert_yaxis()
    ax.set_xlabel("records used")
    ax.set_title(f"inputs of {report.subject}: {report.flag}", loc="left")
    ax.legend(loc="lower right", fontsize="small", ncols=3)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
