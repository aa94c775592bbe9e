"""The assimilation chapter: the live twin's storage is not known at the start (a wetter first guess than the
catchment holds), and ``twin assimilate`` corrects it from the level gauge through the rating curve, one cycle
per reading. Then ``twin verify --against open-loop`` (the engine's assimilation skill) forecasts the level
1-12 h ahead from analyses spread over the cycles and from the model run alone from the first guess, both
driven by the rain the gauge measured, and scores them against the gauge (NSE, CRPS)."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from twinengine.demo.context import DemoContext

__all__ = ["assimilate_gauges"]

FIRST_GUESS_MM = 25.0  # the twin's storage before any cycle: wetter than the catchment
LEADS = ("1h", "3h", "6h", "12h")
STARTS = 18  # analyses forecast from, spread over the cycles (about one every 4 h of the default 72 h)
SPIN_UP_HOURS = 4  # the filter's first hours pull the storage from the wrong first guess: not forecast from


def _plot(path: Path, times: list[datetime], mean: np.ndarray, low: np.ndarray, high: np.ndarray, report: Any,
          title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from twinengine.figures import save_figure
    from twinengine.twin_assimilation.skill_plot import draw_skill

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 7), layout="constrained")
    top.fill_between(times, low, high, color="tab:blue", alpha=0.25, label="analysis 5-95 %")
    top.plot(times, mean, color="tab:blue", label="analysis mean")
    top.set_ylabel("storage (mm)")
    top.legend()
    draw_skill(bottom, report)
    return save_figure(fig, path, title=title)


def assimilate_gauges(ctx: DemoContext) -> None:
    from twinengine.twins.schemas import PropertyWrite

    o, uma = ctx.options, ctx.client("uma")
    twin = ctx.facts.get("streams", {}).get("twin")  # its gauge readings are in its stream
    if twin is None:
        ctx.say("assimilation skipped: no twin was fed live")
        return
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
    skill_started = time.perf_counter()
    report = uma.verification.assimilation(twin, "level", leads=list(LEADS), starts=STARTS,
                                           since=o.start + timedelta(hours=SPIN_UP_HOURS))
    skill_seconds = time.perf_counter() - skill_started
    alone = {g.lead_seconds: g for g in report.open_loop}
    shown = [(g, alone[g.lead_seconds]) for g in report.assimilated if g.lead_seconds in alone]
    ctx.say(f"`twin verify {twin} --against open-loop`: level forecasts 1-12 h ahead from {report.starts} "
            f"analyses (after the first {SPIN_UP_HOURS} h) and from the model alone (no assimilation), driven by "
            f"the measured rain, scored against the gauge in {skill_seconds:.1f} s:")
    for a, f in shown:
        ctx.say(f"  lead {a.lead_seconds // 3600:>2} h: NSE {_num(a.nse)} with assimilation, {_num(f.nse)} "
                f"without; CRPS {_num(a.crps)} m with, {_num(f.crps)} m without")
    ctx.say(f"  {report.sentence} {report.filter.words}")
    analyses = uma.history(twin, "storage", since=o.start + timedelta(seconds=1), limit=100_000).items
    times = [a.timestamp for a in analyses]
    mean = np.array([float(a.value) for a in analyses])
    quantiles = [_quantiles(a) for a in analyses]
    low = np.array([q["0.05"] if q else np.nan for q in quantiles])
    high = np.array([q["0.95"] if q else np.nan for q in quantiles])
    path = _plot(ctx.runtime.data_dir / "river-reach-assimilation.png", times, mean, low, high, report,
                 f"{twin}: storage corrected from the level gauge, and forecast skill with and without it")
    view = f"{ctx.url}/ui/twins/{twin}/views/flood"
    ctx.say(f"  the portal's flood view draws each analysis of the storage with its 5-95 % band: {view}")
    hours = {a.lead_seconds // 3600: (a, f) for a, f in shown}
    ctx.facts["assimilation"] = {
        "cycles": len(cycles), "observations": used, "seconds": seconds, "innovation_ratio": float(ratio),
        "forecasts": report.starts, "skill_seconds": skill_seconds, "plot": str(path),
        "sentence": report.sentence, "filter": report.filter.words, "view": view,
        "nse": {name: {h: pair[i].nse for h, pair in hours.items()} for i, name in enumerate(("assimilated",
                                                                                            "open-loop"))},
        "crps": {name: {h: pair[i].crps for h, pair in hours.items()} for i, name in enumerate(("assimilated",
                                                                                              "open-loop"))}}
    nse = ", ".join(f"{h} h {_num(a.nse)} vs {_num(f.nse)}" for h, (a, f) in hours.items()) or (
        f"none scored yet (forecasts start after the first {SPIN_UP_HOURS} h: a longer run, `--hours 24`, scores "
        "them)")
    ctx.summary += [("assimilation", f"{len(cycles)} cycles in {seconds:.1f} s; level NSE with vs without "
                                     f"assimilation: {nse}; `twin verify {twin} --against open-loop`"),
                    ("assimilation plot", str(path))]


def _quantiles(value: Any) -> dict[str, float] | None:
    uncertainty = getattr(value, "uncertainty", None)
    return None if uncertainty is None else uncertainty.quantiles


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"
