"""Collections: named gridded datasets the engine can open lazily with xarray.

Workflows (``load_collection``), the EDR API and the STAC API read datasets through a
``CollectionSource`` held by the runtime. The embedded default is a folder of zarr stores and netCDF
files; the data lake provides a source over its replicas.
"""

from twinengine.collections.base import CollectionInfo, CollectionNotFound, CollectionSource, VariableInfo
from twinengine.collections.chain import ChainedCollections
from twinengine.collections.local import LocalCollections

__all__ = ["ChainedCollections", "CollectionInfo", "CollectionNotFound", "CollectionSource", "LocalCollections",
           "VariableInfo"]
