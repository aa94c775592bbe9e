"""The pulsar-rfi chapter (``twin demo --app pulsar-rfi``): the twin's interference flagger is trained through
the engine on simulated observations; a simulated filterbank observation of a dispersed pulsar under radio
interference is written as a sigproc file, read back and streamed into the twin chunk by chunk; the app's
function on arrival flags, dedisperses, searches and classifies each chunk with the champion flagger; the
fold workflow folds the chunks; the chapter scores the chunks against the simulator's truth, compares the
twin's folded S/N with the S/N the truth mask gives, and writes the candidates file (chunks and profile)."""

from __future__ import annotations

import importlib
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from twinengine.demo.chapters.lattice import _lake_endpoint
from twinengine.demo.chapters.ml import wait_for_training
from twinengine.demo.chapters.twins import _free_name
from twinengine.demo.context import DemoContext, skipped_without_ml

__all__ = ["pulsar_search"]

MODEL = "rfi_flagger"
SAMPLES = 16384  # 16.4 s of 1 ms samples: 63 chunks of 256
SEND = 16  # chunks per append
WAIT_SECONDS = 300.0
PARAMETERS = {"dm": 40.0, "period_s": 0.7137}


def _arrow(records: list[dict[str, Any]]) -> Any:
    """Chunks as an Arrow table: time, first sample, and the block as a fixed-size list."""
    import pyarrow as pa

    size = len(records[0]["data"])
    return pa.table({"time": pa.array([r["time"] for r in records], pa.timestamp("us", tz="UTC")),
                     "start": pa.array([r["start"] for r in records], pa.int64()),
                     "data": pa.FixedSizeListArray.from_arrays(
                         pa.array(np.concatenate([r["data"] for r in records])), size)})


def _wait_for_chunks(uma: Any, twin: str, count: int) -> Any:
    deadline = time.monotonic() + WAIT_SECONDS
    while (judged := uma.streams.read_arrow(twin, "chunks")).num_rows < count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {judged.num_rows} of {count} chunks were judged in {WAIT_SECONDS:.0f} s")
        time.sleep(0.5)
    return judged


def pulsar_search(ctx: DemoContext) -> None:
    if skipped_without_ml(ctx, "pulsar", "pulsar-rfi"):
        return
    _lake_endpoint(ctx)  # the fold workflow's results are registered in the lake on site-a
    uma, package = ctx.client("uma"), ctx.app_package.__name__
    simulator = importlib.import_module(f"{package}.simulator")
    filterbank = importlib.import_module(f"{package}.filterbank")
    science = importlib.import_module(f"{package}.science")
    report = importlib.import_module(f"{package}.report")
    functions = importlib.import_module(f"{package}.functions")
    twin = uma.create_twin(ctx.facts["app"], _free_name(uma, "pulsar-j1234"), PARAMETERS,
                           description="A radio telescope's pulsar backend: 64 channels, 1 ms (simulated)")
    ctx.facts["twin_name"] = twin.name
    started = time.perf_counter()
    run = wait_for_training(ctx, twin.name, uma.ml.train(twin.name, MODEL).id,
                            "training the interference flagger", timeout=600)
    ctx.say(f"uma created twin {twin.name} (DM {PARAMETERS['dm']:g}, P {PARAMETERS['period_s']} s) and trained its "
            f"flagger through the engine: cells' F1 {run.metrics['cell_f1']:.3f} on a held-out simulated "
            f"observation (version {run.model_version})")
    seed = 5000 + ctx.options.seed  # apart from the flagger's training seeds
    pulsar = simulator.Pulsar(dm=PARAMETERS["dm"], period=PARAMETERS["period_s"])
    obs = simulator.simulate(seed, nsamp=SAMPLES, pulsar=pulsar)
    path = ctx.runtime.data_dir / f"{twin.name}.fil"
    filterbank.write(path, obs.header, obs.data)
    header, data = filterbank.read(path)
    if not np.array_equal(data, obs.data):
        raise RuntimeError(f"{path} did not read back as written")
    t0 = datetime(2026, 3, 1, tzinfo=UTC)
    records = [functions.record_of(t0 + timedelta(seconds=start * header.tsamp), start, block)
               for start, block in science.blocks(obs)]
    for first in range(0, len(records), SEND):
        uma.streams.append(twin.name, "filterbank", _arrow(records[first:first + SEND]))
    ctx.say(f"{path.name}: a sigproc filterbank file ({path.stat().st_size // 1000} kB, {header.nchans} channels, "
            f"{SAMPLES} samples of {header.tsamp * 1000:g} ms) read back exactly and streamed as {len(records)} "
            "chunks of 256 samples and the next 64")
    judged = _wait_for_chunks(uma, twin.name, len(records)).to_pylist()
    judged.sort(key=lambda c: c["start"])
    truth = science.chunk_truth(obs)
    found = [bool(c["pulse"]) for c in judged]
    loud = [f for f, t in zip(found, truth, strict=True) if t["pulse_snr"] >= 7]
    empty = [f for f, t in zip(found, truth, strict=True) if t["pulse_snr"] == 0]
    recall, false_rate = float(np.mean(loud)), float(np.mean(empty))
    labels = {label: sum(c["label"] == label for c in judged) for label in ("pulse", "noise", "narrowband",
                                                                             "broadband", "mixed")}
    ctx.say(f"chunks: {', '.join(f'{n} {label}' for label, n in labels.items())}; pulses of S/N >= 7 found in "
            f"{sum(loud)} of {len(loud)} chunks, in {sum(empty)} of {len(empty)} chunks without a pulse")
    fold = uma.workflows.run(twin.name, "fold", sync=True)
    if fold.status != "finished":
        raise RuntimeError(f"the fold workflow ended as {fold.status}: {fold.error}")
    state = {k: v.value for k, v in uma.get_state(twin.name).reported.items()}
    with_truth = science.measure(obs, truth=True)
    ratio = state["folded_snr"] / with_truth.snr
    out = ctx.runtime.data_dir / f"{twin.name}-chunks.txt"
    written = report.write_report(out, judged, tsamp=header.tsamp, dm=PARAMETERS["dm"], period=pulsar.period)
    ctx.say(f"fold workflow: folded S/N {state['folded_snr']:.1f} over {state['folded_chunks']} chunks, "
            f"{ratio:.3f} of the S/N with the truth mask ({with_truth.snr:.1f}); {out.name} lists every chunk's "
            "class and score and the folded profile")
    answer = uma.view(twin.name, "pulsar").summary_text
    ctx.say(f"the portal's view of {twin.name} answers: {answer}")
    seconds = time.perf_counter() - started
    ctx.facts["pulsar"] = {"answer": answer, "twin": twin.name, "seed": seed, "chunks": len(judged), "labels": labels,
                           "recall": recall, "loud_pulses": len(loud), "false_rate": false_rate,
                           "empty_chunks": len(empty), "state": state, "truth_snr": with_truth.snr,
                           "snr_ratio": ratio, "report": str(out), "report_snr": written["snr"],
                           "model_version": run.model_version, "cell_f1": run.metrics["cell_f1"],
                           "filterbank": str(path), "seconds": seconds}
    ctx.summary += [("flagger", f"trained through the engine, cells' F1 {run.metrics['cell_f1']:.3f} held out"),
                    ("pulses", f"found in {sum(loud)} of {len(loud)} chunks with S/N >= 7, {sum(empty)} of "
                               f"{len(empty)} chunks without one (goals >= 90 %, <= 0.18 %)"),
                    ("fold", f"S/N {state['folded_snr']:.1f}, {ratio:.3f} of the truth mask's (goal >= 0.95)"),
                    ("candidates", str(out))]
