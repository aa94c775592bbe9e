"""``twin train``, ``twin models`` and ``twin tune`` against a live engine over HTTP."""

from __future__ import annotations

import pytest

from helpers import RIVER_REACH, LiveEngine
from ml_fixtures import gauge_records, need_torch

pytestmark = pytest.mark.slow


def test_train_models_and_tune_from_the_cli(live: LiveEngine) -> None:
    need_torch()
    with live.client() as admin:
        ada = admin.create_token("ada", "developer").token
        uma = admin.create_token("uma", "user").token
    live.twin("app", "publish", str(RIVER_REACH), token=ada)
    with live.client(uma) as client:
        client.create_twin("river-reach@0.1.0", "reach", {"station": "RR-01"})
        client.streams.append("reach", "gauges", gauge_records(72))

    out = live.twin("train", "reach", "runoff_correction", "--set", "epochs=4", "--wait", token=uma)
    assert "succeeded" in out and "version 1" in out and "rmse_level" in out
    table = live.twin("models", "reach", token=uma)
    assert "champion 1" in table and "accepted" in table
    listed = live.twin_json("models", "reach", token=uma)
    assert listed[0]["versions"][0]["tags"]["twin.name"] == "reach"

    tuned = live.twin_json("tune", "reach", "runoff_correction", "--trials", "3", token=uma)
    assert tuned["status"] == "succeeded" and tuned["trigger"]["kind"] == "tune"
    assert tuned["trigger"]["complete"] + tuned["trigger"]["pruned"] + tuned["trigger"]["failed"] == 3
    assert tuned["model_version"] == "2"

    bad = live.twin("train", "reach", "runoff_correction", "--set", "epochs=0", token=uma, expect=1)
    assert "config.epochs" in bad
    missing = live.twin("train", "reach", "nope", token=uma, expect=1)
    assert "ModelNotFound" in missing

    runs = live.twin_json("training", "list", "reach", token=uma)  # newest first
    assert runs["total"] == 2 and [r["trigger"]["kind"] for r in runs["items"]] == ["tune", "manual"]
    first = runs["items"][-1]["id"]
    shown = live.twin("training", "show", "reach", first, token=uma)
    assert f"{first} runoff_correction: succeeded" in shown and "epoch 4/4" in shown and "version 1" in shown
    long = live.twin_json("train", "reach", "runoff_correction", "--set", "epochs=100000", token=uma)
    stopped = live.twin_json("training", "stop", "reach", long["id"], "--wait", token=uma)
    assert stopped["status"] == "canceled" and stopped["model_version"] is None  # nothing registered
    assert "canceled: stopped on request" in live.twin("training", "stop", "reach", long["id"], token=uma)
    assert live.twin_json("training", "list", "reach", "--limit", "1", token=uma)["items"][0]["id"] == long["id"]
    missing_run = live.twin("training", "show", "reach", "tr-nothing", token=uma, expect=1)
    assert "TrainingRunNotFound" in missing_run and "tr-nothing" in missing_run
