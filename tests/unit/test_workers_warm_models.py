"""Warm models in app workers, without a sandbox: a worker builds a slot's version once and keeps at most
``keep`` slots built; the pool gives a caller back the worker that served it, even after others used it."""

from __future__ import annotations

import io
from collections.abc import Hashable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from twinengine.workers._child import Child
from twinengine.workers.apps import AppCode
from twinengine.workers.pool import WorkerPool
from twinengine.workers.protocol import pickled
from twinengine.workers.service import SERVING


class Builds:
    """Stands in for the engine's answer to a worker asking for a model: counts each build."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, str]] = []

    def __call__(self, header: dict[str, Any], _blobs: list[bytes] | None = None) -> tuple[dict[str, Any],
                                                                                           list[bytes]]:
        self.asked.append((header["slot"], header["version"]))
        return {"answer": "model"}, [pickled({"entrypoint": "builtins:dict"})]


def child_with(builds: Builds) -> Child:
    child = Child(io.BytesIO(), io.BytesIO())
    child.ask = builds  # type: ignore[method-assign]
    return child


def test_a_slot_is_built_once_per_version_and_a_new_version_replaces_it() -> None:
    builds = Builds()
    child = child_with(builds)
    first = child._model({"slot": "predict|t|m", "version": "1"})
    assert child._model({"slot": "predict|t|m", "version": "1"}) is first
    assert builds.asked == [("predict|t|m", "1")]
    second = child._model({"slot": "predict|t|m", "version": "2"})  # the champion moved
    assert second is not first and builds.asked[-1] == ("predict|t|m", "2")
    assert list(child.models) == ["predict|t|m"] and child.models["predict|t|m"][0] == "2"


def test_at_most_keep_slots_stay_built_least_recently_used_out_first() -> None:
    builds = Builds()
    child = child_with(builds)
    for slot in ("a", "b"):
        child._model({"slot": slot, "version": "1", "keep": 2})
    child._model({"slot": "a", "version": "1", "keep": 2})  # a used again: b is now the least recent
    child._model({"slot": "c", "version": "1", "keep": 2})
    assert list(child.models) == ["a", "c"]
    child._model({"slot": "a", "version": "1", "keep": 2})
    assert [slot for slot, _ in builds.asked] == ["a", "b", "c"]  # a stayed warm throughout


class FakeWorker:
    alive = True

    def __init__(self, affinity: Hashable, *served: Hashable) -> None:
        self.affinity: Hashable = affinity
        self.served: dict[Hashable, None] = dict.fromkeys((*served, affinity))

    def close(self) -> None:
        self.alive = False


def test_the_pool_gives_a_caller_the_worker_that_served_it_after_others_used_it() -> None:
    """A worker that served predictions, then a function batch, still holds the warm model: the pool gives it
    back to the next prediction rather than the least recently used one."""
    pool = WorkerPool(idle=4)
    other, held = FakeWorker("fn|a"), FakeWorker("fn|b", "predict|t|m")
    pool._idle["app"] = [other, held]  # type: ignore[list-item]  # oldest first
    with pool.lease("app", lambda: None, prefer="predict|t|m") as worker:  # type: ignore[arg-type,return-value]
        assert worker is held
        assert list(worker.served) == ["fn|b", "predict|t|m"] and worker.affinity == "predict|t|m"
    with pool.lease("app", lambda: None, prefer="fn|c") as worker:  # type: ignore[arg-type,return-value]
        assert worker is other  # nobody's own: the least recently used


def test_retiring_an_app_version_stops_its_serving_workers_too(tmp_path: Path) -> None:
    discarded: list[Hashable] = []
    images: list[Path] = []
    workers = SimpleNamespace(pool=SimpleNamespace(discard=discarded.append),
                              images=SimpleNamespace(discard=images.append))
    code = AppCode(workers, blobs=None, root=tmp_path)  # type: ignore[arg-type]
    code._apps["abc"] = SimpleNamespace(key=("abc", "None"), code=tmp_path / "abc")  # type: ignore[assignment]
    code.retire("abc")
    assert discarded == [("abc", "None"), (("abc", "None"), SERVING)]
    assert images == [tmp_path / "abc"]  # its warm images fork no more
