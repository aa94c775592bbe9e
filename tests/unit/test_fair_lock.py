"""The SQLite writer queue: a holder may let the other writers in while it waits on them, then holds again."""

from __future__ import annotations

import threading

from twinengine.store.engine import FairLock


def test_a_suspended_holder_lets_others_in_and_gets_its_depth_back() -> None:
    lock = FairLock()
    order: list[str] = []

    def other() -> None:
        with lock:
            order.append("other")

    with lock, lock:  # held twice (re-entrant), as a request session around a service's own session
        worker = threading.Thread(target=other)
        worker.start()
        with lock.suspended():
            worker.join(timeout=10)  # would wait forever if the holder kept the queue
            order.append("waited")
        assert not worker.is_alive()
        with lock:  # still the owner, at depth 2 + 1
            order.append("again")
    assert order == ["other", "waited", "again"]
    taken = threading.Event()
    threading.Thread(target=lambda: (lock.__enter__(), taken.set(), lock.__exit__())).start()
    assert taken.wait(10)  # fully released at the end


def test_suspending_a_lock_this_thread_does_not_hold_is_a_no_op() -> None:
    lock = FairLock()
    with lock.suspended():
        pass
    with lock:
        pass
