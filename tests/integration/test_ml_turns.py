"""Training runs of one twin's model take turns, so each candidate is judged against the champion the run
before it left (``ml_workers`` of 2: without turns, two runs of one model would train at once and both be judged
against the same champion)."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import RIVER_REACH, Engine
from ml_fixtures import gauge_records, need_torch
from twinengine.client import Client
from twinengine.config import Settings

MODEL = "runoff_correction"


@pytest.fixture
def settings(tmp_path: Path, database_url: str | None) -> Settings:
    return Settings(data_dir=tmp_path / "data", database_url=database_url, run_functions=False, ml_workers=2)


@pytest.fixture(autouse=True)
def _torch() -> None:
    need_torch()


@pytest.fixture
def uma(engine: Engine) -> Client:
    engine.as_role("ada", "developer").publish_app(RIVER_REACH)
    client = engine.as_role("uma", "user")
    for twin in ("reach", "other"):
        client.create_twin("river-reach@0.1.0", twin, {"station": "RR-01"})
        client.streams.append(twin, "gauges", gauge_records(96))
    return client


def test_runs_of_one_model_take_turns_and_others_train_beside_them(uma: Client) -> None:
    first = uma.ml.train("reach", MODEL, config={"epochs": 8})
    second = uma.ml.train("reach", MODEL, config={"epochs": 2})
    beside = uma.ml.train("other", MODEL, config={"epochs": 8})
    first, second = (uma.ml.wait("reach", r.id, timeout=300) for r in (first, second))
    beside = uma.ml.wait("other", beside.id, timeout=300)
    assert {first.status, second.status, beside.status} == {"succeeded"}, (first.error, second.error, beside.error)
    assert first.started_at and first.finished_at and second.started_at and beside.started_at
    assert second.started_at >= first.finished_at  # its turn came when the first had finished
    assert beside.started_at < first.finished_at  # another twin's model did not wait

    # the second was judged against the champion the first had just made
    versions = {v.version: v for v in uma.ml.models("reach")[0].versions}
    assert versions[first.model_version].decision.accepted  # type: ignore[union-attr]
    decision = versions[second.model_version].decision  # type: ignore[index]
    assert decision is not None and decision.champion_before == first.model_version
