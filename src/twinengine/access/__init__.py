"""Data access for DestinE-style users and data fusion for DT developers.

OGC API - EDR at ``/edr`` (CoverageJSON, GeoJSON, netCDF) and Polytope-style feature requests read only
the chunks a query touches, through a bounded cache of decoded chunks; ``twinengine.access.fusion``
regrids, collocates, resamples, harmonises units and merges xarray datasets.
"""

from twinengine.access.chunks import ChunkCache, ReadStats
from twinengine.access.covjson import to_covjson
from twinengine.access.extract import Coverage, Extraction
from twinengine.access.service import DataAccess, Query, run_query

__all__ = ["ChunkCache", "Coverage", "DataAccess", "Extraction", "Query", "ReadStats", "run_query", "to_covjson"]
