"""Chunks decoded straight from a local zarr store equal what zarr itself decodes, edge and absent chunks
included; chains that do more than decompress are left to zarr."""

from __future__ import annotations

import itertools
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numcodecs
import numpy as np
import pytest
import xarray as xr
import zarr
from zarr.codecs import BloscCodec, Crc32cCodec, GzipCodec, ZstdCodec

from twinengine.access.buffers import SpareBuffers, owner_of
from twinengine.access.chunks import ChunkCache, reader_for
from twinengine.access.zarr_chunks import direct_decoder, encoded_size, zarr_array

SHAPE, CHUNKS = (23, 17, 9), (10, 8, 4)  # edge chunks in every dimension


def _array(path: Path, **kwargs: Any) -> zarr.Array[Any]:
    kwargs.setdefault("dtype", "float32")
    kwargs.setdefault("fill_value", np.nan)
    array = zarr.create_array(str(path), shape=SHAPE, chunks=CHUNKS, **kwargs)
    data = np.random.default_rng(1).normal(size=SHAPE).astype(kwargs["dtype"])
    data[:10, :8, :4] = kwargs["fill_value"]  # a chunk of fill values only: zarr does not write it
    array[...] = data
    return array


def _blocks() -> list[tuple[int, ...]]:
    return list(itertools.product(*(range(-(-s // c)) for s, c in zip(SHAPE, CHUNKS, strict=True))))


@pytest.mark.parametrize("compressors", [[ZstdCodec(level=3)], [ZstdCodec(checksum=True)], [BloscCodec()],
                                         [GzipCodec()], None], ids=["zstd", "zstd+checksum", "blosc", "gzip", "none"])
@pytest.mark.parametrize("spare", [False, True], ids=["new memory", "spare buffers"])
def test_direct_chunks_equal_zarr_chunks(tmp_path: Path, compressors: Any, spare: bool) -> None:
    array = _array(tmp_path / "a.zarr", compressors=compressors)
    buffers = SpareBuffers(10**6) if spare else None
    decode = direct_decoder(array, buffers)
    assert decode is not None
    assert encoded_size(array)((0, 0, 0)) == 0  # never written: the fill value, no bytes read
    for block in _blocks():
        chunk = decode(block)
        np.testing.assert_array_equal(chunk, array.blocks[block])
        holder = [owner_of(chunk)]
        if buffers is not None and holder[0] is not None:
            holder[0][:] = 255  # handed back dirty: the next chunk decoded into it must not show it
            del chunk
            assert buffers.give(holder)  # type: ignore[arg-type]
    assert encoded_size(array)((2, 2, 2)) == (tmp_path / "a.zarr" / "c" / "2" / "2" / "2").stat().st_size



def test_arrays_read_in_turn_on_one_thread_do_not_see_each_others_files(tmp_path: Path) -> None:
    """Every decoder reads chunk files into the same buffer per thread; a larger file read for one array
    must not leave bytes that another array's smaller chunk then decodes."""
    small = _array(tmp_path / "small.zarr", compressors=[ZstdCodec(level=1)])
    large = _array(tmp_path / "large.zarr", compressors=[ZstdCodec(level=1)], dtype="float64")
    decoders = [(array, direct_decoder(array)) for array in (large, small)]
    for block in _blocks():
        for array, decode in decoders:
            assert decode is not None
            np.testing.assert_array_equal(decode(block), array.blocks[block])

def test_zarr_v2_arrays_and_integer_fill_values(tmp_path: Path) -> None:
    array = _array(tmp_path / "v2.zarr", zarr_format=2, compressors=numcodecs.Zstd(), dtype="int16", fill_value=-9)
    decode = direct_decoder(array)
    assert decode is not None
    for block in _blocks():
        np.testing.assert_array_equal(decode(block), array.blocks[block])


def test_other_chains_and_stores_are_left_to_zarr(tmp_path: Path) -> None:
    assert direct_decoder(_array(tmp_path / "crc.zarr", compressors=[ZstdCodec(), Crc32cCodec()])) is None
    assert direct_decoder(_array(tmp_path / "be.zarr", dtype=">f4")) is None
    assert direct_decoder(_array(tmp_path / "f.zarr", zarr_format=2, filters=[numcodecs.Delta("f4")])) is None
    in_memory = zarr.create_array(zarr.storage.MemoryStore(), shape=SHAPE, chunks=CHUNKS, dtype="float32")
    assert direct_decoder(in_memory) is None
    assert encoded_size(in_memory)((0, 0, 0)) == 0


def test_a_truncated_chunk_is_an_error_not_wrong_values(tmp_path: Path) -> None:
    array = _array(tmp_path / "t.zarr", compressors=None)
    chunk = tmp_path / "t.zarr" / "c" / "1" / "1" / "1"
    chunk.write_bytes(chunk.read_bytes()[:-4])
    decode = direct_decoder(array)
    assert decode is not None
    with pytest.raises(ValueError, match="holds 1276 bytes, not 1280"):
        decode((1, 1, 1))


@pytest.mark.parametrize("spare", [None, SpareBuffers(10**6)], ids=["new memory", "spare buffers"])
def test_a_truncated_or_misshapen_zstd_chunk_is_an_error_not_wrong_values(tmp_path: Path,
                                                                         spare: SpareBuffers | None) -> None:
    array = _array(tmp_path / "z.zarr", compressors=[ZstdCodec()])
    chunk = tmp_path / "z.zarr" / "c" / "1" / "1" / "1"
    whole = chunk.read_bytes()
    decode = direct_decoder(array, spare)
    assert decode is not None
    chunk.write_bytes(whole[:-4])
    with pytest.raises(RuntimeError):  # zstd notices the frame ends early
        decode((1, 1, 1))
    # a complete frame of fewer values (written for another chunk shape) fills only part of a chunk
    chunk.write_bytes(numcodecs.Zstd().encode(np.zeros(np.prod(CHUNKS) - 1, dtype="float32")))
    with pytest.raises(ValueError, match="decodes to 1276 bytes, not 1280"):
        decode((1, 1, 1))


def test_a_sharded_store_is_read_through_zarr_by_inner_chunks(tmp_path: Path) -> None:
    data = np.random.default_rng(0).random((40, 30, 20)).astype("float32")
    xr.Dataset({"v": (("t", "y", "x"), data)}).to_zarr(
        tmp_path / "s.zarr", consolidated=False, encoding={"v": {"chunks": (5, 10, 10), "shards": (20, 30, 20)}})
    ds = xr.open_zarr(tmp_path / "s.zarr", consolidated=False)
    array = zarr_array(ds, "v")
    assert array is not None and direct_decoder(array) is None
    with ThreadPoolExecutor(2) as pool:
        reader = reader_for(ds, "v", key=("s",), cache=ChunkCache(10**8), pool=pool)
        assert reader.chunks == (5, 10, 10) and reader.fetch_run is not None
        np.testing.assert_array_equal(reader.read((slice(3, 37), np.array([1, 15, 29]), slice(None))),
                                      data[3:37][:, [1, 15, 29]])
        assert reader.stats.misses == 8 * 3 * 2



@pytest.mark.parametrize("workers", [1, 3, 8])
def test_read_threads_follow_the_setting_and_the_cores(tmp_path: Path, workers: int,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Local chunks are decoded by at most one helper fewer than the cores (the request's thread decodes
    too); reads through zarr's own codec chain may wait on storage and take every worker of the pool."""
    monkeypatch.setattr("twinengine.access.chunks.usable_cores", lambda: 4)
    data = xr.Dataset({"v": (("t", "y", "x"), np.random.default_rng(2).normal(size=SHAPE).astype("float32"))})
    data.to_zarr(tmp_path / "direct.zarr", consolidated=False,
                 encoding={"v": {"chunks": CHUNKS, "compressors": [ZstdCodec()]}})
    data.to_zarr(tmp_path / "chain.zarr", consolidated=False,  # a checksum after zstd: left to zarr
                 encoding={"v": {"chunks": CHUNKS, "compressors": [ZstdCodec(), Crc32cCodec()]}})
    helpers = {}
    with ThreadPoolExecutor(workers) as pool:
        for name in ("direct", "chain"):
            ds = xr.open_zarr(tmp_path / f"{name}.zarr", consolidated=False)
            reader = reader_for(ds, "v", key=(name,), cache=ChunkCache(10**6), pool=pool, workers=workers)
            np.testing.assert_array_equal(reader.read((slice(None),) * 3), data.v.values)
            helpers[name] = reader.helpers
    assert helpers == {"direct": min(workers, 3), "chain": workers}
