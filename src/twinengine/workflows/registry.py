"""The process registry: openEO processes by namespace, each an implementation with its openEO spec.

Three sources fill it: the openEO standard processes implemented on xarray/Dask by openeo-processes-dask
with the specification's own specs (namespace ``None``: predefined, see ``workflows.standard``), the
engine's own processes (``load_collection``, ``save_result``, ``run_udf``, ``update_twin_state``, ...), and
app processes published with a DT application (namespace =
the app's name, resolved per app version through ``AppProcessSource``).
"""

from __future__ import annotations

import copy
import inspect
import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from twinengine.errors import ProcessGraphInvalid, ProcessUnsupported

__all__ = ["USER_NAMESPACE", "AppProcessSource", "ProcessEntry", "ProcessRegistry", "standard_processes"]

USER_NAMESPACE = "user"

log = logging.getLogger("twinengine.workflows")

SPECIAL_KWARGS = ("axis", "keepdims", "source_transposed_axis", "context", "dim_labels")


@dataclass(frozen=True)
class ProcessEntry:
    """One process: its openEO spec (id, summary, parameters, returns) and the callable behind it.

    ``implementation`` takes the node's arguments as keywords. ``cacheable`` is False for processes with
    side effects (writing twin state), which run on every execution; ``accepts`` lists extra keywords
    (``axis``, ``context``...) a callback caller may pass and the implementation wants.
    """

    id: str
    spec: dict[str, Any]
    implementation: Callable[..., Any]
    namespace: str | None = None
    cacheable: bool = True
    accepts: frozenset[str] = field(default_factory=frozenset)
    version: str | None = None
    process: dict[str, Any] | None = None  # the stored graph of a user-defined process

    @property
    def parameters(self) -> list[dict[str, Any]]:
        params: list[dict[str, Any]] = self.spec.get("parameters") or []
        return params

    def public_spec(self) -> dict[str, Any]:
        spec = dict(self.spec)
        if self.namespace:
            spec["namespace"] = self.namespace
        return spec


class AppProcessSource(Protocol):
    """Where app processes come from (the catalogue's published versions)."""

    def find(self, namespace: str, process_id: str, version: str | None) -> ProcessEntry | None: ...

    def all(self) -> list[ProcessEntry]: ...


def _accepts(func: Callable[..., Any]) -> frozenset[str]:
    try:
        names = inspect.signature(func).parameters
    except (TypeError, ValueError):
        return frozenset()
    return frozenset(n for n in SPECIAL_KWARGS if n in names)


class ProcessRegistry:
    """Processes by (namespace, id). Predefined processes have namespace ``None``."""

    def __init__(self, entries: Iterable[ProcessEntry] = (), *, apps: AppProcessSource | None = None,
                 base: Callable[[], Iterable[ProcessEntry]] | None = None) -> None:
        self._entries: dict[tuple[str | None, str], ProcessEntry] = {}
        self._lock = threading.Lock()
        # ``base``: processes loaded on first use, beneath any added meanwhile (the openEO standard processes
        # import openeo-processes-dask, a second of an engine's start that no first request should wait for).
        # A list, so the views of ``with_user_processes`` share whether it is loaded.
        self._base: list[Callable[[], Iterable[ProcessEntry]]] = [base] if base is not None else []
        self.apps = apps
        self.user: dict[str, ProcessEntry] = {}
        self.user_refused: dict[str, str] = {}
        for entry in entries:
            self.add(entry)

    def _loaded(self) -> dict[tuple[str | None, str], ProcessEntry]:
        """The entries, with the base loaded into them if it was not yet."""
        if self._base:
            with self._lock:
                if self._base:
                    for entry in self._base[0]():
                        self._entries.setdefault((entry.namespace, entry.id), entry)
                    self._base.clear()
        return self._entries

    def add(self, entry: ProcessEntry) -> None:
        with self._lock:
            self._entries[(entry.namespace, entry.id)] = entry

    def register(self, spec: dict[str, Any], implementation: Callable[..., Any], *, cacheable: bool = True,
                 namespace: str | None = None) -> ProcessEntry:
        entry = ProcessEntry(id=str(spec["id"]), spec=spec, implementation=implementation, namespace=namespace,
                             cacheable=cacheable, accepts=_accepts(implementation))
        self.add(entry)
        return entry

    def with_user_processes(self, entries: Iterable[ProcessEntry], refused: dict[str, str] | None = None,
                            ) -> ProcessRegistry:
        """A view for one user: these registered processes plus that user's user-defined processes.

        ``refused`` maps the ids of user-defined processes that may not run (recursion) to the reason.
        """
        view = copy.copy(self)
        view.user = {e.id: e for e in entries}
        view.user_refused = dict(refused or {})
        return view

    def get(self, process_id: str, namespace: str | None = None, *, app_version: str | None = None,
            node: str | None = None) -> ProcessEntry:
        """The process for a node; raises ProcessUnsupported naming the node when there is none.

        Without a namespace a user-defined process of that id comes first (openEO), then the predefined one.
        """
        at = f"node {node!r}: " if node else ""
        if namespace == USER_NAMESPACE or (namespace is None and (process_id in self.user
                                                                  or process_id in self.user_refused)):
            if process_id in self.user_refused:
                raise ProcessGraphInvalid(f"{at}{self.user_refused[process_id]}", node=node)
            user = self.user.get(process_id)
            if user is None:
                raise ProcessUnsupported(f"{at}there is no user-defined process {process_id!r}", node=node)
            return user
        entries = self._loaded()
        if namespace in (None, "backend", "predefined"):
            entry = entries.get((None, process_id))
        else:
            entry = entries.get((namespace, process_id))
            if entry is None and self.apps is not None:
                entry = self.apps.find(namespace, process_id, app_version)
        if entry is None:
            where = f" in namespace {namespace!r}" if namespace not in (None, "backend", "predefined") else ""
            raise ProcessUnsupported(f"{at}process {process_id!r}{where} is not supported by this engine",
                                     node=node)
        return entry

    def list(self, namespace: str | None = None, *, include_apps: bool = True) -> list[ProcessEntry]:
        entries = [e for (ns, _), e in self._loaded().items() if namespace is None or ns == namespace]
        if include_apps and self.apps is not None:
            entries += [e for e in self.apps.all() if namespace is None or e.namespace == namespace]
        return sorted(entries, key=lambda e: (e.namespace or "", e.id))


def standard_processes() -> list[ProcessEntry]:
    """The openEO standard processes the engine offers, each with its official spec (``workflows.standard``)."""
    from twinengine.workflows.standard import implementations

    return [ProcessEntry(id=pid, spec=spec, implementation=func, accepts=_accepts(func))
            for pid, (spec, func) in implementations().items()]
