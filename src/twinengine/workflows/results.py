"""Where run results are kept: a small interface with a local implementation under ``<data_dir>/results``.

Every asset is registered with its sha256 and size (registered means checksummed); the data lake replaces
the local store with one that also writes to its storage endpoints (``twinengine.workflows.lake_results``).
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Asset", "LocalResultStore", "ResultStore", "describe_results", "file_sha256"]


@dataclass(frozen=True)
class Asset:
    """One stored output of a run."""

    name: str
    media_type: str
    size: int
    sha256: str
    format: str
    roles: tuple[str, ...] = ("data",)
    did: str | None = None  # the lake file (scope:name) holding it, when results are kept in the lake
    # where and when its data lie, when they are a located cube: ``bbox`` (west, south, east, north in
    # EPSG:4326) and ``start_datetime``/``end_datetime`` (ISO 8601), for the results' STAC item
    extent: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        data = {"name": self.name, "type": self.media_type, "size": self.size, "sha256": self.sha256,
                "format": self.format, "roles": list(self.roles)}
        return data | ({"did": self.did} if self.did else {}) | ({"extent": self.extent} if self.extent else {})

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Asset:
        return cls(name=data["name"], media_type=data["type"], size=int(data["size"]), sha256=data["sha256"],
                   format=data.get("format", ""), roles=tuple(data.get("roles", ("data",))), did=data.get("did"),
                   extent=data.get("extent"))


class ResultStore:
    """Stores files a run produced, by run id and asset name."""

    def scratch(self, run_id: str) -> Path:
        """A folder for writing an asset before it is kept."""
        raise NotImplementedError

    def keep(self, run_id: str, path: Path, *, name: str, media_type: str, fmt: str) -> Asset:
        raise NotImplementedError

    def path(self, run_id: str, name: str) -> Path:
        raise NotImplementedError

    def link(self, source_run: str, run_id: str, asset: Asset) -> Asset:
        """Make ``asset`` of ``source_run`` an asset of ``run_id`` too (cache hits)."""
        raise NotImplementedError

    def delete(self, run_id: str) -> None:
        raise NotImplementedError

    def describe(self, run_id: str, properties: dict[str, Any]) -> None:
        """Record ``properties`` of the run's results where they are catalogued (the lake's STAC item); a
        store that catalogues nothing keeps them nowhere."""
        return None


def file_sha256(path: Path) -> str:
    """The file's SHA-256, read in blocks (what an asset's ``sha256`` is)."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class LocalResultStore(ResultStore):
    """Files under ``root/<run id>/<asset name>``, written to a temp name, fsynced, then renamed."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _dir(self, run_id: str) -> Path:
        if not run_id or "/" in run_id or run_id.startswith("."):
            raise ValueError(f"bad run id {run_id!r}")
        return self.root / run_id

    def scratch(self, run_id: str) -> Path:
        folder = self._dir(run_id) / ".scratch"
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def keep(self, run_id: str, path: Path, *, name: str, media_type: str, fmt: str) -> Asset:
        target = self._dir(run_id) / name
        target.parent.mkdir(parents=True, exist_ok=True)
        with path.open("rb") as fh:
            os.fsync(fh.fileno())
        os.replace(path, target)
        return Asset(name=name, media_type=media_type, size=target.stat().st_size, sha256=file_sha256(target),
                     format=fmt)

    def path(self, run_id: str, name: str) -> Path:
        if "/" in name or name.startswith("."):
            raise FileNotFoundError(name)
        return self._dir(run_id) / name

    def link(self, source_run: str, run_id: str, asset: Asset) -> Asset:
        source = self.path(source_run, asset.name)
        target = self._dir(run_id) / asset.name
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():
            try:
                os.link(source, target)
            except OSError:
                shutil.copyfile(source, target)
        return asset

    def delete(self, run_id: str) -> None:
        shutil.rmtree(self._dir(run_id), ignore_errors=True)


def describe_results(ctx: Any) -> None:
    """After a run finished: the properties it gathered (``RunContext.outputs``) go to its results' catalogue
    entry. A failure to record them is logged; the run stays finished."""
    from twinengine.quality.pedigree import input_quality

    if ctx.inputs:  # what the results were computed from, and how good it was
        ctx.outputs["twin:input_quality"] = input_quality(ctx.inputs)
    if not ctx.outputs or not any(a.did for a in ctx.assets):
        return
    try:
        ctx.results.describe(ctx.run_id, ctx.outputs)
    except Exception as exc:  # the run and its files are kept; only the description is missing
        logging.getLogger("twinengine.workflows").warning("run %s: results not described: %s", ctx.run_id, exc)
