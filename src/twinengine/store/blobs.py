"""A content-addressed blob store on a local folder: what the catalogue keeps app archives in.

Blobs are named by their sha256 and written durably (temp file, fsync, rename, fsync of the folder), so a
blob that exists is complete. The federated lake will provide other backends behind the same methods.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from twinengine.errors import DataCorrupted

__all__ = ["BlobStore"]


class BlobStore:
    """Immutable blobs under ``root/ab/cdef...``; writing the same bytes twice is a no-op."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, sha256: str) -> Path:
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise ValueError(f"not a sha256 hex digest: {sha256!r}")
        return self.root / sha256[:2] / sha256[2:]

    def put(self, data: bytes) -> str:
        """Store ``data`` durably and return its sha256."""
        digest = hashlib.sha256(data).hexdigest()
        target = self.path(digest)
        if target.exists():
            return digest
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        dir_fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        return digest

    def get(self, sha256: str) -> bytes:
        """Read a blob and check it still matches its name (bit rot is an error, not data)."""
        data = self.path(sha256).read_bytes()
        if hashlib.sha256(data).hexdigest() != sha256:
            raise DataCorrupted(f"stored blob {sha256} no longer matches its sha256; restore it from a copy")
        return data

    def exists(self, sha256: str) -> bool:
        return self.path(sha256).exists()
