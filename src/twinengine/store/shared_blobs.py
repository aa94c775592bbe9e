"""App archives kept in the store as well as the data dir, for engines on several hosts.

An engine's ``BlobStore`` is a folder of its own data dir; an engine on another host that runs a workflow of
an app published through the first would find no archive there. With ``engines_share_store`` every blob is
also written to the ``blobs`` table of the shared PostgreSQL store, in the same transaction-free, idempotent
way as the folder (the sha256 is the key), and a blob missing from the local folder is read from the table,
checked against its sha256 and kept in the folder for the next read.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from sqlalchemy import Integer, LargeBinary, String, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Mapped, mapped_column

from twinengine.errors import DataCorrupted
from twinengine.store.base import Base, UTCDateTime, utcnow
from twinengine.store.blobs import BlobStore
from twinengine.store.engine import Database

__all__ = ["SharedBlobStore", "StoredBlob"]


class StoredBlob(Base):
    """One immutable blob, by its sha256 (the archive of an app version)."""

    __tablename__ = "blobs"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class SharedBlobStore(BlobStore):
    """The data dir's folder as a cache in front of the store's ``blobs`` table."""

    def __init__(self, root: BlobStore, db: Database) -> None:
        super().__init__(root.root)
        self.db = db

    def put(self, data: bytes) -> str:
        digest = super().put(data)
        insert = postgresql.insert if self.db.backend == "postgresql" else sqlite.insert
        with self.db.session() as session:
            session.execute(insert(StoredBlob).values(sha256=digest, size=len(data), data=data,
                                                      created_at=utcnow()).on_conflict_do_nothing())
        return digest

    def get(self, sha256: str) -> bytes:
        if super().exists(sha256):
            return super().get(sha256)
        with self.db.session(readonly=True) as session:
            data = session.scalar(select(StoredBlob.data).where(StoredBlob.sha256 == sha256))
        if data is None:
            raise FileNotFoundError(f"no blob {sha256} in the data dir or the store")
        if hashlib.sha256(data).hexdigest() != sha256:
            raise DataCorrupted(f"blob {sha256} in the store no longer matches its sha256; restore it from a copy")
        super().put(data)  # kept for the next read
        return bytes(data)

    def exists(self, sha256: str) -> bool:
        if super().exists(sha256):
            return True
        with self.db.session(readonly=True) as session:
            return session.scalar(select(StoredBlob.sha256).where(StoredBlob.sha256 == sha256)) is not None
