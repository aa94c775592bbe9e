"""Mixed load on ``twin serve``'s app: what clients see when more of them than request threads work at once.

For each backend (SQLite always; PostgreSQL when ``TWIN_BENCH_POSTGRES_URL`` or the default local server
answers) it serves the engine on a loopback port and measures, side by side in the same run:

- baseline: each kind of request below, by one client alone on the idle engine;
- under load: the same kinds while N clients mix, for D seconds, state writes on four twins, current and
  time-travel state reads, ``/health`` probes, STAC searches, EDR position queries on a gridded rain
  collection, stream batches (JSON lines) and synchronous openEO graphs.

It prints p50/p99 latencies, throughput, the slowest answer and the ratios of loaded to alone latencies, for
each number of clients asked for (the issue's figures: ``--clients 50,200``).

Usage: python bench/mixed_load.py [--clients 50,200] [--seconds 10]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from functools import partial
from pathlib import Path

import httpx2 as httpx
import numpy as np
from state_writes import PG_DEFAULT, fresh_pg_database, postgres_url  # beside this script

from twinengine.api import create_app
from twinengine.client import Client
from twinengine.config import Settings
from twinengine.demo.server import InProcessServer
from twinengine.runtime import Runtime

APP = Path(__file__).resolve().parents[1] / "examples" / "apps" / "river-reach"
TWINS = 4
GRAPH = {"process_graph": {"eq": {"process_id": "eq", "arguments": {"x": 1, "y": 1}, "result": True}}}
KINDS = ("health", "read", "time travel", "write", "stream batch", "stac search", "edr position", "sync graph")
RAIN = "bench-rain"
GAUGE = (5.05, 45.05)  # inside the rain grid written by ``write_rain``
EPOCH = "2026-01-01T00:00:00Z"


def request(kind: str, http: httpx.Client, i: int) -> httpx.Response:
    twin = f"bench-{i % TWINS}"
    if kind == "health":
        return http.get("/health")
    if kind == "read":
        return http.get(f"/api/v1/twins/{twin}/state")
    if kind == "time travel":
        return http.get(f"/api/v1/twins/{twin}/state", params={"at": EPOCH})
    if kind == "write":
        return http.patch(f"/api/v1/twins/{twin}/state", json={"reported": {"level": {"value": float(i)}}})
    if kind == "stream batch":
        body = "".join(f'{{"time": "2026-01-01T{(i + k) % 24:02d}:{k % 60:02d}:00Z", "station": "RR-01", '
                       f'"rain": 1.5, "level": {1 + (i % 7) / 10}}}\n' for k in range(20))
        return http.post(f"/api/v1/twins/{twin}/streams/gauges/records", content=body,
                         headers={"Content-Type": "application/x-ndjson"})
    if kind == "stac search":
        return http.get("/stac/search", params={"limit": 10, "bbox": "4,44,6,46"})
    if kind == "edr position":
        return http.get(f"/edr/collections/{RAIN}/position",
                        params={"coords": f"POINT({GAUGE[0]} {GAUGE[1]})", "parameter-name": "rain"})
    return http.post("/openeo/1.2/result", json={"process": GRAPH})


def write_rain(folder: Path) -> None:
    """A small gridded rain collection (48 hours on 20 x 20 cells) for the EDR queries."""
    import pandas as pd
    import xarray as xr

    rng = np.random.default_rng(7)
    field = xr.Dataset(
        {"rain": (("time", "lat", "lon"), rng.gamma(0.6, 2.0, (48, 20, 20)).astype("float32"), {"units": "mm/h"})},
        coords={"time": pd.date_range("2026-01-01", periods=48, freq="h"),
                "lat": np.round(44.81 + 0.02 * np.arange(20), 4), "lon": np.round(4.81 + 0.02 * np.arange(20), 4)})
    folder.mkdir(parents=True, exist_ok=True)
    field.to_zarr(folder / f"{RAIN}.zarr", mode="w", consolidated=False)


class Timings:
    def __init__(self) -> None:
        self.seconds: dict[str, list[float]] = defaultdict(list)
        self.errors = 0
        self.first_error: dict[str, str] = {}
        self.lock = threading.Lock()

    def time(self, kind: str, call: Callable[[], httpx.Response]) -> None:
        start = time.perf_counter()
        answer = call()
        took = time.perf_counter() - start
        with self.lock:
            self.seconds[kind].append(took)
            if answer.status_code >= 400:
                self.errors += 1
                self.first_error.setdefault(kind, f"{answer.status_code} {answer.text[:200]}")


def alone(url: str, token: str, n: int) -> Timings:
    timings = Timings()
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as http:
        for kind in KINDS:
            for i in range(n if kind != "sync graph" else n // 5):
                timings.time(kind, partial(request, kind, http, i))
    return timings


def loaded(url: str, token: str, clients: int, seconds: float) -> Timings:
    """Clients in proportions 6 writers : 3 readers : 2 time travel : 2 stream batches : 2 STAC : 2 EDR :
    2 health probes : 1 synchronous graph."""
    mix = ["write", "read", "time travel", "stream batch", "write", "stac search", "edr position", "health",
           "write", "read", "sync graph", "write", "time travel", "stream batch", "write", "stac search",
           "edr position", "health", "write", "read"]  # interleaved: a few clients already mix every kind
    timings = Timings()
    until = time.monotonic() + seconds

    def client(kind: str) -> None:
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=120) as http:
            i = 0
            while time.monotonic() < until:
                timings.time(kind, partial(request, kind, http, i))
                i += 1

    threads = [threading.Thread(target=client, args=(mix[n % len(mix)],)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return timings


def quantile(values: list[float], q: float) -> float:
    if len(values) < 2:
        return values[0] if values else float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[int(q * 100) - 1]


def run_backend(settings: Settings, clients: list[int], seconds: float) -> tuple[Timings, list[Timings]]:
    write_rain(settings.collections_dir or settings.data_dir / "collections")
    runtime = Runtime.from_settings(settings)
    admin_token = runtime.start()
    assert admin_token is not None
    try:
        with InProcessServer(create_app(runtime=runtime)) as server, Client(server.url, admin_token) as admin:
            Client(server.url, admin.create_token("ada", "developer").token).publish_app(APP)
            token = admin.create_token("uma", "user").token
            with Client(server.url, token) as uma:
                for t in range(TWINS):
                    uma.create_twin("river-reach@0.1.0", f"bench-{t}", {"station": "RR-01"})
            base = alone(server.url, token, 100)
            return base, [loaded(server.url, token, n, seconds) for n in clients]
    finally:
        runtime.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", default="50,200", help="numbers of clients, comma-separated")
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    clients = [int(n) for n in args.clients.split(",")]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        results.append(("sqlite", *run_backend(Settings(data_dir=Path(tmp) / "sqlite"), clients, args.seconds)))
        admin_url = postgres_url()
        if admin_url:
            url, drop = fresh_pg_database(admin_url)
            try:
                results.append(("postgresql", *run_backend(Settings(data_dir=Path(tmp) / "pg", database_url=url),
                                                           clients, args.seconds)))
            finally:
                drop()
        else:
            print(f"(PostgreSQL not reachable at {PG_DEFAULT}; set TWIN_BENCH_POSTGRES_URL to include it)")
    print(f"\nmixed load for {args.seconds:.0f} s (writes 6 : reads 3 : time travel 2 : stream batches 2 : "
          "STAC 2 : EDR 2 : /health 2 : sync graphs 1) against one client alone; latencies in ms\n")
    print(f"{'backend':<12}{'clients':>8}  {'request':<14}{'alone p50':>10}{'p99':>8}{'load p50':>10}{'p99':>8}"
          f"{'max':>8}{'per s':>8}{'p50 ÷ alone':>13}{'p99 ÷ alone':>13}")
    for name, base, loads in results:
        for n, load in zip(clients, loads, strict=True):
            for kind in KINDS:
                seconds = load.seconds.get(kind, [])
                alone_s = base.seconds.get(kind, [])
                a50, a99 = quantile(alone_s, 0.5) * 1e3, quantile(alone_s, 0.99) * 1e3
                l50, l99 = quantile(seconds, 0.5) * 1e3, quantile(seconds, 0.99) * 1e3
                top = max(seconds, default=float("nan")) * 1e3
                print(f"{name:<12}{n:>8}  {kind:<14}{a50:>10.1f}{a99:>8.1f}{l50:>10.1f}{l99:>8.1f}{top:>8.0f}"
                      f"{len(seconds) / args.seconds:>8.0f}{l50 / a50 if alone_s else float('nan'):>13.1f}"
                      f"{l99 / a99 if alone_s else float('nan'):>13.1f}")
            total = sum(len(v) for v in load.seconds.values())
            print(f"{name:<12}{n:>8}  {'all':<14}{'':>10}{'':>8}{'':>10}{'':>8}{'':>8}{total / args.seconds:>8.0f}"
                  f"   errors {load.errors}")
        print(f"{name:<12}{'alone':>8}  errors {base.errors}")
        for timings in (base, *loads):
            for kind, error in timings.first_error.items():
                print(f"  first {kind} error: {error}")

if __name__ == "__main__":
    main()
