"""Warm model versions are bounded: the least recently used goes beyond the capacity, and a version is
loaded once while it stays warm."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from twinengine.ml.warm import WarmModels


def test_a_version_loads_once_and_the_least_recently_used_goes() -> None:
    loads: list[tuple[str, str]] = []
    warm: WarmModels[str] = WarmModels(3)

    def get(name: str, version: str) -> str:
        return warm.get(name, version, lambda: loads.append((name, version)) or f"{name}@{version}")

    assert get("reach.runoff", "1") == "reach.runoff@1"
    assert get("reach.runoff", "1") == "reach.runoff@1" and loads == [("reach.runoff", "1")]
    get("reach.runoff", "2")
    get("delta.level", "4")
    get("reach.runoff", "1")  # used again: now the most recent
    get("alpine.snow", "1")  # a fourth version: the least recently used (reach.runoff v2) goes
    assert warm.versions() == [("delta.level", "4"), ("reach.runoff", "1"), ("alpine.snow", "1")]
    get("reach.runoff", "2")
    assert loads.count(("reach.runoff", "2")) == 2 and loads.count(("reach.runoff", "1")) == 1
    assert len(warm.versions()) == 3


def test_concurrent_callers_all_get_a_loaded_version() -> None:
    warm: WarmModels[object] = WarmModels(2)
    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(lambda _: warm.get("m", "7", object), range(64)))
    assert all(g is got[0] for g in got[1:])  # several may load at once; the first one kept is what all get
    assert warm.versions() == [("m", "7")]
