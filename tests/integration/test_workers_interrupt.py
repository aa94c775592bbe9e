"""An interrupt stops a worker's request from another thread (a run canceled in the middle of app code): the
request ends at once with ``WorkerCrashed`` and the killed worker is never lent again; an interrupt fired
before a request begins stops that request too; and a worker whose request ended before the interrupt fired
is left alone, warm in the pool (bubblewrap where it works; started fresh, or forked from a warm image)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import warm_app
from twinengine.workers.interrupt import Interrupt
from twinengine.workers.process import WorkerCrashed
from twinengine.workers.service import AppWorkers

CODE = '''
import time


def nap(seconds):
    time.sleep(seconds)
    return seconds
'''
NAP = "naps_app.fns:nap"


@pytest.fixture
def app(tmp_path: Path) -> Iterator[AppWorkers]:
    with warm_app(tmp_path, "naps_app", CODE, timeout=120) as workers:
        yield workers


@pytest.mark.parametrize("kind", ["fresh", "forked"])
def test_a_fired_interrupt_stops_the_request_in_progress(app: AppWorkers, kind: str) -> None:
    if kind == "fresh":
        app.workers.images.capacity = 0
    else:  # forked from the app's warm image from the first worker on
        app.workers.images.after = 0
    assert app.process(NAP, {"seconds": 0}) == 0  # a warm worker
    interrupt = Interrupt()
    timer = threading.Timer(0.5, interrupt.fire)
    timer.start()
    started = time.monotonic()
    try:
        with pytest.raises(WorkerCrashed, match="killed by signal 9"):
            app.process(NAP, {"seconds": 60}, interrupt=interrupt)
    finally:
        timer.cancel()
    assert time.monotonic() - started < 30
    assert interrupt.fired
    assert app.process(NAP, {"seconds": 0}) == 0  # a new worker serves the next request
    assert app.workers.pool.started == 2
    assert app.workers.images.started == (kind == "forked")


def test_an_interrupt_stops_requests_after_it_fired_and_spares_workers_it_no_longer_holds(app: AppWorkers) -> None:
    finished = Interrupt()
    assert app.process(NAP, {"seconds": 0}, interrupt=finished) == 0
    finished.fire()  # its request ended: the worker is back in the pool, serving no one under it
    assert app.process(NAP, {"seconds": 0}) == 0
    assert app.workers.pool.started == 1
    with pytest.raises(WorkerCrashed):
        app.process(NAP, {"seconds": 60}, interrupt=finished)  # fired before it began
