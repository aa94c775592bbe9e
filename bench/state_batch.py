"""State writes over HTTP against the store's floor: one writer, batches, concurrent writers, in one run.

For each backend (SQLite always; PostgreSQL when ``TWIN_BENCH_POSTGRES_URL`` or the default local server
answers), ``twin serve`` runs as its own process and the SDK writes to it over loopback:

- floor: the bare driver, one INSERT of a JSON row of three values and a COMMIT per write (as
  ``bench/state_writes.py``), same durability settings;
- trivial request: ``GET /api/v1/me`` from the same client, the HTTP stack's own ceiling for one writer
  (authenticated, no store access): a single writer cannot beat it whatever the store does;
- single writer: one client, one revision of three values per PATCH, each its own durable transaction;
- batched: ``POST /api/v1/state/batch`` with ``--items`` items of three values each, over ten twins;
- 1 vs 10 writers: single-revision PATCHes to ten different twins from one client, then from ten at once.

Every figure is also printed as a ratio against the floor measured in the same run (writes/s against
transactions/s; values/s against three values per floor transaction).

Usage: python bench/state_batch.py [--writes 300] [--batches 10] [--items 1000]
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from state_writes import APP, PG_DEFAULT, floor_postgres, floor_sqlite, fresh_pg_database, postgres_url

from twinengine.client import Client
from twinengine.config import Settings
from twinengine.errors import EngineUnavailable
from twinengine.runtime import Runtime

TWINS = 10


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def served(data_dir: Path, database_url: str | None) -> Iterator[tuple[str, str]]:
    """``twin serve`` in its own process (its own interpreter lock, as deployed); yields (url, admin token)."""
    settings = Settings(data_dir=data_dir, database_url=database_url)
    runtime = Runtime.from_settings(settings)
    token = runtime.start()  # migrate and create the admin here, where its token can be read
    runtime.close()
    assert token is not None
    port = free_port()
    env = {**os.environ, "TWIN_DATA_DIR": str(data_dir), "TWIN_LOG_LEVEL": "warning",
           **({"TWIN_DATABASE_URL": database_url} if database_url else {})}
    process = subprocess.Popen([sys.executable, "-m", "twinengine.cli.main", "serve", "--port", str(port)], env=env,
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
        yield url, token
    finally:
        process.terminate()
        process.wait(timeout=30)


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure(url: str, admin_token: str, writes: int, batches: int, items: int) -> dict[str, float]:
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

    def writers(count: int) -> float:
        each = max(1, writes // count)
        barrier = threading.Barrier(count + 1)

        def run(n: int) -> None:
            with Client(url, token) as own:
                own.report(names[n], level=0.0)
                barrier.wait()
                for i in range(each):
                    own.report(names[n], level=i * 0.01, rain=0.5, storage=3.0)
                barrier.wait()

        threads = [threading.Thread(target=run, args=(n,)) for n in range(count)]
        for thread in threads:
            thread.start()
        barrier.wait()
        start = time.perf_counter()
        barrier.wait()
        elapsed = time.perf_counter() - start
        for thread in threads:
            thread.join()
        return each * count / elapsed

    rates["1 writer"] = writers(1)
    rates["10 writers"] = writers(10)
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--writes", type=int, default=300)
    parser.add_argument("--batches", type=int, default=10)
    parser.add_argument("--items", type=int, default=1000)
    args = parser.parse_args()
    rows: list[tuple[str, float, dict[str, float]]] = []
    with tempfile.TemporaryDirectory() as tmp:
        floor = floor_sqlite(Path(tmp) / "floor.db", args.writes)
        with served(Path(tmp) / "sqlite", None) as (url, token):
            rows.append(("sqlite", floor, measure(url, token, args.writes, args.batches, args.items)))
        admin_url = postgres_url()
        if admin_url:
            db_url, drop = fresh_pg_database(admin_url)
            try:
                floor = floor_postgres(db_url, args.writes)
                sa_url = db_url.replace("postgresql://", "postgresql+psycopg://", 1)
                with served(Path(tmp) / "pg", sa_url) as (url, token):
                    rows.append(("postgresql", floor, measure(url, token, args.writes, args.batches, args.items)))
            finally:
                drop()
        else:
            print(f"(PostgreSQL not reachable at {PG_DEFAULT}; set TWIN_BENCH_POSTGRES_URL to include it)")
    print(f"\nstate writes over HTTP ({args.writes} writes of 3 values; {args.batches} batches of {args.items} items "
          f"of 3 values over {TWINS} twins), ratios against the store floor of the same run\n")
    print(f"{'backend':<12}{'floor/s':>9}{'GET me/s':>10}{'single/s':>10}{'÷floor':>8}{'÷GET':>7}"
          f"{'batched values/s':>18}{'÷(3·floor)':>12}{'1 writer/s':>12}{'10 writers/s':>14}{'10÷1':>7}")
    for name, floor, r in rows:
        print(f"{name:<12}{floor:>9.0f}{r['trivial']:>10.0f}{r['single']:>10.0f}{r['single'] / floor:>8.2f}"
              f"{r['single'] / r['trivial']:>7.2f}{r['batched']:>18,.0f}{r['batched'] / (3 * floor):>12.2f}"
              f"{r['1 writer']:>12.0f}{r['10 writers']:>14.0f}{r['10 writers'] / r['1 writer']:>7.2f}")
    print("\ngoals: single ÷ floor >= 0.5; batched >= 20,000 values/s; 10 writers ÷ 1 >= 4 on PostgreSQL")
    print("(÷GET: a single writer against a trivial authenticated request of the same client and server)")


if __name__ == "__main__":
    main()
