"""Skill rules on verified forecasts: a retraining policy queues a run when the NSE drops below its bound,
and a drift trigger starts its workflow (once per breach)."""

from __future__ import annotations

import shutil
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from helpers import RIVER_REACH, Engine
from twinengine.client import Client
from twinengine.daemons import workflows_triggers
from twinengine.errors import ValidationFailed
from twinengine.twins.schemas import PropertyWrite

T0 = datetime(2026, 3, 1, tzinfo=UTC)
RULE = {"property": "level", "metric": "nse", "lead": "1h", "below": 0.8, "pairs": 12, "min_pairs": 6}


@pytest.fixture
def uma(engine: Engine) -> Client:
    engine.as_role("ada", "developer").publish_app(RIVER_REACH)
    client = engine.as_role("uma", "user")
    client.create_twin("river-reach@0.1.0", "reach", {"station": "RR-01"})
    return client


def forecasts_and_observations(uma: Client, *, hours: int, error: float, start: int = 0, model: str | None = None,
                               version: str | None = None) -> None:
    """Hourly forecasts one hour ahead with an error of ``error`` m (issued by ``model`` at ``version`` when
    given), then what was observed."""
    rng = np.random.default_rng(start)
    by = {k: v for k, v in {"model": model, "model_version": version}.items() if v is not None}
    for h in range(start, start + hours):
        truth = 1.0 + 0.5 * np.sin(h / 4.0)
        uma.verification.add_forecast("reach", "level", [truth + error * rng.standard_normal()],
                                      issued_at=T0 + timedelta(hours=h - 1), step="1h", workflow="forecast", **by)
        uma.write_state("reach", reported={"level": PropertyWrite(value=truth, timestamp=T0 + timedelta(hours=h))})


def test_a_drift_trigger_fires_once_when_the_nse_drops(engine: Engine, uma: Client) -> None:
    uma.workflows.add_trigger("reach", "on_skill", "drift", "forecast", skill=RULE)
    with pytest.raises(ValidationFailed, match=r"skill\.property"):
        uma.workflows.add_trigger("reach", "bad", "drift", "forecast", skill={**RULE, "property": "alert"})
    with pytest.raises(ValidationFailed, match="skill"):
        uma.workflows.add_trigger("reach", "bad", "cron", "forecast", schedule="0 * * * *", skill=RULE)
    (trigger,) = [t for t in uma.workflows.triggers("reach") if t.name == "on_skill"]

    def fired() -> list[str]:
        workflows_triggers.run_once(engine.runtime.workflows)  # the scheduler's pass, now (it also runs alone)
        return [r.id for r in uma.workflows.runs(twin="reach").items if r.trigger_id == trigger.id]

    forecasts_and_observations(uma, hours=12, error=0.01)
    assert fired() == []  # skill kept: nothing fired
    forecasts_and_observations(uma, hours=12, error=0.6, start=12)  # the model goes wrong
    first = fired()
    assert len(first) == 1
    forecasts_and_observations(uma, hours=2, error=0.6, start=24)
    assert fired() == first  # still broken: the same breach
    (seen,) = [t for t in uma.workflows.triggers("reach") if t.name == "on_skill"]
    assert seen.config["skill"]["metric"] == "nse"


def test_a_retraining_policy_queues_a_run_when_the_nse_drops(engine: Engine, uma: Client) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("mlflow")
    from twinengine.ml import retrain
    from twinengine.ml.models import RetrainPolicy

    policy = uma.ml.set_policy("reach", "runoff_correction", skill=RULE, enabled=False)  # judged by hand here
    assert policy.skill is not None and policy.skill.below == 0.8
    forecasts_and_observations(uma, hours=12, error=0.6)
    with engine.runtime.db.session() as session:
        row = session.get(RetrainPolicy, (uma.get_twin("reach").id, "runoff_correction"))
        assert row is not None
        twin = row.twin_id
        from twinengine.twins.models import Twin

        check = retrain.check_skill(session, row, session.get(Twin, twin))
        assert check is not None and check["metric"] == "nse" and check["value"] < 0.8 and check["pairs"] == 12
        assert retrain.check_skill(session, row, session.get(Twin, twin)) is None  # nothing changed since
    uma.ml.set_policy("reach", "runoff_correction", skill=RULE)  # now the engine's loop watches it
    deadline = time.monotonic() + 60
    runs: list[object] = []
    while time.monotonic() < deadline and not runs:
        runs = [r for r in uma.ml.runs("reach").items if r.trigger.get("kind") == "skill"]
        time.sleep(0.2)
    assert runs, "no training run was queued for the broken skill rule"
    assert runs[0].trigger["metric"] == "nse"  # type: ignore[attr-defined]


def test_the_gate_waives_the_comparison_with_a_champion_whose_forecasts_fail(engine: Engine, tmp_path: Path) -> None:
    """river-reach with ``champion_skill`` in its gate: a worse second version is rejected while the champion's
    verified forecasts are good, and promoted once they break the rule."""
    pytest.importorskip("torch")
    pytest.importorskip("mlflow")
    from ml_fixtures import gauge_records

    app = tmp_path / "river-reach"
    shutil.copytree(RIVER_REACH, app, ignore=shutil.ignore_patterns("__pycache__"))
    source = app / "river_reach" / "model.py"
    text = source.read_text()
    gate = '"compare": "rmse_level", "mode": "min", "margin": 0.05}'
    assert gate in text
    source.write_text(text.replace(gate, '"compare": "rmse_level", "mode": "min", "margin": 0.05, '
                                         f'"champion_skill": {RULE!r}}}'))
    engine.as_role("ada", "developer").publish_app(app)
    uma = engine.as_role("uma", "user")
    uma.create_twin("river-reach@0.1.0", "reach", {"station": "RR-01"})
    # readings a month before the forecasts: the levels the function reports from them are not near the
    # forecasts' valid times, so the forecasts are matched with the observations written below only
    uma.streams.append("reach", "gauges", gauge_records(96, start=T0 - timedelta(days=30)))
    model = "runoff_correction"
    first = uma.ml.wait("reach", uma.ml.train("reach", model, config={"epochs": 6}).id, timeout=300)
    assert first.status == "succeeded" and first.model_version == "1", first.error

    def worse_version() -> Any:
        run = uma.ml.wait("reach", uma.ml.train("reach", model, config={"epochs": 1, "optimizer": {"lr": 1e-6}}).id,
                          timeout=300)
        assert run.status == "succeeded", run.error
        return next(v for v in uma.ml.models("reach")[0].versions if v.version == run.model_version).decision

    forecasts_and_observations(uma, hours=12, error=0.01, model=model, version="1")
    kept = worse_version()
    assert kept is not None and not kept.accepted and "worse than the champion" in kept.reason
    forecasts_and_observations(uma, hours=12, error=0.6, start=12, model=model, version="1")
    waived = worse_version()
    assert waived is not None and waived.accepted, waived.reason
    assert "the champion's verified nse" in waived.reason and "waived" in waived.reason
    assert uma.ml.models("reach")[0].champion == "3"
