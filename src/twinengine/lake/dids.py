"""Identifiers ``scope:name``: files, datasets and containers, their metadata and their membership."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from twinengine.auth.groups import check_owner_group
from twinengine.auth.policy import require
from twinengine.auth.principal import Principal
from twinengine.errors import DidConflict, DidNotFound, ValidationFailed
from twinengine.lake import terms
from twinengine.lake.context import LakeTuning
from twinengine.lake.grants import Readers, data_twin, require_change
from twinengine.lake.models import Attachment, Did, Endpoint, Replica
from twinengine.lake.schemas import DID_PATTERN, DidRead, DidType, ReplicaRead, ReplicaState
from twinengine.store.base import upsert, utcnow
from twinengine.store.changes import bump

__all__ = [
    "add_did",
    "attach",
    "check_meta",
    "children_of",
    "did_read",
    "file_ids_under",
    "get_did",
    "list_dids",
    "parse_did",
    "replica_read",
    "replicas_by_id",
    "replicas_of",
    "set_extent",
]

_DID = re.compile(DID_PATTERN)
CONTAINER_GRAPH = "lake_containers"  # change counter of containers' members: attaches to containers take turns


def parse_did(text: str, *, loc: str = "did", lookup: bool = False) -> tuple[str, str]:
    """``scope:name`` → (scope, name). A new name's '/'-separated segments are never empty, '.' or '..': HTTP
    clients rewrite such paths, so the DID could never be reached again. Lookups refuse only '..'."""
    segments = text.split(":", 1)[1].split("/") if ":" in text else []
    bad = {".."} if lookup else {"", ".", ".."}
    if not _DID.match(text) or bad & set(segments):
        raise ValidationFailed.one(loc, f"{text!r} is not scope:name (scope: letters, digits, '_-'; name: "
                                        "letters, digits, '_.-/'; no empty, '.' or '..' segments)")
    scope, _, name = text.partition(":")
    return scope, name


def check_meta(value: Any, *, loc: str, tuning: LakeTuning | None = None) -> None:
    """Refuse JSON nested deeper than ``lake_meta_max_depth`` or larger than ``lake_meta_max_bytes`` once
    serialised: every read (REST, STAC, portal) serialises it again, and one such document broke them all."""
    limits = tuning or LakeTuning()
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:  # iterative: the depth itself is what is being checked
        node, depth = stack.pop()
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list | tuple) else ()
        if children and depth > limits.meta_max_depth:
            raise ValidationFailed.one(loc, f"nests deeper than {limits.meta_max_depth} levels "
                                            "(lake_meta_max_depth)")
        stack.extend((child, depth + 1) for child in children)
    size = len(json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str).encode())
    if size > limits.meta_max_bytes:
        raise ValidationFailed.one(loc, f"is {size} bytes as JSON, more than {limits.meta_max_bytes} "
                                        "(lake_meta_max_bytes)")


def get_did(session: Session, did: str, *, loc: str = "did") -> Did:
    scope, name = parse_did(did, loc=loc, lookup=True)
    row = session.scalar(select(Did).where(Did.scope == scope, Did.name == name))
    if row is None:
        raise DidNotFound(f"no file, dataset or container {did!r}")
    return row


def replica_read(replica: Replica, did: Did, endpoint: Endpoint) -> ReplicaRead:
    return ReplicaRead(id=replica.id, did=did.did, endpoint=endpoint.name, state=ReplicaState(replica.state),
                       bytes=replica.bytes, path=replica.path, tombstone=replica.tombstone, error=replica.error,
                       verified_at=replica.verified_at, updated_at=replica.updated_at)


def replicas_of(session: Session, did: Did) -> list[tuple[Replica, Endpoint]]:
    rows = session.execute(select(Replica, Endpoint).join(Endpoint, Endpoint.id == Replica.endpoint_id)
                           .where(Replica.did_id == did.id).order_by(Endpoint.name))
    return [(r, e) for r, e in rows]


def children_of(session: Session, did: Did) -> list[Did]:
    return list(session.scalars(select(Did).join(Attachment, Attachment.child_id == Did.id)
                                .where(Attachment.parent_id == did.id).order_by(Did.scope, Did.name)))


def did_read(session: Session, did: Did, *, details: bool = True,
             visible: Callable[[Did], bool] | None = None) -> DidRead:
    """``visible``: which members to list (``lake.grants.Readers`` of the caller); all when None."""
    bbox = (did.west, did.south, did.east, did.north) if did.west is not None else None
    out = DidRead(did=did.did, scope=did.scope, name=did.name, type=DidType(did.type), bytes=did.bytes,
                  adler32=did.adler32, sha256=did.sha256, media_type=did.media_type, meta=did.meta or {},
                  bbox=bbox, geometry=did.geometry, start_time=did.start_time, end_time=did.end_time,
                  created_by=did.created_by, owner_group=did.owner_group, owner_twin=did.owner_twin,
                  created_at=did.created_at)
    if details:
        out.terms = terms.copy_terms(session, did)
        if did.type == DidType.FILE:
            out.replicas = [replica_read(r, did, e) for r, e in replicas_of(session, did)]
        else:
            out.children = [c.did for c in children_of(session, did) if visible is None or visible(c)]
    return out


def set_extent(did: Did, *, geometry: dict[str, Any] | None, bbox: Sequence[float] | None,
               start: datetime | None, end: datetime | None) -> None:
    """Space and time of a dataset (what STAC searches on); a geometry without bbox gets its bounds."""
    if geometry is not None:
        from shapely.geometry import shape

        try:
            bounds = shape(geometry).bounds
        except Exception as exc:
            raise ValidationFailed.one("geometry", f"not a GeoJSON geometry: {exc}") from None
        did.geometry = geometry
        bbox = bbox or bounds
    if bbox is not None:
        west, south, east, north = (float(v) for v in bbox)
        if not (-180 <= west <= 180 and -180 <= east <= 180 and -90 <= south <= north <= 90):
            raise ValidationFailed.one("bbox", "expects west, south, east, north in degrees (south <= north)")
        did.west, did.south, did.east, did.north = west, south, east, north
        if did.geometry is None:
            did.geometry = {"type": "Polygon", "coordinates": [[[west, south], [east, south], [east, north],
                                                                [west, north], [west, south]]]}
    if start is not None and end is not None and end < start:
        raise ValidationFailed.one("end_time", "ends before it starts")
    did.start_time, did.end_time = start, end if end is not None else start


def add_did(session: Session, *, principal: Principal, did: str, type: DidType, meta: dict[str, Any] | None = None,
            geometry: dict[str, Any] | None = None, bbox: Sequence[float] | None = None,
            start: datetime | None = None, end: datetime | None = None, exist_ok: bool = False,
            tuning: LakeTuning | None = None, group: str | None = None, twin: str | None = None) -> Did:
    """Register a dataset or container (files come in through uploads and registrations); with ``group``, it
    is the group's (its members read it; the caller must be one); with ``twin`` (an id or name), the twin's:
    those who may read the twin read it (the caller must be allowed to operate the twin)."""
    require(principal, "lake.write")
    scope, name = parse_did(did)
    if group is not None and twin is not None:
        raise ValidationFailed.one("twin", "a dataset is a group's or a twin's, not both")
    if group is not None:
        check_owner_group(session, principal, group, what="datasets")
    owner_twin = data_twin(session, principal, twin) if twin is not None else None
    check_meta(meta or {}, loc="meta", tuning=tuning)
    if geometry is not None:
        check_meta(geometry, loc="geometry", tuning=tuning)
    existing = session.scalar(select(Did).where(Did.scope == scope, Did.name == name))
    if existing is not None:
        if not Readers(session, principal)(existing):  # another's: say neither what it is nor that it is theirs
            raise DidConflict(f"{did} is taken; choose another name", details=[{"loc": "did", "msg": "taken"}])
        if exist_ok and existing.type == type:
            return existing
        raise DidConflict(f"{did} exists already (a {existing.type})")
    row = Did(scope=scope, name=name, type=type.value, meta=dict(meta or {}), created_by=principal.name,
              owner_group=group, owner_twin=owner_twin)
    set_extent(row, geometry=geometry, bbox=bbox, start=start, end=end)
    session.add(row)
    session.flush()
    return row


def attach(session: Session, *, principal: Principal, parent: str, children: Iterable[str]) -> Did:
    """Put files into a dataset, or datasets and containers into a container (idempotent): the parent is the
    caller's to change (``lake.grants.may_change``), the children the caller's to read."""
    require(principal, "lake.write")
    readers = Readers(session, principal)  # nothing is attached by, or to, what its caller may not read
    row = require_change(session, principal, get_did(session, parent, loc="did"), readers=readers)
    if row.type == DidType.FILE:
        raise ValidationFailed.one("did", f"{parent} is a file; only datasets and containers have members")
    allowed = {DidType.DATASET: {DidType.FILE}, DidType.CONTAINER: {DidType.DATASET, DidType.CONTAINER}}[
        DidType(row.type)]
    if row.type == DidType.CONTAINER:
        # Changes of the container graph take turns (the counter's row stays locked until commit), so the
        # cycle check below sees every committed one: two opposite attaches at once both passed it on
        # PostgreSQL, where neither saw the other's uncommitted row, and made a cycle.
        bump(session, CONTAINER_GRAPH, keys=set())
    present = set(session.scalars(select(Attachment.child_id).where(Attachment.parent_id == row.id)))
    added: list[dict[str, Any]] = []
    for i, text in enumerate(children):
        child = get_did(session, text, loc=f"children[{i}]")
        if not readers(child):
            raise DidNotFound(f"no file, dataset or container {text!r}", details=[{"loc": f"children[{i}]",
                                                                                   "msg": "not found"}])
        if DidType(child.type) not in allowed:
            raise ValidationFailed.one(f"children[{i}]", f"a {row.type} holds {', '.join(sorted(allowed))}s, "
                                                         f"not {child.type}s")
        if child.id in _ancestors_and_self(session, row.id):
            raise ValidationFailed.one(f"children[{i}]", "would make a cycle")
        if child.id not in present:
            added.append({"parent_id": row.id, "child_id": child.id})
            present.add(child.id)
    if added:  # a member another request attached at the same moment is attached once
        statement = upsert(session.get_bind().dialect.name, Attachment)
        session.execute(statement.on_conflict_do_nothing(index_elements=["parent_id", "child_id"]), added)
    row.updated_at = utcnow()
    # Rules on this DID or anything above it now cover more files: the judge places them on its next pass.
    from twinengine.lake.models import Rule

    session.execute(update(Rule).where(Rule.did_id.in_(_ancestors_and_self(session, row.id))).values(dirty=True))
    session.flush()
    return row


def _ancestors_and_self(session: Session, did_id: int) -> set[int]:
    seen, frontier = {did_id}, [did_id]
    while frontier:
        parents = set(session.scalars(select(Attachment.parent_id).where(Attachment.child_id.in_(frontier))))
        frontier = list(parents - seen)
        seen |= parents
    return seen


def file_ids_under(session: Session, did: Did) -> list[int]:
    """Every registered (checksummed) file under ``did``, following datasets and containers."""
    if did.type == DidType.FILE:
        return [did.id] if did.sha256 else []
    seen: set[int] = {did.id}
    frontier = [did.id]
    files: list[int] = []
    while frontier:
        rows = session.execute(select(Did.id, Did.type, Did.sha256).join(Attachment, Attachment.child_id == Did.id)
                               .where(Attachment.parent_id.in_(frontier)))
        frontier = []
        for child_id, kind, sha in rows:
            if child_id in seen:
                continue
            seen.add(child_id)
            if kind == DidType.FILE:
                if sha:
                    files.append(child_id)
            else:
                frontier.append(child_id)
    return sorted(files)


def list_dids(session: Session, *, principal: Principal, scope: str | None = None, type: DidType | None = None,
              name_prefix: str | None = None, search: str | None = None, limit: int = 100,
              offset: int = 0) -> tuple[list[Did], int]:
    """A page of the identifiers ``principal`` may read, in scope and name order, with the total; ``search``:
    words each found in the scope or name, in any case (what a person types to find a dataset)."""
    require(principal, "lake.read")
    query = select(Did).where((Did.type != DidType.FILE) | Did.sha256.is_not(None))
    for word in (search or "").split():
        query = query.where(Did.name.icontains(word, autoescape=True) | Did.scope.icontains(word, autoescape=True))
    if scope:
        query = query.where(Did.scope == scope)
    if type:
        query = query.where(Did.type == type.value)
    if name_prefix:
        query = query.where(Did.name.startswith(name_prefix, autoescape=True))
    if not principal.is_admin:  # what the caller may read (lake.grants), then the page: counts stay true
        readable = Readers(session, principal).only(session.scalars(query.order_by(Did.scope, Did.name)))
        return readable[offset:offset + limit], len(readable)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(query.order_by(Did.scope, Did.name).limit(limit).offset(offset))
    return list(rows), total


def replicas_by_id(session: Session, ids: list[int]) -> list[ReplicaRead]:
    out: list[ReplicaRead] = []
    for start in range(0, len(ids), 1000):
        rows = session.execute(select(Replica, Did, Endpoint).join(Did, Did.id == Replica.did_id)
                               .join(Endpoint, Endpoint.id == Replica.endpoint_id)
                               .where(Replica.id.in_(ids[start:start + 1000])).order_by(Replica.id))
        out += [replica_read(r, d, e) for r, d, e in rows]
    return out

