"""Zarr stores, format v2 and v3 (zarr-python 3 reads both), as folders or zipped."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import ClassVar

import xarray as xr

from twinengine.formats._base import FormatBackend

__all__ = ["ZarrFormat", "ZipZarrFormat"]


def open_zarr_store(store: object) -> xr.Dataset:
    """Consolidated metadata is one read instead of one per array; use it when the store has it.

    Zarr 3 warns that consolidated metadata is outside its format specification on every read; that is a
    notice about portability, not about this store, so it is filtered here."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Consolidated metadata is currently not part",
                                category=UserWarning)
        ds: xr.Dataset
        try:
            ds = xr.open_zarr(store, chunks={}, consolidated=True)
        except (KeyError, ValueError, FileNotFoundError):
            ds = xr.open_zarr(store, chunks={}, consolidated=False)
        return ds


class ZarrFormat(FormatBackend):
    name: ClassVar[str] = "zarr"
    description: ClassVar[str] = "a zarr store (v2 or v3)"
    suffixes: ClassVar[tuple[str, ...]] = (".zarr",)
    media_type: ClassVar[str] = "application/vnd.zarr"
    requires: ClassVar[tuple[str, ...]] = ("zarr",)
    directory: ClassVar[bool] = True

    def open_dataset(self, path: Path) -> xr.Dataset:
        return open_zarr_store(path)


class ZipZarrFormat(FormatBackend):
    name: ClassVar[str] = "zarr-zip"
    description: ClassVar[str] = "a zipped zarr store"
    suffixes: ClassVar[tuple[str, ...]] = (".zarr.zip",)
    media_type: ClassVar[str] = "application/zip"
    requires: ClassVar[tuple[str, ...]] = ("zarr",)

    def open_dataset(self, path: Path) -> xr.Dataset:
        import zarr

        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Consolidated metadata is currently not part",
                                    category=UserWarning)
            ds: xr.Dataset = xr.open_zarr(zarr.storage.ZipStore(path, mode="r"), chunks={}, consolidated=False)
            return ds
