"""The engine's deferred imports of large module graphs hold one lock (``twinengine.lazy_imports``): a warm-up
and the process registry's first build each run under it, and one waits while another thread holds it. Two
threads importing dask at once once handed a request a partly initialised ``dask.base`` (a 500)."""

from __future__ import annotations

import threading
import time

import pytest

from twinengine import lazy_imports
from twinengine.warmup import Warmup
from twinengine.workflows import engine


class _Probe(Warmup):
    name = "probe"

    def __init__(self) -> None:
        super().__init__()
        self.held: bool | None = None

    def warm(self) -> str:
        self.held = lazy_imports.LOCK._is_owned()  # type: ignore[attr-defined]
        return "probed"


def test_a_warm_up_runs_under_the_lock() -> None:
    probe = _Probe()
    probe._run()
    assert probe.held is True and not lazy_imports.LOCK._is_owned()  # type: ignore[attr-defined]


def test_the_registry_is_built_under_the_lock(monkeypatch: pytest.MonkeyPatch) -> None:
    held: list[bool] = []
    monkeypatch.setattr(engine, "_REGISTRY", None)
    monkeypatch.setattr(engine, "build_registry", lambda: held.append(lazy_imports.LOCK._is_owned()) or "built")
    assert engine._standard_registry() == "built" and held == [True]


def test_a_warm_up_waits_while_another_thread_imports() -> None:
    probe, release = _Probe(), threading.Event()

    def hold() -> None:
        with lazy_imports.LOCK:
            release.wait(5)

    holder = threading.Thread(target=hold)
    holder.start()
    time.sleep(0.05)
    warming = threading.Thread(target=probe._run)
    warming.start()
    time.sleep(0.2)
    assert probe.held is None  # still waiting for the other import
    release.set()
    warming.join(5)
    holder.join(5)
    assert probe.held is True
