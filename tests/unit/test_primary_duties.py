"""The primary lock: one process of a data dir runs the elected loops, and another takes over the moment
it ends, however it ends (kill -9 included), without polling and without help."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from twinengine.daemons.primary import PrimaryDuties

CONTENDER = """
import os, subprocess, sys
from pathlib import Path
from twinengine.daemons.primary import PrimaryDuties

lock, mark = Path(sys.argv[1]), Path(sys.argv[2])

class Loops:
    def stop(self):
        mark.with_suffix(".stopped").write_text("")

def start():
    subprocess.Popen(["sleep", "120"])  # a worker the loops started: it must not inherit the lock
    mark.write_text(str(os.getpid()))
    return Loops()

duties = PrimaryDuties(lock, start)
duties.begin()
print("waiting", flush=True)
for line in sys.stdin:
    if line.strip() == "close":
        duties.close()
        print("closed", flush=True)
"""


def wait_for(check: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


@contextmanager
def contender(lock: Path, mark: Path) -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen([sys.executable, "-c", CONTENDER, str(lock), str(mark)], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert process.stdout is not None and process.stdout.readline().strip() == "waiting"
        yield process
    finally:
        os.killpg(process.pid, signal.SIGKILL)  # the contender and the worker it started
        process.wait()


def test_one_process_runs_the_loops_and_the_next_takes_over_after_kill_9(tmp_path: Path) -> None:
    lock = tmp_path / "primary.lock"
    with contender(lock, tmp_path / "a") as first:
        wait_for((tmp_path / "a").exists)
        with contender(lock, tmp_path / "b"):
            time.sleep(1.0)
            assert not (tmp_path / "b").exists()  # waits while the first holds the lock
            os.kill(first.pid, signal.SIGKILL)  # its `sleep` worker lives on, and holds nothing
            wait_for((tmp_path / "b").exists)
            assert not (tmp_path / "a.stopped").exists()


def test_close_stops_the_loops_and_hands_the_lock_over(tmp_path: Path) -> None:
    lock = tmp_path / "primary.lock"
    with contender(lock, tmp_path / "a") as first, contender(lock, tmp_path / "b"):
        wait_for((tmp_path / "a").exists)
        assert first.stdin is not None and first.stdout is not None
        first.stdin.write("close\n")
        first.stdin.flush()
        assert first.stdout.readline().strip() == "closed"
        assert (tmp_path / "a.stopped").exists()
        wait_for((tmp_path / "b").exists)


def test_a_waiter_closed_before_its_turn_never_starts_the_loops(tmp_path: Path) -> None:
    lock = tmp_path / "primary.lock"
    started: list[int] = []

    def start() -> _NoLoops:
        started.append(1)
        return _NoLoops()

    holder = os.open(lock, os.O_RDWR | os.O_CREAT)
    fcntl.flock(holder, fcntl.LOCK_EX)  # another open file description: the waiter below blocks on it
    duties = PrimaryDuties(lock, start)
    duties.begin()
    time.sleep(0.3)
    assert not duties.held
    duties.close()
    os.close(holder)  # the lock is free: the closed waiter takes it only to let it go
    time.sleep(0.5)
    assert started == []
    again = os.open(lock, os.O_RDWR)
    try:
        fcntl.flock(again, fcntl.LOCK_EX | fcntl.LOCK_NB)  # free again
    finally:
        os.close(again)


class _NoLoops:
    def stop(self) -> None:
        pass
