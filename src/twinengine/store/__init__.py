"""Shared plumbing for persistence: the declarative base, engines and sessions, migrations, blobs."""

from twinengine.store.base import Base, JSONValue, UTCDateTime, utcnow
from twinengine.store.blobs import BlobStore
from twinengine.store.engine import Database, make_engine

__all__ = ["Base", "BlobStore", "Database", "JSONValue", "UTCDateTime", "make_engine", "utcnow"]
