"""The federated data lake: storage endpoints, identifiers (files, datasets, containers) with checksums,
replicas, replication rules, verified transfers, and its STAC API (``lake.stac``).

For other packages (workflows saving results, streams registering segments) the entry points are
``upload_file`` / ``upload`` (bytes in, checksummed while they flow) and ``register_replica`` (bytes already
on an endpoint), plus ``add_did`` / ``attach`` to group files into datasets.
"""

from twinengine.lake.checksums import Checksums
from twinengine.lake.context import Lake, LakeTuning
from twinengine.lake.dids import add_did, attach, get_did
from twinengine.lake.uploads import Expected, UploadOutcome, register_replica, upload, upload_file

__all__ = ["Checksums", "Expected", "Lake", "LakeTuning", "UploadOutcome", "add_did", "attach", "get_did",
           "register_replica", "upload", "upload_file"]
