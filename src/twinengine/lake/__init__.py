"""The federated data lake: storage endpoints, identifiers (files, datasets, containers) with checksums,
replicas, replication rules, verified transfers, and its STAC API (``lake.stac``).

For other packages (workflows saving results, streams registering segments) the entry points are
``upload_file`` / ``upload`` (bytes in, checksummed while they flow) and ``register_replica`` (bytes already
on an endpoint), plus ``add_did`` / ``attach`` to group files into datasets.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from twinengine.lake.checksums import Checksums
    from twinengine.lake.context import Lake, LakeTuning
    from twinengine.lake.dids import add_did, attach, get_did
    from twinengine.lake.uploads import Expected, UploadOutcome, register_replica, upload, upload_file

__all__ = ["Checksums", "Expected", "Lake", "LakeTuning", "UploadOutcome", "add_did", "attach", "get_did",
           "register_replica", "upload", "upload_file"]

# Imported on first use: the lake's tables (``lake.models``, which migrations import) need none of these,
# and ``lake.uploads`` imports xarray and pandas.
_WHERE = {"Checksums": "checksums", "Lake": "context", "LakeTuning": "context", "add_did": "dids",
          "attach": "dids", "get_did": "dids", "Expected": "uploads", "UploadOutcome": "uploads",
          "register_replica": "uploads", "upload": "uploads", "upload_file": "uploads"}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(import_module(f"twinengine.lake.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'twinengine.lake' has no attribute {name!r}")
