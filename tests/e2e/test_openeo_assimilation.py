"""The official ``openeo`` Python client, unmodified, runs assimilation and calibration through process graphs:
``assimilate`` runs a twin's pending cycles (or N of them) and returns the summary with the last analysis,
``calibrate`` queues a calibration and returns its id and percent (or, with wait, its result); bad arguments
are openEO errors naming them."""

from __future__ import annotations

from typing import Any

import openeo
import pytest
from test_calibrate import TRUE, _history

from assimilation_data import T0, reach_gauges
from helpers import RIVER_REACH, LiveEngine
from twinengine.twins.schemas import PropertyWrite


def _graph(process: str, **arguments: Any) -> dict[str, Any]:
    return {"process_graph": {"n": {"process_id": process, "arguments": arguments, "result": True}}}


@pytest.fixture
def user(live: LiveEngine) -> str:
    """uma's token, with her river-reach twin ``reach``."""
    with live.client() as admin:
        dev, token = admin.create_token("ada", "developer").token, admin.create_token("uma", "user").token
    live.twin("app", "publish", str(RIVER_REACH), token=dev)
    live.twin("create", "river-reach@0.1.0", "--name", "reach", "--param", "station=RR-01", token=token)
    return token


@pytest.fixture
def reach(live: LiveEngine, user: str) -> openeo.Connection:
    return openeo.connect(live.url).authenticate_basic("uma", user)


def test_a_graph_runs_assimilation_cycles(live: LiveEngine, user: str, reach: openeo.Connection) -> None:
    processes = {p["id"]: p for p in reach.list_processes()}
    assert {"assimilate", "calibrate"} <= set(processes)
    assert [p["name"] for p in processes["assimilate"]["parameters"]] == ["twin", "cycles", "method", "members",
                                                                         "seed"]
    with live.client(user) as uma:
        uma.write_state("reach", reported={"storage": PropertyWrite(value=10.0, timestamp=T0)})
        uma.streams.append("reach", "gauges", reach_gauges(12))
    first = reach.execute(_graph("assimilate", twin="reach", cycles=5))
    assert first["twin"] == "reach" and first["cycles"] == 5 and first["numbers"] == [1, 2, 3, 4, 5]
    assert first["pending"] == 7 and first["observations"] == 5 and first["ratio"] > 0
    assert set(first["analysis"]) == {"storage"} and first["analysis"]["storage"]["std"] > 0
    rest = reach.execute(_graph("assimilate", twin="reach"))  # every pending observation time
    assert rest["numbers"] == list(range(6, 13)) and rest["pending"] == 0
    with live.client(user) as uma:
        state = uma.get_state("reach").reported["storage"]
        assert state.revision == rest["revision"]
        assert state.value == pytest.approx(rest["analysis"]["storage"]["mean"])
    nothing = reach.execute(_graph("assimilate", twin="reach"))
    assert nothing["cycles"] == 0 and nothing["analysis"] is None
    with pytest.raises(openeo.rest.OpenEoApiError) as info:
        reach.execute(_graph("assimilate", twin="reach", method="kalman"))
    assert "method" in info.value.message
    with pytest.raises(openeo.rest.OpenEoApiError) as info:
        reach.execute(_graph("assimilate"))  # a synchronous graph has no twin of its own
    assert "twin" in info.value.message


@pytest.mark.sandbox
def test_a_graph_starts_a_calibration(live: LiveEngine, user: str, reach: openeo.Connection,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    with live.client(user) as uma:
        uma.streams.append("reach", "gauges", _history(monkeypatch))
    queued = reach.execute(_graph("calibrate", twin="reach", method="de", runs=80, workers=2, seed=1))
    assert queued["id"].startswith("cal-") and queued["status"] in ("queued", "running", "done")
    assert 0 <= queued["percent"] <= 100
    done = reach.execute(_graph("calibrate", twin="reach", method="de", runs=160, workers=2, seed=1, wait=True))
    assert done["status"] == "done" and done["percent"] == 100 and done["fork"]
    assert done["best"]["runoff_coefficient"] == pytest.approx(TRUE["runoff_coefficient"], abs=0.05)
    assert set(done["interval"]) == set(TRUE)
    with live.client(user) as uma:
        ids = {c.id for c in uma.calibration.list("reach").items}
    assert {queued["id"], done["id"]} <= ids
    with pytest.raises(openeo.rest.OpenEoApiError) as info:
        reach.execute(_graph("calibrate", twin="reach", runs=0))
    assert "runs" in info.value.message
