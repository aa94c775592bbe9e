"""The buffer daemon: seals retraining buffers whose count or time policy is due."""

from __future__ import annotations

import logging

from sqlalchemy.orm import Session

from twinengine.daemons.engine_parts import EngineParts
from twinengine.streams import buffers

__all__ = ["BufferSealer"]

log = logging.getLogger("twinengine.buffers")


class BufferSealer:
    def __init__(self, runtime: EngineParts, *, interval: float = 1.0) -> None:
        self.runtime = runtime
        self.interval = interval

    def run_once(self, session: Session) -> int:
        return buffers.evaluate(session, self.runtime.streams)

    def run_pass(self) -> int:
        with self.runtime.db.session() as session:
            return self.run_once(session)
