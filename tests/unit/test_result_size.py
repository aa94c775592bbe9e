"""Results written against a byte budget (``workflows.result_size``, ``formats.write``): the same JSON text as
``json.dumps``, the writing stopped where it passes the budget, nothing left of a refused result."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xarray as xr

from twinengine.errors import ResultTooLarge
from twinengine.workflows import formats
from twinengine.workflows.result_size import ROW_VALUE_BYTES, fits_in_row, json_size, pieces, write_json

VALUES: list[Any] = [
    {}, [], "", "é" * 70_000, {"a": [1, 2.5, None, True, "s", {"b": []}], "c": "ü\n\"" * 30_000},
    list(range(10_000)), [[1, [2, [3.25]]]] * 3000, {"k": [1.5] * 9000 + ["a"], "2": False}, -0.0, 10**30,
]


@pytest.mark.parametrize("value", VALUES, ids=range(len(VALUES)))
def test_the_pieces_are_what_json_dumps_writes(value: Any) -> None:
    assert "".join(pieces(value)) == json.dumps(value)
    assert json_size(value) == len(json.dumps(value))


def test_a_deep_value_is_measured_without_recursion() -> None:
    deep: list[Any] = []
    inner = deep
    for _ in range(50_000):  # json.dumps would raise RecursionError
        inner.append([])
        inner = inner[0]
    assert json_size(deep) == 100_002  # 50,001 lists


def test_measuring_stops_past_the_bound() -> None:
    huge = "A" * (64 << 20)
    assert json_size(huge, stop_after=1000) <= 1000 + (1 << 16) + 2  # one slice past the bound, not 64 MiB
    assert fits_in_row("A" * 100) and not fits_in_row(["A" * ROW_VALUE_BYTES])


def test_a_value_over_its_budget_stops_being_written_and_leaves_no_file(tmp_path: Path) -> None:
    path = tmp_path / "value.json"
    with pytest.raises(ResultTooLarge, match=r"over 1000 bytes.*sync_max_result_bytes"):
        write_json(["A" * 600, "B" * 600], path, limit=1000)
    assert not path.exists()
    assert write_json(["A" * 600], path, limit=1000) == 604 and json.loads(path.read_text()) == ["A" * 600]


def test_formats_refuse_a_cube_over_the_budget_before_or_while_writing_it(tmp_path: Path) -> None:
    cube = xr.DataArray(np.random.default_rng(7).random((100, 100)), dims=("y", "x"), name="v")  # 80 kB
    for name in ("NPY", "netCDF", "JSON", "ZARR"):
        with pytest.raises(ResultTooLarge, match=r"more than the 50000 bytes .*\(its other results took 40000\)"):
            formats.write(cube, formats.FORMATS[name], tmp_path, f"r-{name}", limit=10_000, budget=50_000)
        assert list(tmp_path.iterdir()) == [], name  # nothing of it, the zarr store included
    with pytest.raises(ResultTooLarge, match="the result is 80000 bytes"):  # told by its values, before writing
        formats.write(cube, formats.FORMATS["NPY"], tmp_path, "npy", limit=10_000)
    kept = formats.write(cube, formats.FORMATS["ZARR"], tmp_path, "ok", limit=10 << 20)
    assert [p.name for p in tmp_path.iterdir()] == [kept.name]  # kept zipped, the store removed
