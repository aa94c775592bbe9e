"""Lorenz-96 assimilated as a service: the figures of issue 42 §3 through the engine's public API.

An engine on a temporary data dir serves the example app ``examples/apps/lorenz96`` (a manifest and one model
function; published here with the bench's steady-state inflation, ``--inflation``, 1.02 by default, instead of
the app's 1.05). For each seed (``--seeds``, four by default) a twin gets the truth as its first state (the
first ensemble is drawn around it with spread 1, as in bench/assimilation.py), then the records of a Lorenz-96
truth run (Sakov & Oke 2008: n = 40, F = 8, RK4 dt = 0.05, every variable observed every step, R = I) through
the streams API, and ``POST /twins/{twin}/assimilations`` runs ETKF N = 20 cycles, ``--batch`` per request
(the API's most by default). The analysis RMSE against the truth, after ``--burn-in`` cycles, is printed per
seed beside its target (<= 0.20); the time per cycle beside a bare numpy ETKF cycle of the same size (the 20
members advanced by one RK4 step member by member with the app's own function, then the analysis; no checks,
no store) on the same records, timed in turn with the service, request by request, so that both see the same
machine. The issue asks the service to cost at most 1.5 x the numerics; the ratio is printed whatever it is.

``--profile`` also runs ``--profile-cycles`` cycles of the service in this thread under cProfile (the service
function itself, without HTTP) and prints where the time goes (this thread: writing; the worker's model steps
and filter show as the wait for its answer).

Usage: python bench/assimilation_service.py [--cycles 5000] [--burn-in 1000] [--seeds 1,2,3,4]
       [--inflation 1.02] [--batch 1000] [--profile] (quick: --cycles 300 --burn-in 100 --seeds 1)
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


def bare_etkf(E: np.ndarray, y: np.ndarray, inflation: float) -> np.ndarray:
    """ETKF (Hunt et al. 2007) with H = I, R = I, symmetric square root by eigendecomposition; no checks."""
    n_members = E.shape[0]
    mean = E.mean(axis=0)
    A = (E - mean) * inflation
    Y = A  # H = I
    C = Y  # R^-1 = I
    eigval, eigvec = np.linalg.eigh((n_members - 1) * np.eye(n_members) + C @ Y.T)
    Pa = (eigvec / eigval) @ eigvec.T
    w = Pa @ C @ (y - mean)
    W = eigvec @ np.diag(np.sqrt((n_members - 1) / eigval)) @ eigvec.T
    return np.asarray(mean + (W + w[None, :]) @ A, dtype=float)


class BareRun:
    """The same cycles in plain numpy: members advanced by the app's RK4 one by one, then the ETKF; run chunk by
    chunk beside the service's requests, so both are timed under the same load."""

    def __init__(self, first: np.ndarray, inflation: float, seed: int) -> None:
        self.E = first + np.random.default_rng([seed, 0, 0]).standard_normal((MEMBERS, N))
        self.inflation, self.cycles, self.seconds, self.analysis_seconds = inflation, 0, 0.0, 0.0

    def run(self, observations: np.ndarray) -> np.ndarray:
        out = np.empty_like(observations)
        started = time.perf_counter()
        for k, y in enumerate(observations):
            if self.cycles:
                self.E = np.stack([rk4(member, DT, 8.0) for member in self.E])
            begun = time.perf_counter()
            self.E = bare_etkf(self.E, y, self.inflation)
            self.analysis_seconds += time.perf_counter() - begun
            out[k] = self.E.mean(axis=0)
            self.cycles += 1
        self.seconds += time.perf_counter() - started
        return out


def app_copy(root: Path, inflation: float) -> Path:
    folder = root / "lorenz96"
    shutil.copytree(APP, folder, ignore=shutil.ignore_patterns("__pycache__"))
    manifest = yaml.safe_load((folder / "twinapp.yaml").read_text())
    manifest["assimilation"]["tuning"]["inflation"] = inflation
    (folder / "twinapp.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    return folder


def analyses(runtime: Any, twin: str) -> np.ndarray:
    """Each cycle's analysis mean, read from the store (scoring is not part of the timed service)."""
    from sqlalchemy import select

    from twinengine.twin_assimilation.models import AssimilationCycle
    from twinengine.twins.models import Twin

    with runtime.db.session(readonly=True) as session:
        twin_id = session.scalar(select(Twin.id).where(Twin.name == twin))
        rows = session.execute(select(AssimilationCycle.ensemble).where(AssimilationCycle.twin_id == twin_id)
                               .order_by(AssimilationCycle.number))
        return np.asarray([np.asarray(e["members"]).mean(axis=0) for (e,) in rows])


def profile(runtime: Any, client: Any, records: list[dict[str, Any]], first: np.ndarray, cycles: int) -> None:
    """Where a cycle's time goes: the service function under cProfile on a twin of its own."""
    import cProfile
    import pstats

    from twinengine.auth.principal import Principal, Role
    from twinengine.twin_assimilation import service
    from twinengine.twin_assimilation.schemas import AssimilationRequest
    from twinengine.twins.schemas import PropertyWrite

    client.create_twin("lorenz96", "l96-profile", {})
    client.write_state("l96-profile", reported={f"x[{i}]": PropertyWrite(value=float(v), timestamp=START)
                                                for i, v in enumerate(first)})
    for i in range(0, len(records), 1000):  # a backlog of all of them: a request reads every pending record
        client.streams.append("l96-profile", "obs", records[i:i + 1000])
    engines = service.Engines(hub=runtime.streams, code=runtime.app_code)
    owner = Principal(name="admin", role=Role.ADMIN, issuer="internal")
    profiler = cProfile.Profile()
    with runtime.db.session() as session:
        profiler.enable()
        service.assimilate(session, engines, principal=owner, ref="l96-profile",
                           request=AssimilationRequest(cycles=min(cycles, MAX_CYCLES)), checkpoint=session.commit)
        profiler.disable()
    print(f"\nprofile of {min(cycles, MAX_CYCLES)} cycles of the service (cumulative, top 25):")
    pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)


def one_seed(runtime: Any, client: Any, seed: int, args: argparse.Namespace) -> dict[str, float]:
    """One twin fed a truth run of ``seed``: its analyses through the API and the bare numpy run, timed chunk by
    chunk in turn (a request of ``--batch`` cycles, then the same cycles bare)."""
    from twinengine.twins.schemas import PropertyWrite

    total = args.burn_in + args.cycles
    run = list(simulate(start=START, steps=total, seed=seed, seconds_per_unit=3600.0))
    truth = np.asarray([x for _t, x, _y in run])
    observations = np.asarray([y for _t, _x, y in run])
    first = truth[0]  # as bench/assimilation.py: the first ensemble is drawn around the truth, spread 1
    records = [{"time": t.isoformat(), **{f"y{i}": float(v) for i, v in enumerate(y)}} for t, _x, y in run]
    twin = f"l96-{seed}"
    client.create_twin("lorenz96", twin, {})
    client.write_state(twin, reported={f"x[{i}]": PropertyWrite(value=float(v), timestamp=START - timedelta(minutes=3))
                                       for i, v in enumerate(first)})
    for i in range(0, len(records), 1000):
        client.streams.append(twin, "obs", records[i:i + 1000])
    bare = BareRun(first, args.inflation, seed)
    bare_means = []
    done, service_s = 0, 0.0
    while done < total:
        started = time.perf_counter()
        got = client.assimilation.run(twin, cycles=min(args.batch, total - done))
        service_s += time.perf_counter() - started
        if not got.cycles:
            break
        bare_means.append(bare.run(observations[done:done + len(got.cycles)]))
        done += len(got.cycles)
        print(f"\rseed {seed}: {done}/{total} cycles", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    analysed = analyses(runtime, twin)
    burn = args.burn_in
    return {"seed": seed, "cycles": len(analysed), "scored": len(analysed) - burn,
            "rmse": float(np.mean(np.sqrt(np.mean((analysed[burn:] - truth[burn:len(analysed)]) ** 2, axis=1)))),
            "bare_rmse": float(np.mean(np.sqrt(np.mean((np.concatenate(bare_means)[burn:] - truth[burn:done]) ** 2,
                                                       axis=1)))),
            "service_ms": service_s / max(done, 1) * 1e3, "bare_ms": bare.seconds / max(bare.cycles, 1) * 1e3,
            "etkf_ms": bare.analysis_seconds / max(bare.cycles, 1) * 1e3}


def _met(ok: bool) -> str:
    return "met" if ok else "NOT met"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cycles", type=int, default=5000, help="cycles scored after the burn-in, per seed")
    parser.add_argument("--burn-in", type=int, default=1000, help="cycles left out of the score")
    parser.add_argument("--seeds", default="1,2,3,4", help="truth runs (comma-separated seeds)")
    parser.add_argument("--inflation", type=float, default=1.02)
    parser.add_argument("--batch", type=int, default=MAX_CYCLES,
                        help=f"cycles per request (the API's most, {MAX_CYCLES}, by default)")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--profile-cycles", type=int, default=200)
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]

    from twinengine.api import create_app
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
                client.publish_app(app_copy(Path(tmp), args.inflation))
                for seed in seeds:
                    rows.append(one_seed(runtime, client, seed, args))
                if args.profile:
                    run = list(simulate(start=START, steps=args.profile_cycles, seed=seeds[0],
                                        seconds_per_unit=3600.0))
                    profile(runtime, client, [{"time": t.isoformat(), **{f"y{i}": float(v) for i, v in enumerate(y)}}
                                              for t, _x, y in run], run[0][1], args.profile_cycles)
        finally:
            runtime.close()

    print(f"Lorenz-96 (n = {N}, F = 8, dt = 0.05, R = I), ETKF N = {MEMBERS}, inflation {args.inflation}, through "
          f"the API; {args.cycles} cycles scored per seed after a burn-in of {args.burn_in}")
    print("  seed  cycles  RMSE service (<= 0.20)  RMSE bare  ms/cycle service  ms/cycle bare (ETKF)  "
          "ratio (<= x1.5)")
    for r in rows:
        ratio = r["service_ms"] / r["bare_ms"]
        print(f"  {r['seed']:>4}  {r['cycles']:>6}  {r['rmse']:.3f} {_met(r['rmse'] <= TARGET_RMSE):>13}     "
              f"{r['bare_rmse']:.3f}      {r['service_ms']:>8.2f}          {r['bare_ms']:>6.2f} ({r['etkf_ms']:.2f})"
              f"          x{ratio:.2f} {_met(ratio <= TARGET_RATIO)}")
    rmse = float(np.mean([r["rmse"] for r in rows]))
    service = sum(r["service_ms"] * r["cycles"] for r in rows)
    bare = sum(r["bare_ms"] * r["cycles"] for r in rows)
    print(f"  all seeds: analysis RMSE {rmse:.3f}, target <= {TARGET_RMSE}: {_met(rmse <= TARGET_RMSE)}; time "
          f"service / bare numpy x{service / bare:.2f}, target <= x{TARGET_RATIO}: "
          f"{_met(service / bare <= TARGET_RATIO)}")
    print("  (service: HTTP, the model step and the ETKF in the app's worker, many cycles per call, overlapped with "
          "the engine writing each analysis as a revision and a cycle record; bare: RK4 of the 20 members one by "
          "one and the ETKF, in this process)")


if __name__ == "__main__":
    main()
