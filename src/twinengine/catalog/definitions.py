"""What an app version's workflows take and do: each process graph with its parameters (openEO parameter
objects), read from the published archive, so a form and the run's graph can be drawn without the app."""

from __future__ import annotations

import io
import json
import tarfile

from twinengine.catalog.models import AppVersion
from twinengine.catalog.schemas import WorkflowDefinition
from twinengine.catalog.service import get_archive, manifest_of
from twinengine.store.blobs import BlobStore

__all__ = ["WorkflowDefinition", "workflow_definitions"]

_CACHE: dict[str, list[WorkflowDefinition]] = {}


def workflow_definitions(blobs: BlobStore, row: AppVersion) -> list[WorkflowDefinition]:
    """The version's workflows in manifest order; cached by archive checksum (versions are immutable)."""
    cached = _CACHE.get(row.archive_sha256)
    if cached is not None:
        return cached
    manifest = manifest_of(row)
    out = []
    with tarfile.open(fileobj=io.BytesIO(get_archive(blobs, row)), mode="r:gz") as tar:
        for name, spec in manifest.workflows.items():
            member = tar.extractfile(spec.process_graph)
            graph = json.loads(member.read()) if member is not None else {}
            parameters = graph.get("parameters") if isinstance(graph, dict) else None
            out.append(WorkflowDefinition(
                name=name, description=spec.description,
                summary=graph.get("summary") if isinstance(graph, dict) else None,
                parameters=[p for p in parameters or [] if isinstance(p, dict) and "name" in p],
                process_graph=graph.get("process_graph", {}) if isinstance(graph, dict) else {},
                initial_state=dict(spec.initial_state),
                state_titles={prop: declared.title for props in spec.start_sources().values() for prop in props
                              if (declared := manifest.state.get(prop)) is not None and declared.title}))
    if len(_CACHE) >= 256:
        _CACHE.clear()
    _CACHE[row.archive_sha256] = out
    return out
