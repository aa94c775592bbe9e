"""Who may read lake data: the one policy point every lake surface asks (identifiers and their content,
replicas, rules, STAC, the lake's collections for EDR and openEO, dataset triggers).

A DID's readability follows where it came from, read live at each request:

- registered for a twin (``owner_twin``: data derived from the twin, registered by someone who may operate
  it) or made by the engine from a twin (stream history: ``meta.twin``): those who may read that twin;
- made by the engine from a run (workflow results: ``meta.workflow_run``): those who may read that run
  (its owner, and readers of its twin);
- a file the engine made with no origin of its own: the origin of an engine-made dataset holding it;
- registered for a group (``owner_group``: uploads, datasets, containers made with ``group``): the group's
  members, at the moment they ask (``auth.policy.owns``, as for a group's twin);
- made by anyone else (uploads, imports, datasets they registered): that identity alone;
- made by the engine from nothing of anyone's (the shared containers such as ``results:workflow-results``):
  every role; their listings show only the members the caller may read.

Origin metadata counts only on DIDs the engine made: metadata a user writes cannot claim a twin's grants.
Admins read everything. Changing a DID (putting files or members into it, deleting it) is for its owner only:
its creator or group's members, those who may operate its twin; what the engine made, nobody but the engine
(``may_change``): reading a twin's data is not adding to it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from twinengine.auth.policy import Permission, owns, require
from twinengine.auth.principal import SYSTEM, Principal, Role
from twinengine.errors import DidNotFound, PermissionDenied, RunNotFound, TwinNotFound
from twinengine.lake.models import Attachment, Did
from twinengine.lake.schemas import DidType

__all__ = ["ENGINE", "Origin", "Readers", "data_twin", "may_change", "may_read", "origin_of",
           "owned_by", "require_change", "require_read", "runs_storage"]

ENGINE = SYSTEM.name  # ``created_by`` of what the engine itself registers

OriginKind = Literal["twin", "run", "owner", "group", "engine"]


@dataclass(frozen=True)
class Origin:
    """Where a DID came from: a twin id, a run id, the identity or group that owns it, or the engine (``key``
    empty)."""

    kind: OriginKind
    key: str = ""


@dataclass
class _Owned:
    """A DID as the policy's ``owns`` judges it: by its owner's name, or by its group."""

    owner: str
    owner_group: str | None = None

    def permission_of(self, identity: str) -> Permission | None:
        return None  # DIDs take no grants: their readers follow their origin


def _own_origin(did: Did) -> Origin | None:
    if did.owner_twin is not None:
        return Origin("twin", did.owner_twin)
    if did.owner_group is not None:
        return Origin("group", did.owner_group)
    if did.created_by != ENGINE:
        return Origin("owner", did.created_by)
    meta = did.meta or {}
    if isinstance(meta.get("twin"), str) and meta["twin"]:
        return Origin("twin", meta["twin"])
    if isinstance(meta.get("workflow_run"), str) and meta["workflow_run"]:
        return Origin("run", meta["workflow_run"])
    return None


def origin_of(session: Session, did: Did) -> Origin:
    """The origin that decides who reads ``did`` (see the module's docstring)."""
    own = _own_origin(did)
    if own is not None:
        return own
    if did.type == DidType.FILE:  # a file registered before files recorded their origin: its engine-made dataset's
        parents = session.scalars(select(Did).join(Attachment, Attachment.parent_id == Did.id)
                                  .where(Attachment.child_id == did.id, Did.created_by == ENGINE,
                                         Did.type == DidType.DATASET).order_by(Did.id))
        for parent in parents:
            found = _own_origin(parent)
            if found is not None:
                return found
    return Origin("engine")


class Readers:
    """``may_read`` for one principal over many DIDs (a listing, a search): each twin's and run's verdict is
    found once per request."""

    def __init__(self, session: Session, principal: Principal) -> None:
        self.session, self.principal = session, principal
        self._verdicts: dict[Origin, bool] = {}

    def __call__(self, did: Did) -> bool:
        if self.principal.is_admin:
            return True
        origin = origin_of(self.session, did)
        verdict = self._verdicts.get(origin)
        if verdict is None:
            verdict = self._verdicts[origin] = self._decide(origin)
        return verdict

    def only(self, rows: Iterable[Did]) -> list[Did]:
        return [row for row in rows if self(row)]

    def _decide(self, origin: Origin) -> bool:
        if origin.kind == "engine":
            return True
        if origin.kind == "owner":
            return owns(self.principal, _Owned(owner=origin.key))
        if origin.kind == "group":
            return owns(self.principal, _Owned(owner="", owner_group=origin.key))
        if origin.kind == "twin":
            # The lake's derived data follows grants that twins and workflows keep: imported here, where the
            # decision is made (nothing those packages import reaches back into this module).
            from twinengine.twins.service import get_twin

            try:
                get_twin(self.session, principal=self.principal, ref=origin.key)
            except (PermissionDenied, TwinNotFound):
                return False
            return True
        from twinengine.workflows.service import get_run

        try:
            get_run(self.session, principal=self.principal, run_id=origin.key)
        except RunNotFound:
            return False
        return True


def owned_by(principal: Principal, did: Did) -> bool:
    """Whether ``principal`` owns ``did`` by name: the members of its group, else its creator (a twin's DID:
    see ``may_change``)."""
    return did.owner_twin is None and owns(principal, _Owned(owner=did.created_by, owner_group=did.owner_group))


def _twin_for(session: Session, principal: Principal, ref: str, action: str) -> str:
    # The twin a DID is registered for: asked of twins where the decision is made, as ``Readers`` does.
    from twinengine.twins.service import get_twin

    return get_twin(session, principal=principal, ref=ref, action=action).id


def data_twin(session: Session, principal: Principal, ref: str) -> str:
    """The id of the twin ``ref`` names, for data registered for it: the caller must be allowed to operate it
    (write its state), since whatever is registered for a twin is read by every reader of the twin."""
    return _twin_for(session, principal, ref, "twin.operate")


def may_change(session: Session, principal: Principal, did: Did) -> bool:
    """Whether ``principal`` may change ``did`` (attach into it, upload into it, delete it): admins; for a
    twin's DID those who may operate the twin; for what the engine made from a twin or a run, or for everyone,
    nobody else; otherwise its owner (``owned_by``)."""
    if principal.is_admin:
        return True
    if did.owner_twin is not None:
        try:
            _twin_for(session, principal, did.owner_twin, "twin.operate")
        except (PermissionDenied, TwinNotFound):
            return False
        return True
    return did.created_by != ENGINE and owned_by(principal, did)


def require_change(session: Session, principal: Principal, did: Did, *, loc: str = "did",
                   readers: Readers | None = None) -> Did:
    """``did`` when ``principal`` may change it; one it may not read is not found (``require_read``), one it
    reads but does not own is refused, naming whose it is."""
    require_read(session, principal, did, readers=readers)
    if not may_change(session, principal, did):
        owner = ("the engine" if did.created_by == ENGINE and did.owner_twin is None else
                 f"twin {did.owner_twin}" if did.owner_twin is not None else
                 f"group {did.owner_group}" if did.owner_group is not None else did.created_by)
        raise PermissionDenied(f"{principal.name} may not change {did.did} (it is {owner}'s; reading it is not "
                               "owning it)", details=[{"loc": loc, "msg": "not yours to change"}])
    return did


def runs_storage(principal: Principal) -> bool:
    """Providers (and admins) run the storage: they place, verify and list replicas, rules and transfers of
    every file, as they see the endpoints' folders anyway; reading content and metadata still follows grants."""
    return principal.is_admin or principal.role is Role.PROVIDER


def may_read(session: Session, principal: Principal, did: Did) -> bool:
    """Whether ``principal`` may read ``did`` (its metadata, members it may read, and its bytes)."""
    return Readers(session, principal)(did)


def require_read(session: Session, principal: Principal, did: Did, *, readers: Readers | None = None) -> Did:
    """``did`` when ``principal`` may read it; otherwise it is not found, as if it did not exist (its name
    alone tells of twins and runs the caller may not see)."""
    require(principal, "lake.read")
    if not (readers or Readers(session, principal))(did):
        raise DidNotFound(f"no file, dataset or container {did.did!r}")
    return did
