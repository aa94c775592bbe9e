"""Lorenz-96 assimilated as a service from a realistic first guess, against a vectorised numpy ETKF.

An engine on a temporary data dir serves the example app ``examples/apps/lorenz96`` (a manifest and one model
function that steps the whole ensemble at once, ``state_form: ensemble``; published here with ``--inflation``,
by default the app's own). For each seed (``--seeds``: drawn at run time unless given, and printed, so a run
can be repeated) a truth run of Lorenz-96 (Sakov & Oke 2008: n = 40, F = 8, RK4 dt = 0.05, every variable
observed every step, R = I) feeds a twin's stream through the streams API, and the twin's first guess is the
truth plus N(0, I) (``--guess-std``), written one model step before the first observation: the first cycle
forecasts from it. ``POST /twins/{twin}/assimilations`` runs ETKF N = 20 cycles, ``--batch`` per request (the
API's most by default), each answered in summary (the count and the last cycle: the cycles are read back in bulk
below). The analysis RMSE against the truth, leaving out the first ``--burn-in`` cycles (the
filter's spin-up from the first guess), is printed per seed beside its target (<= 0.20).

The baseline is the same cycles in plain numpy, vectorised: the 20 members advanced together by one RK4 step
(the app's own function on the (20, 40) array), then an ETKF (Hunt et al. 2007) with no checks and no store,
from the same first guess; it runs in turn with the service, request by request, so both see the same
machine. The goal is a service costing at most 1.5 x this baseline; the ratio is printed whatever it is.

The analyses are read back through the bulk history export (``GET /twins/{twin}/assimilation-history``,
Parquet), whose time is printed beside the time the cycles took.

``--profile`` also runs ``--profile-cycles`` cycles of the service in this thread under cProfile (the service
function itself, without HTTP) and prints where the time goes: its wall and CPU time per cycle, then the
functions by cumulative and by their own time (this thread: writing; the worker's model steps and filter
show as the wait for its answer).

Usage: python bench/assimilation_service.py [--cycles 5000] [--burn-in 500] [--seeds 4 | --seeds 11,12]
       [--inflation ...] [--batch 1000] [--profile] (quick: --cycles 300 --burn-in 100 --seeds 1)
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # small matrices: one BLAS thread (as bench/assimilation.py)
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
APP = REPO / "examples" / "apps" / "lorenz96"
sys.path.insert(0, str(APP))

from lorenz96.model import rk4, simulate  # type: ignore[import-not-found]  # noqa: E402  (the app's own model)

from twinengine.twin_assimilation.schemas import MAX_CYCLES  # noqa: E402

N, MEMBERS, DT = 40, 20, 0.05
TARGET_RMSE, TARGET_RATIO = 0.20, 1.5
START = datetime(2026, 1, 1, tzinfo=UTC)
STEP = timedelta(seconds=DT * 3600.0)  # the app's clock: 3600 s per unit of model time


def bare_etkf(E: np.ndarray, y: np.ndarray, inflation: float) -> np.ndarray:
    """ETKF (Hunt et al. 2007) with H = I, R = I, symmetric square root by eigendecomposition; no checks."""
    n_members = E.shape[0]
    mean = E.mean(axis=0)
    A = (E - mean) * inflation
    eigval, eigvec = np.linalg.eigh((n_members - 1) * np.eye(n_members) + A @ A.T)  # H = I, R^-1 = I
    w = ((eigvec / eigval) @ eigvec.T) @ A @ (y - mean)
    W = (eigvec * np.sqrt((n_members - 1) / eigval)) @ eigvec.T
    return np.asarray(mean + (W + w[None, :]) @ A, dtype=float)


class BareRun:
    """The same cycles in vectorised numpy: the ensemble advanced by the app's RK4 in one call, then the ETKF;
    run chunk by chunk beside the service's requests, so both are timed under the same load."""

    def __init__(self, guess: np.ndarray, tuning: dict[str, Any], seed: int) -> None:
        self.E = guess + np.random.default_rng([seed, 1]).standard_normal((MEMBERS, N))
        spin_up = tuning.get("spin_up") or {"cycles": 0, "inflation": 1.0}
        self.inflation, self.spin_cycles, self.spin_inflation = tuning["inflation"], spin_up["cycles"], \
            spin_up["inflation"]
        self.cycles, self.seconds, self.analysis_seconds = 0, 0.0, 0.0

    def run(self, observations: np.ndarray) -> np.ndarray:
        out = np.empty_like(observations)
        started = time.perf_counter()
        for k, y in enumerate(observations):
            self.E = rk4(self.E, DT, 8.0)  # every member at once: (20, 40)
            begun = time.perf_counter()
            self.E = bare_etkf(self.E, y, self.spin_inflation if self.cycles < self.spin_cycles else self.inflation)
            self.analysis_seconds += time.perf_counter() - begun
            out[k] = self.E.mean(axis=0)
            self.cycles += 1
        self.seconds += time.perf_counter() - started
        return out


def app_copy(root: Path, inflation: float | None, revisions: str = "app") -> Path:
    folder = root / "lorenz96"
    shutil.copytree(APP, folder, ignore=shutil.ignore_patterns("__pycache__"))
    manifest = yaml.safe_load((folder / "twinapp.yaml").read_text())
    if inflation is not None:
        manifest["assimilation"]["tuning"]["inflation"] = inflation
    if revisions != "app":
        manifest["assimilation"]["revisions"] = revisions
    (folder / "twinapp.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    return folder


def analyses(client: Any, twin: str) -> tuple[np.ndarray, float]:
    """Each cycle's analysis mean, read back in bulk (Parquet), and the seconds that took."""
    import io

    import pyarrow.parquet as pq

    started = time.perf_counter()
    table = pq.read_table(io.BytesIO(client.assimilation.history(twin, format="parquet")))
    seconds = time.perf_counter() - started
    return np.column_stack([table[f"x[{i}]"].to_numpy() for i in range(N)]), seconds


def profile(runtime: Any, client: Any, records: list[dict[str, Any]], first: np.ndarray, at: datetime,
            cycles: int) -> None:
    """Where a cycle's time goes: the service function under cProfile on a twin of its own."""
    import cProfile
    import pstats

    from twinengine.auth.principal import Principal, Role
    from twinengine.twin_assimilation import service
    from twinengine.twin_assimilation.schemas import AssimilationRequest
    from twinengine.twins.schemas import PropertyWrite

    client.create_twin("lorenz96", "l96-profile", {})
    client.write_state("l96-profile", reported={f"x[{i}]": PropertyWrite(value=float(v), timestamp=at)
                                                for i, v in enumerate(first)})
    for i in range(0, len(records), 1000):  # a backlog of all of them: a request reads every pending record
        client.streams.append("l96-profile", "obs", records[i:i + 1000])
    engines = service.Engines(hub=runtime.streams, code=runtime.app_code)
    owner = Principal(name="admin", role=Role.ADMIN, issuer="internal")
    profiler = cProfile.Profile()
    count = min(cycles, MAX_CYCLES)
    with runtime.db.session() as session:
        wall, cpu = time.perf_counter(), time.thread_time()
        profiler.enable()
        service.assimilate(session, engines, principal=owner, ref="l96-profile",
                           request=AssimilationRequest(cycles=count), checkpoint=session.commit)
        profiler.disable()
        wall, cpu = time.perf_counter() - wall, time.thread_time() - cpu
    print(f"\nprofile of {count} cycles of the service: {1e3 * wall / count:.3f} ms/cycle wall, this thread's CPU "
          f"{1e3 * cpu / count:.3f} ms/cycle (under the profiler)")
    print("cumulative, top 25:")
    pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
    print("own time, top 25:")
    pstats.Stats(profiler).sort_stats("tottime").print_stats(25)


def wait_ready(url: str, limit: float = 120.0) -> float:
    """Seconds until ``/health/ready`` answers 200: the engine's warm-ups (schemas, units, EDR) take the CPU
    for a second or two after start, and a figure taken then would time them, not the cycles."""
    import httpx2 as httpx

    started = time.perf_counter()
    while httpx.get(f"{url}/health/ready", timeout=30).status_code != 200:
        if time.perf_counter() - started > limit:
            raise SystemExit(f"the engine was not ready after {limit:.0f} s")
        time.sleep(0.05)
    return time.perf_counter() - started


def truth_run(seed: int, steps: int) -> tuple[datetime, np.ndarray, list[tuple[datetime, np.ndarray, np.ndarray]]]:
    """The truth at the first guess's time, and ``steps`` (time, truth, observation) after it."""
    run = list(simulate(start=START - STEP, steps=steps + 1, seed=seed, seconds_per_unit=3600.0))
    return run[0][0], run[0][1], run[1:]


def one_seed(client: Any, seed: int, args: argparse.Namespace) -> dict[str, float]:
    """One twin fed a truth run of ``seed`` from a perturbed first guess: its analyses through the API and the
    bare numpy run, timed chunk by chunk in turn (a request of ``--batch`` cycles, then the same cycles bare)."""
    from twinengine.twins.schemas import PropertyWrite

    total = args.burn_in + args.cycles
    at, x0, run = truth_run(seed, total)
    truth = np.asarray([x for _t, x, _y in run])
    observations = np.asarray([y for _t, _x, y in run])
    guess = x0 + args.guess_std * np.random.default_rng([seed, 2]).standard_normal(N)  # a realistic first guess
    records = [{"time": t.isoformat(), **{f"y{i}": float(v) for i, v in enumerate(y)}} for t, _x, y in run]
    twin = f"l96-{seed}"
    client.create_twin("lorenz96", twin, {})
    client.write_state(twin, reported={f"x[{i}]": PropertyWrite(value=float(v), timestamp=at)
                                       for i, v in enumerate(guess)})
    for i in range(0, len(records), 1000):
        client.streams.append(twin, "obs", records[i:i + 1000])
    bare = BareRun(guess, args.tuning, seed)
    bare_means = []
    done, service_s = 0, 0.0
    while done < total:
        started = time.perf_counter()
        got = client.assimilation.run(twin, cycles=min(args.batch, total - done), answer="summary")
        service_s += time.perf_counter() - started
        if not got.count:
            break
        bare_means.append(bare.run(observations[done:done + got.count]))
        done += got.count
        print(f"\rseed {seed}: {done}/{total} cycles", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    analysed, read_s = analyses(client, twin)
    burn = args.burn_in
    error = np.sqrt(np.mean((analysed - truth[:len(analysed)]) ** 2, axis=1))
    return {"seed": seed, "cycles": len(analysed), "scored": len(analysed) - burn, "rmse": float(error[burn:].mean()),
            "first": float(error[0]), "guess": float(np.sqrt(np.mean((guess - x0) ** 2))),
            "bare_rmse": float(np.mean(np.sqrt(np.mean((np.concatenate(bare_means)[burn:] - truth[burn:done]) ** 2,
                                                       axis=1)))),
            "service_ms": service_s / max(done, 1) * 1e3, "bare_ms": bare.seconds / max(bare.cycles, 1) * 1e3,
            "etkf_ms": bare.analysis_seconds / max(bare.cycles, 1) * 1e3, "read_s": read_s, "service_s": service_s}


def _met(ok: bool) -> str:
    return "met" if ok else "NOT met"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cycles", type=int, default=5000, help="cycles scored after the burn-in, per seed")
    parser.add_argument("--burn-in", type=int, default=500, help="cycles left out of the score (the spin-up)")
    parser.add_argument("--seeds", default="4", help="a count of seeds drawn now, or the seeds (comma-separated; "
                                                     "with a comma even for one: 11,)")
    parser.add_argument("--inflation", type=float, default=None, help="the app's tuning.inflation (default: "
                                                                      "the app's own)")
    parser.add_argument("--guess-std", type=float, default=1.0, help="std of the first guess's error")
    parser.add_argument("--revisions", choices=("app", "cycle", "batch"), default="batch",
                        help="which analyses become state revisions: every cycle's, the last of each batch "
                             "(default), or as the app declares (assimilation.revisions)")
    parser.add_argument("--batch", type=int, default=MAX_CYCLES,
                        help=f"cycles per request (the API's most, {MAX_CYCLES}, by default)")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--profile-cycles", type=int, default=200)
    args = parser.parse_args()
    if "," in args.seeds:
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    else:  # drawn now: seeds the bench does not choose
        seeds = [int(s) for s in np.random.SeedSequence().generate_state(int(args.seeds), dtype=np.uint32)]
    args.tuning = yaml.safe_load((APP / "twinapp.yaml").read_text())["assimilation"]["tuning"]
    if args.inflation is not None:
        args.tuning["inflation"] = args.inflation
    print(f"seeds: {','.join(map(str, seeds))} (again: --seeds {','.join(map(str, seeds))},)", flush=True)
    if args.revisions == "app":
        args.revisions = yaml.safe_load((APP / "twinapp.yaml").read_text())["assimilation"].get("revisions", "cycle")

    from twinengine.api import create_app
    from twinengine.api.starting import collector_as_served
    from twinengine.client import Client
    from twinengine.config import Settings
    from twinengine.demo.server import InProcessServer
    from twinengine.runtime import Runtime

    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-assimilation-") as tmp:
        runtime = Runtime.from_settings(Settings(data_dir=Path(tmp) / "data"))
        token = runtime.start()
        try:
            with InProcessServer(create_app(runtime=runtime)) as server, Client(server.url, token) as client:
                client.publish_app(app_copy(Path(tmp), args.inflation, args.revisions))
                print(f"engine ready after {wait_ready(server.url):.1f} s (its warm-ups: timed from a ready engine, "
                      "as an operator's probe would send traffic)", flush=True)
                collector_as_served()  # as `twin serve` leaves it once ready: this process built it otherwise
                for seed in seeds:
                    rows.append(one_seed(client, seed, args))
                if args.profile:
                    at, x0, run = truth_run(seeds[0], args.profile_cycles)
                    profile(runtime, client, [{"time": t.isoformat(), **{f"y{i}": float(v) for i, v in enumerate(y)}}
                                              for t, _x, y in run], x0, at, args.profile_cycles)
        finally:
            runtime.close()

    spin_up = args.tuning.get("spin_up") or {"cycles": 0, "inflation": 1.0}
    print(f"Lorenz-96 (n = {N}, F = 8, dt = 0.05, R = I), ETKF N = {MEMBERS}, inflation {args.tuning['inflation']} "
          f"(its first {spin_up['cycles']} cycles {spin_up['inflation']}), no localisation, analyses written as "
          f"revisions {args.revisions}, through the API, from a first guess of error N(0, {args.guess_std:g}^2 I); "
          f"{args.cycles} cycles scored per seed after a spin-up of {args.burn_in} left out")
    print("  seed        cycles  RMSE first guess / cycle 1  RMSE service (<= 0.20)  RMSE bare  ms/cycle service  "
          "ms/cycle bare (ETKF)  ratio (<= x1.5)  history read back")
    for r in rows:
        ratio = r["service_ms"] / r["bare_ms"]
        print(f"  {r['seed']:>10}  {r['cycles']:>6}  {r['guess']:.3f} / {r['first']:.3f}            "
              f"{r['rmse']:.3f} {_met(r['rmse'] <= TARGET_RMSE):>13}     {r['bare_rmse']:.3f}      "
              f"{r['service_ms']:>8.3f}          {r['bare_ms']:>6.3f} ({r['etkf_ms']:.3f})      x{ratio:.2f} "
              f"{_met(ratio <= TARGET_RATIO):>7}     {r['read_s']:.2f} s (cycles {r['service_s']:.1f} s)")
    rmse = float(np.mean([r["rmse"] for r in rows]))
    worst = max(r["rmse"] for r in rows)
    service = sum(r["service_ms"] * r["cycles"] for r in rows)
    bare = sum(r["bare_ms"] * r["cycles"] for r in rows)
    print(f"  all seeds: analysis RMSE {rmse:.3f} (worst seed {worst:.3f}), target <= {TARGET_RMSE}: "
          f"{_met(worst <= TARGET_RMSE)}; time service / vectorised numpy x{service / bare:.2f}, target <= "
          f"x{TARGET_RATIO}: {_met(service / bare <= TARGET_RATIO)}")
    print("  (service: HTTP, the model step (the whole ensemble a call) and the ETKF in the app's worker, many "
          "cycles per call, overlapped with the engine writing each analysis as a revision and a cycle record; "
          "bare: RK4 of the (20, 40) ensemble and the ETKF, in this process, nothing stored)")


if __name__ == "__main__":
    main()
