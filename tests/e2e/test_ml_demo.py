"""The demo's model chapter: train (with a prediction interval), drift, retrain, the gate promotes, the error
drops. Read from the run's one demo (``demo_fixtures``): the chapter trains its own twin from data of its
own, whatever the demo's hours, and training it again alone cost two training runs and a Dask site more.
What it prints (the interval's line, the "model error" row) is checked where the demo prints for people
(``test_demo.py``)."""

from __future__ import annotations

from pathlib import Path

from demo_fixtures import DemoRun
from twinengine.demo.chapters import ml


def test_model_chapter_retrains_on_drift_and_promotes(demo_run: DemoRun) -> None:
    facts = demo_run.facts["ml"]
    assert facts["accepted"] and facts["champion"] == "2" and facts["trail"] == 2
    assert facts["first"]["site"] == ml.SITE and facts["second"]["site"] is None  # v1 on the Dask site
    assert facts["second"]["trigger"]["kind"] == "drift" and facts["second"]["trigger"]["drifted"]
    assert facts["second"]["trigger"]["reference_run"] == facts["first"]["id"]
    assert facts["rmse_after"] < facts["rmse_before"] / 3  # the retrained model fits the changed catchment
    assert Path(facts["plot"]).stat().st_size > 10_000
    # river-reach's model gives each version a split-conformal interval (its ``predictions`` hook)
    interval = facts["first"]["metrics"]
    assert interval["interval_level"] == 0.9 and interval["interval_half_width"] > 0
    assert 0.5 < interval["interval_coverage"] <= 1
