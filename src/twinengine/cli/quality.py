"""``twin quality``: input quality of a twin's streams (flag shares, failed checks, lateness, completeness)
as tables, and as a plot of flag shares over time; with ``--run`` or ``--model``, the quality of every input a
workflow run or a model version used (pedigree)."""

from __future__ import annotations

from pathlib import Path

import typer

from twinengine.cli._common import console, state_of, table
from twinengine.cli.state import _instant
from twinengine.errors import ValidationFailed
from twinengine.quality.indicators import QualityReport, QualityWindow
from twinengine.quality.pedigree import QualityReport as InputsReport

__all__ = ["quality"]


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _secs(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _failed(window: QualityWindow) -> str:
    return ", ".join(f"{name} {n}" for name, n in sorted(window.checks.items(), key=lambda kv: -kv[1])) or "-"


def _render(reports: list[QualityReport], windows: bool) -> None:
    console.print(table("input quality", ["stream", "records", "good", "suspect", "bad", "completeness",
                                          "lateness p95 (s)", "failed checks"],
                        [(r.stream, r.total.records, _pct(r.total.shares["good"]), _pct(r.total.shares["suspect"]),
                          _pct(r.total.shares["bad"]), _pct(r.total.completeness), _secs(r.total.lateness_p95_s),
                          _failed(r.total)) for r in reports]))
    for report in reports if windows else []:
        rows = [w for w in report.windows if w.records or w.expected]
        console.print(table(f"{report.stream} per {report.window_s:g} s window", [
            "window (UTC)", "records", "good", "suspect", "bad", "completeness", "lateness p95 (s)", "failed checks"],
            [(w.start.strftime("%Y-%m-%d %H:%M"), w.records, w.good, w.suspect, w.bad,
              _pct(w.completeness) + ("" if w.complete in (None, True) else " (low)"), _secs(w.lateness_p95_s),
              _failed(w)) for w in rows]))


def _count(records: dict[str, int] | None, flag: str) -> str:
    return "-" if records is None else str(records.get(flag, 0))


def _inputs(report: InputsReport, plot: Path | None) -> None:
    if not report.inputs:
        console.print(f"{report.subject}: read no input (flag {report.flag})")
    else:
        console.print(table(f"input quality of {report.subject}: {report.flag}",
                            ["input", "version", "flag", "good", "suspect", "bad"],
                            [(i.collection, i.version or "-", i.flag, _count(i.records, "good"),
                              _count(i.records, "suspect"), _count(i.records, "bad")) for i in report.inputs]))
    if plot is not None:
        console.print(f"plot: {plot}")


def _pedigree(ctx: typer.Context, twin: str | None, run: str | None, model: str | None, version: str | None,
              plot: Path | None) -> None:
    """The quality report of a run (``--run``) or of a model version (``TWIN --model M --version V``)."""
    if run is not None and (model is not None or version is not None):
        raise ValidationFailed.one("--run", "give --run or --model with --version, not both")
    if run is None and (twin is None or model is None or version is None):
        missing = "TWIN" if twin is None else "--model" if model is None else "--version"
        raise ValidationFailed.one(missing, "a model version's report needs TWIN, --model and --version")
    out = state_of(ctx)
    with out.client() as client:
        report = (client.workflows.quality(run) if run is not None
                  else client.ml.quality(str(twin), str(model), str(version)))
    if plot is not None:
        from twinengine.quality.plot import plot_inputs

        plot_inputs(plot, report)
    out.emit({**report.model_dump(mode="json"), "plot": str(plot) if plot else None},
             lambda: _inputs(report, plot))


def quality(ctx: typer.Context, twin: str | None = typer.Argument(None, help="The twin (not needed with --run)."),
            stream: str | None = typer.Option(None, "--stream", "-s", help="One stream (default: all)."),
            start: str | None = typer.Option(None, "--from", help="Event time from (ISO 8601)."),
            end: str | None = typer.Option(None, "--to", help="Event time before (ISO 8601)."),
            window: str | None = typer.Option(None, "--window", help="Window length: 15min, 1h, 1d..."),
            plot: Path | None = typer.Option(None, "--plot", help="Write a PNG of flag shares over time (of the "
                                                                  "inputs' records with --run or --model)."),
            run: str | None = typer.Option(None, "--run", help="Instead: the quality of every input this "
                                                               "workflow run used."),
            model: str | None = typer.Option(None, "--model", help="Instead: the records a version of this model "
                                                                   "was trained on (with --version)."),
            version: str | None = typer.Option(None, "--version", help="The model version (with --model).")) -> None:
    """Input quality of a twin's streams: share of good / suspect / bad records, failed checks, lateness and
    completeness, per window of event time.

    With --run RUN, or TWIN --model M --version V: every input that run or model version used, with its
    records per flag (pedigree)."""
    if run is not None or model is not None or version is not None:
        _pedigree(ctx, twin, run, model, version, plot)
        return
    if twin is None:
        raise ValidationFailed.one("TWIN", "give the twin (or --run RUN, or TWIN --model M --version V)")
    out = state_of(ctx)
    with out.client() as client:
        names = [stream] if stream else [s.name for s in client.streams.list(twin)]
        reports = [client.streams.quality(twin, name, start=_instant(start, "--from"), end=_instant(end, "--to"),
                                          window=window) for name in names]
    if plot is not None:
        from twinengine.quality.plot import plot_quality

        plot_quality(plot, reports, title=f"input quality of {twin}")
    result = {"twin": twin, "streams": [r.model_dump(mode="json") for r in reports],
              "plot": str(plot) if plot else None}

    def render() -> None:
        _render(reports, windows=stream is not None)
        if plot is not None:
            console.print(f"plot: {plot}")

    out.emit(result, render)
