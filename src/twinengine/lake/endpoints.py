"""Storage endpoints (providers manage them): add, list, show, change, remove; usage from the replicas."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from twinengine.auth.policy import require
from twinengine.auth.principal import Principal
from twinengine.errors import Conflict, EndpointNotFound, StorageFull, TwinEngineError, ValidationFailed
from twinengine.lake.context import Lake
from twinengine.lake.models import Endpoint, Replica, Rule, RuleLock, Transfer
from twinengine.lake.schemas import EndpointCreate, EndpointRead, EndpointUpdate, ReplicaState, RuleState
from twinengine.lake.storage import backend_class
from twinengine.store.base import lock_for_delete, utcnow
from twinengine.store.engine import Database

__all__ = ["add_endpoint", "check_file_location", "endpoint_read", "get_endpoint", "list_endpoints",
           "record_relative_locations", "remove_endpoint",
           "take_quota", "update_endpoint", "usage"]

_ATTR_KEY_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")


def _check_attributes(attributes: dict[str, str | None]) -> None:
    problems = [f"attributes.{k}" for k in attributes if not k or not set(k) <= _ATTR_KEY_CHARS or len(k) > 64]
    if problems:
        raise ValidationFailed.one(problems[0], "keys are letters, digits, '_', '.' or '-' (at most 64)")
    for key, value in attributes.items():
        if value is not None and (not value or not set(value) <= _ATTR_KEY_CHARS | {":"}):
            raise ValidationFailed.one(f"attributes.{key}", f"{value!r}: values are letters, digits, '_.:-'")


def _check_options(options: dict[str, str]) -> None:
    """``rate_limit`` (lake.rates) is a positive number of bytes per second."""
    value = options.get("rate_limit")
    if value is None:
        return
    try:
        ok = float(value) > 0
    except ValueError:
        ok = False
    if not ok:
        raise ValidationFailed.one("options.rate_limit", f"{value!r}: bytes per second, a positive number")


def get_endpoint(session: Session, name: str) -> Endpoint:
    row = session.scalar(select(Endpoint).where(Endpoint.name == name))
    if row is None:
        raise EndpointNotFound(f"no storage endpoint named {name!r}")
    return row


def usage(session: Session, endpoint_id: int, *, excluding: int | None = None) -> tuple[int, int]:
    """Bytes and replicas an endpoint holds or is receiving (what counts against its quota); ``excluding``:
    a replica id left out (an upload's own reservation, when it checks what the others take)."""
    conditions = [Replica.endpoint_id == endpoint_id, Replica.state != ReplicaState.BEING_DELETED]
    if excluding is not None:
        conditions.append(Replica.id != excluding)
    row = session.execute(select(func.coalesce(func.sum(Replica.bytes), 0), func.count()).where(*conditions)).one()
    return int(row[0] or 0), int(row[1] or 0)


def take_quota(db: Database, endpoint_id: int, replica_id: int, size: int, name: str) -> None:
    """Count ``size`` bytes of a replica on its way (an upload's, a rule's transfer's) against the endpoint's
    quota before they are written there: under the endpoint row's lock, so writes finishing at once take
    turns, each sees the others' bytes, and together they cannot pass the quota (each checked only against
    what was stored when it began). ``FOR NO KEY UPDATE``: they wait for each other, not for the replicas the
    judge inserts on the endpoint meanwhile. StorageFull when the bytes do not fit."""
    with db.session() as session:
        quota = session.execute(select(Endpoint.quota_bytes).where(Endpoint.id == endpoint_id)
                                .with_for_update(key_share=True)).scalar_one()
        if quota is None:
            return
        used = usage(session, endpoint_id, excluding=replica_id)[0]
        if used + size > quota:
            raise StorageFull(f"endpoint {name}: {size} more bytes exceed its quota of {quota} ({used} taken)")
        session.get_one(Replica, replica_id).bytes = size


def endpoint_read(session: Session, lake: Lake, row: Endpoint) -> EndpointRead:
    used, count = usage(session, row.id)
    return EndpointRead(name=row.name, protocol=row.protocol, location=lake.location_of(row),
                        options=row.options or {},
                        attributes=row.attributes or {}, quota_bytes=row.quota_bytes, used_bytes=used,
                        replicas=count, read=row.read, write=row.write, delete=row.delete,
                        credential=row.credential_kind, created_at=row.created_at)


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def check_file_location(lake: Lake, location: str) -> None:
    """A `file` endpoint lives only under a root an admin configured (``lake_file_roots``) and never in the
    engine's data dir (its keys, database and blobs) except its ``lake`` folder. The path is resolved first,
    so neither ``..`` nor a symlink leads out."""
    path = Path(location)
    if not path.is_absolute():
        raise ValidationFailed.one("location", f"a file endpoint needs an absolute folder path, not {location!r}")
    resolved = path.resolve()
    data_dir = lake.data_dir.resolve() if lake.data_dir is not None else None
    if data_dir is not None and _inside(resolved, data_dir) and not _inside(resolved, data_dir / "lake"):
        raise ValidationFailed.one("location", f"{location!r} is inside the engine's data dir; only its "
                                               f"{data_dir / 'lake'} folder may hold file endpoints")
    roots = [root.resolve() for root in lake.file_roots]
    if not any(_inside(resolved, root) for root in roots):
        allowed = ", ".join(str(root) for root in roots) or "none"
        raise ValidationFailed.one("location", f"{location!r} is not under a folder file endpoints may use "
                                               f"({allowed}; an admin sets lake_file_roots, TWIN_LAKE_FILE_ROOTS)")


def _probe(lake: Lake, row: Endpoint) -> None:
    """Build the backend and reach the storage; a bad location is the caller's mistake (422, not 503)."""
    if row.protocol == "file":
        Path(lake.location_of(row)).mkdir(parents=True, exist_ok=True) if Path(lake.location_of(row)).is_absolute() \
            else None
    try:
        lake.backend(row).check()
    except TwinEngineError as exc:
        raise ValidationFailed.one("location", f"the storage does not answer: {exc.message}") from None


def add_endpoint(session: Session, lake: Lake, *, principal: Principal, spec: EndpointCreate) -> Endpoint:
    require(principal, "lake.endpoint.manage")
    backend_class(spec.protocol)
    _check_attributes(dict(spec.attributes))
    _check_options(dict(spec.options))
    if spec.protocol == "file":
        check_file_location(lake, spec.location)
    if session.scalar(select(Endpoint.id).where(Endpoint.name == spec.name)) is not None:
        raise Conflict(f"an endpoint named {spec.name!r} exists already")
    row = Endpoint(name=spec.name, protocol=spec.protocol, location=lake.stored_location(spec.protocol, spec.location),
                   options=dict(spec.options),
                   attributes=dict(spec.attributes), quota_bytes=spec.quota_bytes, read=spec.read, write=spec.write,
                   delete=spec.delete, created_by=principal.name, updated_at=utcnow())
    if spec.credential is not None:
        row.credential_kind = spec.credential.kind
        row.credential_cipher = lake.keyring.seal(spec.credential.secret())
    session.add(row)
    session.flush()
    _probe(lake, row)
    return row


def record_relative_locations(session: Session, lake: Lake) -> int:
    """`file` endpoints in the data dir's ``lake`` folder recorded with an absolute path (before locations
    there were recorded relative to the data dir) are recorded relative now, while the data dir is where
    they were made; returns how many. Done at start: moving the data dir afterwards keeps its lake."""
    changed = 0
    for row in session.scalars(select(Endpoint).where(Endpoint.protocol == "file")):
        stored = lake.stored_location("file", row.location)
        if stored != row.location:
            row.location, changed = stored, changed + 1
    return changed


def list_endpoints(session: Session, *, principal: Principal) -> list[Endpoint]:
    require(principal, "lake.endpoint.read")
    return list(session.scalars(select(Endpoint).order_by(Endpoint.name)))


def update_endpoint(session: Session, lake: Lake, *, principal: Principal, name: str,
                    change: EndpointUpdate) -> Endpoint:
    require(principal, "lake.endpoint.manage")
    row = get_endpoint(session, name)
    if change.attributes:
        _check_attributes(change.attributes)
        attributes = dict(row.attributes or {})
        for key, value in change.attributes.items():
            if value is None:
                attributes.pop(key, None)
            else:
                attributes[key] = value
        row.attributes = attributes
    if change.location is not None:
        if usage(session, row.id)[1]:
            raise Conflict(f"endpoint {name} holds replicas; its location cannot move under them")
        if row.protocol == "file":
            check_file_location(lake, change.location)
        row.location = lake.stored_location(row.protocol, change.location)
    if change.options is not None:
        _check_options(dict(change.options))
        row.options = dict(change.options)
    if change.quota_bytes is not None or change.clear_quota:
        row.quota_bytes = None if change.clear_quota else change.quota_bytes
    for switch in ("read", "write", "delete"):
        value = getattr(change, switch)
        if value is not None:
            setattr(row, switch, value)
    if change.clear_credential:
        row.credential_kind = row.credential_cipher = None
    if change.credential is not None:
        row.credential_kind = change.credential.kind
        row.credential_cipher = lake.keyring.seal(change.credential.secret())
    row.updated_at = utcnow()
    if change.attributes or change.quota_bytes is not None or change.clear_quota or change.read or change.write:
        # Room made, a switch turned on, attributes an expression selects on: stuck rules are looked at again
        # at the judge's next pass rather than at their next retry (``lake_stuck_retry``).
        session.execute(update(Rule).where(Rule.state == RuleState.STUCK).values(dirty=True))
    session.flush()
    if change.location is not None or change.credential is not None or change.options is not None:
        _probe(lake, row)
    return row


def remove_endpoint(session: Session, *, principal: Principal, name: str) -> None:
    """Remove an endpoint nothing lives on or moves to any more (its finished transfer records go with it)."""
    require(principal, "lake.endpoint.manage")
    row = get_endpoint(session, name)
    lock_for_delete(session, row, EndpointNotFound(f"no endpoint {name!r}"))
    count = session.scalar(select(func.count()).select_from(Replica).where(Replica.endpoint_id == row.id)) or 0
    if count:
        raise Conflict(f"endpoint {name} still holds {count} replica(s); move or delete them first")
    locks = session.scalar(select(func.count()).select_from(RuleLock).where(RuleLock.endpoint_id == row.id)) or 0
    moving = session.scalar(select(func.count()).select_from(Transfer).where(
        Transfer.dest_endpoint_id == row.id, Transfer.state.in_(("QUEUED", "ACTIVE")))) or 0
    if locks or moving:
        raise Conflict(f"endpoint {name} is still a target of rules ({locks} locks, {moving} transfers)")
    session.execute(delete(Transfer).where(Transfer.dest_endpoint_id == row.id))
    session.delete(row)
    session.flush()
