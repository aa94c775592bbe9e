"""The assimilation chapter: the live twin's storage is not known at the start (a wetter first guess than the
catchment holds), and ``twin assimilate`` corrects it from the level gauge through the rating curve, one cycle
per reading. Forecasts of the level 1-12 h ahead are then issued every few hours twice, driven by the rain the
gauge measured: from the twin's analysis ensemble, and from the model run alone from the first guess (no
assimilation); the engine's verification scores both against the gauge (NSE, CRPS)."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from twinengine.demo.context import DemoContext

__all__ = ["assimilate_gauges"]

FIRST_GUESS_MM = 25.0  # the twin's storage before any cycle: wetter than the catchment
HORIZON_HOURS = 12
EVERY_HOURS = 4
LEADS = (1, 3, 6, 12)


def _forecast(ctx: DemoContext, params: dict[str, Any], storages: list[float], rain: list[float],
              steps_per_hour: int) -> np.ndarray:
    """Levels (hours x members) of the app's catchment model from each storage under the measured rain."""
    reach = ctx.app_package
    rating = reach.RatingCurve(params["rating_a"], params["rating_b"], params["datum_m"])
    out = np.zeros((HORIZON_HOURS, len(storages)))
    for j, storage in enumerate(storages):
        catchment = reach.Catchment.from_parameters(params)
        catchment.storage_mm = storage
        discharge = catchment.discharge()
        for h in range(HORIZON_HOURS):
            for r in rain[h * steps_per_hour: (h + 1) * steps_per_hour]:
                discharge = catchment.step(r, 1.0 / steps_per_hour)
            out[h, j] = rating.level(discharge)
    return out


def _plot(path: Path, times: list[datetime], mean: np.ndarray, low: np.ndarray, high: np.ndarray,
          free: np.ndarray, scores: dict[str, dict[int, dict[str, float | None]]], title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from twinengine.figures import save_figure

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 7))
    top.fill_between(times, low, high, color="tab:blue", alpha=0.25, label="analysis 5-95 %")
    top.plot(times, mean, color="tab:blue", label="analysis mean")
    top.plot(times, free, color="tab:gray", linestyle="--", label="model alone (no assimilation)")
    top.set_ylabel("storage (mm)")
    top.legend()
    for name, color in (("assimilated", "tab:blue"), ("open-loop", "tab:gray")):
        leads = sorted(scores[name])
        bottom.plot(leads, [scores[name][h]["nse"] for h in leads], marker="o", color=color,
                    label=f"{name}: NSE of the level")
    bottom.set_xlabel("lead (h)")
    bottom.set_ylabel("NSE")
    bottom.legend()
    return save_figure(fig, path, title=title)


def assimilate_gauges(ctx: DemoContext) -> None:
    from twinengine.twins.schemas import PropertyWrite

    o, uma = ctx.options, ctx.client("uma")
    twin = ctx.facts.get("streams", {}).get("twin")  # its gauge readings are in its stream
    if twin is None:
        ctx.say("assimilation skipped: no twin was fed live")
        return
    params = uma.get_twin(twin).parameters
    uma.write_state(twin, reported={"storage": PropertyWrite(value=FIRST_GUESS_MM, timestamp=o.start)},
                    message="first guess of the storage")
    started = time.perf_counter()
    got = uma.assimilation.run(twin, cycles=1)
    advance = ctx.track("assimilation cycles", len(got.cycles) + got.pending)
    cycles = list(got.cycles)
    advance(len(got.cycles))
    while got.pending:
        got = uma.assimilation.run(twin, cycles=200)
        cycles += got.cycles
        advance(len(got.cycles))
        if not got.cycles:
            break
    seconds = time.perf_counter() - started
    if not cycles:
        ctx.say("assimilation skipped: the twin has no gauge readings")
        return
    used = sum(c.obs_count for c in cycles)
    later = [(c.innovation_rms, c.expected_rms) for c in cycles[1:]  # past the first guess's own shock
             if c.innovation_rms is not None and c.expected_rms]
    ratio = float(np.sqrt(np.mean([i**2 for i, _e in later]) / np.mean([e**2 for _i, e in later])))  \
        if later else float("nan")
    ctx.say(f"`twin assimilate {twin}`: {len(cycles)} cycles ({cycles[0].method}, {cycles[0].members} members) "
            f"used {used} level readings in {seconds:.1f} s; after the first, innovations {ratio:.2f} times what "
            f"the filter expected; storage {FIRST_GUESS_MM:g} mm at first, {cycles[-1].spread:.2f} mm spread now")
    # the analyses (one per reading) and the measured rain, on the readings' times
    analyses = uma.history(twin, "storage", since=o.start + timedelta(seconds=1), limit=100_000).items
    stream = uma.streams.read_arrow(twin, "gauges")
    times = list(stream.column("time").to_pylist())
    rain = [max(float(r or 0.0), 0.0) for r in stream.column("rain").to_pylist()]
    steps_per_hour = round(60 / o.step_minutes)
    by_time = {a.timestamp: a for a in analyses}
    free, catchment = [], ctx.app_package.Catchment.from_parameters(params)
    catchment.storage_mm = FIRST_GUESS_MM
    for r in rain:
        catchment.step(r, 1.0 / steps_per_hour)
        free.append(catchment.storage_mm)
    flags = stream.column("_quality").to_pylist() if "_quality" in stream.column_names else [None] * len(times)
    levels = [float("nan") if v is None or flag == "bad" else float(v)  # a gauge spike verifies nothing
              for v, flag in zip(stream.column("level").to_pylist(), flags, strict=True)]
    ours: dict[int, list[tuple[float, list[float]]]] = {h: [] for h in LEADS}
    alone: dict[int, list[tuple[float, list[float]]]] = {h: [] for h in LEADS}
    issued = 0
    for k in range(EVERY_HOURS * steps_per_hour - 1, len(times) - HORIZON_HOURS * steps_per_hour,
                   EVERY_HOURS * steps_per_hour):
        analysis = by_time.get(times[k])
        if analysis is None or analysis.uncertainty is None or not analysis.uncertainty.members:
            continue
        ahead = rain[k + 1: k + 1 + HORIZON_HOURS * steps_per_hour]
        members = _forecast(ctx, params, list(analysis.uncertainty.members), ahead, steps_per_hour)
        free_run = _forecast(ctx, params, [free[k]], ahead, steps_per_hour)
        for h in LEADS:
            observed = levels[k + h * steps_per_hour]
            if np.isfinite(observed):
                ours[h].append((observed, members[h - 1].tolist()))
                alone[h].append((observed, free_run[h - 1].tolist()))
        issued += 1
    scores = {"assimilated": _scores(ours), "open-loop": _scores(alone)}
    shown = [h for h in LEADS if scores["assimilated"].get(h) and scores["open-loop"].get(h)]
    ctx.say(f"{issued} level forecasts {HORIZON_HOURS} h ahead (every {EVERY_HOURS} h, driven by the measured "
            "rain) from the analysis ensemble and from the model alone, scored against the gauge:")
    for h in shown:
        a, f = scores["assimilated"][h], scores["open-loop"][h]
        ctx.say(f"  lead {h:>2} h: NSE {_num(a['nse'])} with assimilation, {_num(f['nse'])} without; CRPS "
                f"{_num(a['crps'])} m with, {_num(f['crps'])} m without")
    mean = np.array([float(by_time[t].value) if t in by_time else np.nan for t in times])
    quantiles = [_quantiles(by_time.get(t)) for t in times]
    low = np.array([q["0.05"] if q else np.nan for q in quantiles])
    high = np.array([q["0.95"] if q else np.nan for q in quantiles])
    path = _plot(ctx.runtime.data_dir / "river-reach-assimilation.png", times, mean, low, high, np.asarray(free),
                 scores,
                 f"{twin}: storage corrected from the level gauge, and forecast skill with and without it")
    ctx.facts["assimilation"] = {
        "cycles": len(cycles), "observations": used, "seconds": seconds, "innovation_ratio": float(ratio),
        "forecasts": issued, "plot": str(path),
        "nse": {name: {h: scores[name][h]["nse"] for h in shown} for name in scores},
        "crps": {name: {h: scores[name][h]["crps"] for h in shown} for name in scores}}
    nse = ", ".join(f"{h} h {_num(scores['assimilated'][h]['nse'])} vs {_num(scores['open-loop'][h]['nse'])}"
                    for h in shown)
    ctx.summary += [("assimilation", f"{len(cycles)} cycles in {seconds:.1f} s; level NSE with vs without "
                                     f"assimilation: {nse}; `twin assimilate {twin}`"),
                    ("assimilation plot", str(path))]


def _scores(pairs: dict[int, list[tuple[float, list[float]]]]) -> dict[int, dict[str, float | None]]:
    """The engine's verification scores (``quality.scores``) per lead: NSE of the mean, CRPS of the members."""
    from twinengine.quality.scores import Pairs, skill

    out = {}
    for h, found in pairs.items():
        if len(found) >= 2:
            members = np.array([m for _o, m in found])
            out[h] = skill(Pairs(observed=np.array([o for o, _m in found]), value=members.mean(axis=1),
                                 members=members))
    return out


def _quantiles(value: Any) -> dict[str, float] | None:
    uncertainty = getattr(value, "uncertainty", None)
    return None if uncertainty is None else uncertainty.quantiles


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"
