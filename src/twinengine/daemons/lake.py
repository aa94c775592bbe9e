"""The lake's three loops (judge, conveyor, reaper), elected: one process of the engine runs them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from twinengine.daemons import lake_conveyor, lake_judge, lake_reaper
from twinengine.daemons.supervisor import Loop, Scope

if TYPE_CHECKING:
    from twinengine.daemons.engine_parts import EngineParts

__all__ = ["LAKE_LOOPS", "lake_loops"]

LAKE_LOOPS = ("judge", "conveyor", "reaper")


def lake_loops(runtime: EngineParts, *, interval: float = 2.0, which: tuple[str, ...] = LAKE_LOOPS) -> list[Loop]:
    """The loops named in ``which``; each passes again at once while it finds work, else waits its interval."""
    db, lake = runtime.db, runtime.lake

    def judge() -> int:
        with db.session() as session:
            return lake_judge.run_once(session, tuning=lake.tuning)

    loops = {"judge": Loop("lake-judge", judge, scope=Scope.ELECTED, interval=interval, rush=True),
             "conveyor": Loop("lake-conveyor", lambda: lake_conveyor.run_once(db, lake), scope=Scope.ELECTED,
                              interval=interval / 2, rush=True),
             "reaper": Loop("lake-reaper", lambda: lake_reaper.run_once(db, lake), scope=Scope.ELECTED,
                            interval=interval * 5, rush=True)}
    return [loops[name] for name in which]
