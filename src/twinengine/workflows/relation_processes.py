"""``load_related_twins``: the twins related to one (downstream reaches, a detector's channels) as a graph's
input: their ids, or with ``state`` their reported values, read as the run's owner.

The graph changes as twins are linked, so the process is never served from the result cache.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from twinengine.errors import ProcessParameterInvalid, ValidationFailed
from twinengine.workflows.context import current
from twinengine.workflows.stream_processes import instant_argument

__all__ = ["RELATION_SPECS", "load_related_twins"]


def load_related_twins(twin: str | None = None, type: str | None = None, direction: str = "out", depth: int = 1,
                       at: Any = None, state: bool = False) -> list[Any]:
    """Ids of the twins within ``depth`` hops of ``twin`` (default: the run's), nearest first; with ``state``
    one object per twin: id, name, depth and its reported values (now, or as of ``at``)."""
    from twinengine.twins import relationships
    from twinengine.twins.relationship_schemas import MAX_DEPTH, Direction

    ctx = current()
    ref = twin or ctx.twin
    if ref is None:
        raise ProcessParameterInvalid("load_related_twins: this run has no twin; pass twin")
    if ctx.db is None:
        raise ProcessParameterInvalid("load_related_twins: no store in this context")
    if direction not in {d.value for d in Direction}:
        raise ProcessParameterInvalid(f"load_related_twins: direction {direction!r} is not out, in or both")
    if not 1 <= int(depth) <= MAX_DEPTH:
        raise ProcessParameterInvalid(f"load_related_twins: depth {depth} is not within 1..{MAX_DEPTH}")
    when = instant_argument(at, "load_related_twins: at")
    try:
        with ctx.db.session(readonly=True) as session:
            page = relationships.related(session, principal=ctx.principal, ref=ref, type=type,
                                         direction=Direction(direction), depth=int(depth), at=when,
                                         with_state=bool(state))
    except ValidationFailed as exc:
        raise ProcessParameterInvalid(f"load_related_twins: {exc.message}") from None
    found: list[Any] = [t.id for t in page.items] if not state else [
        {"id": t.id, "name": t.name, "depth": t.depth,
         "reported": {p: v.value for p, v in t.state.reported.items()} if t.state else {}} for t in page.items]
    # what the run read, checksummed (a rerun that reads other twins or other values says the input changed)
    read = json.dumps(found, sort_keys=True, separators=(",", ":"), default=str).encode()
    ctx.inputs.append({"collection": f"related:{page.twin_id}/{type or '*'}", "node": ctx.node, "version": None,
                       "sha256": hashlib.sha256(read).hexdigest(), "bytes": len(read), "twins": len(found),
                       "state": bool(state), "at": when.isoformat() if when is not None else None})
    ctx.log("info", f"load_related_twins {ref}: {len(page.items)} twins within {depth} hops")
    return found


_OPT_STR = [{"type": "string"}, {"type": "null"}]
RELATION_SPECS: list[tuple[dict[str, Any], Any, bool]] = [(
    {"id": "load_related_twins", "summary": "The twins related to a twin (e.g. downstream within N hops)",
     "description": "Twins reached from `twin` (default: the run's twin) along links of `type` (any type when "
                    "null) within `depth` hops, nearest first, as the graph was at `at` (default now): their "
                    "ids, or with `state` objects with id, name, depth and reported values.",
     "categories": ["engine", "import"],
     "parameters": [
         {"name": "twin", "schema": _OPT_STR, "optional": True, "default": None,
          "description": "Twin name or id; default the run's twin"},
         {"name": "type", "schema": _OPT_STR, "optional": True, "default": None,
          "description": "Relationship type, e.g. flows_into"},
         {"name": "direction", "schema": {"type": "string", "enum": ["out", "in", "both"]}, "optional": True,
          "default": "out", "description": "out: to targets (downstream); in: to sources; both"},
         {"name": "depth", "schema": {"type": "integer", "minimum": 1, "maximum": 64}, "optional": True,
          "default": 1, "description": "Hops to follow"},
         {"name": "at", "schema": [{"type": "string", "format": "date-time"}, {"type": "null"}], "optional": True,
          "default": None, "description": "Read the graph (and state) as of this time; default now"},
         {"name": "state", "schema": {"type": "boolean"}, "optional": True, "default": False,
          "description": "Return objects with each twin's reported values instead of ids"}],
     "returns": {"description": "Twin ids, or objects with id, name, depth and reported",
                 "schema": {"type": "array"}}},
    load_related_twins, False)]
