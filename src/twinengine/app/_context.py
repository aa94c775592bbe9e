"""What a function on arrival gets besides its records: ``ctx``.

A function runs in a worker process of its app, never in the engine. It may read ``ctx.twin_id``,
``ctx.twin_name``, ``ctx.function``, ``ctx.parameters``, ``ctx.state`` and ``ctx.model``, and ask for
effects: ``ctx.update_state(...)``, ``ctx.emit(...)``, ``ctx.start_workflow(...)``, ``ctx.publish(...)``.
Effects are data: the engine checks them after the call returns and applies them in the transaction that
moves the function's checkpoint, so a call that is retried (at-least-once delivery) never applies them twice;
published records are appended just before that transaction (see ``twinengine.streams.publish``). A function
cannot reach the engine's store, files or network; what it needs comes through ``ctx``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

__all__ = ["FunctionContext", "StateUpdate"]


@dataclass
class StateUpdate:
    """One ``update_state`` call: the reported values, their timestamp and the revision's message; ``place``
    is the ``file:line`` that called it, so a write the engine refuses can say where it came from."""

    values: dict[str, Any]
    timestamp: datetime | None
    message: str | None
    place: str | None = field(default=None, compare=False)


@dataclass
class FunctionContext:
    """The context of one function call (see the module docstring for what a function may do)."""

    twin_id: str
    twin_name: str
    function: str
    parameters: dict[str, Any]
    model: Any = None
    read_state: Callable[[], Any] = lambda: None
    updates: list[StateUpdate] = field(default_factory=list)
    applied: list[StateUpdate] = field(default_factory=list)  # earlier calls' updates, not committed yet
    events: list[dict[str, Any]] = field(default_factory=list)
    workflow_requests: list[dict[str, Any]] = field(default_factory=list)
    checked_requests: int = 0
    published: list[dict[str, Any]] = field(default_factory=list)  # {"stream": name, "records": [...]}
    checked_published: int = 0
    _overlay: tuple[int, Any] | None = field(default=None, repr=False)  # (updates laid over, the state then)

    @property
    def state(self) -> Any:
        """The twin's state (``TwinState``: ``reported`` and ``desired`` values by property) as the engine
        handed it to this batch, with what earlier calls of the batch reported laid over it."""
        pending = self.applied + self.updates
        if self._overlay is None or self._overlay[0] > len(pending):
            self._overlay = (0, self.read_state())
        done, current = self._overlay
        if done == len(pending) or current is None:
            return current
        from twinengine.twins.schemas import PropertyValue

        reported = dict(current.reported)
        for update in pending[done:]:  # only what was reported since the last look
            for name, value in update.values.items():
                known = reported.get(name)
                reported[name] = PropertyValue(value=value, unit=known.unit if known else None,
                                               timestamp=update.timestamp or datetime.now(UTC),
                                               revision=current.revision or 0)
        current = current.model_copy(update={"reported": reported})
        self._overlay = (len(pending), current)
        return current

    def update_state(self, *, timestamp: datetime | None = None, message: str | None = None, **values: Any) -> None:
        """Report state properties (one revision per call), validated against the app like any write."""
        caller = sys._getframe(1)
        self.updates.append(StateUpdate(values=values, timestamp=timestamp, message=message,
                                        place=f"{caller.f_code.co_filename}:{caller.f_lineno}"))

    def emit(self, kind: str, **data: Any) -> None:
        """Record an event for the twin (``GET /twins/{twin}/functions/events``, ``client.streams.events``)."""
        self.events.append({"kind": kind, **data})

    def publish(self, stream: str, records: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> None:
        """Append records (one mapping, or several) to another stream of this twin, one the function declares
        under ``publishes``; they are validated against that stream's fields (array fields may be numpy
        arrays) and appended durably once the call returns, and the target stream's functions run on them."""
        batch = [records] if isinstance(records, Mapping) else list(records)
        if not all(isinstance(r, Mapping) for r in batch):
            raise TypeError(f"publish({stream!r}, ...): records are mappings of field to value (one, or a list)")
        self.published.append({"stream": stream, "records": [dict(r) for r in batch]})

    def start_workflow(self, name: str, **parameters: Any) -> None:
        """Ask for a run of one of the app's workflows, started when the call's effects commit."""
        self.workflow_requests.append({"workflow": name, "parameters": parameters})
