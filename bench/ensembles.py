"""An ensemble against the same members run as independent runs, side by side in one run.

river-reach's forecast workflow over a rain forecast of ``--hours`` hourly fields on a ``--grid``² grid
(loading and reducing it to the catchment mean is the part members share). ``--members`` parameter sets
(rain_factor and storage_mm drawn once, seeded) run (a) as one ensemble (parameter_sets) and (b) as that
many independent runs of the same workflow with the same parameters, queued at once. Both go through the
REST API of an in-process engine with the same parallelism (``--parallel`` runs or members at a time) and
the run cache off. Each is timed ``--repeat`` times, alternating; the best of each is compared.
Goal: ensemble / independent <= 1.0.

Usage: python bench/ensembles.py [--members 50] [--grid 200] [--hours 48] [--parallel 2] [--repeat 2]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from twinengine.api import create_app
from twinengine.client import Client
from twinengine.config import Settings
from twinengine.demo.runner import find_app_folder
from twinengine.demo.server import InProcessServer
from twinengine.runtime import Runtime
from twinengine.workflows.schemas import FINAL


def write_forecast(folder: Path, grid: int, hours: int) -> None:
    rng = np.random.default_rng(5)
    time_axis = pd.date_range("2026-03-01", periods=hours, freq="h")
    lat, lon = np.linspace(46.0, 47.0, grid), np.linspace(7.0, 8.2, grid)
    rain = rng.gamma(0.8, 3.0, (hours, grid, grid)).astype("float32")
    ds = xr.Dataset({"rain": (("time", "lat", "lon"), rain)}, coords={"time": time_axis, "lat": lat, "lon": lon})
    folder.mkdir(parents=True, exist_ok=True)
    ds.chunk({"time": 12}).to_zarr(folder / "rain-forecast.zarr", mode="w", consolidated=False)


def independent(client: Client, twin: str, sets: list[dict[str, Any]]) -> float:
    started = time.perf_counter()
    ids = [client.workflows.run(twin, "forecast", s, no_cache=True).id for s in sets]
    for run_id in ids:
        final = client.workflows.wait(run_id, poll=0.05)
        if final.status != "finished":
            raise RuntimeError(f"run {run_id} ended as {final.status}: {final.error}")
    return time.perf_counter() - started


def ensemble(client: Client, twin: str, sets: list[dict[str, Any]]) -> float:
    started = time.perf_counter()
    read = client.ensembles.run(twin, "forecast", parameter_sets=sets)
    while read.status not in FINAL:
        time.sleep(0.05)
        read = client.ensembles.get(read.id)
    if read.status != "finished":
        raise RuntimeError(f"ensemble {read.id} ended as {read.status}: {read.error}")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", type=int, default=50)
    parser.add_argument("--grid", type=int, default=200)
    parser.add_argument("--hours", type=int, default=48)
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-ensembles-"))
    settings = Settings(data_dir=root / "data", workflow_workers=args.parallel, ensemble_parallel=args.parallel)
    runtime = Runtime.from_settings(settings)
    try:
        token = runtime.start()
        assert token is not None
        write_forecast(settings.data_dir / "collections", args.grid, args.hours)
        rng = np.random.default_rng(1)
        sets = [{"rain_factor": round(float(f), 6), "storage_mm": round(float(s), 6)}
                for f, s in zip(np.exp(0.3 * rng.standard_normal(args.members)),
                                rng.uniform(0, 20, args.members), strict=True)]
        with InProcessServer(create_app(runtime=runtime)) as server, Client(server.url, token) as client:
            client.publish_app(find_app_folder())
            client.create_twin("river-reach", "bench-reach", {"station": "RR-01"})
            ensemble(client, "bench-reach", sets[:2])  # warm: app workers started, routes built
            independent(client, "bench-reach", sets[:2])
            times: dict[str, list[float]] = {"ensemble": [], "independent": []}
            for i in range(args.repeat):
                order = [("ensemble", ensemble), ("independent", independent)]
                for name, fn in order if i % 2 == 0 else order[::-1]:
                    seconds = fn(client, "bench-reach", sets)
                    times[name].append(seconds)
                    print(f"{name:<12} {args.members} members: {seconds:6.2f} s")
        best_e, best_i = min(times["ensemble"]), min(times["independent"])
        print(f"forecast over {args.hours} h on a {args.grid}x{args.grid} grid, {args.members} members, "
              f"{args.parallel} at a time, best of {args.repeat}")
        print(f"ensemble {best_e:.2f} s, independent runs {best_i:.2f} s: ratio {best_e / best_i:.2f}x "
              f"(goal <= 1.0x)")
    finally:
        runtime.close()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
