"""``twin verify``: skill scores of a twin's forecasts per lead time against what was observed, as a table
and a PNG (skill and errors by lead, the forecast of one lead against the observations, an ensemble's rank
histogram); with ``--history``, the kept scores per period of valid time and a plot of how they evolved."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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


def _system(group: Any) -> str:
    return f"{group.members} members" if group.members else "single"


def _pooled_ranks(groups: list[Any]) -> list[float] | None:
    """The rank histogram of every lead of one ensemble together (weighted by its pairs)."""
    found = [g for g in groups if g.rank_histogram and g.n]
    if not found:
        return None
    total = sum(g.n for g in found)
    return [sum(g.rank_histogram[i] * g.n for g in found) / total for i in range(len(found[0].rank_histogram))]


def verify(ctx: typer.Context, twin: str = typer.Argument(..., help="The twin (id or name)."),
           prop: str | None = typer.Option(None, "--property", "-p", help="The verified state property (default: "
                                                                          "level; with --against, the first "
                                                                          "observation assimilated)."),
           lead: str | None = typer.Option(None, "--lead", help="Only this lead time: 24h, PT24H..."),
           since: str | None = typer.Option(None, "--since", help="Forecasts valid from (ISO 8601); with "
                                                                 "--against, analyses valid from."),
           until: str | None = typer.Option(None, "--until", help="Forecasts valid before (ISO 8601)."),
           tolerance: str | None = typer.Option(None, "--tolerance", help="Nearest observation within (30min)."),
           threshold: float | None = typer.Option(None, "--threshold", help="Event threshold (Brier score)."),
           workflow: str | None = typer.Option(None, "--workflow", help="Only forecasts of this workflow."),
           model_version: str | None = typer.Option(None, "--model-version", help="Only this model version."),
           history: bool = typer.Option(False, "--history", help="The kept scores per period of valid time."),
           period: str | None = typer.Option(None, "--period", help="With --history: the period (default 1d)."),
           plot: Path | None = typer.Option(None, "--plot", help="Where the PNG goes (default: "
                                                                 "TWIN-PROPERTY-verification.png here; with "
                                                                 "--against, TWIN-assimilation-skill.png)."),
           no_plot: bool = typer.Option(False, "--no-plot", help="No PNG."),
           against: str | None = typer.Option(None, "--against", help="open-loop: forecasts from the twin's "
                                                                      "analyses against the model run without "
                                                                      "assimilation, per lead."),
           starts: int | None = typer.Option(None, "--starts", help="With --against: analyses to forecast from "
                                                                    "(default 24).")) -> None:
    """Verify a twin's forecasts against what was observed, per workflow, model version and lead.

    RMSE, MAE, bias, NSE, KGE; CRPS, spread/skill, rank histogram, Brier and interval coverage when the
    forecasts carry members, probabilities or intervals. An ensemble is scored apart from single forecasts.
    With --against open-loop: what assimilation adds, forecasts from the analyses against the model alone."""
    if against is not None:
        if against != "open-loop":
            raise typer.BadParameter(f"{against!r}: the only comparison is open-loop", param_hint="--against")
        _against(ctx, twin, prop, lead=lead, starts=starts, tolerance=tolerance, since=since,
                 plot=None if no_plot else plot or Path(f"{twin}-assimilation-skill.png"))
        return
    prop = prop or "level"
    if history:
        _history(ctx, twin, prop, period=period, lead=lead, since=since, until=until, workflow=workflow,
                 model_version=model_version, plot=None if no_plot else plot or Path(f"{twin}-{prop}-history.png"))
        return
    out = state_of(ctx)
    with out.client() as client:
        report = client.verification.scores(twin, prop, lead=lead, since=_instant(since, "--since"),
                                            until=_instant(until, "--until"), tolerance=tolerance,
                                            threshold=threshold, workflow=workflow, model_version=model_version,
                                            pairs=not no_plot)
    path = None
    if not no_plot and report.leads:
        from twinengine.quality.verification_plot import plot_verification

        shown = report.leads[0]  # the shortest lead of the first workflow, version and system
        same = [g for g in report.leads if (g.workflow, g.model_version) == (shown.workflow, shown.model_version)]
        ensembles = [g for g in same if g.members]
        ranks = _pooled_ranks([g for g in ensembles if g.members == ensembles[0].members]) if ensembles else None
        path = plot_verification(
            plot or Path(f"{twin}-{prop}-verification.png"),
            [(g.lead_seconds / 3600, g.model_dump()) for g in same if g.members == shown.members],
            others={_system(e): [(g.lead_seconds / 3600, g.model_dump()) for g in same if g.members == e.members]
                    for e in same if e.members != shown.members},
            pairs=[(p.valid_time, p.forecast, p.observed) for p in shown.pairs or []],
            pairs_label=f"{prop}: forecast {_lead(shown.lead_seconds)} ahead against observed",
            ranks=ranks, ranks_label=f"rank histogram of the {ensembles[0].members}-member ensemble, all leads"
            if ensembles else "",
            reliability=[(b.forecast, b.observed, b.count) for g in same for b in g.reliability or []],
            reliability_label=f"reliability of P({prop} > {threshold:g}), every lead's bins" if threshold is not None
            else "", unit=report.unit, title=f"verification of {twin}/{prop}")
    result = report.model_dump(mode="json", exclude={"leads": {"__all__": {"pairs"}}})
    result["plot"] = str(path) if path else None

    def render() -> None:
        if not report.leads:
            console.print(f"no forecast of {prop} has been matched with an observation yet "
                          f"({report.forecast_values} forecast values, {report.observations} observations)")
            return
        console.print(table(f"verification of {twin}/{prop} ({report.unit or 'no unit'})",
                            ["workflow", "model", "system", "lead", *COLUMNS],
                            [(g.workflow or "-", g.model_version or "-", _system(g), _lead(g.lead_seconds),
                              *(_num(getattr(g, c)) for c in COLUMNS)) for g in report.leads]))
        if path is not None:
            console.print(f"plot: {path}")

    out.emit(result, render)


def _history(ctx: typer.Context, twin: str, prop: str, *, period: str | None, lead: str | None, since: str | None,
             until: str | None, workflow: str | None, model_version: str | None, plot: Path | None) -> None:
    out = state_of(ctx)
    with out.client() as client:
        kept = client.verification.history(twin, prop, period=period, lead=lead, since=_instant(since, "--since"),
                                           until=_instant(until, "--until"), workflow=workflow,
                                           model_version=model_version)
    path = None
    if plot is not None and kept.items:
        from twinengine.quality.verification_plot import plot_history

        path = plot_history(plot, [(i.period_start, f"{i.workflow or '-'} {_system(i)} {_lead(i.lead_seconds)}",
                                    i.model_dump()) for i in kept.items],
                            unit=kept.unit, title=f"score history of {twin}/{prop} per "
                                                  f"{_lead(kept.period_seconds)}")
    result = kept.model_dump(mode="json")
    result["plot"] = str(path) if path else None

    def render() -> None:
        if not kept.items:
            console.print(f"no kept scores of {prop} yet (no forecast matched with an observation)")
            return
        console.print(table(f"score history of {twin}/{prop} per {_lead(kept.period_seconds)} ({kept.unit or '-'})",
                            ["period (UTC)", "workflow", "model", "system", "lead", *COLUMNS],
                            [(i.period_start.strftime("%Y-%m-%d %H:%M"), i.workflow or "-", i.model_version or "-",
                              _system(i), _lead(i.lead_seconds), *(_num(getattr(i, c)) for c in COLUMNS))
                             for i in kept.items]))
        if path is not None:
            console.print(f"plot: {path}")

    out.emit(result, render)


def _against(ctx: typer.Context, twin: str, prop: str | None, *, lead: str | None, starts: int | None,
             tolerance: str | None, since: str | None, plot: Path | None) -> None:
    out = state_of(ctx)
    with out.client() as client:
        report = client.verification.assimilation(twin, prop, leads=[lead] if lead else None, starts=starts,
                                                  tolerance=tolerance, since=_instant(since, "--since"))
    path = None
    if plot is not None and (report.assimilated or report.filter.innovations):
        from twinengine.twin_assimilation.skill_plot import plot_skill

        path = plot_skill(plot, report)
    result = report.model_dump(mode="json")
    result["plot"] = str(path) if path else None

    def render() -> None:
        health = report.filter
        if health.latest_analysis is not None:
            console.print(f"latest analysis: {health.latest_analysis:%Y-%m-%d %H:%M} UTC (cycle {health.cycles}, "
                          f"revision {health.latest_revision})", highlight=False)
        console.print(health.words, style="bold red" if health.diverging else None, highlight=False)
        if report.assimilated or report.open_loop:
            alone = {g.lead_seconds: g for g in report.open_loop}
            rows = [(_lead(g.lead_seconds), g.n, _num(g.nse), _num(alone[g.lead_seconds].nse if g.lead_seconds
                                                                   in alone else None),
                     _num(g.rmse), _num(alone[g.lead_seconds].rmse if g.lead_seconds in alone else None),
                     _num(g.crps)) for g in report.assimilated]
            console.print(table(f"{twin}/{report.property}: forecasts from the analysis against without "
                                f"assimilation ({report.unit or 'no unit'}; {report.starts} starts)",
                                ["lead", "n", "nse (analysis)", "nse (open loop)", "rmse (analysis)",
                                 "rmse (open loop)", "crps (analysis)"], rows))
        console.print(report.sentence, highlight=False)
        if path is not None:
            console.print(f"plot: {path}")

    out.emit(result, render)
