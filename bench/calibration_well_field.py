"""The well field's T and S calibrated as a service, on the example's synthetic pumping test: an engine on a
temporary data dir, ``examples/apps/well-field`` published, a twin fed the test's 384 hourly heads (four wells
at 25 to 400 m from the production well; Theis heads with T = 300 m2/d and S = 2e-4, plus 5 mm of noise)
through the streams API, and ``POST /twins/{twin}/calibrations`` with the app's defaults (SCE-UA on RMSE, 400
runs) on 2 workers. Prints the true and recovered values with their 90 % intervals, the runs and the time, and
writes the figure: each well's heads as observed and as simulated with the recovered T and S, and the
posterior of T and S beside the truth.

Usage: python bench/calibration_well_field.py [--runs 400] [--method sceua] [--seed 1] [--plot FILE.png]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

APP = Path(__file__).resolve().parents[1] / "examples" / "apps" / "well-field"
sys.path.insert(0, str(APP))

from well_field.aquifer import heads  # noqa: E402  (the app's own model, for the figure)
from well_field.synthetic import DISTANCES, TRUE, pumping_test  # noqa: E402


def _plot(path: Path, readings: list[dict[str, Any]], best: dict[str, float], interval: dict[str, list[float]],
          runs: list[dict[str, float]], title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from twinengine.figures import save_figure

    forcing = {"time": [r["time"] for r in readings], "distance": [r["distance"] for r in readings],
               "rate": [r["rate"] for r in readings]}
    fitted = heads({"static_head": 50.0, **best}, forcing)
    fig = plt.figure(figsize=(11, 7.5), layout="constrained")
    grid = fig.add_gridspec(2, 2, height_ratios=[1.3, 1])
    top = fig.add_subplot(grid[0, :])
    for k, well in enumerate(DISTANCES):
        chosen = [i for i, r in enumerate(readings) if r["well"] == well]
        times = [datetime.fromisoformat(readings[i]["time"]) for i in chosen]
        top.plot(times, [readings[i]["head"] for i in chosen], ".", ms=3, color=f"C{k}",
                 label=f"{well} ({DISTANCES[well]:g} m) observed")
        top.plot(times, [fitted[i] for i in chosen], "-", lw=1, color=f"C{k}")
    top.set_ylabel("head (m)")
    top.set_title("heads observed (dots) and simulated with the recovered T and S (lines)", loc="left")
    top.legend(fontsize="small", ncols=2)
    for k, (name, unit) in enumerate((("T", "m2/d"), ("S", ""))):
        ax = fig.add_subplot(grid[1, k])
        ax.scatter([r[name] for r in runs], [r["score"] for r in runs], s=4, alpha=0.5, color="tab:gray",
                   label="model runs")
        ax.axvline(TRUE[name], color="black", lw=1.5, label=f"true {TRUE[name]:g}")
        ax.axvline(best[name], color="tab:red", ls="--", lw=1.5, label=f"recovered {best[name]:.4g}")
        ax.axvspan(*interval[name], color="tab:red", alpha=0.15, label="90 % interval")
        ax.set_yscale("log")
        ax.set_xlabel(f"{name} ({unit})" if unit else name)
        ax.set_ylabel("RMSE (m)")
        ax.legend(fontsize="small")
    return save_figure(fig, path, title=title)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=400)
    parser.add_argument("--method", default="sceua")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--plot", type=Path, default=None)
    args = parser.parse_args()

    from twinengine.api import create_app
    from twinengine.client import Client
    from twinengine.config import Settings
    from twinengine.demo.server import InProcessServer
    from twinengine.runtime import Runtime

    readings = pumping_test()
    with tempfile.TemporaryDirectory(prefix="bench-well-field-") as tmp:
        runtime = Runtime.from_settings(Settings(data_dir=Path(tmp) / "data"))
        token = runtime.start()
        try:
            with InProcessServer(create_app(runtime=runtime)) as server, Client(server.url, token) as client:
                client.publish_app(APP)
                client.create_twin("well-field@0.1.0", "field", {"field": "WF-01"})
                client.streams.append("field", "readings", readings)
                started = time.perf_counter()
                read = client.calibration.start("field", method=args.method, runs=args.runs, seed=args.seed,
                                                workers=args.workers)
                read = client.calibration.wait(read.id, interval=0.2)
                seconds = time.perf_counter() - started
                if read.status != "done" or read.best is None or read.summary is None:
                    raise RuntimeError(f"calibration {read.id} ended {read.status}: {read.error}")
                runs = [{**r.params, "score": r.score} for r in client.calibration.runs(read.id, limit=10_000).items
                        if r.score is not None]
        finally:
            runtime.close()
    interval = {k: list(v) for k, v in read.summary["interval"].items()}
    print(f"{read.method} on {read.objective}, {read.runs_done} runs (budget {args.runs}) on {args.workers} "
          f"workers in {seconds:.1f} s; best RMSE {read.best_score:.4f} m (noise 0.005 m)")
    print(f"{'':<4}{'true':>10}{'recovered':>12}{'error':>9}  90 % interval")
    for name in ("T", "S"):
        found = read.best[name]
        print(f"{name:<4}{TRUE[name]:>10.4g}{found:>12.4g}{100 * (found / TRUE[name] - 1):>8.2f}%  "
              f"{interval[name][0]:.4g} - {interval[name][1]:.4g}")
    if args.plot is not None:
        path = _plot(args.plot, readings, dict(read.best), interval, runs,
                     f"well field: T and S from a pumping test ({read.method}, {read.runs_done} runs, "
                     f"{seconds:.0f} s on {args.workers} workers)")
        print(f"figure: {path}")


if __name__ == "__main__":
    main()
