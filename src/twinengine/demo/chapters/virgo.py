"""The virgo-glitch chapter (``twin demo --app virgo-glitch``): a simulated strain channel and nine auxiliary
channels (4096-sample array fields) stream into a twin as ten Arrow streams; the app's function on arrival
joins them second by second, whitens each frame, vetoes strain glitches that coincide with auxiliary-channel
transients, and publishes the cleaned strain to the twin's ``cleaned`` stream; the chapter scores the veto
against the simulator's truth, measures the excess power left in the glitch frames, runs the spectrum
workflow on the cleaned stream, and plots a glitch frame before and after. The vetoed glitches' shapes fill a
retraining buffer of the ``glitches`` stream; each fill retrains the generative glitch-shape model and is
discarded."""

from __future__ import annotations

import importlib
import time
from typing import Any

import numpy as np

from twinengine.demo.chapters.lattice import _lake_endpoint
from twinengine.demo.chapters.twins import _free_name
from twinengine.demo.context import DemoContext, ml_extra_installed
from twinengine.demo.plot import plot_traces

__all__ = ["glitch_veto"]

FRAMES = 240
CHUNK = 20  # seconds of every channel per append
LOST = ("mic", 7)  # one second of the microphone never arrives: its window is judged on the other channels
WAIT_SECONDS = 300.0
MODEL = "glitch_shapes"
BUFFER = 10  # glitches per buffer fill: each fill retrains the glitch-shape model


def _arrow(records: list[dict[str, Any]]) -> Any:
    """One stream's records as an Arrow table: the time, and each array field as fixed-size lists."""
    import pyarrow as pa

    columns: dict[str, Any] = {"time": pa.array([r["time"] for r in records], pa.timestamp("us", tz="UTC"))}
    for name in [n for n in records[0] if n != "time"]:
        size = len(records[0][name])
        columns[name] = pa.FixedSizeListArray.from_arrays(pa.array(np.concatenate([r[name] for r in records])), size)
    return pa.table(columns)


def _send(uma: Any, twin: str, streams: dict[str, list[dict[str, Any]]], lost: tuple[str, int]) -> int:
    """Send the ten streams as the data acquisition would, a chunk of seconds at a time, the auxiliary
    channels first; one record of ``lost`` (stream, second) never arrives. Returns the strain records sent."""
    sent = 0
    for start in range(0, len(streams["strain"]), CHUNK):
        for name in sorted(streams, key=lambda n: n == "strain"):
            chunk = [r for i, r in enumerate(streams[name][start:start + CHUNK], start) if (name, i) != lost]
            count = uma.streams.append(twin, name, _arrow(chunk)).count
            sent += count if name == "strain" else 0
    return sent


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
    # glitches the veto finds fill a buffer; every BUFFER of them retrain the glitch-shape model, and a
    # consumed fill is discarded (the next one holds only newer glitches)
    retrains = ml_extra_installed()
    if retrains:
        uma.streams.create_buffer(twin.name, "new-glitches", "glitches", policy="count", records=BUFFER,
                                  discard_after=True)
        uma.ml.set_policy(twin.name, MODEL, buffer="new-glitches")
    frames = list(simulator.frames(FRAMES, seed=ctx.options.seed))
    sent = _send(uma, twin.name, simulator.by_stream(frames), LOST)
    ctx.say(f"uma created twin {twin.name}; {sent} seconds of ten {size} Hz channels went in as ten Arrow streams "
            f"(one second of {LOST[0]} lost on the way); the function joins them second by second")
    deadline = time.monotonic() + WAIT_SECONDS
    while (cleaned := uma.streams.read_arrow(twin.name, "cleaned")).num_rows < FRAMES:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {cleaned.num_rows} of {FRAMES} frames were cleaned in {WAIT_SECONDS:.0f} s")
        time.sleep(0.5)
    missing = [(i, m) for i, m in enumerate(cleaned.column("missing").to_pylist()) if m]
    ctx.say("windows judged without a channel: " + (", ".join(f"second {i} without {m}" for i, m in missing)
                                                    or "none"))
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
    retrained = _retrained(ctx, twin.name, int(vetoed.sum()) // BUFFER) if retrains else []
    path = ctx.options.plot or ctx.runtime.data_dir / "virgo-glitch.png"
    if glitches.size:
        plot_traces(path, {"whitened strain as measured": raw[0],
                           "cleaned strain (published to the 'cleaned' stream)": white[glitches[0]]},
                    rate=size, xlabel="time in frame (s)", ylabel="whitened strain (noise sigma)",
                    title=f"{twin.name}: frame {glitches[0]} (glitch born in {frames[glitches[0]].channel})")
    ctx.facts["twin_name"] = twin.name
    ctx.facts["virgo"] = {"twin": twin.name, "frames": FRAMES, "glitches": int(truth.sum()),
                          "efficiency": efficiency, "false_rate": false_rate, "power_reduction": reduction,
                          "incomplete": missing,
                          "state": state, "plot": str(path) if glitches.size else None,
                          "retrained": [{"version": t.version, "status": t.status, "trigger": t.trigger,
                                         "inputs": t.inputs} for t in retrained]}
    ctx.summary += [("veto", f"{efficiency:.1%} of {int(truth.sum())} glitch windows, {false_rate:.1%} of others "
                             "(goals >= 90 %, <= 1 %; the app's science test holds them on 600 frames)"),
                    ("cleaned strain", f"excess power in glitch frames down {reduction:.0%} (goal >= 80 %); "
                                       f"flatness {state['spectrum_flatness']:.2f}")]
    if retrains:
        ctx.summary.append(("glitch model", f"{len(retrained)} retraining(s) from buffer fills of {BUFFER} glitches"))
    if glitches.size:
        ctx.summary.append(("plot", str(path)))


def _retrained(ctx: DemoContext, twin: str, fills: int) -> list[Any]:
    """Wait for the retrainings the buffer's fills started; say what each gave."""
    uma = ctx.client("uma")
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        trail = [t for t in uma.ml.trail(twin, MODEL) if t.trigger.get("kind") == "buffer"]
        if len(trail) >= fills and all(t.status in ("succeeded", "failed") for t in trail):
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"{len(trail)} of {fills} buffer retrainings ended in {WAIT_SECONDS:.0f} s")
        time.sleep(0.5)
    for entry in sorted(trail, key=lambda t: t.created_at):
        metrics = uma.ml.run(twin, entry.run).metrics if entry.status == "succeeded" else {}
        verdict = "champion" if entry.decision and entry.decision.accepted else \
            f"kept the champion ({entry.decision.reason if entry.decision else entry.status})"
        ctx.say(f"buffer fill of {entry.inputs['end'] - entry.inputs['start']} glitches → {MODEL} "
                f"v{entry.version}: generated glitches' spectral centroid off by "
                f"{metrics.get('centroid_error', float('nan')):.0%} from the held-out ones; {verdict}")
    return trail

