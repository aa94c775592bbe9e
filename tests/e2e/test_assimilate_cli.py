"""``twin assimilate`` against a live engine: river-reach corrects its storage from its level gauge, with the
summary table (cycles, observations, innovations against what the filter expected, spread), the JSON for
machines, a what-if on a fork, and bad options answered with a message naming them, never a traceback."""

from __future__ import annotations

from assimilation_data import T0, reach_gauges
from helpers import RIVER_REACH, LiveEngine
from twinengine.twins.schemas import PropertyWrite


def test_twin_assimilate_runs_cycles_with_a_summary(live: LiveEngine) -> None:
    with live.client() as admin:
        dev, user = admin.create_token("ada", "developer").token, admin.create_token("uma", "user").token
    live.twin("app", "publish", str(RIVER_REACH), token=dev)
    live.twin("create", "river-reach@0.1.0", "--name", "reach", "--param", "station=RR-01", token=user)
    with live.client(user) as uma:
        uma.write_state("reach", reported={"storage": PropertyWrite(value=10.0, timestamp=T0)})
        uma.streams.append("reach", "gauges", reach_gauges(30))
    shown = live.twin("assimilate", "reach", "--cycles", "25", token=user)
    assert "reach: 25 cycles" in shown and "innovation RMS" in shown and "expected RMS" in shown
    assert "5 observation times still wait" in shown
    data = live.twin_json("assimilate", "reach", token=user)
    assert data["twin"] == "reach" and [c["number"] for c in data["cycles"]] == [26, 27, 28, 29, 30]
    assert data["pending"] == 0 and data["summary"]["observations"] == 5
    assert abs(data["summary"]["spread"] - data["cycles"][-1]["spread"]) < 1e-12
    assert "no new observations" in live.twin("assimilate", "reach", token=user)
    # a what-if on a fork: the origin keeps its storage and its cycles
    with live.client(user) as uma:
        uma.streams.append("reach", "gauges", reach_gauges(32)[30:])
        before = uma.get_state("reach").reported["storage"].value
    fork = live.twin_json("assimilate", "reach", "--what-if", "reach-pf", "--method", "pf", "--members", "40",
                          token=user)
    assert fork["twin"] == "reach-pf" and len(fork["cycles"]) == 2 and fork["cycles"][0]["members"] == 40
    with live.client(user) as uma:
        assert uma.get_state("reach").reported["storage"].value == before
        assert uma.assimilation.list("reach").total == 30
    # bad options: a message naming them
    bad = live.twin("assimilate", "reach", "--method", "kalman", token=user, expect=1)
    assert "method" in bad and "Traceback" not in bad
    bad = live.twin("assimilate", "reach", "--members", "1000000", token=user, expect=1)
    assert "members" in bad and "Traceback" not in bad
