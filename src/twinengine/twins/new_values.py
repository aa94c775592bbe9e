"""One value a write appends to a twin's state log, as the write path passes it on: checked
(``state_checks``), numbered and stored (``log_writes``) and announced (``state``). It lives below all
three so none of them imports another for its type.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from twinengine.twins.schemas import StateKind

__all__ = ["NewValue"]


@dataclass(frozen=True)
class NewValue:
    property: str
    kind: StateKind
    value: Any
    unit: str | None
    timestamp: datetime
    uncertainty: dict[str, Any] | None = None  # in ``unit``, as Uncertainty.plain() gives it
    quality: dict[str, Any] | None = None  # the inputs it was computed from were suspect or bad (pedigree)
