"""Batched state writes: many revisions of many twins in one transaction, all or nothing.

Each item is checked exactly as a single write is (``twin.operate`` on its twin, then ``validate_write``
against the twin's app), and every problem is reported with the item's position: ``items[3].reported.level``.
Only when all items pass are the revisions appended, with a few executemany statements for the whole batch.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from sqlalchemy import or_, select
from sqlalchemy.orm import Session, selectinload

from twinengine.auth.policy import require
from twinengine.auth.principal import Principal
from twinengine.catalog.manifest import Manifest
from twinengine.errors import PayloadTooLarge, PermissionDenied, Problem, TwinNotFound, ValidationFailed
from twinengine.twins import state
from twinengine.twins.batch_schemas import BatchRevision, StateBatchItem, StateBatchResult
from twinengine.twins.models import Twin
from twinengine.twins.schemas import StateKind
from twinengine.twins.service import manifest_for

__all__ = ["write_batch"]

_ID = re.compile(r"^tw-[0-9a-f]{12}$")  # as in service.get_twin: such a ref is an id first


def write_batch(session: Session, *, principal: Principal, items: Sequence[StateBatchItem],
                max_items: int) -> StateBatchResult:
    """Validate every item, then append one revision per item; items of the same twin get consecutive
    numbers in their order. Raises before anything is written when any item is refused."""
    if len(items) > max_items:
        raise PayloadTooLarge(f"{len(items)} items in one batch; the limit is {max_items}",
                              details=[{"loc": "items", "msg": f"at most {max_items} items per request"}])
    twins = _authorized_twins(session, principal, items)
    manifests: dict[int, Manifest] = {}
    problems: list[Problem] = []
    pending: dict[str, list[state.Pending]] = {}
    for index, item in enumerate(items):
        twin = twins[item.twin]
        manifest = manifests.get(twin.app_id)
        if manifest is None:
            manifest = manifests[twin.app_id] = manifest_for(session, twin)
        try:
            values = state.validate_write(manifest, {StateKind.REPORTED: item.reported,
                                                     StateKind.DESIRED: item.desired})
        except ValidationFailed as exc:
            problems += [Problem(f"items[{index}].{p.loc}", p.msg) for p in exc.problems]
            continue
        pending.setdefault(twin.id, []).append((values, item.message))
    if problems:
        raise ValidationFailed(problems)
    by_id = {twin.id: twin for twin in twins.values()}
    first = state.append_revisions(session, [(by_id[t], revisions) for t, revisions in pending.items()],
                                   author=principal.name,
                                   manifests={t: manifests[by_id[t].app_id] for t in pending})
    taken: dict[str, int] = {}
    numbered = []
    for item in items:
        twin_id = twins[item.twin].id
        offset = taken[twin_id] = taken.get(twin_id, -1) + 1
        numbered.append(BatchRevision(twin_id=twin_id, revision=first[twin_id] + offset))
    values_written = sum(len(values) for revisions in pending.values() for values, _ in revisions)
    return StateBatchResult(revisions=numbered, values=values_written)


def _authorized_twins(session: Session, principal: Principal, items: Sequence[StateBatchItem]) -> dict[str, Twin]:
    """Each ref the items name → its twin, found in one query; the first item whose twin is missing or not
    writable by the caller (``twin.operate``, the single write's check) is the error, named by position."""
    refs = list(dict.fromkeys(item.twin for item in items))
    rows = session.scalars(select(Twin).where(or_(Twin.id.in_(refs), Twin.name.in_(refs)))
                           .options(selectinload(Twin.grants))).all()
    by_id = {twin.id: twin for twin in rows}
    by_name = {twin.name: twin for twin in rows}
    found: dict[str, Twin] = {}
    for index, item in enumerate(items):
        if item.twin in found:
            continue
        twin = (by_id.get(item.twin) if _ID.match(item.twin) else None) or by_name.get(item.twin)
        loc = f"items[{index}].twin"
        if twin is None:
            message = f"no twin with id or name {item.twin!r}"
            raise TwinNotFound(f"{loc}: {message}", details=[{"loc": loc, "msg": message}])
        try:
            require(principal, "twin.operate", twin, target=f"twin {item.twin}")
        except PermissionDenied as exc:
            raise PermissionDenied(f"{loc}: {exc.message}", details=[{"loc": loc, "msg": exc.message}]) from None
        found[item.twin] = twin
    return found
