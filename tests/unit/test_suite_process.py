"""The test process itself: what collection built is kept out of the garbage collector's way (conftest)."""

from __future__ import annotations

import gc


def test_the_collected_suite_is_frozen_and_young_garbage_still_collected() -> None:
    assert gc.get_freeze_count() > 10_000  # modules and items collected before the first test
    assert gc.get_threshold()[0] == 10_000
    ring: list[object] = []
    ring.append(ring)  # a cycle made now is young: a collection still finds it
    del ring
    assert gc.collect() >= 1
