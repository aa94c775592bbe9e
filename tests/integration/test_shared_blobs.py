"""App archives for engines on several hosts (``store/shared_blobs.py``): a blob one engine stored is read by
another engine with a data dir of its own, checked against its sha256 on the way."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import update

from helpers import Engine
from twinengine.errors import DataCorrupted
from twinengine.store.blobs import BlobStore
from twinengine.store.shared_blobs import SharedBlobStore, StoredBlob

pytestmark = pytest.mark.every_store  # the store itself, its concurrency, or engines in several processes: both stores


def test_a_blob_put_on_one_host_is_read_on_another(engine: Engine, tmp_path: Path) -> None:
    db = engine.runtime.db
    here = SharedBlobStore(BlobStore(tmp_path / "host-a"), db)
    there = SharedBlobStore(BlobStore(tmp_path / "host-b"), db)
    digest = here.put(b"an app archive")
    assert not BlobStore(tmp_path / "host-b").exists(digest)  # nothing shared but the store
    assert there.exists(digest)
    assert there.get(digest) == b"an app archive"
    assert BlobStore(tmp_path / "host-b").get(digest) == b"an app archive"  # kept for the next read
    assert here.put(b"an app archive") == digest  # idempotent


def test_a_blob_altered_in_the_store_is_an_error_not_data(engine: Engine, tmp_path: Path) -> None:
    db = engine.runtime.db
    digest = SharedBlobStore(BlobStore(tmp_path / "host-a"), db).put(b"archive v1")
    with db.session() as session:
        session.execute(update(StoredBlob).where(StoredBlob.sha256 == digest).values(data=b"archive v2"))
    there = SharedBlobStore(BlobStore(tmp_path / "host-b"), db)
    with pytest.raises(DataCorrupted, match=digest):
        there.get(digest)
    with pytest.raises(FileNotFoundError, match="no blob"):
        there.get("0" * 64)
