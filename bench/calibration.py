"""Hymod calibrated on spotpy's example catchment (2013-2016 daily, the first year of 2012 a warm-up), beside
spotpy's SCE-UA tutorial figure, and the wall time of the same calibration on 2 worker processes against 1.

Hymod (Boyle 2001; spotpy's Python implementation, five parameters: cmax, bexp, alpha, Ks, Kq within spotpy's
bounds) simulates discharge in l/s from rain and potential evaporation; the objective is the RMSE of the
simulated against the observed discharge after the warm-up year. Targets (spotpy's tutorial): RMSE <= 7.51 l/s,
NSE >= 0.676, within 2,500 model runs. The calibration runs through ``twinengine.calibration`` (SCE-UA through
spotpy, or another ``--method``), its model runs batched onto a pool of worker processes; with the same seed,
1 and 2 workers are timed in this run, alternating, and the ratio printed.

With ``--app`` the same calibration runs as a service instead: an engine is started on a temporary data dir,
the example app ``examples/apps/hymod`` (its own Hymod, equal to spotpy's to the last digit) is published, a twin
is fed the catchment's records through the streams API, and ``POST /twins/{twin}/calibrations`` runs it in the
app's sandboxed workers, once with 1 worker and once with 2.

Usage: python bench/calibration.py [--runs 2500] [--method sceua] [--seed 1] [--repeat 1] [--plot hymod.png] [--app]
"""

from __future__ import annotations

import argparse
import csv
import math
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import numpy.typing as npt

from twinengine.calibration import Objective, Parameter, Space, calibrate
from twinengine.calibration.methods import Method, Outcome
from twinengine.calibration.objectives import score

Array = npt.NDArray[np.float64]
WARMUP = 366  # days of 2012, as spotpy's example leaves them out
FACTOR = 1.783 * 1000 * 1000 / (60 * 60 * 24)  # mm/day over the 1.783 km2 catchment, in l/s
SPACE = Space((Parameter("cmax", 1.0, 500.0), Parameter("bexp", 0.1, 2.0), Parameter("alpha", 0.1, 0.99),
               Parameter("Ks", 0.001, 0.10), Parameter("Kq", 0.1, 0.99)))
TARGET_RMSE, TARGET_NSE = 7.51, 0.676


def data_file() -> Path:
    """The forcing and discharge file spotpy ships with its Python Hymod example."""
    import spotpy.examples.hymod_python as example

    return Path(example.__file__).parent / "hymod_input.csv"


def load() -> tuple[list[float], list[float], Array]:
    rain, pet, discharge = [], [], []
    with data_file().open() as f:
        for row in csv.reader(f, delimiter=";"):
            if row[0] == "Date":
                continue
            rain.append(float(row[1]))
            pet.append(float(row[2]))
            discharge.append(float(row[3]))
    return rain, pet, np.array(discharge[WARMUP:], dtype="float64")


_FORCING: tuple[list[float], list[float]] | None = None


def simulate(params: dict[str, float]) -> Array:
    """One Hymod run in a worker process (the forcing read once per process)."""
    global _FORCING
    from spotpy.examples.hymod_python.hymod import hymod

    if _FORCING is None:
        rain, pet, _ = load()
        _FORCING = (rain, pet)
    out = hymod(_FORCING[0], _FORCING[1], params["cmax"], params["bexp"], params["alpha"], params["Ks"],
                params["Kq"])
    return np.asarray(out[WARMUP:], dtype="float64") * FACTOR


def calibrate_with(workers: int, method: Method, runs: int, seed: int, observed: Array) -> tuple[Outcome, float]:
    with ProcessPoolExecutor(workers) as pool:
        list(pool.map(simulate, [SPACE.as_dict(SPACE.lower)] * workers))  # warm: forcing loaded, imports done

        def batch(sets: Sequence[dict[str, float]]) -> list[Array | None]:
            return list(pool.map(simulate, sets))

        started = time.perf_counter()
        outcome = calibrate(SPACE, batch, observed, objective=Objective.RMSE, method=method, runs=runs,
                            seed=seed, threads=workers, posterior_share=0.0)
        return outcome, time.perf_counter() - started


HYMOD_APP = Path(__file__).resolve().parents[1] / "examples" / "apps" / "hymod"


def through_the_engine(method: Method, runs: int, seed: int) -> None:
    """The calibration as a service: publish the app, feed a twin, calibrate through the API (1, then 2 workers)."""
    import tempfile
    from datetime import UTC, datetime, timedelta

    from twinengine.api import create_app
    from twinengine.client import Client
    from twinengine.config import Settings
    from twinengine.demo.server import InProcessServer
    from twinengine.runtime import Runtime

    rain, pet, observed = load()
    discharge = [math.nan] * WARMUP + list(observed)
    start = datetime(2012, 1, 1, tzinfo=UTC)
    records = [{"time": (start + timedelta(days=i)).isoformat(), "rain": r, "pet": e,
                "discharge": None if math.isnan(q) else q}
               for i, (r, e, q) in enumerate(zip(rain, pet, discharge, strict=True))]
    with tempfile.TemporaryDirectory(prefix="bench-calibration-") as tmp:
        runtime = Runtime.from_settings(Settings(data_dir=Path(tmp) / "data"))
        token = runtime.start()
        try:
            with InProcessServer(create_app(runtime=runtime)) as server, Client(server.url, token) as client:
                client.publish_app(HYMOD_APP)
                client.create_twin("hymod@0.1.0", "catchment", {})
                client.streams.append("catchment", "catchment", records)
                warm = client.calibration.start("catchment", runs=8, workers=2, posterior_share=0.0)
                client.calibration.wait(warm.id, interval=0.2)  # two warm workers: both timings start alike
                times: dict[int, float] = {}
                for workers in (1, 2):
                    started = time.perf_counter()
                    read = client.calibration.start("catchment", method=method.value, runs=runs, seed=seed,
                                                    workers=workers, posterior_share=0.0)
                    read = client.calibration.wait(read.id, interval=0.2)
                    times[workers] = time.perf_counter() - started
                    if read.status != "done" or read.best is None:
                        raise RuntimeError(f"calibration {read.id} ended {read.status}: {read.error}")
                    nse = score(Objective.NSE, simulate(read.best), observed)
                    print(f"through the API, {workers} worker(s): {read.runs_done} runs, RMSE {read.best_score:.3f} "
                          f"(<= {TARGET_RMSE}: {read.best_score is not None and read.best_score <= TARGET_RMSE}), "
                          f"NSE {nse:.3f} (>= {TARGET_NSE}: {nse >= TARGET_NSE}), {times[workers]:.1f} s")
                print(f"through the API: speed-up with 2 workers x{times[1] / times[2]:.2f}")
        finally:
            runtime.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=2500)
    parser.add_argument("--method", choices=[m.value for m in Method], default="sceua")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=1, help="timings per worker count (best kept)")
    parser.add_argument("--plot", type=Path, default=None, help="write the calibration's figure (PNG) here")
    parser.add_argument("--app", action="store_true", help="calibrate through the engine's API and the hymod app")
    args = parser.parse_args()
    method = Method(args.method)
    if args.app:
        through_the_engine(method, args.runs, args.seed)
        return
    _, _, observed = load()
    print(f"data: {data_file()} ({len(observed)} days after the warm-up)")
    times: dict[int, float] = {1: math.inf, 2: math.inf}
    found: Outcome | None = None
    for _ in range(args.repeat):
        for workers in (1, 2):
            outcome, seconds = calibrate_with(workers, method, args.runs, args.seed, observed)
            times[workers] = min(times[workers], seconds)
            found = found or outcome
    assert found is not None and found.best is not None
    best = found.best
    nse = score(Objective.NSE, simulate(SPACE.as_dict(np.array(best.params))), observed)
    print(f"method {method.value}, {len(found.runs)} model runs (budget {args.runs}), stopped: {found.stopped}")
    print("best: " + ", ".join(f"{k}={v:.4g}" for k, v in SPACE.as_dict(np.array(best.params)).items()))
    print(f"{'figure':<8}{'found':>10}{'target':>10}  met")
    print(f"{'RMSE':<8}{best.score:>10.3f}{'<= ' + str(TARGET_RMSE):>10}  {best.score <= TARGET_RMSE}")
    print(f"{'NSE':<8}{nse:>10.3f}{'>= ' + str(TARGET_NSE):>10}  {nse >= TARGET_NSE}")
    if args.plot is not None:
        from twinengine.calibration.plot import plot_calibration

        plot_calibration(args.plot, found.runs, Objective.RMSE, found.summary, found.samples,
                         title=f"Hymod, spotpy's example catchment: {method.value} on RMSE (l/s)")
        print(f"figure: {args.plot}")
    print(f"wall time: 1 worker {times[1]:.2f} s, 2 workers {times[2]:.2f} s, speed-up x{times[1] / times[2]:.2f}")


if __name__ == "__main__":
    main()
