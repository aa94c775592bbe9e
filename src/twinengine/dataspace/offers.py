"""Offers of lake data, a twin's stream history, a run's results or an EDR collection's queries, and the
participants a provider knows: who may offer what, and the policy it is offered under (checked when it is made:
a rule the engine cannot enforce is refused naming it)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from twinengine.auth import odrl
from twinengine.auth.policy import require
from twinengine.auth.principal import Principal
from twinengine.catalog.manifest import Stream as DeclaredStream
from twinengine.dataspace.identity import callback_on
from twinengine.dataspace.models import Offer, Participant, VouchedClaims
from twinengine.dataspace.spec import problems
from twinengine.errors import NotFound, PermissionDenied, TokenInvalid, TwinNotFound, ValidationFailed
from twinengine.lake import grants, terms
from twinengine.lake.dids import get_did
from twinengine.quality.spec import FLAGS, Flag
from twinengine.store.base import lock_for_delete, utcnow

__all__ = ["PROVENANCE_KEY", "add_participant", "build_policy", "checked_rules", "create_offer", "get_offer",
           "list_offers", "list_participants", "remove_participant", "stream_window", "withdraw_offer"]

PROVENANCE_KEY = terms.KEY  # a landed dataset's meta: where it came from, under which agreement and policy


def build_policy(*, until: datetime | None = None, days: int | None = None, count: int | None = None,
                 purposes: list[str] | None = None, participants: list[str] | None = None,
                 organisations: list[str] | None = None, groups: list[str] | None = None,
                 spatial: list[str] | None = None, attribution: bool = False,
                 delete_after: int | None = None) -> dict[str, Any]:
    """An ODRL policy from the usual terms: one ``use`` permission whose constraints all hold; duties to
    attribute and to delete the copy ``delete_after`` days after the agreement."""
    constraints: list[dict[str, Any]] = []

    def one_or_any(left: str, values: list[str]) -> None:
        constraints.append({"leftOperand": left, "operator": "eq" if len(values) == 1 else "isAnyOf",
                            "rightOperand": values[0] if len(values) == 1 else values})

    if until is not None:
        constraints.append({"leftOperand": "dateTime", "operator": "lteq",
                            "rightOperand": until.isoformat().replace("+00:00", "Z")})
    if days is not None:
        constraints.append({"leftOperand": "elapsedTime", "operator": "lteq", "rightOperand": f"P{days}D"})
    if count is not None:
        constraints.append({"leftOperand": "count", "operator": "lteq", "rightOperand": str(count)})
    for left, values in (("purpose", purposes), ("recipient", participants), (odrl.PROFILE + "organisation",
                         organisations), (odrl.PROFILE + "group", groups), ("spatial", spatial)):
        if values:
            one_or_any(left, values)
    permission: dict[str, Any] = {"action": "use"}
    if constraints:
        permission["constraint"] = constraints
    policy: dict[str, Any] = {"permission": [permission]}
    duties: list[dict[str, Any]] = [{"action": "attribute"}] if attribution else []
    if delete_after is not None:
        duties.append({"action": "delete", "constraint": [{"leftOperand": "elapsedTime", "operator": "lteq",
                                                           "rightOperand": f"P{delete_after}D"}]})
    if duties:
        policy["obligation"] = duties
    return policy


def _require_manager(session: Session, principal: Principal, twin_ref: str, refusal: str) -> None:
    """``PermissionDenied(refusal)`` unless ``principal`` manages the twin (``twin.manage``)."""
    from twinengine.twins.service import get_twin

    try:
        get_twin(session, principal=principal, ref=twin_ref, action="twin.manage")
    except (PermissionDenied, TwinNotFound):
        raise PermissionDenied(refusal) from None


def _may_offer(session: Session, principal: Principal, did_text: str) -> Any:
    """The DID when ``principal`` may offer it: a twin's data by the twin's owner, other data by its owner
    (its creator or its group's members); admins anything. What arrived under an agreement is never offered on."""
    did = grants.require_read(session, principal, get_did(session, did_text, loc="did"))
    if isinstance(did.meta, dict) and PROVENANCE_KEY in did.meta:
        raise ValidationFailed.one("did", f"{did.did} arrived under a data space agreement: the engine does not "
                                          "offer it on")
    if principal.is_admin:
        return did
    if did.owner_twin is not None:
        _require_manager(session, principal, did.owner_twin, f"{principal.name} may not offer {did.did}: it "
                                                             f"is twin {did.owner_twin}'s data, offered by the "
                                                             "twin's owner")
        return did
    if did.created_by == grants.ENGINE or not grants.owned_by(principal, did):
        raise PermissionDenied(f"{principal.name} may not offer {did.did}: reading it is not owning it")
    return did


def _may_offer_stream(session: Session, principal: Principal, twin_ref: str,
                      stream: str) -> tuple[str, str, DeclaredStream]:
    """(twin id, the offer's ``did`` text, the stream as the app declares it) when ``principal`` may offer the
    history of ``twin_ref``'s ``stream``: those who manage the twin (its owner, a member of its owning group,
    an admin)."""
    from twinengine.twins.service import get_twin, manifest_for

    try:
        twin = get_twin(session, principal=principal, ref=twin_ref, action="twin.manage")
    except TwinNotFound:
        raise ValidationFailed.one("stream.twin", f"no twin {twin_ref!r} of yours") from None
    except PermissionDenied:
        raise PermissionDenied(f"{principal.name} may not offer twin {twin_ref}'s streams: the twin's owner "
                               "offers them") from None
    declared = manifest_for(session, twin).streams
    if stream not in declared:
        raise ValidationFailed.one("stream.stream", f"twin {twin.name} has no stream {stream!r}; its streams: "
                                                    f"{', '.join(sorted(declared)) or 'none'}")
    return twin.id, f"stream:{twin.name}/{stream}", declared[stream]


def _selection(declared: DeclaredStream, window: dict[str, Any] | None, twin: str,
               stream: str) -> dict[str, Any] | None:
    """The window with the key field its sources are told apart by (``key_field``, for the words the catalog
    says); 422 naming ``stream.key`` for a stream whose readings have no key, ``stream.quality`` for one that
    flags none."""
    if not window:
        return window
    if window.get("key") is not None or window.get("keys"):
        if declared.key is None:
            raise ValidationFailed.one("stream.key" if window.get("key") is not None else "stream.keys",
                                       f"stream {stream} of twin {twin} declares no key: its readings are not told "
                                       "apart by source")
        window = {**window, "key_field": declared.key}
    if window.get("quality") is not None and not declared.quality:
        raise ValidationFailed.one("stream.quality", f"stream {stream} of twin {twin} has no quality checks: no "
                                                     "reading is flagged")
    if window.get("fields") is not None:
        unknown = [name for name in window["fields"] if name not in declared.fields]
        if unknown:
            raise ValidationFailed.one("stream.fields", f"stream {stream} of twin {twin} declares no field "
                                                        f"{', '.join(map(repr, unknown))}; its fields: "
                                                        f"{', '.join(declared.fields)}")
        chosen = set(window["fields"]) | {declared.time_field}
        window = {**window, "fields": [name for name in declared.fields if name in chosen]}  # declared order
    return window


def _may_offer_run(session: Session, principal: Principal, run_id: str) -> tuple[str, str | None]:
    """(the run's results dataset, its twin) when ``principal`` may offer a finished run's results: those who
    manage the run's twin, or the run's owner where it ran for no twin; admins any."""
    from twinengine.errors import RunNotFound
    from twinengine.lake.models import Did
    from twinengine.workflows.lake_results import SCOPE as RESULTS
    from twinengine.workflows.lake_results import run_dataset
    from twinengine.workflows.schemas import RunStatus
    from twinengine.workflows.service import get_run

    try:
        run = get_run(session, principal=principal, run_id=run_id)
    except RunNotFound:
        raise ValidationFailed.one("run", f"no run {run_id!r} of yours") from None
    if not principal.is_admin:
        if run.twin_id is not None:
            _require_manager(session, principal, run.twin_id, f"{principal.name} may not offer run {run_id}'s "
                                                              "results: the results of a twin's run are offered by "
                                                              "those who manage the twin")
        elif run.owner != principal.name:
            raise PermissionDenied(f"{principal.name} may not offer run {run_id}'s results: it is {run.owner}'s")
    if run.status != RunStatus.FINISHED:
        raise ValidationFailed.one("run", f"run {run_id} is {run.status}: only a finished run's results are offered")
    if session.scalar(select(Did.id).where(Did.scope == RESULTS, Did.name == run_id)) is None:
        raise ValidationFailed.one("run", f"run {run_id} kept no results in the lake (results reach the lake "
                                          "where the engine has a lake endpoint for them)")
    return run_dataset(run_id), run.twin_id


def _may_offer_collection(session: Session, principal: Principal, collection_id: str) -> Any:
    """The lake dataset behind EDR collection ``collection_id`` (``scope.name``) when ``principal`` may offer it
    (as ``_may_offer``) and it holds a file in a collection format; 422 naming ``collection`` otherwise. (That
    the EDR API reads it is asked before, outside any unit of work: ``api.routes.dataspace_manage``.)"""
    from twinengine.lake.collections import gridded_format
    from twinengine.lake.dids import children_of
    from twinengine.lake.schemas import DidType

    scope, dot, name = collection_id.partition(".")
    if not (dot and scope and name):
        raise ValidationFailed.one("collection", f"{collection_id!r} is not an EDR collection id (scope.name, as "
                                                 "listed at /edr/collections)")
    try:
        did = _may_offer(session, principal, f"{scope}:{name.replace('~', '/')}")
    except NotFound:
        raise ValidationFailed.one("collection", f"no EDR collection {collection_id!r} that you may read") from None
    if did.type != DidType.DATASET or not any(child.type == DidType.FILE and gridded_format(child.name)
                                              for child in children_of(session, did)):
        raise ValidationFailed.one("collection", f"{collection_id!r} holds no file that EDR queries read "
                                                 "(netCDF, HDF5, GRIB, GeoTIFF, zarr, a station table)")
    return did


def stream_window(*, since: datetime | None = None, until: datetime | None = None, last: timedelta | None = None,
                  live: bool = False, key: str | None = None, keys: Sequence[str] | None = None,
                  quality: Sequence[str] | None = None, fields: Sequence[str] | None = None) -> dict[str, Any] | None:
    """A stream offer's window as kept (ISO 8601 times, ``last`` in seconds; the one source ``key`` or the
    several ``keys``, the quality flags and the fields it keeps, where given), or None for the whole history;
    422 naming ``stream.<field>`` for a window that cannot be served (whether the stream has a key, quality
    checks and those fields: ``create_offer``)."""
    selection: dict[str, Any] = {}
    if fields is not None:
        selection["fields"] = list(dict.fromkeys(fields))
    if keys is not None:
        if key is not None:
            raise ValidationFailed.one("stream.keys", "one source (key) or several (keys), not both")
        chosen = list(dict.fromkeys(keys))
        if not chosen or not all(chosen):
            raise ValidationFailed.one("stream.keys", "the key field's values of the sources offered, none empty")
        key, keys = (chosen[0], None) if len(chosen) == 1 else (None, chosen)  # one source is a key
    if key is not None:
        selection["key"] = key
    if keys is not None:
        selection["keys"] = list(keys)
    if quality is not None:
        wanted = {Flag(q) for q in quality}
        selection["quality"] = [flag.value for flag in FLAGS if flag in wanted]  # in the order of severity
    if since is None and until is None and last is None:
        return selection or None
    for name, value in (("since", since), ("until", until)):
        if value is not None and value.utcoffset() is None:
            raise ValidationFailed.one(f"stream.{name}", "a time with its offset from UTC (2026-03-01T00:00:00Z)")
    if last is not None and (since is not None or until is not None):
        raise ValidationFailed.one("stream.last", "a rolling window (last) or a fixed one (since, until), not both")
    if last is not None and last.total_seconds() <= 0:
        raise ValidationFailed.one("stream.last", "a window of some time (P1D, 3600)")
    if since is not None and until is not None and until <= since:
        raise ValidationFailed.one("stream.until", "the window ends after it begins")
    if live and until is not None:
        raise ValidationFailed.one("stream.until", "a live stream goes on: its window has no end")
    window: dict[str, Any] = dict(selection)
    if since is not None:
        window["since"] = since.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if until is not None:
        window["until"] = until.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if last is not None:
        window["last"] = last.total_seconds()
    return window


def create_offer(session: Session, *, principal: Principal, did: str | None = None, title: str,
                 description: str | None = None, keywords: list[str] | None = None,
                 policy: dict[str, Any] | None = None, manual: bool = False,
                 stream: tuple[str, str] | None = None, run: str | None = None, live: bool = False,
                 collection: str | None = None, window: dict[str, Any] | None = None) -> Offer:
    """Offer ``did``, the history of a twin's stream (``stream``: twin, stream name), a finished workflow run's
    results (``run``: its id) or queries of an EDR collection (``collection``), under ``policy`` (default: any
    use). The policy's rules are checked now (422 naming ``policy...``); the offer's JSON text is kept as
    offered. A stream offer serves, to each transfer, the history as it stood when the transfer was accepted (a
    ``live`` one, pushed, goes on pushing what arrives), or the part of it in ``window`` (``stream_window``); a
    run's results are its dataset ``results:<run id>``; a
    collection offer serves no files but EDR queries of that one collection, each one an access."""
    require(principal, "dataspace.offer.create")
    if live and stream is None:
        raise ValidationFailed.one("stream.live", "only a stream is offered live")
    if window is not None and stream is None:
        raise ValidationFailed.one("stream", "only a stream's history is offered in a window")
    if sum(x is not None for x in (did, stream, run, collection)) != 1:
        raise ValidationFailed.one("did", "offer one thing: a lake file or dataset (did), a twin's stream "
                                          "(stream), a run's results (run) or an EDR collection (collection)")
    if collection is not None:
        found = _may_offer_collection(session, principal, collection)
        source: tuple[str, str | None, str | None] = (found.did, found.owner_group, found.owner_twin)
    elif stream is not None:
        twin_id, offered, declared = _may_offer_stream(session, principal, *stream)
        window = _selection(declared, window, *stream)
        source = (offered, None, twin_id)
    elif run is not None:
        results, run_twin = _may_offer_run(session, principal, run)
        source = (results, None, run_twin)
    else:
        assert did is not None
        found = _may_offer(session, principal, did)
        source = (found.did, found.owner_group, found.owner_twin)
    offer_id, dataset_id = f"urn:uuid:{uuid.uuid4()}", f"urn:uuid:{uuid.uuid4()}"
    offer = {"@id": offer_id, "@type": "Offer", **checked_rules(policy if policy is not None else build_policy())}
    if collection is None and "spatialCoordinates" in odrl.operands(offer):
        raise ValidationFailed.one("policy", "spatialCoordinates permits the reads within an area: only an EDR "
                                             "collection's queries have one (a file has none; offer a collection)")
    created = Offer(id=offer_id, dataset_id=dataset_id, did=source[0], title=title, description=description,
                    keywords=list(keywords or []), policy=odrl.canonical(offer), manual=manual, owner=principal.name,
                    owner_group=source[1], owner_twin=source[2],
                    stream=stream[1] if stream is not None else None, run=run, live=live, collection=collection,
                    window=window)
    session.add(created)
    session.flush()
    return created


def checked_rules(policy: Any) -> dict[str, Any]:
    """The rules of an ODRL policy (its ``@id``, ``@type``, ``@context`` and ``target`` dropped) when the engine
    can enforce every one and they make a valid DSP offer; 422 naming ``policy.<where>`` otherwise. An offer's
    policy and a counter-offer's pass here alike."""
    if not isinstance(policy, dict):
        raise ValidationFailed.one("policy", "an ODRL policy is a JSON object")
    rules = {k: v for k, v in policy.items() if k not in ("@id", "@type", "@context", "target")}
    try:
        odrl.check(rules)
    except odrl.PolicyError as exc:
        where, _, why = str(exc).partition(": ")
        raise ValidationFailed.one(f"policy.{where}" if why else "policy", why or str(exc)) from None
    found = problems({"@context": ["https://w3id.org/dspace/2025/1/context.jsonld"], "@id": "urn:uuid:0",
                      "@type": "Dataset", "hasPolicy": [{"@id": "urn:uuid:1", "@type": "Offer", **rules}],
                      "distribution": [{"@type": "Distribution", "format": "HttpData-PULL",
                                        "accessService": "urn:uuid:0"}]}, "Dataset")
    if found:
        raise ValidationFailed.one("policy", "; ".join(found))
    return rules


def _mine(session: Session, principal: Principal, offer: Offer) -> bool:
    if principal.is_admin or offer.owner == principal.name:
        return True
    if offer.owner_group is not None and offer.owner_group in principal.groups:
        return True
    if offer.owner_twin is not None:
        from twinengine.twins.service import get_twin

        try:
            get_twin(session, principal=principal, ref=offer.owner_twin, action="twin.manage")
        except (PermissionDenied, TwinNotFound):
            return False
        return True
    return False


def get_offer(session: Session, *, principal: Principal, offer_id: str) -> Offer:
    require(principal, "dataspace.offer.create")
    offer = session.get(Offer, offer_id)
    if offer is None or not _mine(session, principal, offer):
        raise NotFound(f"no offer {offer_id!r} of yours")
    return offer


def list_offers(session: Session, *, principal: Principal, withdrawn: bool = False) -> list[Offer]:
    require(principal, "dataspace.offer.create")
    query = select(Offer).order_by(Offer.created_at.desc(), Offer.id)
    if not withdrawn:
        query = query.where(Offer.withdrawn_at.is_(None))
    return [o for o in session.scalars(query) if _mine(session, principal, o)]


def withdraw_offer(session: Session, *, principal: Principal, offer_id: str) -> Offer:
    """No longer in the catalog nor negotiable; agreements made under it stand until revoked."""
    offer = get_offer(session, principal=principal, offer_id=offer_id)
    if offer.withdrawn_at is None:
        offer.withdrawn_at = utcnow()
    return offer


def offer_policy(offer: Offer) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(offer.policy)
    return found


def add_participant(session: Session, *, principal: Principal, did: str, title: str | None = None,
                    organisation: str | None = None, groups: list[str] | None = None,
                    spatial: list[str] | None = None, callback: str | None = None) -> Participant:
    """Record (or change) what this provider knows of a participant: its organisation, groups and regions, and
    the callback address this provider's proposals to it go to (an http(s) URL on its did:web's origin)."""
    require(principal, "dataspace.participant.manage")
    if not did.startswith("did:web:") or len(did) > 300 or any(c.isspace() for c in did):
        raise ValidationFailed.one("did", "a participant id is a did:web (did:web:host%3Aport)")
    if callback is not None:
        try:
            callback = callback_on(callback.strip(), did)
        except (ValueError, TokenInvalid) as exc:
            raise ValidationFailed.one("callback", str(exc).replace("callbackAddress", "the callback address")) \
                from None
    row = session.get(Participant, did)
    if row is None:
        row = Participant(did=did, added_by=principal.name)
        session.add(row)
    row.title, row.organisation = title, organisation
    row.groups, row.spatial = sorted(set(groups or [])), sorted(set(spatial or []))
    row.callback = callback
    session.flush()
    return row


def list_participants(session: Session, *,
                      principal: Principal) -> list[tuple[str, Participant | None, VouchedClaims | None]]:
    """Every participant the register records or the shared identity provider vouched for, by id."""
    require(principal, "dataspace.participant.manage")
    rows = {row.did: row for row in session.scalars(select(Participant))}
    said = {row.did: row for row in session.scalars(select(VouchedClaims))}
    return [(did, rows.get(did), said.get(did)) for did in sorted(rows.keys() | said.keys())]


def remove_participant(session: Session, *, principal: Principal, did: str) -> None:
    require(principal, "dataspace.participant.manage")
    row = session.get(Participant, did)
    if row is None:
        raise NotFound(f"no participant {did!r}")
    lock_for_delete(session, row, NotFound(f"no participant {did!r}"))
    session.delete(row)
