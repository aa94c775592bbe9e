"""Recognising a re-sent file (``streams.resend``): a file record equals a held one when its event time and
every declared value are the same as the engine stores them, whatever the file wrote them as."""

from __future__ import annotations

import math
from datetime import UTC, datetime

from twinengine.catalog.manifest import Stream
from twinengine.streams import resend

DECLARED = Stream.model_validate({"fields": {
    "time": {"type": "timestamp"}, "station": {"type": "string"}, "level": {"type": "float"},
    "count": {"type": "integer", "nullable": True}, "h": {"type": "array", "items": "float"}}})
HELD = [{"time": datetime(2026, 3, 1, 6, tzinfo=UTC), "station": "RR-01", "level": 1.5, "count": 3,
         "h": [0.5, math.nan]},
        {"time": datetime(2026, 3, 1, 7, tzinfo=UTC), "station": "RR-01", "level": 2, "count": None, "h": []}]


def test_records_written_otherwise_but_held_are_found() -> None:
    file = [
        {"time": "2026-03-01T07:00:00+01:00", "station": "RR-01", "level": 1.5, "count": 3, "h": [0.5, float("nan")]},
        {"time": "2026-03-01T07:00:00", "station": "RR-01", "level": 2.0, "h": []},  # no zone: UTC; count absent
        {"time": "2026-03-01T07:00:00Z", "station": "RR-01", "level": 2.0, "count": None, "h": []},  # twice
        {"time": "2026-03-01T08:00:00Z", "station": "RR-01", "level": 2.5, "count": None, "h": []},  # new
        {"time": "2026-03-01T06:00:00Z", "station": "RR-02", "level": 1.5, "count": 3, "h": [0.5, math.nan]},
        {"time": "yesterday", "station": "RR-01", "level": 1.5},  # unreadable: the engine says why
    ]
    assert resend.held(file, HELD, DECLARED.fields) == [0, 1]  # each held record matches one file record
    assert resend.span(file, "time") == (datetime(2026, 3, 1, 6, tzinfo=UTC), datetime(2026, 3, 1, 8, tzinfo=UTC))


def test_a_changed_value_or_sample_is_a_new_record() -> None:
    changed = [dict(HELD[0], level=1.51), dict(HELD[0], h=[0.5, 0.0]), dict(HELD[0], count=4)]
    assert resend.held(changed, HELD, DECLARED.fields) == []
    assert resend.record_key({"time": 5}, DECLARED.fields) is None  # a number is no time
