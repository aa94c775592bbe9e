"""The liveness probe's store check: answered from the last result while it is fresh, one check at a time,
a stale result refreshed in the background without making the answer wait, and no answer from a result
that is too old."""

from __future__ import annotations

import asyncio
import threading

from helpers import run_alone
from twinengine.api.probe import StoreProbe


class Check:
    """A store check that counts its calls and can be held (a store that is slow to answer)."""

    def __init__(self) -> None:
        self.calls, self.result = 0, "ok"
        self.release = threading.Event()
        self.release.set()

    def __call__(self) -> str:
        self.calls += 1
        self.release.wait(10)
        return self.result


def test_a_fresh_result_is_answered_without_a_check() -> None:
    check = Check()
    probe = StoreProbe(check, fresh=60, stale=120)

    async def scenario() -> list[str]:
        return [await probe.status() for _ in range(5)]

    assert run_alone(scenario) == ["ok"] * 5 and check.calls == 1


def test_concurrent_callers_share_one_check() -> None:
    check = Check()
    probe = StoreProbe(check)

    async def scenario() -> list[str]:
        return list(await asyncio.gather(*(probe.status() for _ in range(20))))

    assert run_alone(scenario) == ["ok"] * 20 and check.calls == 1


def test_a_stale_result_is_answered_while_a_slow_check_runs_behind() -> None:
    check = Check()
    probe = StoreProbe(check, fresh=0.0, stale=60)

    async def scenario() -> tuple[str, str, str]:
        first = await probe.status()  # nothing known yet: waits for the check
        check.release.clear()  # the store turns slow, then unreachable
        check.result = "unreachable: OperationalError"
        second = await probe.status()  # answered from the last result; a check starts and hangs
        for _ in range(500):
            if check.calls == 2:
                break
            await asyncio.sleep(0.01)
        third = await probe.status()  # the same: the hanging check is not started twice
        check.release.set()
        return first, second, third

    assert run_alone(scenario) == ("ok", "ok", "ok") and check.calls == 2


def test_a_result_too_old_is_not_answered() -> None:
    check = Check()
    probe = StoreProbe(check, fresh=0.0, stale=0.0)

    async def scenario() -> list[str]:
        first = await probe.status()
        check.result = "unreachable: OperationalError"
        return [first, await probe.status()]

    assert run_alone(scenario) == ["ok", "unreachable: OperationalError"] and check.calls == 2
