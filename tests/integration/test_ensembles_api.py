"""Ensembles and scenarios through the REST API: river-reach's forecast as an ensemble of 8 members (member
dimension in the kept netCDF, statistics in state, lineage to every member run), bad inputs refused naming
the field with nothing written, a scenario of two branches, and the comparison of the forks."""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xarray as xr

from helpers import RIVER_REACH, Engine
from twinengine.client import Client
from workflow_data import rain_cube, write_collection


@pytest.fixture
def reach(engine: Engine) -> tuple[Client, str]:
    engine.as_role("ada", "developer").publish_app(RIVER_REACH)
    ds = rain_cube(days=2)
    ds["rain"].values[:] = 0.0
    ds["rain"].values[6:12] = 12.0
    write_collection(engine.runtime.data_dir / "collections", "rain-forecast", ds)
    uma = engine.as_role("uma", "user")
    uma.create_twin("river-reach", "reach", {"station": "RR-01"})
    return uma, "reach"


def post(engine: Engine, client: Client, path: str, body: Any) -> Any:
    return engine.http.post(path, json=body, headers={"Authorization": client._auth["Authorization"]})


def test_an_ensemble_of_the_forecast_derives_statistics_with_lineage(engine: Engine, reach: tuple[Client, str]) -> None:
    uma, name = reach
    head = uma.get_twin(name).head_revision
    got = uma.ensembles.run(name, "forecast", members=8, seed=3, parameters={"alert_level": 1.0}, sync=True)
    assert got.status == "finished", got.error
    assert len(got.members) == 8 and {m.status for m in got.members} == {"finished"}
    assert got.seed == 3 and got.threshold == 1.0 and got.mode == "perturb"
    factors = [m.parameters["rain_factor"] for m in got.members]
    assert len(set(factors)) == 8 and all(0 <= m.parameters["runoff_coefficient"] <= 1 for m in got.members)
    runs = [uma.workflows.get(m.run_id) for m in got.members]
    assert all(r.kind == "member" and r.status == "finished" for r in runs)
    assert {n.node_id: n.status for n in runs[0].nodes}["load"] == "cached"  # shared, loaded once
    assert {n.node_id: n.status for n in runs[0].nodes}["state"] == "skipped"  # members write no state
    # the kept dataset: a member dimension, and statistics that match the members' own results
    data = uma.workflows.result(got.id, "ensemble.nc").content
    ds = xr.open_dataset(io.BytesIO(data), engine="h5netcdf")
    assert ds["members"].dims[0] == "member" and ds.sizes["member"] == 8
    series = np.array([r.value for r in runs])
    np.testing.assert_allclose(ds["members"].values, series)
    np.testing.assert_allclose(ds["mean"].values, series.mean(axis=0), atol=1e-9)
    assert list(ds["run"].values) == [m.run_id for m in got.members]
    stats = got.statistics or {}
    peak = series.max(axis=1)
    assert stats["peak"]["exceedance"] == pytest.approx(float((peak > 1.0).mean()))
    assert stats["member_runs"] == [m.run_id for m in got.members]
    # state: one revision with the probability and the summary, lineage to every member
    twin = uma.get_twin(name)
    assert twin.head_revision == head + 1
    state = uma.get_state(name).reported
    assert state["forecast_exceedance_probability"].value == pytest.approx(stats["peak"]["exceedance"])
    assert state["forecast_ensemble"].value["member_runs"] == stats["member_runs"]
    # the declared property: the peak mean with its spread, quantiles and members (twinapp.yaml declares them)
    level = state["forecast_peak_level"]
    assert level.value == pytest.approx(peak.mean(), abs=1e-6) and level.uncertainty is not None
    assert level.uncertainty.std == pytest.approx(float(peak.std(ddof=1)), abs=1e-6)
    assert level.uncertainty.members == pytest.approx(list(peak), abs=1e-6)
    assert level.uncertainty.quantiles is not None
    assert list(level.uncertainty.quantiles) == ["0.05", "0.25", "0.5", "0.75", "0.95"]
    assert level.uncertainty.quantiles["0.5"] == pytest.approx(float(np.quantile(peak, 0.5)), abs=1e-6)
    prov = uma.workflows.provenance(got.id)
    informed = {v["prov:informant"] for v in prov["wasInformedBy"].values()}
    assert informed == {f"twin:run/{m.run_id}" for m in got.members}
    assert uma.workflows.get(got.id).progress == 100
    member = engine.http.get(f"/api/v1/ensembles/{got.members[0].run_id}", headers=uma._auth)
    assert member.status_code == 404
    # one forecast with every member (members record none of their own), as the ensemble's run
    (forecast,) = uma.verification.forecasts(name, "level", values=True)
    assert forecast.run_id == got.id and forecast.workflow == "forecast" and stats["forecasts"] == [forecast.id]
    assert forecast.interval_level == pytest.approx(0.9)  # the outer quantiles 0.05 and 0.95
    values = forecast.values or []
    assert len(values) == series.shape[1]
    np.testing.assert_allclose([v.members for v in values], series.T, atol=1e-9)
    np.testing.assert_allclose([v.value for v in values], series.mean(axis=0), atol=1e-9)
    np.testing.assert_allclose([v.quantiles["0.25"] for v in values if v.quantiles],
                               np.quantile(series, 0.25, axis=0), atol=1e-9)
    np.testing.assert_allclose([v.lower for v in values], np.quantile(series, 0.05, axis=0), atol=1e-9)
    np.testing.assert_allclose([v.probabilities["1.0"] for v in values if v.probabilities],
                               (series > 1.0).mean(axis=0), atol=1e-9)


def test_the_shared_part_has_a_usage_record_of_its_own(engine: Engine, reach: tuple[Client, str]) -> None:
    """What loading and reducing the forcing used once for every member is accounted to the ensemble's own
    run; each member's record holds only its own part (the ensemble's meter stops before members start)."""
    uma, name = reach
    got = uma.ensembles.run(name, "forecast", members=4, seed=3, parameters={"alert_level": 1.0}, sync=True)
    assert got.status == "finished", got.error
    records = {r.run_id: r for r in uma.compute.usage_records().items}
    own = records[got.id]
    assert own.kind == "ensemble" and own.status == "finished" and own.site == "local"
    assert own.core_seconds > 0 and own.identity == "uma"
    members = [records[m.run_id] for m in got.members]
    assert [r.kind for r in members] == ["member"] * 4
    assert own.finished_at <= min(r.started_at for r in members)


def test_a_synchronous_ensemble_is_never_taken_by_a_background_worker_too(
        engine: Engine, reach: tuple[Client, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """A synchronous ensemble is stored as its request's (``sync.hold``): the engine's own background worker,
    looking for queued runs between the store and the request's claim, finds nothing to take. Stored as queued,
    the worker could take it first and the request's claim (its worker id is the engine's too) take it again:
    the ensemble ran twice at once, and its members' results collided in their scratch files."""
    from twinengine.api.routes import ensembles as route
    from twinengine.workflows.runner import claim

    taken: list[bool] = []

    def worker_first(workflows: Any, session: Any, run_id: str, **kwargs: Any) -> Any:
        taken.append(claim(workflows, run_id))  # what the background worker's loop does with a queued run
        return run_now(workflows, session, run_id, **kwargs)

    run_now = route.run_now
    monkeypatch.setattr(route, "run_now", worker_first)
    uma, name = reach
    got = uma.ensembles.run(name, "forecast", members=2, seed=3, parameters={"alert_level": 1.0}, sync=True)
    assert got.status == "finished", got.error
    assert taken == [False]
    logs = uma.workflows.logs(got.id)
    assert sum("ensemble of 2 members" in entry.message for entry in logs) == 1


def test_members_from_parameter_sets_and_forks(engine: Engine, reach: tuple[Client, str]) -> None:
    uma, name = reach
    sets = uma.ensembles.run(name, "forecast", parameter_sets=[{"storage_mm": 0.0}, {"storage_mm": 40.0}],
                             sync=True)
    assert sets.status == "finished" and [m.parameters for m in sets.members] == [{"storage_mm": 0.0},
                                                                                  {"storage_mm": 40.0}]
    mean = (sets.statistics or {})["series"]["mean"]
    assert len(mean) == 48
    uma.fork_twin(name, "reach-wet", parameters={"runoff_coefficient": 0.8})
    forks = uma.ensembles.run(name, "forecast", forks=[name, "reach-wet"], sync=True)
    assert forks.status == "finished" and forks.mode == "forks"
    values = [uma.workflows.get(m.run_id).value for m in forks.members]
    assert max(values[1]) > max(values[0])  # the wetter fork's member peaks higher


def test_an_ensemble_whose_members_disagree_in_shape_writes_nothing(engine: Engine, reach: tuple[Client, str]) -> None:
    uma, name = reach
    head = uma.get_twin(name).head_revision
    got = uma.ensembles.run(name, "forecast", parameter_sets=[{"horizon_hours": 24}, {"horizon_hours": 12}],
                            sync=True)
    assert got.status == "error" and got.error is not None and "cannot be stacked" in got.error["message"]
    assert got.assets == [] and got.statistics is None
    assert {m.status for m in got.members} == {"finished"}  # the members ran; their ensemble says nothing
    assert uma.get_twin(name).head_revision == head


@pytest.mark.parametrize(("body", "status", "field"), [
    ({"workflow": "forecast", "members": 0}, 422, "members"),
    ({"workflow": "forecast", "members": 100_000}, 422, "members"),
    ({"workflow": "forecast", "members": 4, "perturb": {"rain_factor": {"distribution": "gamma", "k": 2}}},
     422, "perturb"),
    ({"workflow": "forecast", "members": 4, "perturb": {"nope": {"distribution": "normal", "sd": 1}}},
     422, "perturb.nope"),
    ({"workflow": "forecast", "members": 24,  # some draw overflows (each does with p = 1/2)
      "perturb": {"rain_factor": {"distribution": "lognormal", "sigma": 1e6}}},
     422, "perturb.rain_factor"),
    ({"workflow": "forecast", "parameter_sets": [{"storage_mm": 1}, {"levle": 2}]}, 422, "parameter_sets[1].levle"),
    ({"workflow": "forecast", "parameter_sets": [{"runoff_coefficient": 2}]}, 422, "parameter_sets[0].runoff"),
    ({"workflow": "forecast", "members": 3, "forks": ["reach"]}, 422, "members"),
    ({"workflow": "nope", "members": 3}, 404, None),
])
def test_bad_ensembles_are_refused_naming_the_field(engine: Engine, reach: tuple[Client, str], body: dict[str, Any],
                                                    status: int, field: str | None) -> None:
    uma, name = reach
    before = uma.workflows.runs().total
    response = post(engine, uma, f"/api/v1/twins/{name}/ensembles", body)
    assert response.status_code == status, response.text
    if field is not None:
        assert field in response.text
    assert uma.workflows.runs().total == before  # nothing half-written


def test_a_scenario_forks_runs_and_compares(engine: Engine, reach: tuple[Client, str], tmp_path: Path) -> None:
    uma, name = reach
    text = (RIVER_REACH / "scenarios" / "wetter-soils.yaml").read_text().replace("twin: reach-1", f"twin: {name}")
    text = text.replace("members: 8", "members: 3")
    started = uma.ensembles.scenario(text)
    assert [b.name for b in started.branches] == ["baseline", "wetter-soils"]
    for branch in started.branches:
        done = uma.workflows.wait(branch.run_id, timeout=120)
        assert done.status == "finished", done.error
    forks = [b.fork for b in started.branches]
    assert uma.get_twin(forks[1]).parameters["runoff_coefficient"] == 0.7
    table = uma.ensembles.compare(forks, properties=started.compare)
    assert table.properties == ["forecast_peak_level", "forecast_exceedance_probability"]
    base, wet = table.twins
    assert wet.changed == {"runoff_coefficient": 0.7} and wet.origin == name
    assert wet.series is not None and base.series is not None and len(wet.series.values) == 36
    assert max(v or 0 for v in wet.series.values) > max(v or 0 for v in base.series.values)
    wet = rain_cube(days=2)
    wet["rain"].values[:] = 0.0
    wet["rain"].values[2:8] = 30.0
    write_collection(engine.runtime.data_dir / "collections", "rain-forecast-wet", wet)
    forced = uma.ensembles.scenario({"twin": name, "workflow": "forecast", "horizon": 12, "branches": [
        {"name": "storm", "forcing": {"collection": "rain-forecast-wet"}, "fork_revision": 0}]})
    run = uma.workflows.wait(forced.branches[0].run_id, timeout=120)
    assert run.status == "finished" and run.parameters["collection"] == "rain-forecast-wet"
    assert run.parameters["horizon_hours"] == 12 and len(run.value) == 12
    assert max(run.value) > max(v or 0 for v in base.series.values)  # the heavier storm
    assert uma.get_twin(forced.branches[0].fork).origin.revision == 0
    missing = post(engine, uma, "/api/v1/scenarios", {"twin": name, "workflow": "forecast", "branches": [
        {"name": "dry", "forcing": {"collection": "no-such-forecast"}}]})
    assert missing.status_code == 422 and "branches[0].forcing.collection" in missing.text
    bad = post(engine, uma, "/api/v1/scenarios", {"twin": name, "workflow": "forecast",
                                                   "branches": [{"name": "ok"}, {"name": "x", "ensemble": {}}]})
    assert bad.status_code == 422 and "branches[1].ensemble.members" in bad.text
    twins_before = uma.list_twins().total
    wrong = post(engine, uma, "/api/v1/scenarios", {"twin": name, "workflow": "forecast", "branches": [
        {"name": "a"}, {"name": "b", "run_parameters": {"nope": 1}}]})
    assert wrong.status_code == 422 and "branches[1].run_parameters.nope" in wrong.text
    assert uma.list_twins().total == twins_before  # the first branch's fork was not kept either


NAP = '''
import time
from twinengine.app import app_process


@app_process(summary="Sleeps, then answers how long", cacheable=False)
def nap(seconds: float) -> list:
    time.sleep(seconds)
    return [seconds, seconds]
'''

NAP_GRAPH = """{"parameters": [{"name": "seconds", "schema": {"type": "number"}, "default": 3}],
 "process_graph": {"n": {"process_id": "nap", "namespace": "nap-app",
                         "arguments": {"seconds": {"from_parameter": "seconds"}}, "result": true}}}"""


def test_canceling_an_ensemble_cancels_its_members(engine: Engine, tmp_path: Path) -> None:
    from helpers import make_app

    dev = engine.as_role("ada", "developer")
    dev.publish_app(make_app(tmp_path, name="nap-app", files={"nap_app/procs.py": NAP, "workflows/nap.json": NAP_GRAPH},
                             manifest={"workflows": {"nap": {"process_graph": "workflows/nap.json", "ensemble": {
                                 "perturb": {"seconds": {"distribution": "uniform", "low": 3, "high": 4}}}}}}))
    uma = engine.as_role("uma", "user")
    uma.create_twin("nap-app", "napper", {"station": "N1"})
    started = uma.ensembles.run("napper", "nap", members=6)
    while (status := uma.workflows.get(started.id).status) == "queued":
        time.sleep(0.05)
    assert status == "running"  # six members of 3-4 s, four at a time: it runs for several seconds
    uma.workflows.cancel(started.id)
    final = uma.ensembles.wait(started.id, timeout=120)
    assert final.status == "canceled" and final.statistics is None and final.assets == []
    assert "canceled" in {m.status for m in final.members}
    assert all(m.status in ("canceled", "finished") for m in final.members)
