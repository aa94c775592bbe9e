"""Mixed load on ``twin serve``: what clients see when many more of them than request threads work at once.

For each backend (SQLite always; PostgreSQL when ``TWIN_BENCH_POSTGRES_URL`` or the default local server
answers) it prepares a data dir (river-reach published, four twins, a gridded rain collection), serves it with
``twin serve`` in its own process, and measures, side by side in the same run:

- baseline: each kind of request below, by one client alone on the idle engine;
- under load: the same kinds while N clients mix, for D seconds, state writes on four twins, current and
  time-travel state reads, ``/health`` probes, STAC searches, EDR position queries on the rain collection,
  stream batches (JSON lines) and synchronous openEO graphs; and how long a workflow run submitted in the
  middle of the load waits before it starts.

The clients are asyncio tasks in this process (one connection each), so they do not take the server's
interpreter lock from it. Beside them a liveness prober of its own (a separate process that sleeps between
probes, as an orchestrator's probe does) asks ``/health`` ten times a second: its timings are not delayed by
the 200 clients' event loop in this process, which a busy client loop adds to what it measures. A second
prober, at the same time, asks a do-nothing ASGI app served by uvicorn in a process of its own ("control
prober"): what a probe waits for on the loaded machine whatever the engine does, the floor the engine's
``/health`` is judged against.
``--threads`` serves the same data dir once per request-thread count (``TWIN_REQUEST_THREADS``; 40 was the
fixed pool before the setting existed), to show what the setting does; ``--processes`` once per number of
engine processes (``twin serve --processes N``, which shares a NATS stream log: skipped with a note when NATS
does not answer at ``TWIN_BENCH_NATS_URL`` or the default local server).

It prints p50/p99 latencies, throughput, the slowest answer and the ratios of loaded to alone latencies for each
number of clients (the issue's figures: ``--clients 50,200``).

Usage: python bench/mixed_load.py [--clients 50,200] [--seconds 10] [--threads 8,40] [--processes 1,2]
                                  [--backends sqlite,postgresql]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import httpx2 as httpx
import numpy as np
from startup import HELLO  # beside this script
from state_batch import nats_url
from state_writes import PG_DEFAULT, fresh_pg_database, postgres_url

from twinengine.api import create_app
from twinengine.client import Client
from twinengine.config import Settings
from twinengine.demo.server import InProcessServer
from twinengine.runtime import Runtime

APP = Path(__file__).resolve().parents[1] / "examples" / "apps" / "river-reach"
TWINS = 4
GRAPH = {"process_graph": {"eq": {"process_id": "eq", "arguments": {"x": 1, "y": 1}, "result": True}}}
KINDS = ("health", "read", "time travel", "write", "stream batch", "stac search", "edr position", "sync graph")
PROBED = "health prober"  # /health asked by a separate process, 10 times a second
CONTROL = "control prober"  # the same prober, at the same time, against a do-nothing server on the same machine
RAIN = "bench-rain"
GAUGE = (5.05, 45.05)  # inside the rain grid written by ``write_rain``
EPOCH = "2026-01-01T00:00:00Z"


async def request(kind: str, http: httpx.AsyncClient, i: int) -> httpx.Response:
    twin = f"bench-{i % TWINS}"
    if kind == "health":
        return await http.get("/health")
    if kind == "read":
        return await http.get(f"/api/v1/twins/{twin}/state")
    if kind == "time travel":
        return await http.get(f"/api/v1/twins/{twin}/state", params={"at": EPOCH})
    if kind == "write":
        return await http.patch(f"/api/v1/twins/{twin}/state", json={"reported": {"level": {"value": float(i)}}})
    if kind == "stream batch":
        body = "".join(f'{{"time": "2026-01-01T{(i + k) % 24:02d}:{k % 60:02d}:00Z", "station": "RR-01", '
                       f'"rain": 1.5, "level": {1 + (i % 7) / 10}}}\n' for k in range(20))
        return await http.post(f"/api/v1/twins/{twin}/streams/gauges/records", content=body,
                               headers={"Content-Type": "application/x-ndjson"})
    if kind == "stac search":
        return await http.get("/stac/search", params={"limit": 10, "bbox": "4,44,6,46"})
    if kind == "edr position":
        return await http.get(f"/edr/collections/{RAIN}/position",
                              params={"coords": f"POINT({GAUGE[0]} {GAUGE[1]})", "parameter-name": "rain"})
    return await http.post("/openeo/1.2/result", json={"process": GRAPH})


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
        self.run_wait: float | None = None  # submit -> started of a run submitted during the load

    async def time(self, kind: str, http: httpx.AsyncClient, i: int) -> None:
        start = time.perf_counter()
        try:
            answer = await request(kind, http, i)
        except httpx.HTTPError as exc:  # a dropped connection or a hang past the client's timeout
            self.errors += 1
            self.first_error.setdefault(kind, f"{type(exc).__name__}: {exc}")
            return
        self.seconds[kind].append(time.perf_counter() - start)
        if answer.status_code >= 400:
            self.errors += 1
            self.first_error.setdefault(kind, f"{answer.status_code} {answer.text[:200]}")


def _client(url: str, token: str, connections: int = 1) -> httpx.AsyncClient:
    """One pool for all clients of a phase, a connection each: building a client per task costs the
    client process seconds of TLS set-up that would show as server latency."""
    return httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=120,
                             limits=httpx.Limits(max_connections=connections,
                                                 max_keepalive_connections=connections))


async def alone(url: str, token: str, n: int) -> Timings:
    timings = Timings()
    async with _client(url, token) as http:
        for kind in KINDS:
            for i in range(n if kind != "sync graph" else n // 5):
                await timings.time(kind, http, i)
    return timings


async def loaded(url: str, token: str, clients: int, seconds: float) -> Timings:
    """Clients in proportions 6 writers : 3 readers : 2 time travel : 2 stream batches : 2 STAC : 2 EDR :
    2 health probes : 1 synchronous graph; halfway through, one asynchronous run is submitted."""
    mix = ["write", "read", "time travel", "stream batch", "write", "stac search", "edr position", "health",
           "write", "read", "sync graph", "write", "time travel", "stream batch", "write", "stac search",
           "edr position", "health", "write", "read"]  # interleaved: a few clients already mix every kind
    timings = Timings()
    until = time.monotonic() + seconds

    async def client(kind: str, http: httpx.AsyncClient) -> None:
        i = 0
        while time.monotonic() < until:
            await timings.time(kind, http, i)
            i += 1

    async def one_run() -> None:
        await asyncio.sleep(seconds / 2)
        async with _client(url, token) as http:
            answer = await http.post("/api/v1/runs", json={"process": GRAPH})
            if answer.status_code != 202:
                timings.first_error.setdefault("async run", f"{answer.status_code} {answer.text[:200]}")
                return
            run = answer.json()
            while run.get("started_at") is None and run["status"] in ("created", "queued"):
                await asyncio.sleep(0.05)
                run = (await http.get(f"/api/v1/runs/{run['id']}")).json()
            if run.get("started_at"):
                timings.run_wait = (_instant(run["started_at"]) - _instant(run["created_at"])).total_seconds()

    async with _client(url, token, clients) as http:
        await asyncio.gather(*(client(mix[n % len(mix)], http) for n in range(clients)), one_run())
    return timings


PROBER = """
import http.client, json, sys, time
host, port, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
connection = http.client.HTTPConnection(host, port, timeout=60)
connection.request("GET", "/health")  # connected before the load starts, as an orchestrator's probe is
connection.getresponse().read()
print("ready", flush=True)
took, failed, until = [], 0, time.monotonic() + seconds
while time.monotonic() < until:
    start = time.perf_counter()
    try:
        connection.request("GET", "/health")
        answer = connection.getresponse()
        answer.read()
        took.append(time.perf_counter() - start)
        failed += answer.status != 200
    except OSError:
        failed += 1
        connection.close()
    time.sleep(0.1)
print(json.dumps({"seconds": took, "failed": failed}))
"""


def probing(url: str, seconds: float) -> subprocess.Popen[str]:
    """The liveness prober: a process of its own asking ``/health`` every 100 ms for ``seconds``, returned once
    it is connected (its first answer, before the load, is not counted)."""
    host, port = url.removeprefix("http://").split(":")
    prober = subprocess.Popen([sys.executable, "-c", PROBER, host, port, str(seconds)], stdout=subprocess.PIPE,
                              text=True)
    assert prober.stdout is not None
    if prober.stdout.readline().strip() != "ready":
        raise SystemExit(f"the liveness prober of {url} did not connect")
    return prober


@contextlib.contextmanager
def control_server() -> Iterator[str]:
    """A do-nothing ASGI app on uvicorn in a process of its own: the control the liveness prober's figures
    are read against (what a probe waits for on the loaded machine whatever the server does)."""
    port = _free_port()
    process = subprocess.Popen([sys.executable, "-c", HELLO, str(port)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_ready(process, url, "the control server", lambda probe: probe.status_code == 200, 30)
        yield url
    finally:
        process.terminate()
        process.wait(10)


def _wait_until_ready(process: subprocess.Popen[bytes], url: str, what: str,
                      ready: Callable[[httpx.Response], bool], seconds: float) -> None:
    """Ask ``url``/health until ``ready`` says yes; exit naming ``what`` if the process ends or time runs out."""
    deadline = time.monotonic() + seconds
    while True:
        with contextlib.suppress(httpx.HTTPError):
            if ready(httpx.get(f"{url}/health", timeout=5)):
                return
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"{what} did not start (exit {process.poll()})")
        time.sleep(0.1)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def quantile(values: list[float], q: float) -> float:
    if len(values) < 2:
        return values[0] if values else float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[int(q * 100) - 1]


def prepare(settings: Settings) -> str:
    """The data dir both servers of a backend serve: the app published, four twins, the rain collection;
    answers a user's token (tokens live in the store, so they outlive this in-process engine)."""
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
            return token
    finally:
        runtime.close()


@contextlib.contextmanager
def serving(settings: Settings, threads: str, processes: int = 1, nats: str | None = None) -> Iterator[str]:
    """``twin serve`` in a process of its own on a free loopback port (``processes`` engine processes, on the
    NATS stream log ``nats`` when several), until its engine has started."""
    port = _free_port()
    env = {**os.environ, "TWIN_DATA_DIR": str(settings.data_dir), "TWIN_LOG_LEVEL": "warning"}
    if settings.database_url:
        env["TWIN_DATABASE_URL"] = settings.database_url
    if threads != "default":
        env["TWIN_REQUEST_THREADS"] = threads
    if processes > 1 and nats:
        env.update(TWIN_STREAM_BACKEND="nats", TWIN_NATS_URL=nats)
    process = subprocess.Popen([sys.executable, "-m", "twinengine.cli.main", "serve", "--port", str(port),
                                "--no-lake-daemons", "--processes", str(processes)], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:  # /health: 503 while the store opens, then 200 "starting", then 200
        _wait_until_ready(process, url, "twin serve",
                          lambda probe: probe.status_code == 200 and probe.json().get("engine") != "starting", 120)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()


def run_backend(settings: Settings, clients: list[int], seconds: float, threads: list[str],
                processes: list[int], nats: str | None) -> list[tuple[str, int, Timings, list[Timings]]]:
    token = prepare(settings)
    results = []
    for count, procs in [(t, p) for t in threads for p in processes]:
        with serving(settings, count, procs, nats) as url, control_server() as control_url:
            base = asyncio.run(alone(url, token, 100))
            loads = []
            for n in clients:
                prober, control = probing(url, seconds), probing(control_url, seconds)
                load = asyncio.run(loaded(url, token, n, seconds))
                probed = json.loads(prober.communicate(timeout=120)[0])
                load.seconds[PROBED] = probed["seconds"]
                load.seconds[CONTROL] = json.loads(control.communicate(timeout=120)[0])["seconds"]
                load.errors += probed["failed"]
                loads.append(load)
            results.append((count, procs, base, loads))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", default="50,200", help="numbers of clients, comma-separated")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--threads", default="8,40",
                        help="request threads of the server (TWIN_REQUEST_THREADS), comma-separated; 'default' "
                             "leaves the setting alone")
    parser.add_argument("--processes", default="1", help="engine processes of the server (twin serve --processes), "
                        "comma-separated")
    parser.add_argument("--backends", default="sqlite,postgresql", help="stores to serve, comma-separated")
    args = parser.parse_args()
    clients = [int(n) for n in args.clients.split(",")]
    threads = args.threads.split(",")
    processes = [int(n) for n in args.processes.split(",")]
    nats = nats_url() if any(n > 1 for n in processes) else None
    if any(n > 1 for n in processes) and nats is None:
        print("(NATS does not answer, which several engine processes need: serving one)")
        processes = [1]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        if "sqlite" in args.backends:
            results.append(("sqlite", run_backend(Settings(data_dir=Path(tmp) / "sqlite"), clients, args.seconds,
                                                  threads, processes, nats)))
        admin_url = postgres_url() if "postgresql" in args.backends else None
        if admin_url:
            url, drop = fresh_pg_database(admin_url)
            try:
                results.append(("postgresql", run_backend(Settings(data_dir=Path(tmp) / "pg", database_url=url),
                                                          clients, args.seconds, threads, processes, nats)))
            finally:
                drop()
        elif "postgresql" in args.backends:
            print(f"(PostgreSQL not reachable at {PG_DEFAULT}; set TWIN_BENCH_POSTGRES_URL to include it)")
    print(f"\nmixed load for {args.seconds:.0f} s (writes 6 : reads 3 : time travel 2 : stream batches 2 : "
          f"STAC 2 : EDR 2 : /health 2 : sync graphs 1) against one client alone; latencies in ms; threads: "
          f"request threads of each engine process (default: 4); procs: engine processes; {os.cpu_count()} cores\n")
    print(f"{'backend':<11}{'threads':>8}{'procs':>6}{'clients':>8}  {'request':<14}{'alone p50':>10}{'p99':>8}"
          f"{'load p50':>10}{'p99':>8}{'max':>8}{'per s':>8}{'p50 ÷ alone':>13}{'p99 ÷ alone':>13}")
    for name, by_threads in results:
        for count, procs, base, loads in by_threads:
            for n, load in zip(clients, loads, strict=True):
                for kind in (*KINDS, PROBED, CONTROL):
                    seconds = load.seconds.get(kind, [])
                    alone_s = base.seconds.get("health" if kind in (PROBED, CONTROL) else kind, [])
                    a50, a99 = quantile(alone_s, 0.5) * 1e3, quantile(alone_s, 0.99) * 1e3
                    l50, l99 = quantile(seconds, 0.5) * 1e3, quantile(seconds, 0.99) * 1e3
                    top = max(seconds, default=float("nan")) * 1e3
                    print(f"{name:<11}{count:>8}{procs:>6}{n:>8}  {kind:<14}{a50:>10.1f}{a99:>8.1f}{l50:>10.1f}"
                          f"{l99:>8.1f}"
                          f"{top:>8.0f}{len(seconds) / args.seconds:>8.0f}"
                          f"{l50 / a50 if alone_s else float('nan'):>13.1f}"
                          f"{l99 / a99 if alone_s else float('nan'):>13.1f}")
                total = sum(len(v) for k, v in load.seconds.items() if k not in (PROBED, CONTROL))
                wait = "not started" if load.run_wait is None else f"{load.run_wait * 1e3:.0f} ms"
                print(f"{name:<11}{count:>8}{procs:>6}{n:>8}  {'all':<14}{'':>10}{'':>8}{'':>10}{'':>8}{'':>8}"
                      f"{total / args.seconds:>8.0f}   errors {load.errors}; a run submitted halfway waited {wait}"
                      " to start")
            print(f"{name:<11}{count:>8}{procs:>6}{'alone':>8}  errors {base.errors}")
            for timings in (base, *loads):
                for kind, error in timings.first_error.items():
                    print(f"  first {kind} error: {error}")


if __name__ == "__main__":
    main()
