"""The EDR collection listing (``/edr/collections``), fast on every call after the first: a collection's
document is kept while its dataset handle is, and the sources are asked for their index once per listing.

Sources hand out one handle per unchanged file (a changed file is reopened: a new handle), so a document keyed
by its handle is dropped exactly when its data changes; no time-based expiry is needed. A document is built
once with a placeholder address and each answer gets a copy with its own, so the engine's warm-up after start
(``access/warmup.py``) serves the first request, whatever address it came to.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections import OrderedDict
from typing import Any

import xarray as xr

from twinengine.access import metadata
from twinengine.access.service import DataAccess, collection_ids
from twinengine.auth.principal import Principal
from twinengine.errors import FormatUnavailable, UnreadableFile

__all__ = ["PLACEHOLDER", "Documents", "collection_document", "list_collections"]

log = logging.getLogger(__name__)


PLACEHOLDER = "http://twinengine.invalid/edr"  # the address kept documents are built with


def _rebased(value: Any, base: str) -> Any:
    """A deep copy of a kept document with the placeholder address replaced by ``base``."""
    if isinstance(value, dict):
        return {k: _rebased(v, base) for k, v in value.items()}
    if isinstance(value, list):
        return [_rebased(v, base) for v in value]
    if isinstance(value, str) and value.startswith(PLACEHOLDER):
        return base + value[len(PLACEHOLDER):]
    return value


def _at(doc: dict[str, Any], base: str) -> dict[str, Any]:
    return {key: _rebased(value, base) for key, value in doc.items()}


class Documents:
    """Collection documents by (collection, dataset handle); the handle is held so its id is not reused while
    its document is kept."""

    def __init__(self, size: int = 512) -> None:
        self.size = size
        self._docs: OrderedDict[tuple[str, int], tuple[xr.Dataset, dict[str, Any]]] = OrderedDict()
        self._lock = threading.Lock()
        self._unlisted: set[tuple[str, str]] = set()  # (collection, why) already logged

    def first_time_unlisted(self, collection_id: str, why: str) -> bool:
        """Whether this collection is left out for this reason for the first time (then it is logged as a
        warning; every listing after says it only at debug level: the same file, the same reason)."""
        with self._lock:
            new = (collection_id, why) not in self._unlisted
            self._unlisted.add((collection_id, why))
        return new

    def get(self, access: DataAccess, collection_id: str, base: str) -> dict[str, Any]:
        """The document at ``base`` (a copy: callers may change theirs)."""
        ds = access.source.open(collection_id)
        key = (collection_id, id(ds))
        with self._lock:
            found = self._docs.get(key)
            if found is not None and found[0] is ds:
                self._docs.move_to_end(key)
                return _at(found[1], base)
        info = access.source.info(collection_id)
        doc = metadata.collection_document(collection_id, ds, PLACEHOLDER, title=info.title,
                                           description=info.description)
        with self._lock:
            self._docs[key] = (ds, doc)
            while len(self._docs) > self.size:
                self._docs.popitem(last=False)
        return _at(doc, base)


_CACHES: weakref.WeakKeyDictionary[DataAccess, Documents] = weakref.WeakKeyDictionary()
_CACHES_LOCK = threading.Lock()


def _documents(access: DataAccess) -> Documents:
    with _CACHES_LOCK:
        found = _CACHES.get(access)
        if found is None:
            found = _CACHES[access] = Documents()
        return found


def collection_document(access: DataAccess, collection_id: str, base: str) -> dict[str, Any]:
    """One collection's EDR document (a copy: callers may change theirs)."""
    return _documents(access).get(access, collection_id, base)


def list_collections(access: DataAccess, *, principal: Principal, base: str,
                     stop: threading.Event | None = None) -> list[dict[str, Any]]:
    """The documents of the collections ``principal`` may read; one whose file cannot be read is left out
    (and logged once), so one bad file does not hide the others. ``stop`` set: the listing ends where it is
    (an engine stopping under a warm-up: its readers' pools are closing, and each file would fail and be
    reported as unreadable)."""
    documents = _documents(access)
    items = []
    with access.source.snapshot():
        for cid in collection_ids(access, principal=principal):
            if stop is not None and stop.is_set():
                break
            try:
                items.append(documents.get(access, cid, base))
            except (UnreadableFile, FormatUnavailable) as exc:
                level = logging.WARNING if documents.first_time_unlisted(cid, exc.message) else logging.DEBUG
                log.log(level, "EDR lists no collection %s: %s", cid, exc.message)
    return items
