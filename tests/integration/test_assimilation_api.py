"""Assimilation cycles through the REST API on a real engine: river-reach corrects its storage from the level
gauge through the rating curve, Lorenz-96 (an app with no engine code of its own) from all 40 variables.
Analyses are state revisions with their uncertainty, innovations are kept per cycle, the same seed gives the
same analysis, a what-if leaves the origin untouched, and hostile input is a 4xx naming the field."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from helpers import REPO, RIVER_REACH, Engine, make_app
from twinengine.client import Client
from twinengine.errors import NotFound, PermissionDenied, ProcessFailed, ValidationFailed
from twinengine.twins.schemas import PropertyWrite

LORENZ96 = REPO / "examples" / "apps" / "lorenz96"
START = datetime(2026, 3, 1, tzinfo=UTC)
TRUE_STORAGE = 40.0
PARAMS = {"area_km2": 120.0, "runoff_coefficient": 0.45, "reservoir_hours": 6.0, "base_flow_m3s": 1.5,
          "rating_a": 18.0, "rating_b": 1.6, "datum_m": 0.2}


def _reach_level(storage: float) -> float:
    q = storage / PARAMS["reservoir_hours"] * PARAMS["area_km2"] / 3.6 + PARAMS["base_flow_m3s"]
    return PARAMS["datum_m"] + (q / PARAMS["rating_a"]) ** (1 / PARAMS["rating_b"])


def _reach_step(storage: float, rain: float, hours: float) -> float:
    k = PARAMS["reservoir_hours"]
    eq = PARAMS["runoff_coefficient"] * rain * k
    return eq + (storage - eq) * math.exp(-hours / k)


def _reach_truth(steps: int, seed: int = 7) -> tuple[list[dict[str, Any]], np.ndarray]:
    """Gauge records every 15 minutes (rain, and the level with 3 cm noise) and the true storage at each."""
    rng = np.random.default_rng(seed)
    storage, records, truth = TRUE_STORAGE, [], []
    for k in range(1, steps + 1):
        rain = 6.0 if 8 <= k < 20 else 0.0
        storage = _reach_step(storage, rain, 0.25)
        level = _reach_level(storage) + 0.03 * rng.standard_normal()
        records.append({"time": (START + timedelta(minutes=15 * k)).isoformat(), "station": "RR-01",
                        "rain": rain, "level": round(level, 4)})
        truth.append(storage)
    return records, np.asarray(truth)


@pytest.fixture
def reach(engine: Engine) -> Client:
    engine.as_role("ada", "developer").publish_app(RIVER_REACH)
    uma = engine.as_role("uma", "user")
    uma.create_twin("river-reach", "reach", {"station": "RR-01"})
    uma.write_state("reach", reported={"storage": PropertyWrite(value=5.0, timestamp=START)})
    return uma


def _storage(client: Client, twin: str) -> Any:
    return client.get_state(twin).reported["storage"]


def test_river_reach_assimilates_its_level_gauge_into_storage(engine: Engine, reach: Client) -> None:
    records, truth = _reach_truth(24)
    reach.streams.append("reach", "gauges", records)
    got = reach.assimilation.run("reach", cycles=200)
    assert [c.number for c in got.cycles] == list(range(1, 25)) and got.pending == 0
    assert all(c.obs_count == 1 and c.method == "etkf" and c.members == 20 for c in got.cycles)
    # the analysis is a revision of storage with its spread, quantiles and members
    last = got.cycles[-1]
    value = _storage(reach, "reach")
    assert value.revision == last.revision and value.uncertainty is not None
    assert value.uncertainty.std == pytest.approx(last.spread) and len(value.uncertainty.members or []) == 20
    assert list(value.uncertainty.quantiles or {}) == ["0.05", "0.5", "0.95"]
    # innovations recorded, with what the filter expected
    detail = reach.assimilation.get("reach", last.id)
    assert detail.innovations is not None and set(detail.innovations) == {"level"}
    inn = detail.innovations["level"]
    assert inn.innovation == pytest.approx(inn.observed - inn.background) and inn.expected > inn.std == 0.03
    assert detail.observations and detail.observations[0]["offset"] == 23
    assert detail.offsets == {"gauges": [23, 24]}
    prov = detail.provenance or {}
    assert any("revision" in k for k in prov.get("entity", {})) and prov.get("wasGeneratedBy")
    # the assimilated storage is far closer to the truth than the model run from the twin's own 5 mm
    analysed = np.asarray([reach.assimilation.get("reach", c.number).analysis["storage"]["mean"]  # type: ignore[index]
                           for c in got.cycles])
    free, s = [], 5.0
    for r in records:
        s = _reach_step(s, float(r["rain"]), 0.25)
        free.append(s)
    rmse_da = float(np.sqrt(np.mean((analysed[8:] - truth[8:]) ** 2)))
    rmse_free = float(np.sqrt(np.mean((np.asarray(free)[8:] - truth[8:]) ** 2)))
    assert rmse_da < 0.3 * rmse_free, (rmse_da, rmse_free)
    # nothing new: no cycle; new records: the ensemble goes on from the kept members
    assert reach.assimilation.run("reach").cycles == []
    more, _ = _reach_truth(26)
    reach.streams.append("reach", "gauges", more[24:])
    again = reach.assimilation.run("reach", cycles=5)
    assert [c.number for c in again.cycles] == [25, 26] and again.cycles[0].offsets == {"gauges": [24, 25]}
    page = reach.assimilation.list("reach")
    assert page.total == 26 and page.items[0].number == 26


def test_same_seed_same_analysis_and_a_what_if_leaves_the_origin_alone(engine: Engine, reach: Client) -> None:
    records, _ = _reach_truth(6)
    reach.streams.append("reach", "gauges", records)
    head = reach.get_twin("reach").head_revision
    a = reach.assimilation.run("reach", cycles=10, what_if="reach-a", seed=11, method="enkf")
    b = reach.assimilation.run("reach", cycles=10, what_if="reach-b", seed=11, method="enkf")
    c = reach.assimilation.run("reach", cycles=10, what_if="reach-c", seed=12, method="enkf")
    assert a.twin == "reach-a" and len(a.cycles) == 6
    assert [x.innovation_mean for x in a.cycles] == [x.innovation_mean for x in b.cycles]
    assert [x.innovation_mean for x in a.cycles] != [x.innovation_mean for x in c.cycles]
    sa, sb, sc = (_storage(reach, t) for t in ("reach-a", "reach-b", "reach-c"))
    assert sa.value == sb.value and sa.uncertainty.members == sb.uncertainty.members  # type: ignore[union-attr]
    assert sa.value != sc.value
    # the origin: no cycle, its storage as written, no revision of ours
    assert reach.assimilation.list("reach").total == 0
    assert _storage(reach, "reach").value == 5.0
    assert reach.get_twin("reach").head_revision >= head
    assert not [r for r in reach.revisions("reach", limit=200).items if "assimilation" in (r.message or "")]
    # a particle filter too, with another ensemble size
    pf = reach.assimilation.run("reach", cycles=10, what_if="reach-pf", method="pf", members=50)
    assert len(pf.cycles) == 6 and pf.cycles[0].members == 50


def test_hostile_inputs_are_4xx_naming_the_field(engine: Engine, reach: Client) -> None:
    auth = reach._transport.auth
    for body, field in (({"method": "kalman"}, "method"), ({"members": 0}, "members"),
                        ({"members": 10**6}, "members"), ({"cycles": 0}, "cycles"), ({"cycles": 1001}, "cycles"),
                        ({"seed": -1}, "seed"),
                        ({"what_if": "Bad Name"}, "what_if"), ({"nonsense": 1}, "nonsense")):
        response = engine.http.post("/api/v1/twins/reach/assimilations", json=body, headers=auth)
        assert response.status_code == 422, (body, response.text)
        assert field in response.text, (body, response.text)
    with pytest.raises(ValidationFailed, match="3dvar"):
        reach.assimilation.run("reach", method="3dvar")  # the rating curve is an operator
    eve = engine.as_role("eve", "user")
    with pytest.raises((PermissionDenied, NotFound)):
        eve.assimilation.run("reach")
    with pytest.raises((PermissionDenied, NotFound)):
        eve.assimilation.list("reach")
    with pytest.raises(NotFound):
        reach.assimilation.get("reach", "as-000000000000")
    # a twin whose state has no storage yet: the error names it
    reach.create_twin("river-reach", "empty", {"station": "RR-02"})
    reach.streams.append("empty", "gauges", _reach_truth(2)[0])
    with pytest.raises(ValidationFailed, match="storage"):
        reach.assimilation.run("empty")


def _lorenz96(steps: int, seed: int) -> list[tuple[datetime, np.ndarray, np.ndarray]]:
    """A truth run on the attractor, every variable observed each step (dt = 0.05 = 3 minutes) with R = I."""
    from twinengine.assimilation.reference_models import lorenz96_step

    rng = np.random.default_rng(seed)
    x = 8.0 + rng.standard_normal(40)
    for _ in range(1000):
        x = lorenz96_step(x)
    out = []
    for k in range(1, steps + 1):
        x = lorenz96_step(x)
        out.append((START + timedelta(minutes=3 * k), x.copy(), x + rng.standard_normal(40)))
    return out


def test_lorenz96_is_assimilated_with_no_engine_code(engine: Engine) -> None:
    engine.as_role("ada", "developer").publish_app(LORENZ96)
    uma = engine.as_role("uma", "user")
    uma.create_twin("lorenz96", "l96", {})
    steps = _lorenz96(100, seed=3)
    rng = np.random.default_rng(5)
    first = steps[0][1] + rng.standard_normal(40)  # a poor first guess, before the first observation
    uma.write_state("l96", reported={f"x[{i}]": PropertyWrite(value=float(v), timestamp=START)
                                     for i, v in enumerate(first)})
    uma.streams.append("l96", "obs", [{"time": t.isoformat(), **{f"y{i}": float(v) for i, v in enumerate(y)}}
                                      for t, _x, y in steps])
    got = uma.assimilation.run("l96", cycles=80)  # the filter's spin-up from the poor first guess
    assert len(got.cycles) == 80 and got.pending == 20 and all(c.obs_count == 40 for c in got.cycles)
    # a what-if with the LETKF goes on from the twin's ensemble over the 20 observation times left
    letkf = uma.assimilation.run("l96", what_if="l96-letkf", method="letkf", cycles=200)
    assert len(letkf.cycles) == 20 and letkf.cycles[0].method == "letkf"
    assert letkf.cycles[0].origin_cycle == got.cycles[-1].id
    var = uma.assimilation.run("l96", what_if="l96-3dvar", method="3dvar", cycles=2)
    assert [c.method for c in var.cycles] == ["3dvar", "3dvar"] and var.cycles[0].obs_count == 40
    rest = uma.assimilation.run("l96", cycles=200)

    assert len(rest.cycles) == 20 and rest.pending == 0
    truth = np.asarray([x for _t, x, _y in steps[-20:]])
    for twin, cycles in (("l96", rest.cycles), ("l96-letkf", letkf.cycles)):
        analysed = np.asarray([[uma.assimilation.get(twin, c.number).analysis[f"x[{i}]"]["mean"]  # type: ignore[index]
                                for i in range(40)] for c in cycles])
        rmse = float(np.sqrt(np.mean((analysed - truth) ** 2)))
        assert rmse < 0.5, (twin, rmse)  # the observations alone are 1.0 off; a working filter ~0.2
    last = uma.assimilation.get("l96", rest.cycles[-1].number)
    assert last.innovation_rms is not None and last.expected_rms is not None
    assert 0.5 < last.innovation_rms / last.expected_rms < 2  # a filter that is not diverging
    state = uma.get_state("l96").reported
    assert state["x[0]"].uncertainty is not None and state["x[0]"].uncertainty.std is not None


def test_a_record_s_own_error_weighs_its_observation(engine: Engine, tmp_path: Path) -> None:
    """A linear observation (no operator code) whose error is each record's own std: a precise reading pulls
    the analysis to it, an imprecise one barely moves it, and a reading without its std is left out."""
    folder = make_app(tmp_path, name="tank", manifest={
        "state": {"h": {"type": "number", "unit": "m", "uncertainty": ["std"]}},
        "streams": {"readings": {"fields": {"time": {"type": "timestamp"},
                                            "level": {"type": "float", "nullable": True, "uncertainty": ["std"]}}}},
        "assimilation": {"state": ["h"], "spread": 1.0, "step": {"entrypoint": "tank.model:step", "dt": "1h"},
                         "observations": {"level": {"observes": "h", "error": "record"}}, "members": 40}},
        files={"tank/model.py": """
            def step(state, parameters, forcing, dt):
                return dict(state)
        """})
    engine.as_role("ada", "developer").publish_app(folder)
    uma = engine.as_role("uma", "user")
    uma.create_twin("tank", "tank", {"station": "T1"})
    uma.write_state("tank", reported={"h": PropertyWrite(value=0.0, timestamp=START)})
    uma.streams.append("tank", "readings", [
        {"time": (START + timedelta(hours=1)).isoformat(), "level": {"value": 5.0, "uncertainty": {"std": 0.01}}},
        {"time": (START + timedelta(hours=2)).isoformat(), "level": {"value": 50.0, "uncertainty": {"std": 100.0}}},
        {"time": (START + timedelta(hours=3)).isoformat(), "level": 99.0}])
    got = uma.assimilation.run("tank", cycles=10)
    assert [c.obs_count for c in got.cycles] == [1, 1, 0]
    first, second, third = (uma.assimilation.get("tank", c.number) for c in got.cycles)
    assert first.analysis["h"]["mean"] == pytest.approx(5.0, abs=0.05)  # type: ignore[index]
    assert first.observations[0]["std"] == 0.01  # type: ignore[index]
    assert second.analysis["h"]["mean"] == pytest.approx(5.0, abs=0.1)  # type: ignore[index]
    assert third.analysis == second.analysis and third.innovations == {}


def _observed_lorenz96(engine: Engine, twin: str, steps: int, *, seed: int) -> Client:
    """uma's Lorenz-96 twin, its first guess the truth + 0.5, fed ``steps`` observations of a truth run."""
    engine.as_role("ada", "developer").publish_app(LORENZ96)
    uma = engine.as_role("uma", "user")
    uma.create_twin("lorenz96", twin, {})
    run = _lorenz96(steps, seed=seed)
    uma.write_state(twin, reported={f"x[{i}]": PropertyWrite(value=float(v), timestamp=START)
                                    for i, v in enumerate(run[0][1] + 0.5)})
    uma.streams.append(twin, "obs", [{"time": t.isoformat(), **{f"y{i}": float(v) for i, v in enumerate(y)}}
                                     for t, _x, y in run])
    return uma


def test_cycles_one_per_request_equal_cycles_run_together(engine: Engine) -> None:
    """A request runs its cycles in one call to the app's worker, which answers in parts as it goes; twelve
    requests of one cycle each give, cycle for cycle, the analyses, innovations and state of one request of
    twelve."""
    uma = _observed_lorenz96(engine, "l96", 12, seed=4)
    together = uma.assimilation.run("l96", what_if="l96-together", cycles=12, method="enkf", seed=3)
    first = uma.assimilation.run("l96", what_if="l96-one", cycles=1, method="enkf", seed=3)
    apart = first.cycles + [c for _ in range(11)
                            for c in uma.assimilation.run("l96-one", cycles=1, method="enkf", seed=3).cycles]
    assert [c.number for c in apart] == [c.number for c in together.cycles] == list(range(1, 13))
    for a, b in zip(apart, together.cycles, strict=True):
        one, many = uma.assimilation.get("l96-one", a.number), uma.assimilation.get("l96-together", b.number)
        assert one.analysis == many.analysis and one.innovations == many.innovations
        assert (one.innovation_rms, one.spread, one.offsets) == (many.innovation_rms, many.spread, many.offsets)
    assert uma.get_state("l96-one").reported == uma.get_state("l96-together").reported
    assert together.cycles[0].analysis is None and together.cycles[-1].revision > together.cycles[0].revision


def test_a_summary_answer_holds_the_count_and_the_last_cycle(engine: Engine) -> None:
    """``answer: summary`` runs the same cycles (same seed, same analyses) and answers with their count and the
    last one's record instead of every record; the SDK's stepped requests (progress) add the counts up."""
    uma = _observed_lorenz96(engine, "l96s", 30, seed=9)
    full = uma.assimilation.run("l96s", what_if="l96s-full", cycles=12, seed=5)
    brief = uma.assimilation.run("l96s", what_if="l96s-brief", cycles=12, seed=5, answer="summary")
    assert brief.cycles == [] and brief.count == full.count == len(full.cycles) == 12
    assert brief.pending == full.pending == 18
    assert brief.last is not None and full.last == full.cycles[-1]
    assert (brief.last.number, brief.last.innovation_rms, brief.last.spread) == (
        full.last.number, full.last.innovation_rms, full.last.spread)
    assert uma.get_state("l96s-brief").reported == uma.get_state("l96s-full").reported
    seen: list[tuple[int, int]] = []
    rest = uma.assimilation.run("l96s-brief", cycles=100, answer="summary",
                                progress=lambda done, total: seen.append((done, total)))
    assert rest.count == 18 and rest.cycles == [] and rest.pending == 0 and rest.last is not None
    assert rest.last.number == 30 and seen[-1] == (18, 18)
    response = engine.http.post("/api/v1/twins/l96s/assimilations", json={"answer": "all"},
                                headers=uma._transport.auth)
    assert response.status_code == 422 and "answer" in response.text


def test_a_worker_whose_parts_are_malformed_is_refused_and_replaced(engine: Engine, tmp_path: Path) -> None:
    """App code shares its worker with the engine's cycle loop, so it can change what the worker sends: a twin
    whose step (from its 11th cycle on) makes each later part of the answer claim one cycle too many is refused
    by name (400; its cycles sent before the lie are kept), and the worker that lied is stopped: another twin
    of the app is served honestly next. The first cycle runs no model step (it starts the ensemble at the first
    observation), so the step's 100th call is the last member's of cycle 11: cycles 1 to 10 are honest."""
    folder = make_app(tmp_path, name="liar", manifest={
        "parameters": {"type": "object", "properties": {"lie": {"type": "boolean", "default": False}}},
        "state": {"h": {"type": "number", "unit": "m", "uncertainty": ["std"]}},
        "streams": {"readings": {"fields": {"time": {"type": "timestamp"}, "level": {"type": "float"}}}},
        "assimilation": {"state": ["h"], "spread": 1.0, "step": {"entrypoint": "liar.model:step", "dt": "1h"},
                         "observations": {"level": {"observes": "h", "error": 0.5}}, "members": 10}},
        files={"liar/model.py": """
            import time

            import numpy as np
            from twinengine.twin_assimilation import worker_side

            CALLS = [0]

            def step(state, parameters, forcing, dt):
                CALLS[0] += 1
                if parameters.get("lie") and CALLS[0] == 100:
                    honest = worker_side._Done.answer
                    def lying(self, error):
                        got = honest(self, error)
                        got["members"] = np.concatenate([got["members"], got["members"][-1:]])
                        return got
                    worker_side._Done.answer = lying
                time.sleep(0.002)
                return dict(state)
        """})
    engine.as_role("ada", "developer").publish_app(folder)
    uma = engine.as_role("uma", "user")
    readings = [{"time": (START + timedelta(hours=k)).isoformat(), "level": 1.0} for k in range(1, 31)]
    for name, lie in (("liar", True), ("honest", False)):
        uma.create_twin("liar", name, {"lie": lie})
        uma.write_state(name, reported={"h": PropertyWrite(value=0.0, timestamp=START)})
        uma.streams.append(name, "readings", readings)
    with pytest.raises(ProcessFailed, match="answered wrongly: log_weights is not a list of") as refused:
        uma.assimilation.run("liar", cycles=30)
    assert refused.value.status == 400
    kept = uma.assimilation.list("liar").total
    assert 1 <= kept <= 10  # sent in parts before the lie began (about every 0.1 s: some 5 cycles each)
    honest = uma.assimilation.run("honest", cycles=30)  # a new worker: the lie died with the old one
    assert len(honest.cycles) == 30 and honest.pending == 0
