"""The calibration chapter: ``twin calibrate`` fits the live twin's reservoir_hours and runoff_coefficient to its
gauges' history (SCE-UA, then a short posterior sample), and shows the best values with their 90 % intervals and
correlation and a figure. The demo rejects the proposal, so the later chapters see the twin as it was."""

from __future__ import annotations

import time

from twinengine.demo.context import DemoContext

__all__ = ["calibrate_reach"]

RUNS = 240


def calibrate_reach(ctx: DemoContext) -> None:
    uma = ctx.client("uma")
    twin = ctx.facts.get("streams", {}).get("twin")  # its gauge readings are in its stream
    if twin is None:
        ctx.say("calibration skipped: no twin was fed live")
        return
    started = time.perf_counter()
    read = uma.calibration.start(twin, method="sceua", objective="nse", runs=RUNS, workers=2,
                                 seed=ctx.options.seed)
    read = uma.calibration.wait(read.id, interval=0.2)
    seconds = time.perf_counter() - started
    if read.status != "done" or read.summary is None or not read.best:
        ctx.say(f"calibration {read.id} ended {read.status}: {read.error}")
        return
    summary = read.summary
    shown = []
    for name in read.parameters:
        low, high = summary["interval"].get(name, (None, None))
        band = f" (90 % {low:.3g} to {high:.3g})" if low is not None else ""
        shown.append(f"{name} {read.best[name]:.3g}{band}")
    corr = summary.get("correlation")
    if read.best_score is not None and read.best_score < 0:  # a short run: a few hours of a quiet gauge
        shown.append(f"NSE below 0: the best fit does worse than the readings' own mean over {ctx.options.hours:g} "
                     "h of them (a longer run, `--hours 24`, calibrates on more)")
    ctx.say(f"`twin calibrate {twin}`: {read.runs_done} model runs in {seconds:.1f} s on 2 workers, best NSE "
            f"{read.best_score:.3f}: " + ", ".join(shown)
            + (f"; correlation {corr[0][1]:+.2f}" if corr and len(corr) > 1 else ""))
    path = ctx.runtime.data_dir / "river-reach-calibration.png"
    path.write_bytes(uma.calibration.figure(read.id))
    uma.calibration.reject(read.id)  # the later chapters see the twin as it was
    ctx.facts["calibration"] = {"id": read.id, "runs": read.runs_done, "seconds": seconds, "nse": read.best_score,
                                "best": read.best, "interval": summary["interval"], "plot": str(path)}
    ctx.summary += [("calibration", f"{read.runs_done} runs in {seconds:.1f} s, NSE {read.best_score:.3f}: "
                                    + ", ".join(shown) + f"; `twin calibrate {twin}`"),
                    ("calibration plot", str(path))]
