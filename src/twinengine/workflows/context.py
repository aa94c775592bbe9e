"""What an engine process needs to know about the run it executes in, passed through a context variable."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from twinengine.auth.principal import Principal
from twinengine.collections import CollectionSource
from twinengine.workers.interrupt import Interrupt
from twinengine.workflows.executors import Executor
from twinengine.workflows.results import Asset, ResultStore

if TYPE_CHECKING:
    from twinengine.store.engine import Database

__all__ = ["RunContext", "current", "running"]


def _no_log(_level: str, _message: str) -> None:
    return None


def _no_progress(_done: int, _total: int) -> None:
    return None


@dataclass
class RunContext:
    run_id: str
    principal: Principal
    collections: CollectionSource
    results: ResultStore
    executor: Executor
    db: Database | None = None
    twin: str | None = None
    udf_timeout: float = 60.0
    udf_memory_bytes: int = 2 << 30
    log: Callable[[str, str], None] = _no_log
    compute_progress: Callable[[int, int], None] = _no_progress
    node: str | None = None
    assets: list[Asset] = field(default_factory=list)
    inputs: list[dict[str, Any]] = field(default_factory=list)
    models: list[dict[str, Any]] = field(default_factory=list)  # model versions ``predict`` used (provenance)
    state_writes: list[dict[str, Any]] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)  # properties of the run's results (their STAC item)
    services: dict[str, Any] = field(default_factory=dict)  # what the runtime lends processes (read_stream)
    interrupt: Interrupt = field(default_factory=Interrupt)  # fired when the run is canceled: app code stops
    max_array_elements: int | None = None  # most elements array_create/array_concat may build (None: any)
    near: tuple[str, ...] = ()  # lake endpoints near the run's site: its inputs are read from them first
    max_result_bytes: int | None = None  # most bytes its results may take together (synchronous runs; None: any)

    def note_state(self, twin_id: str, changes: list[Any]) -> None:
        """Values the run wrote to a twin's state (``ValueChange``s), with their uncertainty: they travel in
        the properties of the run's results (``twin:state``)."""
        written = self.outputs.setdefault("twin:state", {}).setdefault(twin_id, {})
        for change in changes:
            entry = {"kind": str(change.kind), "value": change.value, "unit": change.unit}
            if change.uncertainty is not None:
                entry["uncertainty"] = change.uncertainty.plain()
            if change.quality is not None:
                entry["quality"] = change.quality.model_dump()
            written[change.property] = entry

    def detach(self) -> None:
        """Forget the runner's callbacks once the run has ended: they belong to an object that holds this
        context, and the cycle would otherwise wait for the garbage collector."""
        self.log, self.compute_progress = _no_log, _no_progress

    def compute(self, *values: Any) -> tuple[Any, ...]:
        return self.executor.compute(*values, progress=self.compute_progress)

    def result_room(self) -> int | None:
        """Bytes its results may still take (None: no limit); 0 once the limit is reached."""
        if self.max_result_bytes is None:
            return None
        return max(0, self.max_result_bytes - sum(a.size for a in self.assets))

    def asset_name(self, extension: str) -> str:
        taken = {a.name for a in self.assets}
        name, n = f"result.{extension}", 1
        while name in taken:
            n += 1
            name = f"result-{n}.{extension}"
        return name


_CURRENT: ContextVar[RunContext | None] = ContextVar("twinengine_run", default=None)


def current() -> RunContext:
    ctx = _CURRENT.get()
    if ctx is None:
        raise RuntimeError("engine processes run only inside a workflow run")
    return ctx


def active() -> RunContext | None:
    """The run this thread computes, if any (an app process may also be called outside one)."""
    return _CURRENT.get()


@contextmanager
def running(ctx: RunContext) -> Iterator[RunContext]:
    token = _CURRENT.set(ctx)
    try:
        yield ctx
    finally:
        _CURRENT.reset(token)
