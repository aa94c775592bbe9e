"""``twin verify``: skill scores of a twin's forecasts per lead time against what was observed, as a table
and a PNG (skill and errors by lead, and the forecast of one lead against the observations)."""

from __future__ import annotations

from pathlib import Path

import typer

from twinengine.cli._common import console, state_of, table
from twinengine.cli.state import _instant

__all__ = ["verify"]

COLUMNS = ("n", "rmse", "mae", "bias", "nse", "kge", "crps", "spread_skill", "brier", "coverage")


def _lead(seconds: int) -> str:
    return f"{seconds / 3600:g} h" if seconds % 3600 == 0 or seconds >= 3600 else f"{seconds / 60:g} min"


def _num(value: float | int | None) -> str:
    if value is None:
        return "-"
    return str(value) if isinstance(value, int) else f"{value:.3f}"


def verify(ctx: typer.Context, twin: str = typer.Argument(..., help="The twin (id or name)."),
           prop: str = typer.Option("level", "--property", "-p", help="The verified state property."),
           lead: str | None = typer.Option(None, "--lead", help="Only this lead time: 24h, PT24H..."),
           since: str | None = typer.Option(None, "--since", help="Forecasts valid from (ISO 8601)."),
           until: str | None = typer.Option(None, "--until", help="Forecasts valid before (ISO 8601)."),
           tolerance: str | None = typer.Option(None, "--tolerance", help="Nearest observation within (30min)."),
           threshold: float | None = typer.Option(None, "--threshold", help="Event threshold (Brier score)."),
           workflow: str | None = typer.Option(None, "--workflow", help="Only forecasts of this workflow."),
           model_version: str | None = typer.Option(None, "--model-version", help="Only this model version."),
           plot: Path | None = typer.Option(None, "--plot", help="Where the PNG goes (default: "
                                                                 "TWIN-PROPERTY-verification.png here)."),
           no_plot: bool = typer.Option(False, "--no-plot", help="No PNG.")) -> None:
    """Verify a twin's forecasts against what was observed, per workflow, model version and lead.

    RMSE, MAE, bias, NSE, KGE; CRPS, spread/skill, Brier and interval coverage when the forecasts carry
    members, probabilities or intervals."""
    out = state_of(ctx)
    with out.client() as client:
        report = client.verification.scores(twin, prop, lead=lead, since=_instant(since, "--since"),
                                            until=_instant(until, "--until"), tolerance=tolerance,
                                            threshold=threshold, workflow=workflow, model_version=model_version,
                                            pairs=not no_plot)
    path = None
    if not no_plot and report.leads:
        from twinengine.quality.verification_plot import plot_verification

        shown = report.leads[0]  # the shortest lead (of the first workflow and version)
        path = plot_verification(plot or Path(f"{twin}-{prop}-verification.png"),
                                 [(g.lead_seconds / 3600, g.model_dump()) for g in report.leads
                                  if (g.workflow, g.model_version) == (shown.workflow, shown.model_version)],
                                 pairs=[(p.valid_time, p.forecast, p.observed) for p in shown.pairs or []],
                                 pairs_label=f"{prop}: forecast {_lead(shown.lead_seconds)} ahead against observed",
                                 unit=report.unit, title=f"verification of {twin}/{prop}")
    result = report.model_dump(mode="json", exclude={"leads": {"__all__": {"pairs"}}})
    result["plot"] = str(path) if path else None

    def render() -> None:
        if not report.leads:
            console.print(f"no forecast of {prop} has been matched with an observation yet "
                          f"({report.forecast_values} forecast values, {report.observations} observations)")
            return
        console.print(table(f"verification of {twin}/{prop} ({report.unit or 'no unit'})",
                            ["workflow", "model", "lead", *COLUMNS],
                            [(g.workflow or "-", g.model_version or "-", _lead(g.lead_seconds),
                              *(_num(getattr(g, c)) for c in COLUMNS)) for g in report.leads]))
        if path is not None:
            console.print(f"plot: {path}")

    out.emit(result, render)
