"""The virgo-glitch chapter (``twin demo --app virgo-glitch``): simulated frames of a strain channel and nine
auxiliary channels (4096-sample array fields) stream into a twin as Arrow; the app's function on arrival
whitens each frame, vetoes strain glitches that coincide with auxiliary-channel transients, and publishes
the cleaned strain to the twin's ``cleaned`` stream; the chapter scores the veto against the simulator's
truth, measures the excess power left in the glitch frames, runs the spectrum workflow on the cleaned
stream, and plots a glitch frame before and after."""

from __future__ import annotations

import importlib
import time
from typing import Any

import numpy as np

from twinengine.demo.chapters.lattice import _lake_endpoint
from twinengine.demo.chapters.twins import _free_name
from twinengine.demo.context import DemoContext

__all__ = ["glitch_veto"]

FRAMES = 120
WAIT_SECONDS = 300.0


def _arrow(frames: list[Any], size: int) -> Any:
    import pyarrow as pa

    names = list(frames[0].record)
    columns: dict[str, Any] = {"time": pa.array([f.record["time"] for f in frames], pa.timestamp("us", tz="UTC"))}
    for name in names[1:]:
        columns[name] = pa.FixedSizeListArray.from_arrays(pa.array(np.concatenate([f.record[name] for f in frames])),
                                                          size)
    return pa.table(columns)


def _loudest(detector: Any, white: np.ndarray) -> float:
    """The loudest excess-power significance in a whitened frame (the detector's own statistic)."""
    return float(np.max(detector.tile_energy(white)))


def glitch_veto(ctx: DemoContext) -> None:
    uma, package = ctx.client("uma"), ctx.app_package.__name__
    _lake_endpoint(ctx)  # compacted stream segments are registered in the lake on site-a
    simulator = importlib.import_module(f"{package}.simulator")
    detector = importlib.import_module(f"{package}.detector")
    size = importlib.import_module(f"{package}.channels").SAMPLE_RATE
    twin = uma.create_twin(ctx.facts["app"], _free_name(uma, "virgo-noise"), {},
                           description="Noise twin of an interferometer: strain and nine auxiliary channels")
    frames = list(simulator.frames(FRAMES, seed=ctx.options.seed))
    sent = uma.streams.append(twin.name, "frame", _arrow(frames, size)).count
    ctx.say(f"uma created twin {twin.name}; {sent} one-second frames of ten {size} Hz channels went in as Arrow")
    deadline = time.monotonic() + WAIT_SECONDS
    while (cleaned := uma.streams.read_arrow(twin.name, "cleaned")).num_rows < FRAMES:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {cleaned.num_rows} of {FRAMES} frames were cleaned in {WAIT_SECONDS:.0f} s")
        time.sleep(0.5)
    truth = np.array([f.kind == "glitch" for f in frames])
    vetoed = np.array(cleaned.column("vetoed").to_pylist(), dtype=bool)
    efficiency = float(vetoed[truth].mean()) if truth.any() else float("nan")
    false_rate = float(vetoed[~truth].mean())
    white = np.stack(cleaned.column("h").to_numpy(zero_copy_only=False))
    glitches = np.flatnonzero(truth)
    raw = [detector.whiten(np.asarray(frames[i].record["h"], dtype=float)) for i in glitches]
    # excess power above what noise alone reaches: the loudest tile of a frame, less the median loudest tile
    # of the frames without a transient
    floor = float(np.median([_loudest(detector, white[i]) for i in np.flatnonzero(
        [f.kind == "clean" for f in frames])]))
    before = sum(max(0.0, _loudest(detector, w) - floor) for w in raw)
    after = sum(max(0.0, _loudest(detector, white[i]) - floor) for i in glitches)
    reduction = 1.0 - after / before if before > 0 else float("nan")
    ctx.say(f"veto: {int(vetoed[truth].sum())} of {int(truth.sum())} glitch windows ({efficiency:.1%}), "
            f"{int(vetoed[~truth].sum())} of {int((~truth).sum())} other windows ({false_rate:.1%}); "
            f"excess power in the glitch frames (loudest tile above the noise floor) down {reduction:.0%} in the "
            "cleaned strain")
    run = uma.workflows.run(twin.name, "spectrum", sync=True)
    if run.status != "finished":
        raise RuntimeError(f"the spectrum workflow ended as {run.status}: {run.error}")
    state = {k: v.value for k, v in uma.get_state(twin.name).reported.items()}
    ctx.say(f"spectrum workflow over the cleaned stream (load_stream, a sample dimension): "
            f"{state['spectrum_windows']} kept windows, spectral flatness {state['spectrum_flatness']:.2f} "
            "(1 is white)")
    path = ctx.options.plot or ctx.runtime.data_dir / "virgo-glitch.png"
    if glitches.size:
        _plot(path, raw[0], white[glitches[0]], size, title=f"{twin.name}: frame {glitches[0]} "
              f"(glitch born in {frames[glitches[0]].channel})")
    ctx.facts["twin_name"] = twin.name
    ctx.facts["virgo"] = {"twin": twin.name, "frames": FRAMES, "glitches": int(truth.sum()),
                          "efficiency": efficiency, "false_rate": false_rate, "power_reduction": reduction,
                          "state": state, "plot": str(path) if glitches.size else None}
    ctx.summary += [("veto", f"{efficiency:.1%} of glitch windows, {false_rate:.1%} of others "
                             "(goals: >= 90 %, <= 1 %)"),
                    ("cleaned strain", f"excess power in glitch frames down {reduction:.0%} (goal >= 80 %); "
                                       f"flatness {state['spectrum_flatness']:.2f}")]
    if glitches.size:
        ctx.summary.append(("plot", str(path)))


def _plot(path: Any, raw: np.ndarray, cleaned: np.ndarray, rate: int, *, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = np.arange(raw.size) / rate
    fig, ax = plt.subplots(figsize=(9, 4.5), layout="constrained")
    ax.plot(t, raw, lw=0.6, label="whitened strain as measured")
    ax.plot(t, cleaned, lw=0.6, label="cleaned strain (published to the 'cleaned' stream)")
    ax.set_xlabel("time in frame (s)")
    ax.set_ylabel("whitened strain (noise sigma)")
    ax.set_title(title, loc="left")
    ax.legend(loc="upper right")
    ax.grid(alpha=0.3)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
