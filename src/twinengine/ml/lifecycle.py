"""What the retraining checks and the lifecycle service ask of the AI lifecycle engine.

It lives below ``engine``: ``retrain`` and ``service`` name this interface instead of ``MLEngine``, so the
engine, which runs the retraining checks, imports them without them importing it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from twinengine.catalog.manifest import Manifest
from twinengine.twins.models import Twin

if TYPE_CHECKING:  # MLflow loads with the registry, when the AI lifecycle is first used
    from twinengine.ml.registry import ModelRegistry
    from twinengine.ml.usage import Hold
    from twinengine.streams.hub import StreamHub
    from twinengine.workers.service import AppWorkers

__all__ = ["Lifecycle", "TwinApp"]


@dataclass(frozen=True)
class TwinApp:
    """A twin's app version as the lifecycle uses it: the workers of its code and its manifest."""

    workers: AppWorkers
    manifest: Manifest
    archive_sha256: str
    ref: str  # name@version


class Lifecycle(Protocol):
    """The AI lifecycle engine as its retraining checks and service see it (``MLEngine`` is one)."""

    @property
    def registry(self) -> ModelRegistry: ...

    def app_of(self, twin: Twin) -> TwinApp: ...

    def read_records(self, twin: Twin, manifest: Manifest, selection: dict[str, Any]) -> tuple[list[dict[str, Any]],
                                                                                               dict[str, Any]]: ...

    def stream_hub(self) -> StreamHub: ...

    @property
    def hold(self) -> Hold | None: ...
