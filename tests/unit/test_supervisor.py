"""The supervisor of the background loops: one start, one stop, a status per loop, and the elected loops only
while this process wins its election."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from twinengine.daemons.primary import PrimaryDuties
from twinengine.daemons.supervisor import THREAD_PREFIX, Loop, NeverElected, Scope, Supervisor


def wait_for(check: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def counting(name: str, scope: Scope = Scope.PROCESS) -> tuple[Loop, list[int]]:
    passes: list[int] = []
    return Loop(name, lambda: passes.append(1), scope=scope, interval=0.01), passes


def loop_threads() -> set[str]:
    return {t.name for t in threading.enumerate() if t.name.startswith(THREAD_PREFIX)}


def test_one_start_runs_every_loop_and_one_stop_leaves_no_thread() -> None:
    supervisor = Supervisor()
    (a, a_passes), (b, b_passes) = counting("a"), counting("b", Scope.ELECTED)
    supervisor.add(a)
    supervisor.add(b)
    assert not any(s.running for s in supervisor.status())  # registered, not started
    supervisor.start()
    wait_for(lambda: len(a_passes) > 2 and len(b_passes) > 2)
    assert {s.name: (s.scope, s.running) for s in supervisor.status()} == {
        "a": (Scope.PROCESS, True), "b": (Scope.ELECTED, True)}
    assert loop_threads() >= {THREAD_PREFIX + "a", THREAD_PREFIX + "b"}
    assert all(s.started_at is not None and s.passes > 0 for s in supervisor.status())
    late, late_passes = counting("late")
    assert supervisor.add(late)  # registered while running: starts at once
    wait_for(lambda: len(late_passes) > 0)
    assert not supervisor.add(counting("late")[0])  # a name is registered once
    threads = supervisor.threads()
    supervisor.stop(timeout=10)
    assert not any(t.is_alive() for t in threads)
    assert not any(s.running for s in supervisor.status())
    assert not loop_threads() & {THREAD_PREFIX + n for n in ("a", "b", "late")}


def test_a_pass_that_raises_is_reported_and_the_loop_goes_on() -> None:
    supervisor = Supervisor()
    calls: list[int] = []

    def flaky() -> int:
        calls.append(1)
        if len(calls) % 2:
            raise RuntimeError("store unreachable")
        return 0

    supervisor.add(Loop("flaky", flaky, interval=0.01))
    supervisor.start()
    try:
        wait_for(lambda: len(calls) >= 6)
        (status,) = supervisor.status()
        assert status.running and status.errors >= 3 and status.passes >= 5
        assert status.last_error == "RuntimeError: store unreachable" and status.last_error_at is not None
        assert status.to_dict()["last_error"] == "RuntimeError: store unreachable"
    finally:
        supervisor.stop(timeout=10)


def test_stop_interrupts_a_wait_and_tears_down_on_the_loops_thread() -> None:
    woken, torn_down = threading.Event(), []
    supervisor = Supervisor()
    supervisor.add(Loop("sleepy", lambda: 0, wait=lambda _stop: woken.wait(600), interrupt=woken.set,
                        teardown=lambda: torn_down.append(threading.current_thread().name)))
    supervisor.start()
    wait_for(lambda: supervisor.status()[0].passes == 1)
    supervisor.stop(timeout=10)  # returns at once: the interrupt ends the ten-minute wait
    assert torn_down == [THREAD_PREFIX + "sleepy"]


def test_replacing_a_loop_stops_the_old_one_first() -> None:
    supervisor = Supervisor()
    old, old_passes = counting("x")
    new, new_passes = counting("x")
    supervisor.add(old)
    supervisor.start()
    wait_for(lambda: len(old_passes) > 0)
    assert supervisor.add(new, replace=True)
    seen = len(old_passes)
    wait_for(lambda: len(new_passes) > 2)
    assert len(old_passes) == seen  # the old loop ran no pass after it was replaced
    supervisor.stop(timeout=10)


def test_the_elected_loops_run_only_in_the_process_that_holds_the_lock(tmp_path: Path) -> None:
    """Two supervisors on one data dir: only the lock's holder runs the elected loops; when it stops, the other
    takes them over. Both run their process loops all along."""
    lock = tmp_path / "primary.lock"
    first, second = Supervisor(), Supervisor()
    loops = {}
    for tag, supervisor in (("1", first), ("2", second)):
        every, every_passes = counting("every-" + tag)
        one, one_passes = counting("one-" + tag, Scope.ELECTED)
        supervisor.add(every)
        supervisor.add(one)
        supervisor.elect(lambda start: PrimaryDuties(lock, start))
        loops[tag] = (every_passes, one_passes)
    elected_hook: list[str] = []
    second.on_elected(lambda: elected_hook.append("2"))
    first.start()
    wait_for(lambda: first.elected)
    second.start()
    wait_for(lambda: len(loops["2"][0]) > 2 and len(loops["1"][1]) > 2)
    assert not second.elected and loops["2"][1] == [] and elected_hook == []
    assert {s.name: s.running for s in second.status()} == {"every-2": True, "one-2": False}
    first.stop(timeout=10)
    wait_for(lambda: second.elected and len(loops["2"][1]) > 0)
    assert elected_hook == ["2"]
    second.stop(timeout=10)
    assert not any(s.running for s in [*first.status(), *second.status()])


def test_the_election_is_chosen_before_the_start(tmp_path: Path) -> None:
    supervisor = Supervisor()
    supervisor.start()
    try:
        with pytest.raises(RuntimeError):
            supervisor.elect(lambda start: PrimaryDuties(tmp_path / "primary.lock", start))
    finally:
        supervisor.stop()


def test_a_process_the_engine_starts_for_its_own_work_runs_no_elected_loop() -> None:
    """A sync process runs its own loops, never the elected ones, even one registered after its start (the AI
    lifecycle's training loop, on the process's first ``predict``): its engine runs those. Before, the sync
    process of ``twin demo --app calo-fastsim`` started the training loop and failed on the engine's stream log."""
    supervisor = Supervisor()
    (own, own_passes), (elected, elected_passes) = counting("own"), counting("training", Scope.ELECTED)
    supervisor.add(own)
    supervisor.elect(lambda _start: NeverElected())
    supervisor.start()
    supervisor.add(elected)
    wait_for(lambda: len(own_passes) > 2)
    time.sleep(0.1)
    assert elected_passes == [] and not next(s for s in supervisor.status() if s.name == "training").running
    supervisor.stop()
    assert not loop_threads() & {THREAD_PREFIX + n for n in ("own", "training")}  # (another test's engine may run)
