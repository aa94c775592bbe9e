"""What the background loops use of the running engine. The runtime builds the engine and starts these loops,
so they name its parts here instead of importing it: ``runtime.Runtime`` is one ``EngineParts``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from twinengine.config import Settings
    from twinengine.lake.context import Lake
    from twinengine.ml.engine import MLEngine
    from twinengine.store.engine import Database
    from twinengine.streams.compaction import SegmentSink
    from twinengine.streams.hub import StreamHub
    from twinengine.streams.notify import Notifier
    from twinengine.workers.apps import AppCode

__all__ = ["EngineParts"]


class EngineParts(Protocol):
    @property
    def settings(self) -> Settings: ...

    @property
    def db(self) -> Database: ...

    @property
    def data_dir(self) -> Path: ...

    @property
    def lake(self) -> Lake: ...

    @property
    def notifier(self) -> Notifier: ...

    @property
    def streams(self) -> StreamHub: ...

    @property
    def segment_sink(self) -> SegmentSink: ...

    @property
    def segment_root(self) -> Path: ...

    @property
    def app_code(self) -> AppCode: ...

    @property
    def ml(self) -> MLEngine: ...

    def start_stream_workflow(self, session: Session, twin_id: str, workflow: str, parameters: dict[str, Any],
                              event_key: str) -> str | None: ...
