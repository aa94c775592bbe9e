"""The verification chapter: the official twin's forecast workflow is run from past times over the record its
gauges reported (hindcasts, driven by the rain they measured, each starting from the twin's state as it was at
its issue time: ``start: {at}``), the engine matches each forecast hour with the nearest observed level, and
scores them per lead time, up to 48 h on a long enough record: NSE and KGE, the coverage of a 90 %
split-conformal interval calibrated on the earlier hindcasts and checked on the later ones, and, for every
hindcast run again as an ensemble (one forecast with every member), CRPS, spread/skill and the rank histogram.
The scores are also kept per period of valid time (the score history). So the twin people are sent to carries
its own verification: its flood view says how good its forecasts have been at each lead."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import xarray as xr

from twinengine.demo.context import DemoContext

__all__ = ["verify_forecasts"]

EVERY_HOURS = 3
MOST = 8  # hindcasts at most (each also as an ensemble): the first half calibrates the interval
LEVEL = 0.9
MEMBERS = 8  # each later hindcast again as an ensemble of this many members
HISTORY = "12h"  # the period of the score history shown


def _hourly(items: list[Any], start: datetime, hours: int) -> np.ndarray[Any, np.dtype[np.float64]]:
    """Mean of the readings in each hour after ``start`` (NaN where none)."""
    sums, counts = np.zeros(hours), np.zeros(hours)
    for item in items:
        h = int((item.timestamp - start).total_seconds() // 3600)
        if 0 <= h < hours:
            sums[h] += float(item.value)
            counts[h] += 1
    with np.errstate(invalid="ignore"):
        return np.asarray(sums / counts, dtype="float64")


def _rain_collection(folder: Any, name: str, start: datetime, rain: np.ndarray[Any, Any]) -> None:
    """The measured catchment rain of the hindcast's hours, uniform over a small grid around the catchment."""
    lat, lon = np.linspace(46.0, 47.0, 6), np.linspace(7.0, 8.2, 7)
    times = np.datetime64(start.replace(tzinfo=None), "h") + np.arange(rain.size) * np.timedelta64(1, "h")
    cube = np.broadcast_to(np.nan_to_num(rain)[:, None, None], (rain.size, lat.size, lon.size)).astype("float32")
    xr.Dataset({"rain": (("time", "lat", "lon"), cube, {"units": "mm h-1"})},
               coords={"time": times, "lat": lat, "lon": lon}).to_zarr(folder / f"{name}.zarr", mode="w",
                                                                       consolidated=False)


def horizon_hours(hours: int) -> int:
    """How far the hindcasts look ahead: 48 h on a record of three days or more (the flood view's longest
    lead), 24 h on two days, else 12 h."""
    return 48 if hours >= 72 else 24 if hours >= 48 else 12


def _hindcast(ctx: DemoContext, twin: str, issued: datetime, rain: np.ndarray[Any, Any], interval: float | None,
              members: int = 0) -> str:
    """One hindcast from ``issued``, starting from the twin's state as it was then: a run of the forecast
    workflow, or an ensemble of ``members`` (perturbed as the app declares, as the official forecast's ensemble
    is: what is verified is the forecasting system the flood view answers with), which records one forecast with
    every member."""
    uma = ctx.client("uma")
    folder = ctx.runtime.settings.collections_dir or ctx.runtime.data_dir / "collections"
    folder.mkdir(parents=True, exist_ok=True)
    name = f"rain-hindcast-{issued:%Y%m%dT%H}"
    if not (folder / f"{name}.zarr").exists():
        _rain_collection(folder, name, issued, rain)
    parameters = {"collection": name, "interval_m": interval}
    start = {"at": issued.isoformat()}  # the storage the twin knew then, not now
    if members:
        started = uma.ensembles.run(twin, "forecast", members=members, seed=ctx.options.seed, parameters=parameters,
                                    start=start)
        ended = uma.ensembles.wait(started.id, poll=0.05, timeout=600)
        status, error, run_id = ended.status, ended.error, ended.id
    else:
        run = uma.workflows.run(twin, "forecast", parameters, sync=True, start=start)
        status, error, run_id = run.status, run.error, run.id
    if status != "finished":
        raise RuntimeError(f"the hindcast from {issued:%Y-%m-%d %H:%M} ended as {status}: {error}")
    return run_id


def verify_forecasts(ctx: DemoContext) -> None:
    from twinengine.quality.conformal import calibrate
    from twinengine.quality.verification_plot import plot_verification

    o, uma = ctx.options, ctx.client("uma")
    twin = ctx.facts["twin_name"]  # the official twin: the one people are sent to carries its own skill
    hours = int(o.hours)
    horizon = horizon_hours(hours)
    rain = _hourly(uma.history(twin, "rain", limit=100_000).items, o.start, hours)
    issues = [o.start + timedelta(hours=h) for h in range(EVERY_HOURS, hours - horizon + 1, EVERY_HOURS)][:MOST]
    if len(issues) < 4:
        ctx.say(f"verification skipped: {hours} h of gauge records leave too few hindcasts of {horizon} h")
        return
    calibration, checked = issues[: len(issues) // 2], issues[len(issues) // 2:]
    advance = ctx.track("hindcasts of the forecast workflow (each also as an ensemble)", 2 * len(issues))
    started = time.perf_counter()

    def run(at: datetime, interval: float | None, members: int = 0) -> None:
        offset = int((at - o.start).total_seconds() // 3600)
        _hindcast(ctx, twin, at, rain[offset: offset + horizon], interval, members)
        advance(1)

    for at in calibration:
        run(at, None)
        run(at, None, MEMBERS)
    # a split-conformal 90 % interval from the earlier hindcasts' errors (the only forecasts matched with
    # observations yet: the official forecast lies ahead of them), used by the later ones
    known = uma.verification.scores(twin, "level", pairs=True, workflow="forecast")
    pairs = [(p.forecast, p.observed) for g in known.leads if not g.members for p in g.pairs or []]
    interval = calibrate(np.array([f for f, _ in pairs]), np.array([v for _, v in pairs]), level=LEVEL)
    if not np.isfinite(interval.half_width):  # too few pairs for the level: the later hindcasts carry none
        raise RuntimeError(f"{len(pairs)} hindcast pairs are too few for a {LEVEL:.0%} conformal interval")
    for at in checked:
        run(at, interval.half_width)
        run(at, None, MEMBERS)
    report = uma.verification.scores(twin, "level", workflow="forecast")
    # values valid after every calibration hindcast ended: only the later hindcasts, which carry the interval
    later = uma.verification.scores(twin, "level", since=calibration[-1] + timedelta(hours=horizon),
                                    workflow="forecast")
    seconds = time.perf_counter() - started
    single = [g for g in report.leads if not g.members]
    ensemble = [g for g in report.leads if g.members]
    leads = {g.lead_seconds // 3600: g for g in single}
    shown = [h for h in (1, 6, 12, 24, 48) if h in leads and h <= horizon]
    covered = [g for g in later.leads if g.coverage is not None and not g.members]
    coverage = (sum(g.coverage * g.n for g in covered if g.coverage is not None) / sum(g.n for g in covered)
                if covered else None)
    crps = [g.crps for g in ensemble if g.crps is not None]
    ranks = _pooled([(g.rank_histogram, g.n) for g in ensemble if g.rank_histogram])
    ratio = [g.spread_skill for g in ensemble if g.spread_skill is not None]
    history = uma.verification.history(twin, "level", period=HISTORY, lead="6h", workflow="forecast")
    facts: dict[str, Any] = {
        "twin": twin, "horizon_hours": horizon, "every_hours": EVERY_HOURS,
        "hindcasts": len(issues), "ensembles": len(issues), "members": MEMBERS, "seconds": seconds,
        "pairs": sum(g.n for g in single),
        "nse": {h: leads[h].nse for h in shown}, "kge": {h: leads[h].kge for h in shown},
        "crps": {g.lead_seconds // 3600: g.crps for g in ensemble if g.crps is not None} or None,
        "spread_skill": float(np.mean(ratio)) if ratio else None, "rank_histogram": ranks,
        "interval_half_width_m": interval.half_width, "coverage": coverage, "nominal": LEVEL,
        "history": [(i.period_start.isoformat(), i.members, i.rmse, i.crps) for i in history.items]}
    ctx.say(f"{len(issues)} hindcasts of {twin}'s forecast workflow ({horizon} h ahead, every {EVERY_HOURS} h, "
            f"each from the twin's state at its issue time), each also as an ensemble of {MEMBERS} members, "
            f"matched with {facts['pairs']} observed levels in {seconds:.1f} s")
    for h in shown:
        g = leads[h]
        ctx.say(f"  lead {h:>2} h: NSE {g.nse:.3f}, KGE {g.kge:.3f}, RMSE {g.rmse:.3f} m ({g.n} pairs)"
                if g.nse is not None and g.kge is not None and g.rmse is not None else f"  lead {h} h: too few pairs")
    if crps:
        ctx.say(f"  ensembles: CRPS {np.mean(crps):.3f} m averaged over leads, spread/skill "
                f"{facts['spread_skill']:.2f}" + (f", rank histogram {_bars(ranks)} (flat is calibrated)"
                                                   if ranks else ""))
    else:
        ctx.say("  CRPS skipped: no ensemble forecast of the level has members yet")
    if coverage is not None:
        ctx.say(f"  a {LEVEL:.0%} conformal interval (± {interval.half_width:.3f} m from {interval.n} earlier "
                f"pairs) covered {coverage:.1%} of the later hindcasts' observations")
    if history.items:
        kept = ", ".join(f"{i.period_start:%d %H:%M} {'-' if i.rmse is None else format(i.rmse, '.3f')}"
                         for i in history.items if not i.members)
        ctx.say(f"  score history kept per {HISTORY} of valid time (RMSE in m at lead 6 h): {kept}")
    issued = uma.verification.forecasts(twin, "level", limit=2 * len(issues), values=True)
    levels = uma.history(twin, "level", limit=100_000).items
    path = plot_verification(
        ctx.runtime.data_dir / "river-reach-verification.png",
        [(g.lead_seconds / 3600, g.model_dump()) for g in single],
        others={f"{MEMBERS}-member ensembles": [(g.lead_seconds / 3600, g.model_dump()) for g in ensemble]},
        observed=[(v.timestamp, float(v.value)) for v in levels],
        series=[[(v.valid_time, v.value) for v in f.values or []] for f in issued if not _members(f)],
        bands=[[(v.valid_time, v.lower, v.upper) for v in f.values or [] if v.lower is not None and
                v.upper is not None] for f in issued if _members(f)],
        bands_label=f"ensembles' 5-95 % of {MEMBERS} members",
        pairs_label=f"level: the {len(issues)} hindcasts ({horizon} h each) and the ensembles' spread "
                    "against the gauge",
        ranks=ranks, ranks_label=f"rank histogram of the {MEMBERS}-member ensembles, all leads",
        unit=report.unit,
        title=f"{twin}: hindcasts of the forecast workflow against the gauge")
    facts["plot"] = str(path)
    ctx.facts["verification"] = facts
    nse = ", ".join(f"{h} h {leads[h].nse:.2f}" for h in shown if leads[h].nse is not None)
    ctx.summary += [("forecast skill", f"NSE by lead {nse}; coverage of the {LEVEL:.0%} interval "
                                       + (f"{coverage:.0%}" if coverage is not None else "-")
                                       + (f"; ensembles' CRPS {np.mean(crps):.3f} m" if crps else "")
                                       + f"; `twin verify {twin}`"),
                    ("verification plot", str(path))]


def _members(forecast: Any) -> bool:
    return bool(forecast.values and forecast.values[0].members)


def _pooled(histograms: list[tuple[list[float], int]]) -> list[float] | None:
    """Rank histograms of several leads as one (weighted by their pairs)."""
    if not histograms:
        return None
    total = sum(n for _, n in histograms)
    return [sum(h[i] * n for h, n in histograms) / total for i in range(len(histograms[0][0]))]


def _bars(shares: list[float] | None) -> str:
    """A rank histogram as a line of block characters (the tallest rank is a full block)."""
    if not shares:
        return ""
    blocks = " ▁▂▃▄▅▆▇█"
    top = max(shares) or 1.0
    return "".join(blocks[round(s / top * 8)] for s in shares)
