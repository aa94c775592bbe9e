"""Which sources a stream offer's snapshot keeps (``dataspace.snapshots``): the key values as the key field's type."""

from __future__ import annotations

import pyarrow as pa

from twinengine.dataspace.snapshots import _values, sources


def test_a_window_keeps_its_one_key_or_its_keys() -> None:
    assert sources({"key": "RR-01"}) == ["RR-01"]
    assert sources({"keys": ["RR-01", "RR-03"], "key_field": "station"}) == ["RR-01", "RR-03"]
    assert sources({"since": "2026-03-01T00:00:00Z"}) is None


def test_key_values_take_the_key_field_s_type() -> None:
    assert _values(["RR-01", "RR-02"], pa.string()).to_pylist() == ["RR-01", "RR-02"]
    numbers = _values(["7", "x", "12"], pa.int64())  # a station numbered 7 offered as text; "x" is no number
    assert numbers.type == pa.int64() and numbers.to_pylist() == [7, 12]
