"""Several collection sources as one: ids from all of them (the first source wins a clash)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import ClassVar

import xarray as xr

from twinengine.collections.base import Caller, CollectionInfo, CollectionNotFound, CollectionSource

__all__ = ["ChainedCollections"]


class ChainedCollections(CollectionSource):
    name: ClassVar[str] = "chain"

    def __init__(self, sources: Sequence[CollectionSource]) -> None:
        self.sources = list(sources)

    def _owner(self, collection_id: str) -> CollectionSource:
        for source in self.sources:
            if collection_id in source.ids():
                return source
        explained: CollectionNotFound | None = None
        for source in self.sources:  # not listed: a source may know a file by that name it cannot read, and why
            try:
                source.open(collection_id)
            except CollectionNotFound as exc:
                explained = explained or (exc if exc.details else None)  # one that names a file says why
                continue
            return source
        if explained is not None:
            raise explained
        known = ", ".join(self.ids()) or "none"
        raise CollectionNotFound(f"no collection {collection_id!r} (known: {known})")

    def ids(self) -> list[str]:
        seen: dict[str, None] = {}
        for source in self.sources:
            for cid in source.ids():
                seen.setdefault(cid, None)
        return list(seen)

    def readable_ids(self, principal: Caller) -> list[str]:
        owned: set[str] = set()  # the first source that lists an id owns it, whether the caller may read it or not
        out: list[str] = []
        for source in self.sources:
            readable = set(source.readable_ids(principal))
            for cid in source.ids():
                if cid not in owned:
                    owned.add(cid)
                    if cid in readable:
                        out.append(cid)
        return out

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[None]:
        with contextlib.ExitStack() as stack:
            for source in self.sources:
                stack.enter_context(source.snapshot())
            yield

    def readable(self, collection_id: str, principal: Caller) -> bool:
        return self._owner(collection_id).readable(collection_id, principal)

    def open(self, collection_id: str, *, near: Sequence[str] = ()) -> xr.Dataset:
        return self._owner(collection_id).open(collection_id, near=near)

    def info(self, collection_id: str) -> CollectionInfo:
        return self._owner(collection_id).info(collection_id)

    def close(self) -> None:
        for source in self.sources:
            close = getattr(source, "close", None)
            if callable(close):
                close()
