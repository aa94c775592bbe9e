"""What a function on arrival gets besides its records: ``ctx``.

A function runs in a worker process of its app, never in the engine. It may read ``ctx.twin_id``,
``ctx.twin_name``, ``ctx.function``, ``ctx.parameters``, ``ctx.state`` (or one value: ``ctx.reported(name)``,
``ctx.desired(name)``) and ``ctx.model``, and ask for effects: ``ctx.update_state(...)``, ``ctx.emit(...)``,
``ctx.start_workflow(...)``, ``ctx.publish(...)``. A state property the app does not declare is an error to
read (``UnknownProperty``), never a silent ``None``. ``FunctionContext.for_tests`` gives the app's own unit
tests a context with parameters and state from its manifest.
Effects are data: the engine checks them after the call returns and applies them in the transaction that
moves the function's checkpoint, so a call that is retried (at-least-once delivery) never applies them twice;
published records are appended just before that transaction (see ``twinengine.streams.publish``). A function
cannot reach the engine's store, files or network; what it needs comes through ``ctx``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from twinengine.twins.schemas import PropertyValue, TwinState

__all__ = ["FunctionContext", "Properties", "StateUpdate", "UnknownProperty"]


class UnknownProperty(KeyError):
    """Raised when a function reads (or, in a test context, writes) a state property its app does not declare:
    a misspelt or guessed name fails loudly instead of finding nothing."""

    __module__ = "twinengine.app"  # as app code imports it, and as a failure names it

    def __init__(self, name: str, declared: Iterable[str]) -> None:
        self.name, self.declared = name, sorted(declared)
        names = ", ".join(self.declared) or "none"
        super().__init__(f"{name!r} is not a state property of this app (its manifest declares: {names})")

    def __str__(self) -> str:
        return str(self.args[0])

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.name, self.declared)


def _base(name: str) -> str:
    """The declared property of a name: ``head`` of ``head[ow3]``."""
    return name.split("[", 1)[0]


class Properties(dict[str, "PropertyValue"]):
    """A twin's ``reported`` or ``desired`` values by property name (``level``; a keyed one by ``head[ow3]``),
    as ``ctx.state`` gives them. A name the app declares but nobody wrote yet is absent (``get`` gives
    ``None``); a name it does not declare raises ``UnknownProperty`` on ``[]``, ``get`` and ``in``."""

    def __init__(self, values: Mapping[str, PropertyValue], declared: frozenset[str]) -> None:
        super().__init__(values)
        self.declared = declared

    def _check(self, name: object) -> None:
        if isinstance(name, str) and _base(name) not in self.declared:
            raise UnknownProperty(name, self.declared)

    def __missing__(self, name: str) -> PropertyValue:
        self._check(name)
        raise KeyError(name)

    def __contains__(self, name: object) -> bool:
        self._check(name)
        return super().__contains__(name)

    def get(self, name: str, default: Any = None) -> Any:
        """The value object of ``name`` (``value``, ``unit``, ``timestamp``, ``revision``...), or ``default``
        when none was written yet."""
        self._check(name)
        return super().get(name, default)


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
    read_state: Callable[[], TwinState | None] = lambda: None  # the engine's snapshot (None: no state yet)
    properties: frozenset[str] | None = None  # the state properties the app declares; None: not checked
    check_writes: bool = False  # also refuse update_state of an undeclared property (the engine checks its own)
    updates: list[StateUpdate] = field(default_factory=list)
    applied: list[StateUpdate] = field(default_factory=list)  # earlier calls' updates, not committed yet
    events: list[dict[str, Any]] = field(default_factory=list)
    workflow_requests: list[dict[str, Any]] = field(default_factory=list)
    checked_requests: int = 0
    published: list[dict[str, Any]] = field(default_factory=list)  # {"stream": name, "records": [...]}
    checked_published: int = 0
    _overlay: tuple[int, Any] | None = field(default=None, repr=False)  # (updates laid over, the state then)

    @property
    def state(self) -> TwinState:
        """The twin's state as the engine handed it to this batch, with what earlier calls of the batch reported
        laid over it: ``state.reported`` and ``state.desired`` map a property's name to its value object
        (``.value``, ``.unit``, ``.timestamp``, ``.revision``), ``state.keyed("head")`` a keyed property's
        values by key, ``state.revision`` the revision read. A property nobody wrote yet is absent
        (``state.reported.get("level")`` is ``None``); one the app does not declare raises ``UnknownProperty``."""
        pending = self.applied + self.updates
        if self._overlay is None or self._overlay[0] > len(pending):
            self._overlay = (0, self._checked(self.read_state()))
        done, current = self._overlay
        if done == len(pending):
            return current
        from twinengine.twins.schemas import PropertyValue

        reported = dict(current.reported)
        for update in pending[done:]:  # only what was reported since the last look
            for name, value in update.values.items():
                known = reported.get(name)
                reported[name] = PropertyValue(value=value, unit=known.unit if known else None,
                                               timestamp=update.timestamp or datetime.now(UTC),
                                               revision=current.revision or 0)
        current = self._checked(current.model_copy(update={"reported": reported}))
        self._overlay = (len(pending), current)
        return current

    def reported(self, name: str, default: Any = None) -> Any:
        """The value the twin reports for property ``name`` (``"level"``, a keyed one as ``"head[ow3]"``), or
        ``default`` when none was reported yet; an undeclared name raises ``UnknownProperty``."""
        found = self.state.reported.get(name)
        return default if found is None else found.value

    def desired(self, name: str, default: Any = None) -> Any:
        """The value users desire for property ``name`` (``"alert_threshold"``), or ``default`` when none was
        desired yet; an undeclared name raises ``UnknownProperty``."""
        found = self.state.desired.get(name)
        return default if found is None else found.value

    def _checked(self, state: TwinState | None) -> TwinState:
        """``state`` (an empty one for a twin without state), its values in ``Properties`` that know what the
        app declares."""
        from twinengine.twins.schemas import TwinState

        if state is None:
            state = TwinState(twin_id=self.twin_id, revision=None, at=None, reported={}, desired={}, delta={})
        if self.properties is None:
            return state
        return state.model_copy(update={"reported": Properties(state.reported, self.properties),
                                        "desired": Properties(state.desired, self.properties)})

    @classmethod
    def for_tests(cls, app: str | Path = ".", *, function: str = "", parameters: Mapping[str, Any] | None = None,
                  reported: Mapping[str, Any] | None = None, desired: Mapping[str, Any] | None = None,
                  twin_name: str = "test-twin", model: Any = None) -> FunctionContext:
        """A context for the app's own unit tests, from its folder (``app``, holding ``twinapp.yaml``; a path
        inside it will do): the manifest's parameter defaults under ``parameters``, the twin's state from plain
        values (``reported={"level": 1.2}``, ``desired={"alert_threshold": 1.8}``), and every state property
        read or written checked against the manifest (an undeclared one raises ``UnknownProperty``, as a read
        does in the engine). What the function asked for is in ``updates``, ``events``, ``workflow_requests``
        and ``published``."""
        import yaml

        folder = Path(app).resolve()
        while not (folder / "twinapp.yaml").is_file():
            if folder.parent == folder:
                raise FileNotFoundError(f"no twinapp.yaml in {Path(app).resolve()} or a folder above it")
            folder = folder.parent
        manifest = yaml.safe_load((folder / "twinapp.yaml").read_text()) or {}
        declared = frozenset(manifest.get("state") or {})
        schema = (manifest.get("parameters") or {}).get("properties") or {}
        given = {k: v["default"] for k, v in schema.items() if isinstance(v, dict) and "default" in v}
        from twinengine.twins.schemas import PropertyValue, TwinState

        now = datetime.now(UTC)

        def values(kind: str, plain: Mapping[str, Any] | None) -> dict[str, PropertyValue]:
            found = {}
            for name, value in (plain or {}).items():
                if _base(name) not in declared:
                    raise UnknownProperty(name, declared)
                unit = ((manifest.get("state") or {}).get(_base(name)) or {}).get("unit")
                found[name] = PropertyValue(value=value, unit=unit, timestamp=now, revision=1)
            return found

        snapshot = TwinState(twin_id=twin_name, revision=1 if reported or desired else None, at=None,
                             reported=values("reported", reported), desired=values("desired", desired), delta={})
        return cls(twin_id=twin_name, twin_name=twin_name, function=function,
                   parameters=given | dict(parameters or {}), model=model, read_state=lambda: snapshot,
                   properties=declared, check_writes=True)

    def update_state(self, *, timestamp: datetime | None = None, message: str | None = None, **values: Any) -> None:
        """Report state properties (one revision per call), validated against the app like any write."""
        if self.check_writes and self.properties is not None:
            for name in values:
                if _base(name) not in self.properties:
                    raise UnknownProperty(name, self.properties)
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
