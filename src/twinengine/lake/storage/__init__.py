"""Storage protocols behind one small interface, found by name: built-ins plus the ``twinengine.storage``
entry-point group (a WebDAV or XRootD backend plugs in there without touching the lake)."""

from __future__ import annotations

import logging
from functools import cache
from importlib.metadata import entry_points

from twinengine.errors import ValidationFailed
from twinengine.lake.storage.base import CHUNK, StorageBackend, Writer
from twinengine.lake.storage.local import LocalStorage
from twinengine.lake.storage.s3 import S3Storage

__all__ = ["CHUNK", "LocalStorage", "S3Storage", "StorageBackend", "Writer", "backend_class", "protocols"]

log = logging.getLogger("twinengine.lake")
ENTRY_POINT_GROUP = "twinengine.storage"


@cache
def protocols() -> dict[str, type[StorageBackend]]:
    """Protocol name → backend class; a broken plugin is logged and skipped, never fatal."""
    found: dict[str, type[StorageBackend]] = {LocalStorage.protocol: LocalStorage, S3Storage.protocol: S3Storage}
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        try:
            cls = entry.load()
            if isinstance(cls, type) and issubclass(cls, StorageBackend):
                found.setdefault(cls.protocol, cls)
        except Exception:
            log.warning("storage plugin %s could not be loaded", entry.value, exc_info=True)
    return found


def backend_class(protocol: str) -> type[StorageBackend]:
    cls = protocols().get(protocol)
    if cls is None:
        raise ValidationFailed.one("protocol", f"unknown storage protocol {protocol!r}; installed: "
                                               f"{', '.join(sorted(protocols()))}")
    return cls
