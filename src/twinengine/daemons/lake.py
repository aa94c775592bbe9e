"""Start the lake's three loops (judge, conveyor, reaper) in threads of the server process."""

from __future__ import annotations

from typing import TYPE_CHECKING

from twinengine.daemons import lake_conveyor, lake_judge, lake_reaper
from twinengine.daemons.loop import Daemons

if TYPE_CHECKING:
    from twinengine.daemons.engine_parts import EngineParts

__all__ = ["start_lake_daemons"]


def start_lake_daemons(runtime: EngineParts, *, interval: float = 2.0) -> Daemons:
    db, lake = runtime.db, runtime.lake
    daemons = Daemons()

    def judge() -> int:
        with db.session() as session:
            return lake_judge.run_once(session, tuning=lake.tuning)

    daemons.start("lake-judge", judge, interval=interval)
    daemons.start("lake-conveyor", lambda: lake_conveyor.run_once(db, lake), interval=interval / 2)
    daemons.start("lake-reaper", lambda: lake_reaper.run_once(db, lake), interval=interval * 5)
    return daemons
