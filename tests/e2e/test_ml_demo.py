"""The demo's model chapter on its own: train (with a prediction interval), drift, retrain, the gate promotes,
the error drops."""

from __future__ import annotations

from pathlib import Path

import pytest

from ml_fixtures import need_torch
from twinengine.demo import runner
from twinengine.demo.chapters import ml, twins
from twinengine.demo.context import DemoOptions

pytestmark = pytest.mark.slow


def test_model_chapter_retrains_on_drift_and_promotes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    need_torch()
    monkeypatch.setattr(runner, "CHAPTERS", [twins.publish_app, twins.create_twin, ml.retrain_on_drift])
    said: list[str] = []
    ctx = runner.run_demo(DemoOptions(data_dir=tmp_path / "data"), say=said.append)
    facts = ctx.facts["ml"]
    assert facts["accepted"] and facts["champion"] == "2" and facts["trail"] == 2
    assert facts["first"]["site"] == ml.SITE and facts["second"]["site"] is None  # v1 on the Dask site
    assert facts["second"]["trigger"]["kind"] == "drift" and facts["second"]["trigger"]["drifted"]
    assert facts["rmse_after"] < facts["rmse_before"] / 3  # the retrained model fits the changed catchment
    assert Path(facts["plot"]).stat().st_size > 10_000
    assert any(name == "model error" for name, _ in ctx.summary)
    # river-reach's model gives each version a split-conformal interval (its ``predictions`` hook)
    assert any(line.startswith("its 90% prediction interval: ±") for line in said), said
