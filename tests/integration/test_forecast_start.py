"""Forecast runs start from what the twin knows: river-reach maps the graph's ``storage_mm`` to the twin's
``storage`` (``workflows.forecast.initial_state``), so a run, an ensemble and a hindcast take the storage the
twin reports, record which revision they started from (on the run, in its provenance), and a request can give
its own value or ask for the graph's defaults. Hindcasts (a start as of a past revision or time) record their
forecast but write no state; an ensemble's members start from an analysis' members."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from helpers import RIVER_REACH, Engine
from twinengine.client import Client
from twinengine.quality.uncertainty import Uncertainty
from twinengine.twins.schemas import PropertyWrite
from workflow_data import rain_cube, write_collection

T0 = datetime(2026, 3, 1, tzinfo=UTC)
DEFAULT_MM = 2.0  # the graph's default of storage_mm


@pytest.fixture
def reach(engine: Engine) -> tuple[Client, str]:
    engine.as_role("ada", "developer").publish_app(RIVER_REACH)
    ds = rain_cube(days=2)
    ds["rain"].values[:] = 0.0  # a dry forecast: the level only drains from where the storage starts
    write_collection(engine.runtime.data_dir / "collections", "rain-forecast", ds)
    uma = engine.as_role("uma", "user")
    uma.create_twin("river-reach", "reach", {"station": "RR-01"})
    return uma, "reach"


def post(engine: Engine, client: Client, path: str, body: Any) -> Any:
    return engine.http.post(path, json=body, headers=client._auth)


def storage(uma: Client, value: float, at: datetime, uncertainty: Uncertainty | None = None) -> int:
    return uma.write_state("reach", reported={"storage": PropertyWrite(value=value, timestamp=at,
                                                                         uncertainty=uncertainty)}).revision


def test_a_run_starts_from_the_twins_storage_and_says_which_revision(engine: Engine,
                                                                     reach: tuple[Client, str]) -> None:
    uma, name = reach
    revision = storage(uma, 40.0, T0)
    uma.write_state(name, reported={"level": PropertyWrite(value=1.0, timestamp=T0)})  # a later revision
    head = uma.get_twin(name).head_revision
    run = uma.workflows.run(name, "forecast", sync=True)
    assert run.status == "finished", run.error
    assert run.parameters["storage_mm"] == 40.0  # not the graph's default of 2 mm
    start = run.start
    assert start is not None and start.asked == "now" and start.revision == head
    entry = start.parameters["storage_mm"]
    assert (entry.property, entry.source, entry.value, entry.revision) == ("storage", "state", 40.0, revision)
    assert start.time == T0
    assert start.text == f"started from revision {head} (storage 40 mm at 2026-03-01 00:00 UTC)"
    # the same forecast from the graph's defaults starts far lower: the twin's storage is what lifts the level
    defaults = uma.workflows.run(name, "forecast", sync=True, start={"state": False})
    assert defaults.parameters["storage_mm"] == DEFAULT_MM and defaults.start is not None
    assert defaults.start.asked == "defaults" and defaults.start.revision is None
    assert defaults.start.parameters["storage_mm"].source == "default"
    assert run.value[0] > defaults.value[0] + 0.5
    # the run's provenance: it used the state revision it started from, as its initial state
    prov = uma.workflows.provenance(run.id)
    entity = prov["entity"][f"twin:twin/{uma.get_twin(name).id}/revision/{head}"]
    assert entity["twin:role"] == "initial state" and entity["prov:type"] == "twin:StateRevision"
    used = {u["prov:entity"] for u in prov["used"].values()}
    assert f"twin:twin/{uma.get_twin(name).id}/revision/{head}" in used
    # a what-if runs on a fork of the twin, and starts from the fork's copy of the state
    what_if = uma.workflows.run(name, "forecast", sync=True, what_if=True)
    assert what_if.parameters["storage_mm"] == 40.0 and what_if.start is not None
    assert what_if.start.parameters["storage_mm"].source == "state"


def test_a_given_value_wins_and_is_recorded_as_given(engine: Engine, reach: tuple[Client, str]) -> None:
    uma, name = reach
    storage(uma, 40.0, T0)
    run = uma.workflows.run(name, "forecast", {"storage_mm": 5.0}, sync=True)
    assert run.parameters["storage_mm"] == 5.0
    assert run.start is not None and run.start.parameters["storage_mm"].source == "request"


def test_a_twin_without_a_storage_starts_from_the_default_and_says_so(engine: Engine,
                                                                        reach: tuple[Client, str]) -> None:
    uma, name = reach
    run = uma.workflows.run(name, "forecast", sync=True)
    assert run.parameters["storage_mm"] == DEFAULT_MM
    assert run.start is not None and run.start.revision is None
    assert run.start.parameters["storage_mm"].source == "default"


def estimate(uma: Client, value: float, at: datetime) -> int:
    return uma.write_state("reach", reported={"storage_from_level": PropertyWrite(value=value, timestamp=at)}).revision


def test_of_an_analysis_and_the_gauges_estimate_the_newer_starts_and_the_analysis_at_the_same_time(
        engine: Engine, reach: tuple[Client, str]) -> None:
    """river-reach maps ``storage_mm: [storage, storage_from_level]``: a twin no assimilation corrects starts from
    what its gauge says; an analysis of the same time wins over the estimate it corrected."""
    uma, name = reach
    estimate(uma, 25.0, T0)
    run = uma.workflows.run(name, "forecast", sync=True)
    assert run.status == "finished", run.error
    assert run.parameters["storage_mm"] == 25.0 and run.start is not None
    entry = run.start.parameters["storage_mm"]
    assert (entry.property, entry.source, entry.value) == ("storage_from_level", "state", 25.0)
    assert entry.title == "storage from the gauge's level"  # the manifest's title: the sentence says it
    assert "storage from the gauge's level 25 mm" in run.start.text
    storage(uma, 18.0, T0)  # the analysis of the same reading
    same_time = uma.workflows.run(name, "forecast", sync=True)
    assert same_time.parameters["storage_mm"] == 18.0
    assert same_time.start is not None and same_time.start.parameters["storage_mm"].property == "storage"
    estimate(uma, 30.0, T0 + timedelta(minutes=15))  # the gauge read again; no analysis of it yet
    newer = uma.workflows.run(name, "forecast", sync=True)
    assert newer.parameters["storage_mm"] == 30.0
    assert newer.start is not None and newer.start.parameters["storage_mm"].property == "storage_from_level"
    # an ensemble's members start from the newer estimate too (it carries no spread to draw them from)
    ens = uma.ensembles.run(name, "forecast", members=3, seed=2, sync=True)
    assert ens.status == "finished", ens.error
    assert ens.start is not None and ens.start.parameters["storage_mm"].value == 30.0


def test_a_twin_fed_by_its_gauges_forecasts_from_the_level_it_reads(engine: Engine,
                                                                    reach: tuple[Client, str]) -> None:
    """The gauges' function writes the storage the level implies: the forecast's first step is the level the
    gauge last read (the rain forecast is dry, so the level only drains from there), not the default's; and the
    assimilation's first guess is that storage too."""
    from twinengine.daemons.streams_functions import FunctionWorker
    uma, name = reach
    worker = FunctionWorker(engine.runtime)
    try:
        uma.streams.append(name, "gauges", [
            {"time": (T0 + timedelta(minutes=15 * i)).isoformat(), "station": "RR-01", "rain": 0.0, "level": level}
            for i, level in enumerate((1.30, 1.25, 1.21))])
        with engine.runtime.db.session(readonly=True) as session:
            worker.refresh(session)
        worker.run_once()
        worker.drain()
    finally:
        worker.pool.shutdown(wait=False)
    reported = uma.get_state(name).reported
    assert reported["level"].value == 1.21 and "storage" not in reported
    # discharge 18 (1.21 - 0.2)^1.6 = 18.29 m3/s, less 1.5 base flow, over 120 km2 / 3.6 for 6 h: 3.02 mm
    assert reported["storage_from_level"].value == pytest.approx(3.02, abs=0.01)
    run = uma.workflows.run(name, "forecast", sync=True)
    assert run.status == "finished", run.error
    assert run.start is not None and run.start.parameters["storage_mm"].property == "storage_from_level"
    # a dry hour drains 3.02 mm to 3.02 exp(-1/6) = 2.56 mm: 15.7 m3/s, a level of 1.12 m (from 1.21)
    assert run.value[0] == pytest.approx(1.118, abs=0.01)
    defaults = uma.workflows.run(name, "forecast", sync=True, start={"state": False})
    assert defaults.value[0] == pytest.approx(0.93, abs=0.01)  # from 2 mm: what every such twin forecast before
    # the assimilation starts from the same estimate (``first_guess``): no storage had to be written first
    uma.streams.append(name, "gauges", [
        {"time": (T0 + timedelta(minutes=15 * i)).isoformat(), "station": "RR-01", "rain": 0.0, "level": level}
        for i, level in ((3, 1.19), (4, 1.17))])
    got = uma.assimilation.run(name, cycles=10)
    assert got.cycles, got
    analysis = uma.get_state(name).reported["storage"]
    # the level read at 01:00, 1.17 m, implies 2.82 mm; one cycle from 3.02 mm spread by 5 mm lands near it
    assert analysis.value == pytest.approx(2.82, abs=0.5), (analysis, got)
    assert analysis.timestamp == T0 + timedelta(hours=1) and analysis.uncertainty is not None


def test_an_assimilation_starts_from_a_storage_written_on_purpose_before_the_gauges_estimates(
        engine: Engine, reach: tuple[Client, str]) -> None:
    """``first_guess`` is a fallback, not the newest: a storage written before the readings (a first guess) is
    where the ensemble starts, though the gauges' function wrote a newer estimate; so every reading after it is
    met, and the same request starts from the same ensemble however far the function has got."""
    uma, name = reach
    storage(uma, 25.0, T0)
    readings = [(T0 + timedelta(minutes=15 * i), level) for i, level in ((1, 1.30), (2, 1.25), (3, 1.21))]
    uma.streams.append(name, "gauges", [{"time": t.isoformat(), "station": "RR-01", "rain": 0.0, "level": level}
                                        for t, level in readings])
    # the function's estimate of the last reading, newer than the storage (as the function would write it)
    uma.write_state(name, reported={"storage_from_level": PropertyWrite(value=3.02, timestamp=readings[-1][0])})
    got = uma.assimilation.run(name, cycles=10, what_if="from-storage", seed=3)
    assert [c.valid_time for c in got.cycles] == [t for t, _ in readings]  # all three met, from T0
    first = uma.assimilation.get("from-storage", 1)
    # 25 mm drained 15 minutes: the background level of a 25 mm catchment, far above the 1.30 m read
    assert (first.innovations or {})["level"].background > 1.8


def test_a_hindcast_starts_from_the_past_and_writes_no_state(engine: Engine, reach: tuple[Client, str]) -> None:
    uma, name = reach
    early = storage(uma, 10.0, T0)
    storage(uma, 30.0, T0 + timedelta(hours=6))
    head = uma.get_twin(name).head_revision
    before = uma.get_state(name).reported
    by_revision = uma.workflows.run(name, "forecast", sync=True, start={"revision": early})
    by_time = uma.workflows.run(name, "forecast", sync=True, start={"at": (T0 + timedelta(hours=3)).isoformat()})
    for run in (by_revision, by_time):
        assert run.status == "finished", run.error
        assert run.parameters["storage_mm"] == 10.0  # the storage as it was
        assert run.start is not None and run.start.parameters["storage_mm"].revision == early
    assert by_revision.start is not None and by_revision.start.asked == "revision"
    assert by_time.start is not None and by_time.start.asked == "at" and by_time.start.revision == early
    # its forecasts are recorded (for verification), but the twin's state is the twin's own
    assert uma.get_twin(name).head_revision == head
    assert "forecast_peak_level" not in uma.get_state(name).reported and before.keys() == uma.get_state(
        name).reported.keys()
    assert {by_revision.id, by_time.id} <= {f.run_id for f in uma.verification.forecasts(name, "level")}
    # an ensemble from the past is a hindcast too: statistics, a forecast, no state
    ens = uma.ensembles.run(name, "forecast", members=4, seed=1, sync=True, start={"revision": early})
    assert ens.status == "finished", ens.error
    assert ens.start is not None and ens.start.revision == early
    assert uma.get_twin(name).head_revision == head and "state_revision" not in (ens.statistics or {})


@pytest.mark.parametrize(("start", "field"), [
    ({"revision": 999}, "start.revision"),
    ({"revision": 1, "at": "2026-03-01T00:00:00Z"}, "start"),
    ({"state": False, "revision": 1}, "start"),
])
def test_a_bad_start_is_refused_naming_the_field(engine: Engine, reach: tuple[Client, str], start: dict[str, Any],
                                                 field: str) -> None:
    uma, name = reach
    runs_before = uma.workflows.runs(twin=name).total
    got = post(engine, uma, f"/api/v1/twins/{name}/runs", {"workflow": "forecast", "start": start})
    assert got.status_code == 422, got.text
    locs = [d.get("loc") for d in got.json().get("details") or []]
    assert any(str(loc).replace("body.", "").startswith(field) for loc in locs) or field in got.text, got.text
    ens = post(engine, uma, f"/api/v1/twins/{name}/ensembles", {"workflow": "forecast", "members": 2, "start": start})
    assert ens.status_code == 422, ens.text
    assert uma.workflows.runs(twin=name).total == runs_before  # nothing stored


def test_an_ensembles_members_start_from_the_analysis(engine: Engine, reach: tuple[Client, str]) -> None:
    """A storage that carries an analysis' members (as ``twin assimilate`` writes it): each member of the
    forecast ensemble starts from one of them, so the forecast's first hour carries the analysis' spread."""
    uma, name = reach
    analysis = [20.0, 24.0, 28.0, 32.0, 36.0]
    storage(uma, float(np.mean(analysis)), T0, Uncertainty(std=float(np.std(analysis, ddof=1)), members=analysis))
    ens = uma.ensembles.run(name, "forecast", members=8, seed=4, sync=True)
    assert ens.status == "finished", ens.error
    drawn = [m.parameters["storage_mm"] for m in ens.members]
    assert set(drawn) <= set(analysis) and len(set(drawn)) > 1
    assert ens.start is not None and ens.start.parameters["storage_mm"].uncertainty is not None
    runs = [uma.workflows.get(m.run_id) for m in ens.members]
    first = [r.value[0] for r in runs]
    assert max(first) - min(first) > 0.05  # the members start apart: the analysis' spread reaches the forecast
    assert all(r.start is not None and r.start.revision == ens.start.revision for r in runs)
    # a request that perturbs the storage itself, or gives it, is not overridden by the analysis
    given = uma.ensembles.run(name, "forecast", members=3, seed=4, sync=True, parameters={"storage_mm": 25.0})
    assert {m.parameters.get("storage_mm", 25.0) for m in given.members} == {25.0}
    # with only a std, the members draw normal(value, std), kept at or above the property's minimum of 0
    storage(uma, 1.0, T0 + timedelta(hours=1), Uncertainty(std=3.0))
    wide = uma.ensembles.run(name, "forecast", members=16, seed=5, sync=True)
    values = [m.parameters["storage_mm"] for m in wide.members]
    assert min(values) == 0.0 and len(set(values)) > 4  # some drawn below 0 and kept at it, the rest apart
