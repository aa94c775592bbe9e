"""A call into app code that answers in parts (``AppWorkers.process(parts=...)``): each part reaches the engine
while the code goes on, so the engine works on it meanwhile (assimilation writes the analyses of the cycles
done while the next ones run); each part gives the call its timeout again, and a silent call is still stopped;
more of an argument (``more``) is sent while the code starts on its first items, and the code reads it as it
goes (bubblewrap where it works)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from helpers import warm_app
from twinengine.workers.process import WorkerTimeout
from twinengine.workers.service import AppWorkers

CODE = '''
import time

import numpy as np


def ticks(count, seconds, part):
    """Sends a part every ``seconds``; the answer says when the last part went."""
    for k in range(count):
        time.sleep(seconds)
        part({"k": k, "at": time.time(), "array": np.full(3, float(k))})
    return {"ended": time.time()}


def total(items, part):
    part({"first": items[0] if isinstance(items, list) else next(iter(items))})
    return sum(x for x in items)


def silent(seconds, part):
    time.sleep(seconds)
    return seconds
'''


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppWorkers]:
    with warm_app(tmp_path_factory.mktemp("parts"), "parts_app", CODE, timeout=120) as workers:
        yield workers


def test_each_part_reaches_the_engine_while_the_code_goes_on(app: AppWorkers) -> None:
    got: list[tuple[float, dict[str, Any]]] = []
    answer = app.process("parts_app.fns:ticks", {"count": 5, "seconds": 0.2},
                         parts=lambda value: got.append((time.time(), value)))
    assert [value["k"] for _at, value in got] == [0, 1, 2, 3, 4]
    assert all(isinstance(v["array"], np.ndarray) and v["array"][0] == v["k"] for _at, v in got)  # npy, as answers
    received_first = got[0][0]
    assert received_first < answer["ended"] - 0.5  # read ~0.8 s before the code ended, not with the answer


def test_parts_renew_the_timeout_and_a_silent_call_is_still_stopped(app: AppWorkers) -> None:
    got: list[dict[str, Any]] = []
    # 8 parts 0.25 s apart: 2 s in all, under a timeout of 1 s that each part renews
    app.process("parts_app.fns:ticks", {"count": 8, "seconds": 0.25}, timeout=1.0, parts=got.append)
    assert len(got) == 8
    with pytest.raises(WorkerTimeout, match="no answer within 1 s"):
        app.process("parts_app.fns:silent", {"seconds": 3}, timeout=1.0, parts=got.append)


def test_more_of_an_argument_follows_while_the_code_starts(app: AppWorkers) -> None:
    first: list[dict[str, Any]] = []
    made: list[int] = []

    def lists() -> Iterator[list[int]]:
        for start in (10, 20):
            made.append(start)
            yield list(range(start, start + 10))

    answer = app.process("parts_app.fns:total", {"items": list(range(10))}, parts=first.append,
                         more=("items", 2, lists()))
    assert answer == sum(range(30)) and made == [10, 20] and first == [{"first": 0}]
