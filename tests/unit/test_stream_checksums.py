"""The checksum of a stream's records (``streams.checksum``) is defined on what the records hold: it equals the
SHA-256 of canonical JSON lines written here by hand from docs/reproducibility.md's definition, and does not
change with how the records are kept (in one table or parts, sorted or not, times in another unit, a field
missing or null, the engine's notes on them)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import pyarrow as pa
import pytest

from twinengine.crates.other_runs import merged
from twinengine.streams.checksum import canonical_line, records_checksum

T0 = datetime(2026, 3, 1, tzinfo=UTC)
US = pa.timestamp("us", tz="UTC")


def _table(offsets: list[int], levels: list[float | None], **more: pa.Array) -> pa.Table:
    return pa.table({"time": pa.array([T0.replace(minute=o) for o in offsets], US),
                     "station": pa.array(["RR-01"] * len(offsets)), "level": pa.array(levels, pa.float64()),
                     "_offset": pa.array(offsets, pa.int64()), **more})


def _by_hand(lines: list[str]) -> str:
    """The definition, followed without the engine: each line and a newline, SHA-256 of them all, UTF-8."""
    return hashlib.sha256("".join(f"{line}\n" for line in lines).encode()).hexdigest()


def test_the_checksum_is_that_of_the_documented_canonical_lines() -> None:
    table = _table([0, 1, 2], [1.0, 0.1, None])
    found = records_checksum(table)
    expected = _by_hand([
        '{"_offset":0,"level":1.0,"station":"RR-01","time":"2026-03-01T00:00:00.000000Z"}',
        '{"_offset":1,"level":0.1,"station":"RR-01","time":"2026-03-01T00:01:00.000000Z"}',
        '{"_offset":2,"station":"RR-01","time":"2026-03-01T00:02:00.000000Z"}'])  # a null field is left out
    assert (found.sha256, found.records) == (expected, 3)
    assert found.bytes == sum(len(line) for line in map(canonical_line, table.to_pylist()))
    assert records_checksum(None).sha256 == hashlib.sha256(b"").hexdigest() and records_checksum(None).records == 0


def test_values_are_written_in_one_form() -> None:
    record = {"_offset": 7, "h": [1.5, float("nan"), float("inf"), -float("inf"), 1e-21], "ok": True, "n": 3,
              "name": "é", "_uncertainty": [("level", {"std": 0.25, "quantiles": None, "members": None})],
              "_arrival": T0, "_quality": "bad", "_checks": "spike:level", "t": datetime(2026, 3, 1, 1, 0, 0, 5)}
    assert canonical_line(record) == (
        '{"_offset":7,"_uncertainty":{"level":{"std":0.25}},"h":[1.5,"NaN","Infinity","-Infinity",1e-21],'
        '"n":3,"name":"é","ok":true,"t":"2026-03-01T01:00:00.000005Z"}\n').encode()


def test_how_the_records_are_kept_does_not_change_their_checksum() -> None:
    table = _table([3, 4, 5, 6], [1.25, 2.0, 3.5, 0.1])
    once = records_checksum(table)
    assert records_checksum([table.slice(0, 1), table.slice(1, 3)]) == once  # read in parts
    assert records_checksum(table.take([2, 0, 3, 1])) == once  # a table in time order, not offset order
    nanoseconds = table.set_column(0, "time", table.column("time").cast(pa.timestamp("ns", tz="UTC")))
    assert records_checksum(nanoseconds) == once  # a store that keeps times in another unit
    noted = table.append_column("_arrival", pa.array([T0] * 4, US)).append_column(
        "_quality", pa.array(["good", "bad", "good", "suspect"])).append_column("_checks", pa.nulls(4, pa.string()))
    assert records_checksum(noted) == once  # the engine's notes on a record are not the record
    lacking = _table([3, 4, 5, 6], [1.25, 2.0, 3.5, 0.1], extra=pa.nulls(4, pa.float64()))
    assert records_checksum(lacking) == once  # a field null in every record is a field none has
    changed = _table([3, 4, 5, 6], [1.25, 2.0, 3.5, 0.1000001])
    assert records_checksum(changed).sha256 != once.sha256
    assert records_checksum(table.slice(0, 3)).sha256 != once.sha256  # a record gone


@pytest.mark.parametrize(("ranges", "expected"), [
    ([(0, 4), (4, 9), (12, 15)], [(0, 9), (12, 15)]), ([(5, 8), (0, 3), (2, 6)], [(0, 8)]), ([(3, 3)], [])])
def test_offset_ranges_are_merged_in_order(ranges: list[tuple[int, int]], expected: list[tuple[int, int]]) -> None:
    assert merged(list(ranges)) == expected
