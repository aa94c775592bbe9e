"""State writes per second: the engine against the floor of its own store, measured side by side.

For each backend (SQLite always; PostgreSQL when ``TWIN_BENCH_POSTGRES_URL`` or the default local server
answers) it times N single-revision writes of three properties, each its own durable transaction:

- floor: one INSERT of a JSON row and a COMMIT with the bare driver, same durability settings;
- service: ``twins.service.write_state`` in-process (validation, revision counter, values, commit);
- HTTP: the SDK's PATCH against ``twin serve`` in a process of its own on a loopback port (adds auth, audit,
  JSON, HTTP).

Usage: python bench/state_writes.py [--writes 500]
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
from served import TwinServe  # beside this script

from twinengine.auth.principal import SYSTEM, Principal, Role
from twinengine.bootstrap import prepare_store
from twinengine.catalog.archive import pack
from twinengine.catalog.service import publish
from twinengine.client import Client
from twinengine.config import Settings
from twinengine.runtime import Runtime
from twinengine.twins import service
from twinengine.twins.schemas import PropertyWrite

APP = Path(__file__).resolve().parents[1] / "examples" / "apps" / "river-reach"
PG_DEFAULT = "postgresql://postgres@127.0.0.1:5432/postgres"


def rate(n: int, fn: Callable[[int], None]) -> float:
    start = time.perf_counter()
    for i in range(n):
        fn(i)
    return n / (time.perf_counter() - start)


def floor_sqlite(path: Path, n: int) -> float:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE v (id INTEGER PRIMARY KEY, twin TEXT, rev INT, doc TEXT)")

    def write(i: int) -> None:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO v (twin, rev, doc) VALUES (?, ?, ?)",
                     ("t", i, json.dumps({"level": i * 0.01, "rain": 0.5, "storage": 3.0})))
        conn.execute("COMMIT")

    try:
        return rate(n, write)
    finally:
        conn.close()


def floor_postgres(url: str, n: int) -> float:
    with psycopg.connect(url) as conn:
        conn.execute("CREATE TEMP TABLE v (id bigserial PRIMARY KEY, twin text, rev int, doc jsonb)")
        conn.commit()

        def write(i: int) -> None:
            conn.execute("INSERT INTO v (twin, rev, doc) VALUES (%s, %s, %s)",
                         ("t", i, json.dumps({"level": i * 0.01, "rain": 0.5, "storage": 3.0})))
            conn.commit()

        return rate(n, write)


def engine_rates(settings: Settings, n: int) -> tuple[float, float]:
    runtime = Runtime.from_settings(settings)
    admin_token = prepare_store(runtime.db, runtime.issuer, settings)  # the engine's loops run in twin serve
    uma = Principal(name="uma", role=Role.USER)
    try:
        with runtime.db.session() as session:
            publish(session, runtime.blobs, principal=SYSTEM, archive=pack(APP), max_archive_bytes=10**8,
                    max_unpacked_bytes=10**8, steps=runtime.publish_steps)
            service.create_twin(session, principal=uma, app="river-reach@0.1.0", name="bench-service",
                                parameters={"station": "RR-01"})
            service.create_twin(session, principal=uma, app="river-reach@0.1.0", name="bench-http",
                                parameters={"station": "RR-01"})

        def write_service(i: int) -> None:
            values = {"level": PropertyWrite(value=i * 0.01), "rain": PropertyWrite(value=0.5),
                      "storage": PropertyWrite(value=3.0)}
            with runtime.db.session() as session:
                service.write_state(session, principal=uma, ref="bench-service", reported=values, desired={})

        in_process = rate(n, write_service)
        with TwinServe(settings) as url, Client(url, admin_token) as admin:
            token = admin.create_token("uma", "user").token
            with Client(url, token) as client:
                over_http = rate(n, lambda i: client.report("bench-http", level=i * 0.01, rain=0.5, storage=3.0))
        return in_process, over_http
    finally:
        runtime.close()


def postgres_url() -> str | None:
    import os

    url = os.environ.get("TWIN_BENCH_POSTGRES_URL", PG_DEFAULT)
    try:
        with psycopg.connect(url, connect_timeout=3):
            return url
    except psycopg.OperationalError:
        return None


def fresh_pg_database(admin_url: str) -> tuple[str, Callable[[], None]]:
    name = f"twin_bench_{int(time.time())}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = admin_url.rpartition("/")[0]

    def drop() -> None:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return f"{base}/{name}", drop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--writes", type=int, default=500)
    n = parser.parse_args().writes
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        floor = floor_sqlite(Path(tmp) / "floor.db", n)
        in_process, over_http = engine_rates(Settings(data_dir=Path(tmp) / "engine"), n)
        rows.append(("sqlite (WAL, synchronous=FULL)", floor, in_process, over_http))
        admin_url = postgres_url()
        if admin_url:
            url, drop = fresh_pg_database(admin_url)
            try:
                floor = floor_postgres(url, n)
                sa_url = url.replace("postgresql://", "postgresql+psycopg://", 1)
                in_process, over_http = engine_rates(Settings(data_dir=Path(tmp) / "pg", database_url=sa_url), n)
                rows.append(("postgresql", floor, in_process, over_http))
            finally:
                drop()
        else:
            print(f"(PostgreSQL not reachable at {PG_DEFAULT}; set TWIN_BENCH_POSTGRES_URL to include it)")
    print(f"\nstate writes, {n} single-revision writes of 3 properties, each a durable transaction\n")
    print(f"{'backend':<32}{'floor/s':>10}{'service/s':>11}{'HTTP/s':>9}{'service÷floor':>15}{'HTTP÷floor':>12}")
    for name, floor, in_process, over_http in rows:
        print(f"{name:<32}{floor:>10.0f}{in_process:>11.0f}{over_http:>9.0f}{in_process / floor:>15.2f}"
              f"{over_http / floor:>12.2f}")


if __name__ == "__main__":
    main()
