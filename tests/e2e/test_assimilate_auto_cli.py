"""``twin assimilate --auto`` against a live engine: a user turns on assimilation on arrival for one twin of
river-reach, the gauge readings sent afterwards become analyses with no further command, ``--auto show`` says
how the last pass went, and a bad value is an error naming the option."""

from __future__ import annotations

import time

from assimilation_data import T0, reach_gauges
from helpers import RIVER_REACH, LiveEngine
from twinengine.twins.schemas import PropertyWrite


def test_twin_assimilate_auto_runs_cycles_on_arrival(live: LiveEngine) -> None:
    with live.client() as admin:
        dev, user = admin.create_token("ada", "developer").token, admin.create_token("uma", "user").token
    live.twin("app", "publish", str(RIVER_REACH), token=dev)
    live.twin("create", "river-reach@0.1.0", "--name", "reach", "--param", "station=RR-01", token=user)
    shown = live.twin("assimilate", "reach", "--auto", "arrival", token=user)
    assert "reach: assimilation arrival" in shown and "uma" in shown
    with live.client(user) as uma:
        uma.write_state("reach", reported={"storage": PropertyWrite(value=10.0, timestamp=T0)})
        uma.streams.append("reach", "gauges", reach_gauges(6))
        deadline = time.monotonic() + 60
        while uma.assimilation.list("reach").total < 6 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert uma.assimilation.list("reach").total == 6
        # The pass commits each cycle as it goes and lets go of its claim (writing seen_end and failures) after
        # the last one, in a commit of its own: the sixth analysis can be read before the schedule says so.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            schedule = uma.assimilation.schedule("reach")
            if not schedule.running and schedule.seen_end == 6:
                break
            time.sleep(0.2)
    data = live.twin_json("assimilate", "reach", "--auto", "show", token=user)
    assert data["on"] == "arrival" and data["failures"] == 0 and data["seen_end"] == 6
    wrong = live.twin("assimilate", "reach", "--auto", "sometimes", token=user, expect=2)
    assert "--auto" in wrong and "Traceback" not in wrong
    missing = live.twin("assimilate", "reach", "--auto", "schedule", token=user, expect=1)
    assert "every" in missing and "Traceback" not in missing
