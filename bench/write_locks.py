"""How long SQLite's write lock is held while a compute site's heartbeat probes a frozen Dask scheduler.

A real scheduler process is started and stopped with SIGSTOP (its kernel still accepts connections; nothing
answers). The heartbeat probes it ``--probes`` times while a writer thread writes a row every 20 ms, in two
ways side by side on one store: the probe inside the write transaction that records its outcome (the
baseline: how the heartbeat was written before), and ``compute.sites.heartbeat`` (the site read, the probe
outside any transaction, the outcome written in a short one). For each it prints the longest time any write
transaction held the lock (from its BEGIN IMMEDIATE to its end, measured by the store's own events) and the
longest wait of the other writer's writes.

Usage: python bench/write_locks.py [--probes 2] [--probe-timeout 10]
"""

from __future__ import annotations

import argparse
import os
import signal
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

from sqlalchemy import event, select, text


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def frozen_scheduler() -> Iterator[str]:
    """A Dask scheduler that answered once and then was stopped (SIGSTOP); its address."""
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                                "--port", str(port), "--no-dashboard"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    address = f"tcp://127.0.0.1:{port}"
    try:
        from twinengine.compute.probes import probe

        deadline = time.monotonic() + 60
        while probe("dask", address, {}, None) is not None:
            if time.monotonic() > deadline:
                raise SystemExit("the scheduler did not answer within 60 s")
            time.sleep(0.2)
        os.kill(process.pid, signal.SIGSTOP)
        yield address
    finally:
        os.kill(process.pid, signal.SIGCONT)
        process.terminate()
        process.wait(30)


class LockHolds:
    """The longest write transaction on the store's engine: BEGIN (IMMEDIATE, a unit of work that may write)
    to its commit or rollback, per connection."""

    def __init__(self, engine: Any) -> None:
        self.longest = 0.0
        self._began: dict[int, float] = {}
        event.listen(engine, "begin", self._begin)
        event.listen(engine, "commit", self._end)
        event.listen(engine, "rollback", self._end)

    def _begin(self, connection: Any) -> None:
        if not connection.get_execution_options().get("twinengine_readonly", False):
            self._began[id(connection)] = time.perf_counter()

    def _end(self, connection: Any) -> None:
        began = self._began.pop(id(connection), None)
        if began is not None:
            self.longest = max(self.longest, time.perf_counter() - began)


def other_writer(db: Any, stop: threading.Event, waits: list[float], refused: list[str]) -> None:
    """Write one row every 20 ms; note how long each write took, and the writes refused ("database is
    locked": they waited the store's whole busy timeout)."""
    while not stop.is_set():
        began = time.perf_counter()
        try:
            with db.session() as session:
                session.execute(text("INSERT INTO bench_writes (at) VALUES (:at)"), {"at": began})
        except Exception as error:
            refused.append(str(error))
        waits.append(time.perf_counter() - began)
        stop.wait(0.02)


def measure(db: Any, holds: LockHolds, heartbeat: Callable[[], None],
            probes: int) -> tuple[float, float, int, float]:
    """(longest lock hold, longest other write, other writes refused, seconds per probe) over ``probes``
    heartbeats."""
    holds.longest = 0.0
    waits: list[float] = []
    refused: list[str] = []
    stop = threading.Event()
    writer = threading.Thread(target=other_writer, args=(db, stop, waits, refused))
    writer.start()
    began = time.perf_counter()
    for _ in range(probes):
        heartbeat()
    took = (time.perf_counter() - began) / probes
    stop.set()
    writer.join()
    return holds.longest, max(waits, default=0.0), len(refused), took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--probes", type=int, default=2, help="heartbeats per way (default 2)")
    parser.add_argument("--probe-timeout", type=float, default=None,
                        help="the probe's timeout in seconds (default: the engine's, 10)")
    args = parser.parse_args()

    from twinengine.compute import probes
    from twinengine.compute.models import ComputeSite
    from twinengine.compute.sites import heartbeat
    from twinengine.lake.keyring import Keyring
    from twinengine.store.base import utcnow
    from twinengine.store.engine import Database
    from twinengine.store.migrate import upgrade

    if args.probe_timeout is not None:
        probes.TIMEOUT = args.probe_timeout
    with tempfile.TemporaryDirectory() as tmp, frozen_scheduler() as address:
        db = Database(f"sqlite:///{Path(tmp) / 'twin.db'}")
        upgrade(db)
        keyring = Keyring.load_or_create(Path(tmp) / "keys")
        with db.session() as session:
            session.execute(text("CREATE TABLE bench_writes (at REAL)"))
            now = utcnow()
            session.add(ComputeSite(name="frozen", kind="dask", address=address, options={}, cores=2,
                                    memory_bytes=2**30, gpus=0, environments=[], endpoints=[], health="healthy",
                                    draining=False, created_by="bench", created_at=now, updated_at=now))
        holds = LockHolds(db.engine)

        def inside() -> None:  # the baseline: the probe in the transaction that writes its outcome
            with db.session() as session:
                row = session.scalar(select(ComputeSite).where(ComputeSite.name == "frozen"))
                assert row is not None
                problem = probes.probe(row.kind, row.address, dict(row.options or {}), None)
                row.health, row.health_error, row.heartbeat_at = "down" if problem else "healthy", problem, utcnow()

        def outside() -> None:
            heartbeat(db, keyring, "frozen")

        print(f"{args.probes} heartbeats per way against a frozen Dask scheduler (SIGSTOP), a writer beside them "
              f"every 20 ms; probe timeout {probes.TIMEOUT:g} s; {os.cpu_count()} cores, load "
              f"{os.getloadavg()[0]:.2f}")
        print(f"{'way':<34} {'longest lock hold':>18} {'longest other write':>20} {'refused':>8} {'s per probe':>12}")
        results = {}
        for name, way in (("probe inside the write (before)", inside), ("probe, then a short write (now)", outside)):
            held, waited, refused, took = measure(db, holds, way, args.probes)
            results[name] = held
            print(f"{name:<34} {held * 1000:>15.1f} ms {waited * 1000:>17.1f} ms {refused:>8} {took:>12.2f}")
        before, now_held = results.values()
        print(f"longest lock hold now / before: {now_held / before:.5f} ({now_held * 1000:.1f} ms of "
              f"{before * 1000:.0f} ms)")
        db.dispose()


if __name__ == "__main__":
    main()
