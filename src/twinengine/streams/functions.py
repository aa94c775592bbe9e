"""Functions on arrival: load an app's code once per worker, decide which records trigger a call, and the
context a function gets (state updates, events, workflow requests, its warm model).

An app version's archive is unpacked once under ``<data_dir>/apps/<sha256>`` and its package imported
from there. One version of a package is loaded at a time: a twin on another version swaps it (and its
modules) out, which is also how code changes reach warm workers.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from twinengine.catalog.archive import unpack
from twinengine.catalog.manifest import FunctionTrigger, Manifest
from twinengine.store.blobs import BlobStore

__all__ = ["AppCode", "Call", "FunctionContext", "StateUpdate", "matches", "select_calls"]

_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "gt": lambda a, b: a > b, "ge": lambda a, b: a >= b, "lt": lambda a, b: a < b, "le": lambda a, b: a <= b,
    "eq": lambda a, b: a == b, "ne": lambda a, b: a != b}


def matches(trigger: FunctionTrigger, record: dict[str, Any]) -> bool:
    """Does a record satisfy a condition trigger? A missing (null) field never does."""
    value = record.get(trigger.field or "")
    return value is not None and _OPS[trigger.op or "eq"](value, trigger.value)


Call = tuple[list[dict[str, Any]], int]  # the records of one call, and how many records it consumes through


def select_calls(trigger: FunctionTrigger, records: list[dict[str, Any]]) -> tuple[list[Call], int]:
    """Split available records into calls; returns the calls and how many records they consume (a count
    window waits for its last records; a time window is decided by the caller, which passes all)."""
    if trigger.kind == "record":
        return [([r], i + 1) for i, r in enumerate(records)], len(records)
    if trigger.kind == "count":
        size = trigger.count or 1
        full = len(records) // size * size
        return [(records[i: i + size], i + size) for i in range(0, full, size)], full
    if trigger.kind == "condition":
        return [([r], i + 1) for i, r in enumerate(records) if matches(trigger, r)], len(records)
    return ([(records, len(records))] if records else []), len(records)


class AppCode:
    """Imports app packages from their stored archives and hands out their functions, cached."""

    def __init__(self, blobs: BlobStore, root: Path) -> None:
        self.blobs = blobs
        self.root = root
        self._lock = threading.RLock()
        self._loaded: dict[str, str] = {}  # package -> archive sha256 currently imported
        self._cache: dict[tuple[str, str], Callable[..., Any]] = {}

    def _folder(self, sha256: str) -> Path:
        folder = self.root / sha256
        if not folder.is_dir():
            self.root.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(dir=self.root, prefix=".unpack-"))
            unpack(self.blobs.get(sha256), tmp, max_unpacked_bytes=1 << 31)
            with contextlib.suppress(OSError):  # another worker got there first
                os.replace(tmp, folder)
        return folder

    def resolve(self, sha256: str, manifest: Manifest, entrypoint: str) -> Callable[..., Any]:
        """The callable ``module:function`` of the app version with archive ``sha256``."""
        with self._lock:
            cached = self._cache.get((sha256, entrypoint))
            if cached is not None and self._loaded.get(manifest.package_name) == sha256:
                return cached
            package = manifest.package_name
            if self._loaded.get(package) not in (None, sha256):
                self._swap_out(package)
            folder = str(self._folder(sha256))
            if folder not in sys.path:
                sys.path.insert(0, folder)
            if package in sys.modules and not str(getattr(sys.modules[package], "__file__", "")).startswith(folder):
                self._swap_out(package)
            module_name, _, attr = entrypoint.partition(":")
            importlib.invalidate_caches()
            function = getattr(importlib.import_module(module_name), attr)
            self._loaded[package] = sha256
            self._cache[(sha256, entrypoint)] = function
            return function  # type: ignore[no-any-return]

    def _swap_out(self, package: str) -> None:
        for name in [n for n in sys.modules if n == package or n.startswith(package + ".")]:
            del sys.modules[name]
        old = self._loaded.pop(package, None)
        if old is not None:
            folder = str(self.root / old)
            if folder in sys.path:
                sys.path.remove(folder)
        self._cache = {k: v for k, v in self._cache.items() if k[0] != old}


@dataclass
class StateUpdate:
    values: dict[str, Any]
    timestamp: datetime | None
    message: str | None


@dataclass
class FunctionContext:
    """What a function gets besides its records. Effects are applied after the call succeeds, in the same
    transaction as the consumer checkpoint, so a retried call never applies them twice."""

    twin_id: str
    twin_name: str
    function: str
    parameters: dict[str, Any]
    model: Any = None
    read_state: Callable[[], Any] = lambda: None
    updates: list[StateUpdate] = field(default_factory=list)
    applied: list[StateUpdate] = field(default_factory=list)  # accepted in this transaction, not committed yet
    events: list[dict[str, Any]] = field(default_factory=list)
    workflow_requests: list[dict[str, Any]] = field(default_factory=list)
    checked_requests: int = 0

    @property
    def state(self) -> Any:
        """The twin's state now (``TwinState``), including what earlier calls of this batch reported."""
        current = self.read_state()
        pending = self.applied + self.updates
        if not pending or current is None:
            return current
        from twinengine.twins.schemas import PropertyValue

        reported = dict(current.reported)
        for update in pending:
            for name, value in update.values.items():
                known = reported.get(name)
                reported[name] = PropertyValue(value=value, unit=known.unit if known else None,
                                               timestamp=update.timestamp or datetime.now(UTC),
                                               revision=current.revision or 0)
        return current.model_copy(update={"reported": reported})

    def update_state(self, *, timestamp: datetime | None = None, message: str | None = None, **values: Any) -> None:
        """Report state properties (one revision per call), validated against the app like any write."""
        self.updates.append(StateUpdate(values=values, timestamp=timestamp, message=message))

    def emit(self, kind: str, **data: Any) -> None:
        """Record an event for the twin (``GET /twins/{twin}/functions/events``, ``client.streams.events``)."""
        self.events.append({"kind": kind, **data})

    def start_workflow(self, name: str, **parameters: Any) -> None:
        """Ask for a run of one of the app's workflows, started when the call's effects commit."""
        self.workflow_requests.append({"workflow": name, "parameters": parameters})
