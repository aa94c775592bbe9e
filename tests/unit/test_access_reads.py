"""Read jobs shared by the waiting thread and the pool's helpers: every job runs once, helpers are bounded,
the first failure drops the rest and is raised, and a watcher hears about every job that ends."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from twinengine.access.reads import Reads


def test_every_job_runs_once_on_at_most_helpers_plus_one_threads() -> None:
    ran: list[int] = []
    threads: set[threading.Thread] = set()
    lock = threading.Lock()
    gate = threading.Barrier(2, timeout=5)  # two jobs must run at the same time: the caller and one helper

    def job(k: int) -> None:
        if k < 2:
            gate.wait()
        with lock:
            ran.append(k)
            threads.add(threading.current_thread())

    with ThreadPoolExecutor(4) as pool:
        reads = Reads()
        reads.add([lambda k=k: job(k) for k in range(40)], pool=pool, helpers=1)
        reads.finish()
    assert sorted(ran) == list(range(40))
    assert len(threads) == 2 and threading.current_thread() in threads
    assert reads.settled() and not reads.waiting()


def test_no_helper_for_a_lone_job() -> None:
    where: list[threading.Thread] = []
    with ThreadPoolExecutor(2) as pool:
        reads = Reads()
        reads.add([lambda: where.append(threading.current_thread())], pool=pool, helpers=3)
        reads.finish()
    assert where == [threading.current_thread()]


def test_the_first_failure_drops_the_rest_and_is_raised() -> None:
    ran: list[int] = []
    changes: list[int] = []

    def fail() -> None:
        raise OSError("chunk store went away")

    reads = Reads(on_change=lambda: changes.append(1))
    reads.add([lambda: ran.append(0), fail, lambda: ran.append(2), lambda: ran.append(3)])
    with pytest.raises(OSError, match="went away"):
        reads.finish()
    assert ran == [0]  # the jobs after the failure were dropped
    assert isinstance(reads.error, OSError) and reads.settled() and not reads.waiting()
    assert len(changes) == 2  # told after each job that ran, the failed one included
    assert not reads.run_one()


def test_cancel_drops_the_jobs_not_started() -> None:
    ran: list[int] = []
    reads = Reads()
    reads.add([lambda: ran.append(0), lambda: ran.append(1)])
    assert reads.run_one() and reads.waiting()
    reads.cancel()
    reads.finish()
    assert ran == [0]
