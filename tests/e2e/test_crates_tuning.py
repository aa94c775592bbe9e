"""A tuning (a training that searches its hyper-parameters first) packed as a crate and run again: the search's
sampler draws from the training config's seed, so a search of one trial at a time proposes the same trials, and
the rerun's metrics and model are the original's."""

from __future__ import annotations

import io
import zipfile

import pytest

from helpers import RIVER_REACH, LiveEngine
from ml_fixtures import gauge_records, need_torch

pytestmark = pytest.mark.slow


def test_a_tuning_runs_again_identical(live: LiveEngine) -> None:
    need_torch()
    with live.client() as admin:
        ada = admin.create_token("ada", "developer").token
        uma = admin.create_token("uma", "user").token
    live.twin("app", "publish", str(RIVER_REACH), token=ada)
    with live.client(uma) as client:
        client.create_twin("river-reach@0.1.0", "tuned", {"station": "RR-01"})
        client.streams.append("tuned", "gauges", gauge_records(72))
    tuned = live.twin_json("tune", "tuned", "runoff_correction", "--trials", "3", token=uma)
    assert tuned["status"] == "succeeded" and tuned["trigger"]["kind"] == "tune"
    with live.client(uma) as client:
        crate = client.crates.crate(tuned["id"])
    with zipfile.ZipFile(io.BytesIO(crate)) as package:  # deflated: read its members, not its bytes
        names = package.namelist()
        record = package.read("twinengine-run.json")
    assert b'"tuning"' in record and any(name.endswith("training.json") for name in names), names
    diff = live.twin_json("runs", "rerun", tuned["id"], token=uma)
    assert diff["kind"] == "tuning" and diff["verdict"] == "identical", diff
    assert {o["name"]: o["verdict"] for o in diff["outputs"]} == {"metrics.json": "identical", "model": "identical"}
