"""State writes over HTTP against the store's floor: one writer, batches, concurrent writers, in one run.

For each backend (SQLite always; PostgreSQL when ``TWIN_BENCH_POSTGRES_URL`` or the default local server
answers), ``twin serve`` runs as its own process and the SDK writes to it over loopback:

- floor: the bare driver, one INSERT of a JSON row of three values and a COMMIT per write (as
  ``bench/state_writes.py``), same durability settings;
- trivial request: ``GET /api/v1/me`` from the same client, the HTTP stack's own ceiling for one writer
  (authenticated, no store access): a single writer cannot beat it whatever the store does;
- single writer: one client, one revision of three values per PATCH, each its own durable transaction;
- batched: ``POST /api/v1/state/batch`` with ``--items`` items of three values each, over ten twins;
- 1 vs 10 writers: single-revision PATCHes to ten different twins from one client process, then from ten
  client processes at once (each its own interpreter, as ten gauges or ten users are: a client process of
  ten threads would measure its own interpreter lock);
- ``--writers`` (8) writers: as many client processes writing at once, each to its own twin, printed as a
  ratio against ``GET /me`` of the same run (the goal: at least half of it).

With ``--processes 1,2`` PostgreSQL is served once per number of engine processes (``twin serve
--processes N``, on a NATS stream log, which several processes need; skipped with a note when NATS does not
answer at ``TWIN_BENCH_NATS_URL`` or the default local server). Every figure is also printed as a ratio against
the floor measured in the same run (writes/s against transactions/s; values/s against three values per floor
transaction), and the machine's cores are printed beside it: ten writers cannot do more than the cores
left after the store and the clients take theirs.

Usage: python bench/state_batch.py [--writes 300] [--batches 10] [--items 1000] [--writers 8] [--processes 1,2]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from state_writes import APP, PG_DEFAULT, floor_postgres, floor_sqlite, fresh_pg_database, postgres_url

from twinengine.client import Client
from twinengine.config import Settings
from twinengine.errors import EngineUnavailable
from twinengine.runtime import Runtime

TWINS = 10
NATS_DEFAULT = "nats://127.0.0.1:4222"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def nats_url() -> str | None:
    url = os.environ.get("TWIN_BENCH_NATS_URL", NATS_DEFAULT)
    host, _, port = url.removeprefix("nats://").partition(":")
    try:
        socket.create_connection((host, int(port or 4222)), timeout=3).close()
    except OSError:
        return None
    return url


@contextmanager
def served(data_dir: Path, database_url: str | None, processes: int = 1,
           nats: str | None = None) -> Iterator[tuple[str, str, int]]:
    """``twin serve`` in its own process(es) (each its own interpreter lock, as deployed); yields (url, admin
    token, its pid). Several processes share a NATS stream log (``nats``)."""
    extra = {"stream_backend": "nats", "nats_url": nats} if nats else {}
    settings = Settings(data_dir=data_dir, database_url=database_url, **extra)
    runtime = Runtime.from_settings(settings)
    token = runtime.start()  # migrate and create the admin here, where its token can be read
    runtime.close()
    assert token is not None
    port = free_port()
    env = {**os.environ, "TWIN_DATA_DIR": str(data_dir), "TWIN_LOG_LEVEL": "warning",
           **({"TWIN_DATABASE_URL": database_url} if database_url else {}),
           **({"TWIN_STREAM_BACKEND": "nats", "TWIN_NATS_URL": nats} if nats else {})}
    process = subprocess.Popen([sys.executable, "-m", "twinengine.cli.main", "serve", "--port", str(port),
                                "--processes", str(processes)], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        with Client(url) as probe:
            deadline = time.monotonic() + 60
            while True:
                try:
                    probe.health()
                    break
                except EngineUnavailable:
                    if process.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError("twin serve did not start") from None
                    time.sleep(0.2)
        yield url, token, process.pid
    finally:
        process.terminate()
        process.wait(timeout=30)


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure(url: str, admin_token: str, engine: int, writes: int, batches: int,
            items: int, many: int) -> tuple[dict[str, float], Usage]:
    with Client(url, admin_token) as admin:
        Client(url, admin.create_token("ada", "developer").token).publish_app(APP)
        token = admin.create_token("uma", "user").token
    names = [f"bench-{i}" for i in range(TWINS)]
    rates: dict[str, float] = {}
    with Client(url, token) as client:
        for name in names:
            client.create_twin("river-reach@0.1.0", name, {"station": "RR-01"})
        for i in range(20):  # warm: routes, statement caches, connections
            client.report(names[0], level=i * 0.01, rain=0.5, storage=3.0)
            client.me()
        rates["trivial"] = writes / timed(lambda: [client.me() for _ in range(writes)])
        rates["single"] = writes / timed(lambda: [client.report(names[0], level=i * 0.01, rain=0.5, storage=3.0)
                                                  for i in range(writes)])
        body = [{"twin": names[i % TWINS], "reported": {"level": i * 0.001, "rain": 0.5, "storage": 3.0}}
                for i in range(items)]
        client.write_state_batch(body[:10])
        rates["batched"] = batches * items * 3 / timed(lambda: [client.write_state_batch(body)
                                                                for _ in range(batches)])

    rates["1 writer"], _ = writers(url, token, names, 1, writes, engine)
    rates["10 writers"], used = writers(url, token, names, 10, writes, engine)
    rates["many writers"], _ = writers(url, token, names, many, writes, engine)
    rates["engine ms/write"] = used.engine / writes * 1000
    return rates, used


def writers(url: str, token: str, names: list[str], count: int, writes: int, engine: int) -> tuple[float, Usage]:
    """Writes/s of ``count`` client processes writing ``writes`` revisions between them, each to its own twin,
    and where the machine's CPU went meanwhile (``engine``: the server's pid)."""
    each = max(1, writes // count)
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(count + 1)
    clients = [context.Process(target=_writer, args=(url, token, names[n], each, barrier)) for n in range(count)]
    for client in clients:
        client.start()
    pids = [c.pid for c in clients if c.pid is not None]
    barrier.wait()  # all connected and warm
    before = Usage.now(engine, pids)
    start = time.perf_counter()
    barrier.wait()  # all done
    elapsed = time.perf_counter() - start
    used = Usage.now(engine, pids) - before
    for client in clients:
        client.join()
    return each * count / elapsed, used


@dataclass
class Usage:
    """CPU seconds from /proc: the engine (the server and every process under it), the clients, PostgreSQL's
    processes, and the whole machine (busy and total, in core-seconds)."""

    engine: float
    clients: float
    postgres: float
    busy: float
    total: float

    @classmethod
    def now(cls, engine: int, clients: list[int]) -> Usage:
        tick = os.sysconf("SC_CLK_TCK")
        stats = {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    name, _, rest = (entry / "stat").read_text().partition(") ")
                    stats[int(entry.name)] = (name.partition("(")[2], rest.split())
                except OSError:
                    continue
        tree, grew = {engine}, True
        while grew:
            more = {pid for pid, (_, f) in stats.items() if int(f[1]) in tree} - tree
            tree, grew = tree | more, bool(more)

        def cpu(pids: set[int] | list[int]) -> float:
            return sum(int(stats[p][1][11]) + int(stats[p][1][12]) for p in pids if p in stats) / tick

        machine = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
        idle = machine[3] + machine[4]
        return cls(cpu(tree), cpu(clients), cpu([p for p, (n, _) in stats.items() if n == "postgres"]),
                   (sum(machine) - idle) / tick, sum(machine) / tick)

    def __sub__(self, other: Usage) -> Usage:
        return Usage(self.engine - other.engine, self.clients - other.clients, self.postgres - other.postgres,
                     self.busy - other.busy, self.total - other.total)

    def cores(self) -> str:
        """Cores busy, and what took them: engine, clients, PostgreSQL."""
        wall = self.total / (os.cpu_count() or 1)
        return (f"{self.busy / wall:.2f} of {os.cpu_count()} (engine {self.engine / wall:.2f}, clients "
                f"{self.clients / wall:.2f}, PostgreSQL {self.postgres / wall:.2f})")


def _writer(url: str, token: str, twin: str, writes: int, barrier: Any) -> None:
    with Client(url, token) as own:
        for i in range(5):
            own.report(twin, level=i * 0.01)
        barrier.wait()
        for i in range(writes):
            own.report(twin, level=i * 0.01, rain=0.5, storage=3.0)
        barrier.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--writes", type=int, default=300)
    parser.add_argument("--batches", type=int, default=10)
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--writers", type=int, default=8, choices=range(1, TWINS + 1), metavar="1..10",
                        help="concurrent writers (client processes) measured against GET /me")
    parser.add_argument("--processes", default="1", help="engine processes serving PostgreSQL, comma-separated")
    parser.add_argument("--backends", default="sqlite,postgresql", help="stores to serve, comma-separated")
    args = parser.parse_args()
    counts = [int(n) for n in args.processes.split(",")]
    backends = args.backends.split(",")
    rows: list[tuple[str, int, float, tuple[dict[str, float], Usage]]] = []
    with tempfile.TemporaryDirectory() as tmp:
        if "sqlite" in backends:
            floor = floor_sqlite(Path(tmp) / "floor.db", args.writes)
            with served(Path(tmp) / "sqlite", None) as (url, token, pid):
                rows.append(("sqlite", 1, floor, measure(url, token, pid, args.writes, args.batches, args.items,
                                                         args.writers)))
        admin_url = postgres_url() if "postgresql" in backends else None
        nats = nats_url() if any(n > 1 for n in counts) else None
        if any(n > 1 for n in counts) and nats is None:
            print(f"(NATS not reachable at {NATS_DEFAULT}, which several processes need: serving one; set "
                  "TWIN_BENCH_NATS_URL)")
            counts = [1]
        if admin_url:
            for processes in counts:
                db_url, drop = fresh_pg_database(admin_url)
                try:
                    floor = floor_postgres(db_url, args.writes)
                    sa_url = db_url.replace("postgresql://", "postgresql+psycopg://", 1)
                    with served(Path(tmp) / f"pg-{processes}", sa_url, processes,
                                nats if processes > 1 else None) as (url, token, pid):
                        rows.append(("postgresql", processes, floor,
                                     measure(url, token, pid, args.writes, args.batches, args.items,
                                             args.writers)))
                finally:
                    drop()
        elif "postgresql" in backends:
            print(f"(PostgreSQL not reachable at {PG_DEFAULT}; set TWIN_BENCH_POSTGRES_URL to include it)")
    print(f"\nstate writes over HTTP ({args.writes} writes of 3 values; {args.batches} batches of {args.items} items "
          f"of 3 values over {TWINS} twins), ratios against the store floor of the same run; {os.cpu_count()} "
          "cores for the store, the engine and the clients\n")
    print(f"{'backend':<12}{'procs':>6}{'floor/s':>9}{'GET me/s':>10}{'single/s':>10}{'÷floor':>8}{'÷GET':>7}"
          f"{'batched values/s':>18}{'÷(3·floor)':>12}{'1 writer/s':>12}{'10 writers/s':>14}{'10÷1':>7}")
    for name, processes, floor, (r, _used) in rows:
        print(f"{name:<12}{processes:>6}{floor:>9.0f}{r['trivial']:>10.0f}{r['single']:>10.0f}"
              f"{r['single'] / floor:>8.2f}{r['single'] / r['trivial']:>7.2f}{r['batched']:>18,.0f}"
              f"{r['batched'] / (3 * floor):>12.2f}{r['1 writer']:>12.0f}{r['10 writers']:>14.0f}"
              f"{r['10 writers'] / r['1 writer']:>7.2f}")
    print(f"\n{args.writers} concurrent writers (client processes, each its own twin) against GET /me of the same run")
    for name, processes, _floor, (r, _used) in rows:
        print(f"{name:<12}{processes:>6}  GET /me {r['trivial']:.0f}/s; {args.writers} writers "
              f"{r['many writers']:.0f} writes/s; {args.writers} writers ÷ GET {r['many writers'] / r['trivial']:.2f}")
    print("\ngoals: single ÷ floor >= 0.5; batched >= 20,000 values/s; 10 writers ÷ 1 >= 4 on PostgreSQL; "
          f"{args.writers} writers ÷ GET >= 0.5 on SQLite")
    print("(÷GET: a single writer against a trivial authenticated request of the same client and server)")
    print("\nwhile 10 writers wrote: cores busy, and the engine's CPU per write")
    for name, processes, _floor, (r, used) in rows:
        print(f"{name:<12}{processes:>6}  {used.cores()}; engine {r['engine ms/write']:.2f} ms of CPU per write")


if __name__ == "__main__":
    main()
