"""Stream history in the lake: each compacted segment of a stream becomes a dataset with one checksummed
Parquet file on the configured endpoint, inside the stream's container (its STAC collection).

Names: container ``streams:<twin id>-<stream>``, dataset ``...-<first offset>``, file ``<container>/<first
offset>.parquet``. ``load_stream`` reads registered segments back from an available replica.
"""

from __future__ import annotations

import io
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from twinengine.auth.principal import SYSTEM
from twinengine.lake.context import Lake
from twinengine.lake.dids import add_did, attach
from twinengine.lake.replicas import open_replica
from twinengine.lake.schemas import DidType
from twinengine.lake.uploads import Expected, upload_file
from twinengine.store.engine import Database
from twinengine.streams.compaction import ClosedSegment, SegmentSink
from twinengine.streams.models import CompactedSegment

__all__ = ["SCOPE", "LakeSegmentSink", "stream_container"]

SCOPE = "streams"
PARQUET = "application/vnd.apache.parquet"


def stream_container(twin_id: str, stream: str) -> str:
    """The container (STAC collection ``<twin id>-<stream>``) holding a stream's compacted history."""
    return f"{SCOPE}:{twin_id}-{stream}"


class LakeSegmentSink(SegmentSink):
    """Registers compacted segments as lake datasets on ``endpoint`` (checksums verified while uploading)."""

    def __init__(self, db: Database, lake: Lake, endpoint: str, root: Path | None = None) -> None:
        super().__init__(root)
        self.db, self.lake, self.endpoint = db, lake, endpoint

    def register(self, segment: ClosedSegment) -> str | None:
        container = stream_container(segment.twin_id, segment.stream)
        name = container.partition(":")[2]
        dataset = f"{SCOPE}:{name}-{segment.first_offset:020d}"
        meta = {"twin": segment.twin_id, "stream": segment.stream, "first_offset": segment.first_offset,
                "last_offset": segment.last_offset, "records": segment.records}
        with self.db.session() as session:
            add_did(session, principal=SYSTEM, did=container, type=DidType.CONTAINER, exist_ok=True,
                    meta={"twin": segment.twin_id, "stream": segment.stream, "kind": "stream history"})
            add_did(session, principal=SYSTEM, did=dataset, type=DidType.DATASET, exist_ok=True, meta=meta,
                    start=segment.start, end=segment.end)
            attach(session, principal=SYSTEM, parent=container, children=[dataset])
        upload_file(self.db, self.lake, principal=SYSTEM, path=segment.path,
                    did=f"{SCOPE}:{name}/{segment.first_offset:020d}.parquet", endpoint=self.endpoint,
                    expected=Expected(sha256=segment.sha256, bytes=segment.size), dataset=dataset,
                    media_type=PARQUET, meta={"roles": ["data"], "twin": segment.twin_id, "stream": segment.stream})
        return dataset

    def read(self, row: CompactedSegment) -> pa.Table:
        if row.dataset_id is None:
            return super().read(row)
        name = stream_container(row.twin_id, row.stream).partition(":")[2]
        with self.db.session(readonly=True) as session:
            readable = open_replica(session, self.lake, principal=SYSTEM,
                                    did=f"{SCOPE}:{name}/{row.first_offset:020d}.parquet", db=self.db)
        return pq.read_table(io.BytesIO(b"".join(readable.read())))
