"""Triggers on SQLite and PostgreSQL: webhooks with a secret, cron with its misfire policy, dataset arrival
from the app's manifest; one event starts exactly one run, and the event's data binds to parameters."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from helpers import RIVER_REACH, Engine
from twinengine.client import Client
from twinengine.daemons import workflows_triggers
from twinengine.errors import TriggerNameTaken
from twinengine.store.base import utcnow
from twinengine.workflows.models import Trigger, WorkflowRun
from workflow_data import rain_cube, write_collection


@pytest.fixture
def reach(engine: Engine) -> Client:
    engine.runtime.workflows.stop()  # drive the scheduler by hand: run_once is the unit under test
    engine.as_role("ada", "developer").publish_app(RIVER_REACH)
    # History: a collection that exists before the twin (and so its manifest triggers) is not an arrival.
    write_collection(engine.runtime.data_dir / "collections", "rain-forecast", rain_cube(days=1))
    uma = engine.as_role("uma", "user")
    uma.create_twin("river-reach@0.1.0", "reach", {"station": "RR-01"})
    return uma


def runs(engine: Engine) -> list[WorkflowRun]:
    with engine.runtime.db.session() as session:
        return list(session.scalars(select(WorkflowRun).order_by(WorkflowRun.created_at)))


def test_webhook_secret_exactly_once_and_binding(engine: Engine, reach: Client) -> None:
    created = reach.workflows.add_trigger("reach", "storm_warning", "webhook", "forecast",
                                          bind={"alert_level": "threshold"})
    assert created.secret and created.webhook_url == f"/api/v1/hooks/{created.id}"
    url = created.webhook_url
    assert engine.http.post(url, json={"threshold": 1.2}).status_code == 401
    assert engine.http.post(url, json={"threshold": 1.2},
                            headers={"X-Twin-Trigger-Secret": "wrong"}).status_code == 401
    headers = {"X-Twin-Trigger-Secret": created.secret, "X-Twin-Delivery": "delivery-1"}
    first = engine.http.post(url, json={"threshold": 1.2}, headers=headers)
    assert first.status_code == 202 and first.json()["duplicate"] is False
    again = engine.http.post(url, json={"threshold": 1.2}, headers=headers)
    assert again.json() == {"run_id": None, "duplicate": True}
    started = runs(engine)
    assert len(started) == 1 and started[0].parameters["alert_level"] == 1.2
    assert started[0].trigger_id == created.id and started[0].status == "queued"
    missing = engine.http.post(url, json={"other": 1}, headers={**headers, "X-Twin-Delivery": "delivery-2"})
    assert missing.status_code == 422 and "event.threshold" in missing.text


def test_a_trigger_name_is_one_per_twin(engine: Engine, reach: Client) -> None:
    """A second trigger of the same name is a conflict (409, naming the field), like other names taken;
    nothing of it is stored."""
    reach.workflows.add_trigger("reach", "hourly", "cron", "forecast", schedule="0 * * * *")
    again = engine.http.post("/api/v1/twins/reach/triggers", json={"name": "hourly", "kind": "cron",
                                                                   "workflow": "forecast", "schedule": "5 * * * *"},
                             headers={"Authorization": reach._auth["Authorization"]})
    assert again.status_code == 409, again.text
    assert again.json()["code"] == "TriggerNameTaken" and again.json()["details"][0]["loc"] == "name"
    with pytest.raises(TriggerNameTaken, match="hourly"):
        reach.workflows.add_trigger("reach", "hourly", "cron", "forecast", schedule="5 * * * *")
    (kept,) = [t for t in reach.workflows.triggers("reach") if t.name == "hourly"]
    assert kept.config["schedule"] == "0 * * * *"


@pytest.mark.parametrize(("misfire", "expected"), [("run_once", 1), ("skip", 0)])
def test_cron_missed_ticks_follow_the_misfire_policy(engine: Engine, reach: Client, misfire: str,
                                                     expected: int) -> None:
    created = reach.workflows.add_trigger("reach", "hourly", "cron", "forecast", schedule="0 * * * *",
                                          misfire=misfire)
    assert workflows_triggers.run_once(engine.runtime.workflows) == 0  # the first tick is in the future
    with engine.runtime.db.session() as session:  # the engine was down for three hours
        session.get(Trigger, created.id).next_fire_at = utcnow() - timedelta(hours=3, minutes=5)  # type: ignore[union-attr]
    assert workflows_triggers.run_once(engine.runtime.workflows) == expected
    assert workflows_triggers.run_once(engine.runtime.workflows) == 0
    assert len(runs(engine)) == expected
    with engine.runtime.db.session() as session:
        row = session.get(Trigger, created.id)
        assert row is not None and row.next_fire_at is not None and row.next_fire_at > utcnow()
    bad = engine.http.post("/api/v1/twins/reach/triggers", json={"name": "x", "kind": "cron", "workflow": "forecast",
                                                                 "schedule": "every hour"},
                           headers={"Authorization": reach._auth["Authorization"]})
    assert bad.status_code == 422 and bad.json()["details"][0]["loc"] == "schedule"


def test_dataset_arrival_from_the_manifest_trigger(engine: Engine, reach: Client) -> None:
    wf = engine.runtime.workflows
    assert workflows_triggers.run_once(wf) == 0  # existing collections are history, not arrivals
    names = [t.name for t in reach.workflows.triggers("reach")]
    assert names == ["on_new_forecast"]
    folder = engine.runtime.data_dir / "collections"
    write_collection(folder, "rain-forecast-0601", rain_cube(days=1))
    write_collection(folder, "temperature-0601", rain_cube(days=1))  # does not match the pattern
    assert workflows_triggers.run_once(wf) == 1
    assert workflows_triggers.run_once(wf) == 0
    (run,) = runs(engine)
    assert run.parameters["collection"] == "rain-forecast-0601" and run.workflow == "forecast"
    with engine.runtime.db.session() as session:
        assert session.scalar(select(func.count()).select_from(Trigger)) == 1
