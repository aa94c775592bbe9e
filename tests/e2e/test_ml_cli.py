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
