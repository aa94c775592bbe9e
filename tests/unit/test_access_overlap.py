"""Large grid answers are written while their chunks are read: the bytes are exactly those of the answer
written once complete, time steps are announced in order as they become final, the writing thread takes
read jobs itself, and a failed read fails the answer instead of leaving it half written or waiting
forever."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import shapely
import xarray as xr

import twinengine.access.covjson as covjson
from twinengine.access.chunks import ChunkCache, reader_for
from twinengine.access.covjson import dumps, encode_parts, to_covjson
from twinengine.access.extract import Progress
from twinengine.access.query import parse_datetime
from twinengine.access.reads import Reads
from twinengine.access.service import DataAccess, Query, run_query
from twinengine.auth.principal import SYSTEM
from twinengine.collections.local import LocalCollections


def _cube(folder: Path, name: str, dims: tuple[str, str, str]) -> None:
    rng = np.random.default_rng(3)
    coords = {"time": np.arange("2025-01-01", "2025-01-11", dtype="datetime64[h]")[:200],
              "lat": np.arange(40.0, 52.0, 0.5), "lon": np.arange(0.0, 16.0, 0.5)}
    shape = tuple(coords[d].size for d in dims)
    data = rng.normal(size=shape).astype("float32")
    data[data > 2.5] = np.nan
    ds = xr.Dataset({"v": (dims, data, {"units": "K"})}, coords=coords)
    ds.to_zarr(folder / f"{name}.zarr", consolidated=False,
               encoding={"v": {"chunks": tuple(c // 3 + 1 for c in shape)}})


@pytest.fixture
def access(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[DataAccess]:
    _cube(tmp_path, "tfirst", ("time", "lat", "lon"))
    _cube(tmp_path, "tlast", ("lat", "lon", "time"))
    monkeypatch.setattr(covjson, "OVERLAP_VALUES", 1000)
    monkeypatch.setattr(covjson, "PIECE_VALUES", 500)  # several orjson calls per run of finished time steps
    access = DataAccess(LocalCollections(tmp_path), max_values=10**8, cache_bytes=0)
    yield access
    access.close()


QUERIES = [
    Query(kind="cube", bbox=(1.2, 41.0, 14.0, 50.0)),
    Query(kind="cube", bbox=(1.2, 41.0, 14.0, 50.0),
          datetime=parse_datetime("2025-01-02T05:00:00Z/2025-01-06T00:00:00Z")),
    Query(kind="area", geometry=shapely.from_wkt("POLYGON((1 41, 14 42, 12 50, 3 49, 1 41))")),
]


@pytest.mark.parametrize("collection", ["tfirst", "tlast"])
@pytest.mark.parametrize("query", QUERIES, ids=["cube", "cube, time range", "area"])
def test_written_while_read_equals_written_once_complete(access: DataAccess, collection: str, query: Query) -> None:
    whole = dumps(to_covjson(run_query(access, principal=SYSTEM, collection_id=collection, query=query)))
    deferred = run_query(access, principal=SYSTEM, collection_id=collection, query=query, deferred=True)
    assert deferred.pending is not None
    assert covjson._overlappable(deferred) is not None or collection == "tlast"
    assert b"".join(encode_parts(deferred)) == whole


def test_time_steps_are_announced_in_order_as_they_become_final(access: DataAccess) -> None:
    extraction = run_query(access, principal=SYSTEM, collection_id="tfirst", query=QUERIES[0], deferred=True)
    values = extraction.coverages[0].ranges["v"]
    told: list[int] = []
    copies: list[np.ndarray] = []

    def progress(name: str, rows: int) -> None:
        assert name == "v"
        told.append(rows)
        copies.append(values[:rows].copy())  # what a writer would see at that moment

    assert extraction.pending is not None
    reads = Reads()
    extraction.pending(progress, reads)
    reads.finish()
    # three time chunks of 67 steps: told at their ends, in order (two at once when they finished together)
    assert told == sorted(set(told)) and set(told) <= {67, 134, 200} and told[-1] == values.shape[0] == 200
    for rows, seen in zip(told, copies, strict=True):
        np.testing.assert_array_equal(seen, values[:rows])


def test_a_failed_read_fails_the_answer(access: DataAccess) -> None:
    extraction = run_query(access, principal=SYSTEM, collection_id="tfirst", query=QUERIES[0], deferred=True)

    queue = extraction.pending
    assert queue is not None

    def failing(progress: Progress | None, reads: Reads) -> None:  # the store fails before any time step is in
        def fail() -> None:
            raise OSError("chunk store went away")

        reads.add([fail])
        queue(progress, reads)

    extraction.pending = failing
    with pytest.raises(OSError, match="went away"):  # the writer, waiting for the first run, hears of it
        encode_parts(extraction)


def test_rows_are_told_only_at_the_end_when_indices_do_not_ascend(tmp_path: Path) -> None:
    data = np.arange(40 * 6, dtype="float32").reshape(40, 6)
    xr.Dataset({"v": (("time", "x"), data)}).to_zarr(tmp_path / "d.zarr", consolidated=False,
                                                     encoding={"v": {"chunks": (10, 6)}})
    ds = xr.open_zarr(tmp_path / "d.zarr", consolidated=False)
    told: list[int] = []
    with ThreadPoolExecutor(2) as pool:
        reader = reader_for(ds, "v", key=("d",), cache=ChunkCache(0), pool=pool)
        got = reader.read((np.array([35, 2, 17]), slice(None)), progress=told.append)
        np.testing.assert_array_equal(got, data[[35, 2, 17]])
        assert told == [3]
        told.clear()
        got = reader.read((np.arange(5, 33), slice(None)), progress=told.append)
        np.testing.assert_array_equal(got, data[5:33])
        # time steps 5..9, 10..19, 20..29, 30..32 done chunk by chunk (two told at once when two threads
        # finished them together)
        assert told == sorted(set(told)) and set(told) <= {5, 15, 25, 28} and told[-1] == 28


def test_the_writer_offers_the_gil_after_every_piece(access: DataAccess, monkeypatch: pytest.MonkeyPatch) -> None:
    offered: list[int] = []
    monkeypatch.setattr(covjson, "_offer_gil", lambda: offered.append(1))
    extraction = run_query(access, principal=SYSTEM, collection_id="tfirst", query=QUERIES[0], deferred=True)
    parts = encode_parts(extraction)
    pieces = sum(isinstance(part, memoryview) for part in parts)  # each orjson call's values, brackets cut off
    assert pieces > 3
    assert len(offered) == pieces


@pytest.mark.parametrize("cores", [1, 2, 3])
def test_the_writing_thread_reads_too_and_threads_match_the_cores(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                   cores: int) -> None:
    """Chunks decoded straight from their files keep as many threads busy as there are cores: the writing
    thread itself and one helper fewer from the pool (none on one core, where the writer reads alone)."""
    import twinengine.access.chunks as chunks

    _cube(tmp_path, "c", ("time", "lat", "lon"))
    monkeypatch.setattr(covjson, "OVERLAP_VALUES", 1000)
    monkeypatch.setattr(chunks, "usable_cores", lambda: cores)
    access = DataAccess(LocalCollections(tmp_path), max_values=10**8, cache_bytes=0, workers=4)
    try:
        whole = dumps(to_covjson(run_query(access, principal=SYSTEM, collection_id="c", query=QUERIES[0])))
        reader = access.reader("c", access.source.open("c"), "v")
        assert reader.helpers == cores - 1
        fetch, readers = reader.fetch, []

        def watched(block: tuple[int, ...]) -> np.ndarray:
            readers.append(threading.current_thread())
            return fetch(block)

        monkeypatch.setattr(reader, "fetch", watched)
        deferred = run_query(access, principal=SYSTEM, collection_id="c", query=QUERIES[0], deferred=True)
        assert b"".join(encode_parts(deferred)) == whole
        assert len(readers) == 27 and len(set(readers)) <= cores
        if cores == 1:  # no helper: the writing thread did every read itself
            assert set(readers) == {threading.current_thread()}
    finally:
        access.close()
