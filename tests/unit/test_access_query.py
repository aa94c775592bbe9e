"""EDR parameter parsing, grid look-ups, and the chunk reader: exact chunks, bounded cache, right values."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xarray as xr
from zarr.codecs import Crc32cCodec, ZstdCodec

from twinengine.access.chunks import ChunkCache, reader_for
from twinengine.access.grid import index_range, nearest_index
from twinengine.access.query import parse_bbox, parse_datetime, parse_distance, parse_names, parse_wkt, parse_z
from twinengine.errors import InvalidParameterValue


def test_datetime_forms() -> None:
    instant = parse_datetime("2026-03-01T06:00:00Z")
    assert instant is not None and instant.instant and instant.start == np.datetime64("2026-03-01T06:00", "ns")
    interval = parse_datetime("2026-03-01T00:00:00+01:00/2026-03-02")
    assert interval is not None and interval.start == np.datetime64("2026-02-28T23:00", "ns")
    assert parse_datetime("../2026-03-02T00:00:00Z").start is None  # type: ignore[union-attr]
    assert parse_datetime("2026-03-02T00:00:00Z/..").end is None  # type: ignore[union-attr]
    assert parse_datetime(None) is None and parse_datetime("../..") is None
    for bad, where in (("yesterday", "instant"), ("2026-03-02/2026-03-01", "ends before"), ("a/b/c", "one '/'")):
        with pytest.raises(InvalidParameterValue, match=where) as info:
            parse_datetime(bad)
        assert info.value.field == "datetime"


def test_z_forms() -> None:
    assert parse_z("850").levels == (850.0,)  # type: ignore[union-attr]
    assert parse_z("1000,850,500").levels == (1000.0, 850.0, 500.0)  # type: ignore[union-attr]
    z = parse_z("500/850")
    assert z is not None and (z.lo, z.hi) == (500.0, 850.0)
    assert parse_z("R3/1000/-100").levels == (1000.0, 900.0, 800.0)  # type: ignore[union-attr]
    with pytest.raises(InvalidParameterValue, match="item 2"):
        parse_z("850,abc")
    with pytest.raises(InvalidParameterValue, match="finite"):
        parse_z("nan")


def test_wkt_and_bbox_and_distance() -> None:
    assert parse_wkt("POINT(8 45)", allowed=("POINT",)).x == 8
    assert parse_wkt("LINESTRING M (8 45 1, 9 46 2)", allowed=("LINESTRING",)).has_m
    with pytest.raises(InvalidParameterValue, match="not valid WKT"):
        parse_wkt("POINT(8 45", allowed=("POINT",))
    with pytest.raises(InvalidParameterValue, match="vertex 2: latitude 95"):
        parse_wkt("LINESTRING(8 45, 8 95)", allowed=("LINESTRING",))
    with pytest.raises(InvalidParameterValue, match="takes POLYGON or MULTIPOLYGON"):
        parse_wkt("POINT(8 45)", allowed=("POLYGON", "MULTIPOLYGON"))
    with pytest.raises(InvalidParameterValue, match="Self-intersection"):
        parse_wkt("POLYGON((0 0,1 1,1 0,0 1,0 0))", allowed=("POLYGON",))
    assert parse_bbox("1,2,3,4") == (1, 2, 3, 4)
    assert parse_bbox("1,2,100,3,4,500") == (1, 2, 3, 4, 100, 500)
    with pytest.raises(InvalidParameterValue, match="5 numbers"):
        parse_bbox("1,2,3,4,5")
    assert parse_distance(2, "mi", field="within", units_field="within-units") == pytest.approx(3.218688)
    with pytest.raises(InvalidParameterValue, match="not a distance unit"):
        parse_distance(2, "parsec", field="within", units_field="within-units")
    assert parse_names("rain, temp,rain") == ["rain", "temp"]


def test_index_lookups_on_both_orders() -> None:
    up, down = np.arange(0.0, 10.0, 0.5), np.arange(10.0, 0.0, -0.5)
    assert up[nearest_index(up, 3.3)] == 3.5 and down[nearest_index(down, 3.3)] == 3.5
    assert list(up[index_range(up, 2, 3)]) == [2.0, 2.5, 3.0]
    assert list(down[index_range(down, 2, 3)]) == [3.0, 2.5, 2.0]
    assert index_range(up, 20, 30).stop == index_range(up, 20, 30).start


@pytest.fixture(params=["direct", "through zarr"])
def cube(tmp_path: Path, request: pytest.FixtureRequest) -> xr.Dataset:
    """The same cube in a plain zarr store (chunks decoded straight from their files) and in one with a
    checksum codec in its chain (read through zarr, several chunks at a time as boxes)."""
    data = np.random.default_rng(0).random((100, 30, 40)).astype("float32")
    ds = xr.Dataset({"v": (("time", "lat", "lon"), data)},
                    coords={"time": np.arange(100), "lat": np.arange(30.0), "lon": np.arange(40.0)})
    encoding: dict[str, Any] = {"chunks": (25, 10, 10)}
    if request.param == "through zarr":
        encoding["compressors"] = [ZstdCodec(), Crc32cCodec()]
    ds.to_zarr(tmp_path / "c.zarr", encoding={"v": encoding}, consolidated=False)
    return xr.open_zarr(tmp_path / "c.zarr", consolidated=False)


def test_reader_reads_exactly_the_touched_chunks(cube: xr.Dataset) -> None:
    full = cube.v.values
    with ThreadPoolExecutor(2) as pool:
        cache = ChunkCache(10**9)
        reader = reader_for(cube, "v", key=("c",), cache=cache, pool=pool)
        assert reader.chunks == (25, 10, 10)
        got = reader.read((slice(None), np.array([12]), np.array([37])))
        np.testing.assert_array_equal(got, full[:, [12]][:, :, [37]])
        assert reader.stats.misses == 4 and reader.stats.bytes_decoded == 4 * 25 * 10 * 10 * 4
        assert reader.stats.bytes_read > 0
        reader.read((slice(0, 30), np.array([12]), np.array([37])))
        assert reader.stats.misses == 4 and reader.stats.hits == 2  # served from the cache
        picks = [np.array([3, 60, 99]), np.array([0, 15, 29]), np.array([39, 0, 21])]
        np.testing.assert_array_equal(reader.read_points(picks), full[tuple(picks)])
        sel = (slice(10, 60), slice(5, 25), np.array([1, 2, 30]))
        np.testing.assert_array_equal(reader.read(sel, keep=lambda b: b[1] != 1)[:, 5:15],
                                      np.full((50, 10, 3), np.nan, dtype="float32"))  # chunk row 1 skipped


def test_cache_is_bounded_and_least_recently_used_goes_first() -> None:
    cache = ChunkCache(capacity=3000)
    for i in range(5):
        cache.put(("k", i), np.zeros(100, dtype="float64"))  # 800 bytes each
    assert cache.size <= 3000 and len(cache) == 3
    assert cache.get(("k", 0)) is None and cache.get(("k", 4)) is not None
    cache.get(("k", 2))
    cache.put(("k", 5), np.zeros(100))
    assert cache.get(("k", 2)) is not None and cache.get(("k", 3)) is None
    cache.put(("big",), np.zeros(1000))  # larger than the whole cache: not kept
    assert cache.get(("big",)) is None and cache.size <= 3000


def test_cache_counts_a_shared_buffer_until_its_last_chunk_goes() -> None:
    cache = ChunkCache(capacity=2000)
    box = np.zeros(200)  # 1600 bytes, decoded as one box of four chunks
    cache.put_many([(("b", i), box[i * 50:(i + 1) * 50]) for i in range(4)], box.nbytes)
    assert cache.size == 1600 and len(cache) == 4
    cache.put(("x",), np.zeros(50))  # 400 bytes: exactly at the limit
    assert cache.size == 2000 and len(cache) == 5
    cache.put(("y",), np.zeros(50))  # evicting one view frees nothing: the whole box has to go
    assert cache.size == 800 and len(cache) == 2
    assert all(cache.get(("b", i)) is None for i in range(4)) and cache.get(("x",)) is not None
    cache.put_many([(("z",), np.zeros(1000))], 8000)  # a box larger than the whole cache: not kept
    assert cache.get(("z",)) is None and cache.size == 800


def test_reader_keeps_the_cache_within_its_limit_and_evicts(cube: xr.Dataset) -> None:
    full = cube.v.values
    chunk = 25 * 10 * 10 * 4
    with ThreadPoolExecutor(2) as pool:
        cache = ChunkCache(3 * chunk)
        reader = reader_for(cube, "v", key=("c",), cache=cache, pool=pool)
        first = (slice(0, 25), slice(0, 10), slice(0, 30))  # three chunks (decoded as one box through zarr)
        np.testing.assert_array_equal(reader.read(first), full[0:25, 0:10, 0:30])
        assert reader.stats.misses == 3 and len(cache) == 3 and cache.size == 3 * chunk
        second = (slice(25, 50), slice(0, 10), slice(0, 10))
        np.testing.assert_array_equal(reader.read(second), full[25:50, 0:10, 0:10])
        assert cache.size <= cache.capacity
        if reader.fetch_run is None:  # chunks of their own: the least recently used one went (which of the
            # first three that is depends on which of the threads reading them finished first)
            assert len(cache) == 3
            assert sum(cache.get((*reader.key, (0, 0, k))) is None for k in range(3)) == 1
        else:  # the first box's chunks share one buffer: all of them had to go
            assert len(cache) == 1
        everything = (slice(None), slice(None), slice(None))  # 48 chunks: more than the cache holds
        np.testing.assert_array_equal(reader.read(everything), full)
        assert reader.stats.hits == (3 if reader.fetch_run is None else 1)  # what the cache still held
        assert cache.size <= cache.capacity and 1 <= len(cache) <= 3


def test_reader_decodes_boxes_of_bounded_size(cube: xr.Dataset) -> None:
    """Each box is decoded, copied into the answer and let go by one job: memory holds the answer plus one
    box per thread reading, so boxes have a bounded size."""
    full = cube.v.values
    with ThreadPoolExecutor(2) as pool:
        reader = reader_for(cube, "v", key=("c",), cache=ChunkCache(0), pool=pool)
        reader.box_bytes = reader.small_read_bytes = 2 * 25 * 10 * 10 * 4
        everything = (slice(None), slice(None), slice(None))
        boxes = reader._boxes(reader.blocks_touched(everything))
        assert all(int(np.prod(np.subtract(hi, lo))) <= 2 for lo, hi in boxes)
        assert sum(int(np.prod(np.subtract(hi, lo))) for lo, hi in boxes) == 48
        sel = (np.array([3, 30, 31, 99]), slice(2, 28), np.array([0, 17, 39]))
        np.testing.assert_array_equal(reader.read(sel), full[np.ix_([3, 30, 31, 99], range(2, 28), [0, 17, 39])])
        np.testing.assert_array_equal(reader.read(everything), full)
        assert reader.stats.misses == 3 * 3 * 3 + 48 and len(reader.cache) == 0


def test_grids_can_be_laid_out_x_before_y_without_changing_values(cube: xr.Dataset) -> None:
    full = cube.v.values
    with ThreadPoolExecutor(2) as pool:
        reader = reader_for(cube, "v", key=("c",), cache=ChunkCache(10**9), pool=pool)
        got = reader.read((slice(5, 60), slice(3, 21), slice(7, 33)), layout=(0, 2, 1))
        np.testing.assert_array_equal(got, full[5:60, 3:21, 7:33])
        assert np.swapaxes(got, 1, 2).flags.c_contiguous
