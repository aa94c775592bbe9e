"""The ``assimilation.run`` section and the per-twin schedule body: what is accepted and what is refused,
each refusal naming what is wrong."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import ValidationError

from twinengine.catalog.assimilation_spec import AutoRun, RunOn
from twinengine.twin_assimilation.schemas import ScheduleWrite


def test_arrival_and_schedule_are_read() -> None:
    assert AutoRun.model_validate({"on": "arrival"}).every is None
    throttled = AutoRun.model_validate({"on": "arrival", "every": "10min"})
    assert throttled.on is RunOn.ARRIVAL and throttled.every == timedelta(minutes=10)
    assert AutoRun.model_validate({"on": "schedule", "every": "PT1H"}).every == timedelta(hours=1)


@pytest.mark.parametrize(("given", "says"), [
    ({"on": "schedule"}, "a schedule needs every"),
    ({"on": "arrival", "every": "0s"}, "between 1 s and 366 days"),
    ({"on": "schedule", "every": "400d"}, "between 1 s and 366 days"),
    ({"on": "sometimes"}, "on"),
    ({"on": "arrival", "when": "now"}, "when"),
])
def test_bad_sections_are_refused_naming_the_problem(given: dict[str, str], says: str) -> None:
    with pytest.raises(ValidationError, match=says):
        AutoRun.model_validate(given)


def test_the_twin_s_schedule_body() -> None:
    assert ScheduleWrite.model_validate({"on": "off"}).every_seconds() is None
    assert ScheduleWrite.model_validate({"on": "schedule", "every": "1h"}).every_seconds() == 3600
    with pytest.raises(ValueError, match="between 1 s"):
        ScheduleWrite.model_validate({"on": "arrival", "every": "0s"}).every_seconds()
    with pytest.raises(ValidationError, match="on"):
        ScheduleWrite.model_validate({"on": "hourly"})
