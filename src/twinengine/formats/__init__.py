"""The field's file formats, opened as xarray datasets through one small interface.

Like xarray's backends, the core knows no format: each ``FormatBackend`` says which file names it takes and
opens them. Built-ins cover zarr (v2 and v3), netCDF and HDF5 (h5netcdf), GRIB (cfgrib with ecCodes),
GeoTIFF/COG (rioxarray), CSV and Parquet station tables (pandas) and ROOT (uproot); plugins come in through
the ``twinengine.formats`` entry-point group. Collections, lake datasets and app code all open files here.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import IO, TYPE_CHECKING

from twinengine.errors import FormatUnavailable, TwinEngineError, UnreadableFile
from twinengine.formats._base import FormatBackend
from twinengine.formats._registry import (
    FormatMatch,
    known_suffixes,
    list_formats,
    match,
    media_type_for,
    missing_formats,
    refresh_formats,
)

if TYPE_CHECKING:
    import xarray as xr

__all__ = ["FormatBackend", "FormatMatch", "known_suffixes", "list_formats", "match", "media_type_for",
           "missing_formats", "open_dataset", "open_fileobj", "refresh_formats", "resolve"]

_REASON_CHARS = 400


def resolve(name: str, *, label: str | None = None, is_dir: bool | None = None) -> FormatMatch:
    """The readable format of a file name, or the 4xx/501 error naming the file and why not."""
    found = match(name, is_dir=is_dir)
    what = label or name
    if found is None:
        raise UnreadableFile(f"{what}: no format the engine reads has this file name's extension (it reads "
                             f"{', '.join(known_suffixes())})", details=[{"loc": "file", "msg": what}])
    if found.unavailable is not None:
        raise FormatUnavailable(f"{what}: {found.unavailable}", details=[{"loc": "file", "msg": what}])
    return found


def _guarded(found: FormatMatch, label: str, opener: Callable[[FormatBackend], xr.Dataset | None], *,
             path: Path | None = None) -> xr.Dataset | None:
    backend = found.backend
    try:
        return opener(backend)
    except TwinEngineError as exc:
        if isinstance(exc, UnreadableFile) and not exc.message.startswith(label):
            raise UnreadableFile(f"{label}: {exc.message}", details=exc.details) from exc
        raise
    except Exception as exc:  # whatever the format's library raises on a file it cannot read
        reason = f"{type(exc).__name__}: {exc}".strip()
        if path is not None:  # the engine's folders are nobody's business: the file goes by its label
            reason = reason.replace(str(path), label).replace(str(path.parent), "")
        if len(reason) > _REASON_CHARS:
            reason = reason[:_REASON_CHARS] + "…"
        raise UnreadableFile(f"{label}: cannot be read as {backend.description}: {reason}",
                             details=[{"loc": "file", "msg": label, "format": backend.name}]) from exc


def open_dataset(path: Path | str, *, label: str | None = None) -> xr.Dataset:
    """Open a file (or a zarr store folder) by its extension; ``label`` names it in errors (default: its name).

    Raises ``UnreadableFile`` (422) for an unknown extension or a file its format cannot read, and
    ``FormatUnavailable`` (501) when the format's library is not installed."""
    target = Path(path)
    name = label or target.name
    if not target.exists():
        raise UnreadableFile(f"{name}: no such file")
    found = resolve(target.name, label=name, is_dir=target.is_dir())
    ds = _guarded(found, name, lambda backend: backend.open_dataset(target), path=target)
    assert ds is not None
    return ds


def open_fileobj(fileobj: IO[bytes], name: str, *, label: str | None = None) -> xr.Dataset | None:
    """Open a file object whose file is called ``name``; None when its format needs a local path."""
    what = label or name
    found = resolve(name, label=what, is_dir=False)
    return _guarded(found, what, lambda backend: backend.open_fileobj(fileobj))
