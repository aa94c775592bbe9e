"""How a failing call of a function on arrival is told: which records (offsets and keys), and when two
failures are the same bug (the same exception at the same line of app code) rather than bad luck."""

from __future__ import annotations

from twinengine.daemons.streams_functions import app_line
from twinengine.streams.functions import failure_signature, record_place


def test_a_record_is_named_by_its_offset_and_key() -> None:
    assert record_place([{"_offset": 37, "station": "ow1"}], "station") == "record at offset 37, key station=ow1"
    assert record_place([{"_offset": 3}], None) == "record at offset 3"
    window = [{"_offset": i, "station": f"s{i}"} for i in range(30, 40)]
    assert record_place(window, "station") == ("records at offsets 30..39, key station=s30, s31, s32, s33, s34 "
                                               "and 5 more")


def test_only_a_failure_at_a_line_of_app_code_is_taken_as_deterministic() -> None:
    one = failure_signature("KeyError: 'depth_to_water'", "app/fns.py:5")
    assert one == failure_signature("KeyError: 'other'", "app/fns.py:5")  # the same type at the same line
    assert one != failure_signature("KeyError: 'depth_to_water'", "app/fns.py:6")
    assert one != failure_signature("ValueError: 'depth_to_water'", "app/fns.py:5")
    assert failure_signature("WorkerCrashed: killed on its memory limit", None) is None  # transient: retried


def test_the_line_that_wrote_state_is_named_inside_the_app_only() -> None:
    assert app_line("/twin/app/river/fns.py:12") == "river/fns.py:12"
    assert app_line("/usr/lib/python3/somewhere.py:3") is None
    assert app_line(None) is None
