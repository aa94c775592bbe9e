"""The picture of what assimilation adds: skill per lead time of forecasts from the analysis and without
assimilation, and the filter's innovations inside the spread it expected."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from twinengine.figures import save_figure
from twinengine.twins.assimilation_skill_schemas import AssimilationSkillRead

__all__ = ["draw_skill", "plot_skill"]


def plot_skill(path: Path, report: AssimilationSkillRead, *, title: str = "") -> Path:
    """NSE per lead (RMSE when NSE is missing) of both systems above, the innovations with their expected
    spread (+- 1 and 2 std) below."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 6.5), layout="constrained")
    draw_skill(top, report)
    points = report.filter.innovations
    if points:
        times = [p.valid_time for p in points]
        spread = [p.expected for p in points]
        bottom.fill_between(times, [-2 * s for s in spread], [2 * s for s in spread], color="tab:blue", alpha=0.12,
                            label="expected spread (2 std)")
        bottom.fill_between(times, [-s for s in spread], spread, color="tab:blue", alpha=0.22, label="1 std")
        bottom.plot(times, [p.innovation for p in points], ".", color="tab:red" if report.filter.diverging
                    else "black", ms=3, label="innovation (observation minus background)")
        bottom.legend(loc="best", fontsize="small")
    bottom.set_title(report.filter.words, loc="left", fontsize="small", wrap=True)
    bottom.set_ylabel(f"innovation ({report.unit})" if report.unit else "innovation")
    bottom.grid(alpha=0.3)
    return save_figure(fig, path, title=title or f"{report.twin}/{report.property}: forecasts with and "
                                                 "without assimilation")


def draw_skill(ax: Any, report: AssimilationSkillRead) -> None:
    """Both systems' NSE (or RMSE) against the lead in hours, on ``ax``."""
    key = "nse" if all(g.nse is not None for g in [*report.assimilated, *report.open_loop]) else "rmse"
    for name, groups, style in (("from the analysis", report.assimilated, "o-"),
                                ("without assimilation", report.open_loop, "s--")):
        values = [getattr(g, key) for g in groups]
        ax.plot([g.lead_seconds / 3600 for g in groups], [float("nan") if v is None else v for v in values], style,
                label=f"{name}: {key.upper()}")
    ax.set_xlabel("lead time (h)")
    ax.set_ylabel(key.upper() + (f" ({report.unit})" if key == "rmse" and report.unit else ""))
    ax.set_title(report.sentence, loc="left", fontsize="small")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize="small")
