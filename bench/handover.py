"""How fast another engine takes over the singleton loops after the leader is killed with -9.

Engines on several hosts elect their leader through the shared PostgreSQL store (an advisory lock held by a
session, ``daemons/leadership.py``); processes of one host elect theirs through a file lock in the data dir
(``daemons/primary.py``). For each, a leader process is started, a waiting process beside it, the leader is
killed with SIGKILL, and the time from the kill to the waiter starting its loops is measured, ``--rounds``
times. The file lock (the kernel wakes the waiter) is the baseline, measured in the same run.

A killed process's socket is closed by the kernel, so the server frees its lock at once; a host that vanishes
is noticed after ``idle_session_timeout`` (8 s by default) instead, which this bench does not simulate.

Usage: python bench/handover.py [--rounds 5] [--database postgresql://postgres@127.0.0.1:5432/postgres]
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg

CONTENDER = """
import sys, time
from pathlib import Path
kind, where, mark = sys.argv[1], sys.argv[2], Path(sys.argv[3])

class Loops:
    def stop(self):
        pass

def start():
    mark.write_text(str(time.time()))
    return Loops()

if kind == "store":
    from twinengine.daemons.leadership import StoreLeadership
    lead = StoreLeadership(where, start)   # the engine's defaults: 1 s heartbeat, 8 s idle timeout
else:
    from twinengine.daemons.primary import PrimaryDuties
    lead = PrimaryDuties(Path(where), start)
lead.begin()
time.sleep(600)
"""


def wait_for(path: Path, timeout: float = 60.0) -> float:
    deadline = time.monotonic() + timeout
    while not path.exists() or not path.read_text():
        if time.monotonic() > deadline:
            raise SystemExit(f"nothing took the lead within {timeout} s")
        time.sleep(0.005)
    return float(path.read_text())


def handover(kind: str, where: str, folder: Path) -> float:
    """Seconds from SIGKILL of the leader to the waiter starting its loops."""
    marks = [folder / f"{kind}-{secrets.token_hex(4)}" for _ in range(2)]
    leader = subprocess.Popen([sys.executable, "-c", CONTENDER, kind, where, str(marks[0])])
    wait_for(marks[0])
    waiter = subprocess.Popen([sys.executable, "-c", CONTENDER, kind, where, str(marks[1])])
    try:
        time.sleep(1.5)  # the waiter is up and waiting
        if marks[1].exists():
            raise SystemExit("two leaders at once")
        killed = time.time()
        os.kill(leader.pid, signal.SIGKILL)
        return wait_for(marks[1]) - killed
    finally:
        for process in (leader, waiter):
            process.kill()
            process.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--database", default=os.environ.get("TWIN_TEST_POSTGRES_URL",
                                                            "postgresql://postgres@127.0.0.1:5432/postgres"))
    args = parser.parse_args()
    name = f"twin_bench_lead_{secrets.token_hex(4)}"
    admin = psycopg.connect(args.database, autocommit=True)
    admin.execute(f'CREATE DATABASE "{name}"')
    database = args.database.rpartition("/")[0] + "/" + name
    try:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            store, files = [], []
            for _ in range(args.rounds):  # interleaved, so both see the same machine load
                files.append(handover("file", str(folder / "primary.lock"), folder))
                store.append(handover("store", database, folder))
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()
    file_median, store_median = statistics.median(files), statistics.median(store)
    print(f"hand-over after kill -9, median of {args.rounds} rounds (goal: every loop running elsewhere ≤ 10 s)")
    print(f"  file lock in the data dir (one host, baseline) {file_median * 1000:8.1f} ms   "
          f"max {max(files) * 1000:8.1f} ms")
    print(f"  advisory lock in the store (several hosts)     {store_median * 1000:8.1f} ms   "
          f"max {max(store) * 1000:8.1f} ms   ratio {store_median / file_median:6.1f} x")
    print(f"  goal met: {max(store) <= 10.0}")


if __name__ == "__main__":
    main()
