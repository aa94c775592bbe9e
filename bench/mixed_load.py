"""Mixed load on ``twin serve``'s app: what clients see when more of them than request threads work at once.

For each backend (SQLite always; PostgreSQL when ``TWIN_BENCH_POSTGRES_URL`` or the default local server
answers) it serves the engine on a loopback port and measures, side by side in the same run:

- baseline: each kind of request below, by one client alone on the idle engine;
- under load: the same three kinds while N clients (default 64) mix state writes on four twins, state
  reads, ``/health`` probes and synchronous openEO graphs for D seconds.

It prints p50/p99 latencies, throughput, and the ratios of loaded to alone latencies.

Usage: python bench/mixed_load.py [--clients 64] [--seconds 10]
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
from state_writes import PG_DEFAULT, fresh_pg_database, postgres_url  # beside this script

from twinengine.api import create_app
from twinengine.client import Client
from twinengine.config import Settings
from twinengine.demo.server import InProcessServer
from twinengine.runtime import Runtime

APP = Path(__file__).resolve().parents[1] / "examples" / "apps" / "river-reach"
TWINS = 4
GRAPH = {"process_graph": {"eq": {"process_id": "eq", "arguments": {"x": 1, "y": 1}, "result": True}}}
KINDS = ("health", "read", "write", "sync graph")


def request(kind: str, http: httpx.Client, i: int) -> httpx.Response:
    twin = f"bench-{i % TWINS}"
    if kind == "health":
        return http.get("/health")
    if kind == "read":
        return http.get(f"/api/v1/twins/{twin}/state")
    if kind == "write":
        return http.patch(f"/api/v1/twins/{twin}/state", json={"reported": {"level": {"value": float(i)}}})
    return http.post("/openeo/1.2/result", json={"process": GRAPH})


class Timings:
    def __init__(self) -> None:
        self.seconds: dict[str, list[float]] = defaultdict(list)
        self.errors = 0
        self.lock = threading.Lock()

    def time(self, kind: str, call: Callable[[], httpx.Response]) -> None:
        start = time.perf_counter()
        answer = call()
        took = time.perf_counter() - start
        with self.lock:
            self.seconds[kind].append(took)
            self.errors += answer.status_code >= 400


def alone(url: str, token: str, n: int) -> Timings:
    timings = Timings()
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as http:
        for kind in KINDS:
            for i in range(n if kind != "sync graph" else n // 5):
                timings.time(kind, partial(request, kind, http, i))
    return timings


def loaded(url: str, token: str, clients: int, seconds: float) -> Timings:
    """Clients in proportions 8 writers : 4 readers : 2 health probes : 1 synchronous graph."""
    mix = ["write"] * 8 + ["read"] * 4 + ["health"] * 2 + ["sync graph"]
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


def run_backend(settings: Settings, clients: int, seconds: float) -> tuple[Timings, Timings]:
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
            return base, loaded(server.url, token, clients, seconds)
    finally:
        runtime.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        results.append(("sqlite", *run_backend(Settings(data_dir=Path(tmp) / "sqlite"), args.clients, args.seconds)))
        admin_url = postgres_url()
        if admin_url:
            url, drop = fresh_pg_database(admin_url)
            try:
                results.append(("postgresql", *run_backend(Settings(data_dir=Path(tmp) / "pg", database_url=url),
                                                           args.clients, args.seconds)))
            finally:
                drop()
        else:
            print(f"(PostgreSQL not reachable at {PG_DEFAULT}; set TWIN_BENCH_POSTGRES_URL to include it)")
    print(f"\nmixed load: {args.clients} clients for {args.seconds:.0f} s (writes 8 : reads 4 : /health 2 : "
          "sync graphs 1) against one client alone; latencies in ms\n")
    print(f"{'backend':<12}{'request':<12}{'alone p50':>10}{'p99':>8}{'load p50':>10}{'p99':>8}{'max':>8}"
          f"{'per s':>8}{'p50 ÷ alone':>13}{'p99 ÷ alone':>13}")
    for name, base, load in results:
        for kind in KINDS:
            seconds = load.seconds.get(kind, [])
            alone_s = base.seconds.get(kind, [])
            a50, a99 = quantile(alone_s, 0.5) * 1e3, quantile(alone_s, 0.99) * 1e3
            l50, l99 = quantile(seconds, 0.5) * 1e3, quantile(seconds, 0.99) * 1e3
            top = max(seconds, default=float("nan")) * 1e3
            print(f"{name:<12}{kind:<12}{a50:>10.1f}{a99:>8.1f}{l50:>10.1f}{l99:>8.1f}{top:>8.0f}"
                  f"{len(seconds) / args.seconds:>8.0f}{l50 / a50 if alone_s else float('nan'):>13.1f}"
                  f"{l99 / a99 if alone_s else float('nan'):>13.1f}")
        print(f"{name:<12}{'errors':<12}{base.errors + load.errors:>10}")


if __name__ == "__main__":
    main()
