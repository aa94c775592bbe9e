"""Data access for DestinE-style users and data fusion for DT developers.

OGC API - EDR at ``/edr`` (CoverageJSON, GeoJSON, netCDF) and Polytope-style feature requests read only
the chunks a query touches, through a bounded cache of decoded chunks; ``twinengine.access.fusion``
regrids, collocates, resamples, harmonises units and merges xarray datasets.

Names are imported on first use, so the SDK (``client.edr``) does not pay for xarray and shapely.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__all__ = ["ChunkCache", "Coverage", "DataAccess", "Extraction", "Query", "ReadStats", "run_query", "to_covjson"]

_WHERE = {"ChunkCache": "chunks", "ReadStats": "chunks", "Coverage": "extract", "Extraction": "extract",
          "DataAccess": "service", "Query": "query", "run_query": "service", "to_covjson": "covjson"}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(import_module(f"twinengine.access.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'twinengine.access' has no attribute {name!r}")
