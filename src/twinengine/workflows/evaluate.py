"""Run a parsed process graph: nodes in dependency order, callbacks as callables, per-node hooks.

Evaluation is demand-driven from the result node, so a node whose content key is cached is not run and
neither are the nodes that only feed it. Node results are passed along as they are (lazy, Dask-backed
cubes stay lazy until a process materialises them through the executor).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import TypeAdapter, ValidationError

from twinengine.errors import ProcessFailed, ProcessParameterMissing, TwinEngineError
from twinengine.workflows.graph import Graph, Node, references
from twinengine.workflows.registry import ProcessEntry, ProcessRegistry

__all__ = ["Canceled", "Evaluator", "NodeHooks", "NullHooks", "ResultCache", "RetryPolicy", "coerce", "wants_typed"]

log = logging.getLogger("twinengine.workflows")

class Canceled(Exception):
    """Raised inside an evaluation when the run was canceled; the run ends as ``canceled``."""


@dataclass(frozen=True)
class RetryPolicy:
    """How often a failing node is tried, and how long to wait between tries (doubling)."""

    max_attempts: int = 1
    backoff_seconds: float = 0.0

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> RetryPolicy:
        data = data or {}
        return cls(max_attempts=max(1, int(data.get("max_attempts", 1))),
                   backoff_seconds=max(0.0, float(data.get("backoff_seconds", 0.0))))


class NodeHooks(Protocol):
    """What a run observes while its graph executes (statuses, timings, logs, cancellation)."""

    def started(self, node: Node, attempt: int) -> None: ...

    def finished(self, node: Node, seconds: float, *, cached: bool) -> None: ...

    def failed(self, node: Node, error: BaseException, attempt: int, *, final: bool) -> None: ...

    def check_canceled(self) -> None: ...


class NullHooks:
    def started(self, node: Node, attempt: int) -> None:
        return None

    def finished(self, node: Node, seconds: float, *, cached: bool) -> None:
        return None

    def failed(self, node: Node, error: BaseException, attempt: int, *, final: bool) -> None:
        return None

    def check_canceled(self) -> None:
        return None


class ResultCache(Protocol):
    """Node results by content key (lazy cubes are not kept: they are cheap to rebuild)."""

    def get(self, key: str) -> Any:
        """The cached value; raises KeyError on a miss."""

    def put(self, key: str, value: Any) -> None: ...


def _argument_type() -> Any:
    from openeo_pg_parser_networkx.pg_schema import ProcessNode  # without graph.py: openeo_schema

    annotation: Any = ProcessNode.model_fields["arguments"].annotation
    return TypeAdapter(annotation)


_ARGS: TypeAdapter[Any] | None = None


def coerce(value: Any, *, typed: bool = True) -> Any:
    """Literal JSON → the typed values openeo-processes-dask expects (BoundingBox, TemporalInterval, dates).

    Only where the parameter's schema asks for such a subtype (``typed``): a plain string stays a string
    and an empty array stays an array (never an empty list of temporal intervals).
    """
    global _ARGS
    if not typed or value is None or isinstance(value, bool | int | float) or value == []:
        return value
    if _ARGS is None:
        _ARGS = _argument_type()
    try:
        return _ARGS.validate_python({"v": value}, strict=True)["v"]
    except ValidationError:
        return value


_TYPED_SUBTYPES = ("bounding-box", "temporal-interval", "temporal-intervals", "date", "date-time", "time", "year",
                   "duration", "geojson")


def wants_typed(schema: Any) -> bool:
    """Whether a parameter's schema names a subtype the implementations take as a typed value."""
    text = json.dumps(schema, default=str)
    return any(f'"subtype": "{subtype}"' in text for subtype in _TYPED_SUBTYPES)


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=repr)


@dataclass
class Evaluator:
    """Evaluates one graph for one run. ``keys`` are content keys of top-level nodes (None: not cacheable)."""

    registry: ProcessRegistry
    parameters: dict[str, Any]
    hooks: NodeHooks = field(default_factory=NullHooks)
    cache: ResultCache | None = None
    retry: Callable[[str], RetryPolicy] = field(default=lambda _n: RetryPolicy())
    app_version: str | None = None
    fingerprint: Callable[[ProcessEntry, dict[str, Any]], str | None] = field(default=lambda _e, _a: None)
    # What nodes read, checked for the run's owner before the cache is read (False: it cannot be named, and
    # the run reads nothing from its cache), and counted for those a hit leaves out (``processes.check_reads``).
    reads: Callable[..., bool] = field(default=lambda _nodes, _parameters, *, count: True)
    sleep: Callable[[float], None] = time.sleep
    keys: dict[str, str | None] = field(default_factory=dict)
    results: dict[str, Any] = field(default_factory=dict)
    skipped: set[str] = field(default_factory=set)

    # -- keys -------------------------------------------------------------------------------------

    def compute_keys(self, graph: Graph) -> dict[str, str | None]:
        """Content key per node: process, arguments with inputs replaced by their keys, parameter values."""
        params_key = _canonical({k: v for k, v in self.parameters.items() if k != "run_id"})
        for node_id in graph.order:
            node = graph.nodes[node_id]
            entry = self.registry.get(node.process_id, node.namespace, app_version=self.app_version, node=node_id)
            deps = graph.depends[node_id]
            if not entry.cacheable or any(self.keys.get(d) is None for d in deps):
                self.keys[node_id] = None
                continue
            args = _substitute_keys(node.arguments, self.keys, self.parameters)
            salt = self.fingerprint(entry, node.arguments)
            material = [entry.namespace, entry.id, entry.version, args, salt]
            if any(n == node_id for n, _ in graph.callbacks):
                material.append(params_key)
            self.keys[node_id] = hashlib.sha256(_canonical(material).encode()).hexdigest()
        return self.keys

    # -- evaluation -------------------------------------------------------------------------------

    def run(self, graph: Graph) -> Any:
        if not self.keys:
            self.compute_keys(graph)
        every = [(self.registry.get(graph.nodes[n].process_id, graph.nodes[n].namespace,
                                    app_version=self.app_version, node=n), graph.nodes[n]) for n in graph.order]
        cache = self.cache
        for entry, node in every if cache is not None else ():
            try:
                named = self.reads([(entry, node)], self.parameters, count=False)
            except Exception as exc:  # refused as its load would be, and told on its node
                self.hooks.failed(node, exc, 1, final=True)
                raise _failure(node, exc) from exc
            if not named:
                self.cache = None  # what a hit would leave out could not be checked: everything is computed
        try:
            needed = self._plan(graph)
        finally:
            self.cache = cache
        self.skipped = set(graph.nodes) - needed
        if self.skipped:
            self.reads([(e, n) for e, n in every if n.id in self.skipped], self.parameters, count=True)
        for node_id in graph.order:
            if node_id in needed:
                self._run_node(graph, graph.nodes[node_id])
        return self.results[graph.result]

    def _plan(self, graph: Graph) -> set[str]:
        """Nodes that must run: walk back from the result and from every node nobody consumes (outputs
        such as ``save_result`` or ``update_twin_state``), stopping at nodes whose key is cached."""
        needed: set[str] = set()
        consumed = {dep for deps in graph.depends.values() for dep in deps}
        stack = [graph.result, *[n for n in graph.nodes if n not in consumed and n != graph.result]]
        while stack:
            node_id = stack.pop()
            if node_id in needed:
                continue
            needed.add(node_id)
            key = self.keys.get(node_id)
            if key is not None and self.cache is not None:
                try:
                    self.results[node_id] = self.cache.get(key)
                    continue
                except KeyError:
                    pass
            stack.extend(graph.depends[node_id])
        return needed

    def _run_node(self, graph: Graph, node: Node) -> None:
        self.hooks.check_canceled()
        if node.id in self.results:  # served by the cache in _plan
            self.hooks.finished(node, 0.0, cached=True)
            return
        entry = self.registry.get(node.process_id, node.namespace, app_version=self.app_version, node=node.id)
        policy = self.retry(node.id)
        attempt = 0
        while True:
            attempt += 1
            self.hooks.started(node, attempt)
            started = time.perf_counter()
            try:
                kwargs = self._arguments(graph, node, self.parameters, node.arguments, entry)
                value = entry.implementation(**kwargs)
            except (Canceled, KeyboardInterrupt):
                raise
            except Exception as exc:
                final = attempt >= policy.max_attempts or isinstance(exc, ProcessParameterMissing)
                self.hooks.failed(node, exc, attempt, final=final)
                if final:
                    raise _failure(node, exc) from exc
                self.sleep(policy.backoff_seconds * (2 ** (attempt - 1)))
                self.hooks.check_canceled()
                continue
            break
        self.results[node.id] = value
        key = self.keys.get(node.id)
        if key is not None and self.cache is not None:
            self.cache.put(key, value)
        self.hooks.finished(node, time.perf_counter() - started, cached=False)

    def _arguments(self, graph: Graph, node: Node, scope: Mapping[str, Any],
                   arguments: Mapping[str, Any], entry: ProcessEntry | None = None) -> dict[str, Any]:
        typed = _typed_parameters(entry) if entry is not None else None
        out: dict[str, Any] = {}
        for name, value in arguments.items():
            out[name] = self._resolve(graph, node, scope, value, name, typed is None or name in typed)
        return out

    def _resolve(self, graph: Graph, node: Node, scope: Mapping[str, Any], value: Any, path: str,
                 typed: bool = True) -> Any:
        if isinstance(value, dict):
            if len(value) == 1 and "from_node" in value:
                return self.results[str(value["from_node"])]
            if len(value) == 1 and "from_parameter" in value:
                name = str(value["from_parameter"])
                if name not in scope:
                    raise ProcessParameterMissing(f"node {node.id!r}: no value for parameter {name!r}",
                                                  node=node.id)
                return scope[name]
            callback = graph.callbacks.get((node.id, path))
            if callback is not None and "process_graph" in value:
                return self._callback(callback, scope)
            if not _has_references(value):
                return coerce(value, typed=typed)
            return {k: self._resolve(graph, node, scope, v, f"{path}.{k}", typed) for k, v in value.items()}
        if isinstance(value, list):
            if not _has_references(value):
                return coerce(value, typed=typed)
            return [self._resolve(graph, node, scope, v, f"{path}[{i}]", typed) for i, v in enumerate(value)]
        if isinstance(value, str):
            return coerce(value, typed=typed)
        return value

    def function(self, graph: Graph) -> Callable[..., Any]:
        """The graph as a callable (what a user-defined process runs): parameters by name, and the extra
        keywords a callback caller passes (``axis``, ``context``...) reach the nodes that take them."""
        return self._callback(graph, {})

    def _callback(self, graph: Graph, outer: Mapping[str, Any]) -> Callable[..., Any]:
        """A callable in the calling convention of openeo-processes-dask: parameters by name or position."""
        registry, app_version = self.registry, self.app_version
        entries = {nid: registry.get(n.process_id, n.namespace, app_version=app_version, node=nid)
                   for nid, n in graph.nodes.items()}

        def callback(*args: Any, positional_parameters: Mapping[str, int] | None = None,
                     named_parameters: Mapping[str, Any] | None = None, **extra: Any) -> Any:
            scope = {**outer, **(named_parameters or {})}
            for name, index in (positional_parameters or {}).items():
                if index < len(args):
                    scope[name] = args[index]
            if "context" in extra and "context" not in scope:
                scope["context"] = extra["context"]
            inner = Evaluator(registry, scope, app_version=app_version)
            for node_id in graph.order:
                node = graph.nodes[node_id]
                entry = entries[node_id]
                kwargs = inner._arguments(graph, node, scope, node.arguments, entry)
                for name in entry.accepts:
                    if name in extra and name not in kwargs:
                        kwargs[name] = extra[name]
                inner.results[node_id] = entry.implementation(**kwargs)
            return inner.results[graph.result]

        return callback


_TYPED_CACHE: dict[tuple[str | None, str, int], frozenset[str]] = {}


def _typed_parameters(entry: ProcessEntry) -> frozenset[str]:
    """Names of the parameters whose schema asks for typed values (dates, intervals, bounding boxes)."""
    key = (entry.namespace, entry.id, id(entry.spec))
    found = _TYPED_CACHE.get(key)
    if found is None:
        found = frozenset(p["name"] for p in entry.parameters if wants_typed(p.get("schema")))
        if len(_TYPED_CACHE) > 4096:
            _TYPED_CACHE.clear()
        _TYPED_CACHE[key] = found
    return found


def _has_references(value: Any) -> bool:
    nodes, params = references(value)
    if nodes or params:
        return True
    return "process_graph" in json.dumps(value, default=repr) if isinstance(value, dict | list) else False


def _substitute_keys(value: Any, keys: Mapping[str, str | None], params: Mapping[str, Any]) -> Any:
    if isinstance(value, dict):
        if len(value) == 1 and "from_node" in value:
            return {"node": keys.get(str(value["from_node"]))}
        if len(value) == 1 and "from_parameter" in value:
            return {"param": params.get(str(value["from_parameter"]), None)}
        return {k: _substitute_keys(v, keys, params) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute_keys(v, keys, params) for v in value]
    return value


def _failure(node: Node, exc: Exception) -> TwinEngineError:
    if isinstance(exc, TwinEngineError):
        return exc
    code = type(exc).__name__
    message = str(exc) or code
    return ProcessFailed(f"node {node.id!r} ({node.process_id}) failed: {message}",
                         details=[{"loc": f"process_graph.{node.id}", "msg": message, "node": node.id,
                                   "process_id": node.process_id, "error": code}])
