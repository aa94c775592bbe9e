"""Workflow results kept in the lake: every asset a run keeps is also uploaded (checksummed while it flows)
as a file of the run's dataset ``results:<run id>``, inside the container ``results:workflow-results`` (its
STAC collection). The dataset links the run's W3C PROV document, and each asset records its lake DID.

The local result store stays the working copy the openEO API serves with range requests. When the lake refuses
(the endpoint is missing, full or down) the run still keeps its result locally, with a warning in the log, and
its asset carries no ``did``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from twinengine.auth.principal import SYSTEM
from twinengine.errors import TwinEngineError
from twinengine.lake.context import Lake
from twinengine.lake.dids import add_did, attach
from twinengine.lake.models import Did
from twinengine.lake.schemas import DidType
from twinengine.lake.uploads import Expected, upload_file
from twinengine.store.engine import Database
from twinengine.workflows.results import Asset, ResultStore

__all__ = ["CONTAINER", "SCOPE", "LakeResultStore", "run_dataset"]

log = logging.getLogger("twinengine.workflows")

SCOPE = "results"
CONTAINER = f"{SCOPE}:workflow-results"


def run_dataset(run_id: str) -> str:
    return f"{SCOPE}:{run_id}"


class LakeResultStore(ResultStore):
    """``local`` keeps the files; each kept asset is registered in the lake on ``endpoint`` too, or on the
    endpoint a run's staging chose for its outputs (near the user's data: ``send_outputs``)."""

    def __init__(self, local: ResultStore, db: Database, lake: Lake, endpoint: str) -> None:
        self.local, self.db, self.lake, self.endpoint = local, db, lake, endpoint
        self.outputs: dict[str, str] = {}  # run id -> endpoint its outputs go to, when not ``endpoint``

    def send_outputs(self, run_id: str, endpoint: str) -> None:
        """Register the run's kept assets on ``endpoint`` (the one that held its inputs)."""
        self.outputs[run_id] = endpoint
        while len(self.outputs) > 10_000:  # runs that ended without being described: forget the oldest
            self.outputs.pop(next(iter(self.outputs)))

    def _endpoint(self, run_id: str) -> str:
        return self.outputs.get(run_id, self.endpoint)

    def scratch(self, run_id: str) -> Path:
        return self.local.scratch(run_id)

    def path(self, run_id: str, name: str) -> Path:
        return self.local.path(run_id, name)

    def delete(self, run_id: str) -> None:
        self.local.delete(run_id)  # the lake copy is kept: lake rules and lifetimes decide about it

    def _dataset(self, run_id: str) -> str:
        dataset = run_dataset(run_id)
        for attempt in range(2):
            try:
                with self.db.session() as session:
                    add_did(session, principal=SYSTEM, did=CONTAINER, type=DidType.CONTAINER, exist_ok=True,
                            meta={"kind": "workflow results"})
                    add_did(session, principal=SYSTEM, did=dataset, type=DidType.DATASET, exist_ok=True,
                            meta={"workflow_run": run_id, "provenance": f"/api/v1/runs/{run_id}/provenance"})
                break
            except IntegrityError:  # runs keeping their first results at once both made the container:
                if attempt:  # one of them won, and the other finds it on its second try
                    raise
        return dataset

    def _register(self, run_id: str, asset: Asset) -> Asset:
        dataset = self._dataset(run_id)
        did = f"{dataset}/{asset.name}"
        upload_file(self.db, self.lake, principal=SYSTEM, path=self.local.path(run_id, asset.name), did=did,
                    endpoint=self._endpoint(run_id), expected=Expected(sha256=asset.sha256, bytes=asset.size),
                    dataset=dataset, media_type=asset.media_type,
                    meta={"roles": list(asset.roles), "format": asset.format, "workflow_run": run_id})
        with self.db.session() as session:  # in the collection once its bytes are there: an arrival
            attach(session, principal=SYSTEM, parent=CONTAINER, children=[dataset])
        return Asset(name=asset.name, media_type=asset.media_type, size=asset.size, sha256=asset.sha256,
                     format=asset.format, roles=asset.roles, did=did)

    def _registered(self, run_id: str, asset: Asset) -> Asset:
        try:
            return self._register(run_id, asset)
        except TwinEngineError as exc:  # the result is kept (locally, checksummed); the lake copy is missing
            log.warning("run %s: %s not registered in the lake on %s: %s", run_id, asset.name,
                        self._endpoint(run_id), exc.message)
            return asset

    def describe(self, run_id: str, properties: dict[str, Any]) -> None:
        """Merge ``properties`` into the run dataset's STAC properties (``meta.properties``)."""
        self.outputs.pop(run_id, None)  # described once its results are all kept
        with self.db.session() as session:
            row = session.scalar(select(Did).where(Did.scope == SCOPE, Did.name == run_id))
            if row is None:  # nothing was kept in the lake: no item to describe
                return
            meta = dict(row.meta or {})
            meta["properties"] = {**(meta.get("properties") or {}), **properties}
            row.meta = meta

    def keep(self, run_id: str, path: Path, *, name: str, media_type: str, fmt: str) -> Asset:
        return self._registered(run_id, self.local.keep(run_id, path, name=name, media_type=media_type, fmt=fmt))

    def link(self, source_run: str, run_id: str, asset: Asset) -> Asset:
        """A cache hit: the same bytes become a file of this run's dataset too (a no-op upload if registered)."""
        return self._registered(run_id, self.local.link(source_run, run_id, asset))
