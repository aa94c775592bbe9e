"""User-defined processes (openEO ``/process_graphs``) as processes a graph can call.

A user's stored processes become registry entries of that user only (namespace ``user``, or no namespace:
openEO looks for a user-defined process first). Calling one evaluates its stored graph with the node's
arguments bound to the process's parameters (defaults filled). Processes that call themselves, directly
or through others, are refused: graphs are not recursive in openEO.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from twinengine.auth.models import Identity
from twinengine.auth.principal import Principal
from twinengine.auth.service import ensure_identity
from twinengine.errors import ProcessGraphInvalid, ProcessParameterMissing, ProcessUnsupported
from twinengine.store.base import upsert, utcnow
from twinengine.workflows.evaluate import Evaluator
from twinengine.workflows.graph import graph_hash, parse_graph, validate
from twinengine.workflows.models import UserProcess
from twinengine.workflows.registry import SPECIAL_KWARGS, USER_NAMESPACE, ProcessEntry, ProcessRegistry

__all__ = ["calls", "put", "stored_processes", "user_registry", "with_processes"]

# processes whose results depend on more than their arguments: a user process using them is not cached
_UNCACHEABLE = frozenset({"load_collection", "load_stac", "load_stream", "run_udf"})


def _nodes(process: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every node of a process graph, callbacks included."""
    stack: list[Any] = [process.get("process_graph")]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for value in item.values():
                if isinstance(value, dict) and isinstance(value.get("process_id"), str):
                    yield value
                    stack.append(value.get("arguments"))
                else:
                    stack.append(value)
        elif isinstance(item, list):
            stack.extend(item)


def calls(process: Mapping[str, Any], ids: set[str]) -> set[str]:
    """The user-defined processes (among ``ids``) a process graph calls directly."""
    return {n["process_id"] for n in _nodes(process)
            if n["process_id"] in ids and n.get("namespace") in (None, USER_NAMESPACE)}


def _cycles(processes: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """id → why it may not run, for every process that reaches itself."""
    ids = set(processes)
    edges = {pid: calls(p, ids) for pid, p in processes.items()}
    refused: dict[str, str] = {}
    for start in processes:
        path = _path_back(start, edges)
        if path is not None:
            refused[start] = (f"user-defined process {start!r} calls itself ({' -> '.join(path)}); "
                              "recursion is not allowed")
    return refused


def _path_back(start: str, edges: Mapping[str, set[str]]) -> list[str] | None:
    stack: list[tuple[str, list[str]]] = [(start, [start])]
    seen: set[str] = set()
    while stack:
        pid, path = stack.pop()
        for nxt in edges.get(pid, ()):
            if nxt == start:
                return [*path, nxt]
            if nxt not in seen:
                seen.add(nxt)
                stack.append((nxt, [*path, nxt]))
    return None


def put(session: Session, registry: ProcessRegistry, principal: Principal, udp_id: str,
        process: dict[str, Any]) -> None:
    """Check and store ``principal``'s process ``udp_id`` (create or replace). One owner's PUTs take turns on
    their identity's row (``FOR NO KEY UPDATE``, until commit), so each is checked against every process
    stored before it: two PUTs at once, each calling the other, were both stored on PostgreSQL, each checked
    without the other, and made a cycle that every graph using them was then refused for."""
    ensure_identity(session, principal.name, created_by=principal.issuer)
    session.execute(select(Identity.name).where(Identity.name == principal.name).with_for_update(key_share=True))
    params = {p.get("name") for p in process.get("parameters") or [] if isinstance(p, dict)}
    others = {k: v for k, v in stored_processes(session, principal.name).items() if k != udp_id}
    view = with_processes(registry, {**others, udp_id: process})
    if udp_id in view.user_refused:  # it would call itself
        raise ProcessGraphInvalid(view.user_refused[udp_id])
    validate(parse_graph(process), view, available={str(p) for p in params} | {"run_id"})
    store(session, principal.name, udp_id, process)


def store(session: Session, owner: str, udp_id: str, process: dict[str, Any]) -> None:
    """Create or replace ``owner``'s process ``udp_id`` in one statement: the same PUT from two clients at
    once ends with one of them, not with a conflict."""
    statement = upsert(session.get_bind().dialect.name, UserProcess).values(
        owner=owner, id=udp_id, process={**process, "id": udp_id}, updated_at=utcnow())
    session.execute(statement.on_conflict_do_update(
        index_elements=["owner", "id"],
        set_={"process": statement.excluded.process, "updated_at": statement.excluded.updated_at}))


def stored_processes(session: Session, owner: str) -> dict[str, dict[str, Any]]:
    rows = session.scalars(select(UserProcess).where(UserProcess.owner == owner))
    return {r.id: r.process for r in rows}


def with_processes(registry: ProcessRegistry, processes: Mapping[str, Mapping[str, Any]]) -> ProcessRegistry:
    """``registry`` plus these user-defined processes (id → stored process)."""
    refused = _cycles(processes)
    entries: dict[str, ProcessEntry] = {}
    view = registry.with_user_processes([], refused)
    for pid, process in processes.items():
        if pid not in refused:
            entries[pid] = _entry(view, pid, dict(process))
    view.user.update(entries)
    uncacheable = {pid for pid, e in entries.items() if _uses_uncacheable(view, e)}
    for pid in uncacheable:
        entry = entries[pid]
        view.user[pid] = dataclasses.replace(entry, cacheable=False)
    return view


def user_registry(session: Session, registry: ProcessRegistry, owner: str) -> ProcessRegistry:
    """The registry as ``owner`` sees it: with the user-defined processes they stored."""
    return with_processes(registry, stored_processes(session, owner))


def _uses_uncacheable(registry: ProcessRegistry, entry: ProcessEntry, seen: set[str] | None = None) -> bool:
    seen = seen if seen is not None else set()
    seen.add(entry.id)
    for node in _nodes(entry.process or {}):
        pid, ns = node["process_id"], node.get("namespace")
        if pid in _UNCACHEABLE:
            return True
        try:
            inner = registry.get(pid, ns)
        except Exception:  # unknown or refused: validation reports it where the process is called
            continue
        if not inner.cacheable:
            return True
        if inner.process is not None and inner.id not in seen and _uses_uncacheable(registry, inner, seen):
            return True
    return False


def _entry(registry: ProcessRegistry, pid: str, process: dict[str, Any]) -> ProcessEntry:
    params: list[dict[str, Any]] = [p for p in process.get("parameters") or [] if isinstance(p, dict)]
    spec = {k: v for k, v in process.items() if k != "process_graph"}
    spec["id"], spec["parameters"] = pid, params
    names = [str(p.get("name")) for p in params]
    defaults = {str(p["name"]): p["default"] for p in params if "default" in p}
    required = [str(p["name"]) for p in params if "default" not in p and not p.get("optional", False)]
    state: dict[str, Any] = {}

    def call(**arguments: Any) -> Any:
        if "function" not in state:
            state["function"] = Evaluator(registry, {}).function(parse_graph(process, where=f"{pid}/"))
        extra = {k: arguments.pop(k) for k in SPECIAL_KWARGS if k in arguments and k not in names}
        for name in required:
            if name not in arguments:
                raise ProcessParameterMissing(f"user-defined process {pid!r} requires argument {name!r}")
        unknown = set(arguments) - set(names)
        if unknown:
            raise ProcessUnsupported(f"user-defined process {pid!r} has no parameter {sorted(unknown)[0]!r}")
        return state["function"](named_parameters={**defaults, **arguments}, **extra)

    # as a reducer, the caller's axis/keepdims/context pass through to the nodes inside
    return ProcessEntry(id=pid, spec=spec, implementation=call, namespace=USER_NAMESPACE,
                        version=graph_hash({k: process.get(k) for k in ("process_graph", "parameters")})[:16],
                        process=process,
                        accepts=frozenset(n for n in SPECIAL_KWARGS if n not in names))
