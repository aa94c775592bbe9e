"""Several collection sources as one: ids from all of them (the first source wins a clash)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, ClassVar

from twinengine.collections.base import Caller, CollectionInfo, CollectionNotFound, CollectionSource
from twinengine.errors import TwinEngineError

if TYPE_CHECKING:
    import xarray as xr

__all__ = ["ChainedCollections"]


class ChainedCollections(CollectionSource):
    name: ClassVar[str] = "chain"

    def __init__(self, sources: Sequence[CollectionSource]) -> None:
        self.sources = list(sources)

    def _listed(self, collection_id: str) -> CollectionSource | None:
        for source in self.sources:
            if collection_id in source.ids():
                return source
        return None

    def _owner(self, collection_id: str) -> CollectionSource:
        """The source that lists the id (callers asked ``readable`` first); no caller here, so the answer for an
        id no source lists names none of them (``require_readable`` names those the caller may read)."""
        found = self._listed(collection_id)
        if found is None:
            raise CollectionNotFound(f"no collection {collection_id!r}")
        return found

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
        found = self._listed(collection_id)
        return found is not None and found.readable(collection_id, principal)

    def use(self, collection_id: str, principal: Caller) -> None:
        listed = self._listed(collection_id)
        if listed is not None:
            listed.use(collection_id, principal)

    def explain(self, collection_id: str, principal: Caller) -> TwinEngineError | None:
        """The listing source's explanation where one lists the id (a refusal it may say, such as a copy whose
        terms no longer permit its use; otherwise nothing beyond "not found"), else the first source's."""
        listed = self._listed(collection_id)
        if listed is not None:
            return listed.explain(collection_id, principal)
        for source in self.sources:
            found = source.explain(collection_id, principal)
            if found is not None:
                return found
        return None

    def open(self, collection_id: str, *, near: Sequence[str] = ()) -> xr.Dataset:
        return self._owner(collection_id).open(collection_id, near=near)

    def info(self, collection_id: str) -> CollectionInfo:
        return self._owner(collection_id).info(collection_id)

    def close(self) -> None:
        for source in self.sources:
            close = getattr(source, "close", None)
            if callable(close):
                close()
