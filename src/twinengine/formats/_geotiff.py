"""GeoTIFF and Cloud Optimized GeoTIFF through rioxarray: one variable per band, on longitude/latitude axes.

Rasters in a geographic CRS (EPSG:4326 and its kin) are read lazily as they are. Rasters in a projected CRS
are reprojected to EPSG:4326 when opened, in memory, up to ``REPROJECT_CELLS`` cells; larger ones are
refused with the reason (reproject them once beforehand, e.g. with ``gdalwarp -t_srs EPSG:4326``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import ClassVar

import numpy as np
import xarray as xr

from twinengine.errors import UnreadableFile
from twinengine.formats._base import FormatBackend

__all__ = ["GeoTIFFFormat"]

REPROJECT_CELLS = 16_000_000
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")
COG = "image/tiff; application=geotiff; profile=cloud-optimized"


def _band_names(ds: xr.Dataset) -> xr.Dataset:
    """Bands named by their descriptions (``long_name``) where these are usable, distinct names."""
    renames = {}
    for name, var in ds.data_vars.items():
        label = var.attrs.get("long_name")
        if isinstance(label, str) and _NAME.match(label) and label not in ds.variables:
            renames[name] = label
    if len(set(renames.values())) != len(renames):
        return ds
    return ds.rename(renames)


class GeoTIFFFormat(FormatBackend):
    name: ClassVar[str] = "geotiff"
    description: ClassVar[str] = "a GeoTIFF"
    suffixes: ClassVar[tuple[str, ...]] = (".tif", ".tiff", ".cog")
    media_type: ClassVar[str] = "image/tiff; application=geotiff"
    requires: ClassVar[tuple[str, ...]] = ("rioxarray", "rasterio")

    def media_type_of(self, name: str) -> str:
        lower = name.lower()
        return COG if lower.endswith((".cog", ".cog.tif", ".cog.tiff")) else self.media_type

    def open_dataset(self, path: Path) -> xr.Dataset:
        import rioxarray

        opened = rioxarray.open_rasterio(path, chunks={}, mask_and_scale=True, band_as_variable=True)
        if not isinstance(opened, xr.Dataset):  # band_as_variable always gives a Dataset; a list means subdatasets
            raise UnreadableFile("holds several subdatasets; the engine reads single-raster GeoTIFFs")
        ds = opened
        crs = ds.rio.crs
        if crs is None:
            raise UnreadableFile("has no coordinate reference system (no GeoKeys); georeference it first")
        if not crs.is_geographic:
            cells = int(ds.sizes.get("x", 0)) * int(ds.sizes.get("y", 0))
            if cells > REPROJECT_CELLS:
                raise UnreadableFile(f"is in {crs.to_string()} with {cells:,} cells; the engine reprojects rasters "
                                     f"of at most {REPROJECT_CELLS:,} cells to EPSG:4326 when it opens them: "
                                     "reproject it beforehand (gdalwarp -t_srs EPSG:4326)")
            ds = ds.load().rio.reproject("EPSG:4326", nodata=np.nan)  # cells outside the raster: NaN
        ds = _band_names(ds)
        ds["x"].attrs.update(units="degrees_east", standard_name="longitude", axis="X")
        ds["y"].attrs.update(units="degrees_north", standard_name="latitude", axis="Y")
        ds.attrs.setdefault("crs", "EPSG:4326")
        return ds
