"""The SDK's data space (``client.dataspace``): offers, participants, another participant's catalog,
negotiations, agreements, transfers and usage records, over the management API."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from pydantic import BaseModel, TypeAdapter

from twinengine.dataspace.schemas import (
    AccessRead,
    AgreementRead,
    Identity,
    NegotiationRead,
    OfferRead,
    ParticipantRead,
    TransferRead,
)
from twinengine.transport import Transport, segment

if TYPE_CHECKING:
    from twinengine.access.sdk import EDRClient

__all__ = ["DataspaceClient"]

_P = "/api/v1/dataspace"


_M = TypeVar("_M", bound=BaseModel)


def _list(model: type[_M], payload: Any) -> list[_M]:
    return TypeAdapter(list[model]).validate_python(payload)  # type: ignore[valid-type]


class DataspaceClient:
    def __init__(self, transport: Transport) -> None:
        self._t = transport

    def identity(self) -> Identity:
        """This engine's participant id (did:web) and protocol addresses."""
        return self._t.get(Identity, f"{_P}/identity")

    # -- offering -------------------------------------------------------------------------------------------------

    def offer(self, did: str, title: str, *, description: str | None = None, keywords: list[str] | None = None,
              policy: dict[str, Any] | None = None, until: datetime | None = None, days: int | None = None,
              count: int | None = None, purposes: list[str] | None = None, participants: list[str] | None = None,
              organisations: list[str] | None = None, groups: list[str] | None = None,
              spatial: list[str] | None = None, attribution: bool = False, manual: bool = False,
              delete_after: int | None = None) -> OfferRead:
        """Offer a lake file or dataset: under ``policy`` (ODRL), or under the terms given."""
        terms = _terms(until=until, days=days, count=count, purposes=purposes, participants=participants,
                       organisations=organisations, groups=groups, spatial=spatial, attribution=attribution,
                       delete_after=delete_after)
        return self._offer({"did": did}, title, description, keywords, policy, terms, manual)

    def offer_stream(self, twin: str, stream: str, title: str, *, description: str | None = None,
                     keywords: list[str] | None = None, policy: dict[str, Any] | None = None,
                     until: datetime | None = None, days: int | None = None, count: int | None = None,
                     purposes: list[str] | None = None, participants: list[str] | None = None,
                     organisations: list[str] | None = None, groups: list[str] | None = None,
                     spatial: list[str] | None = None, attribution: bool = False,
                     manual: bool = False, live: bool = False, delete_after: int | None = None,
                     window: tuple[datetime | None, datetime | None] | timedelta | None = None,
                     key: str | Sequence[str] | None = None, quality: list[str] | None = None,
                     fields: list[str] | None = None) -> OfferRead:
        """Offer the history of ``twin``'s ``stream``: each transfer serves it as it stood when the transfer was
        accepted (an Arrow IPC file of the stream's fields), under ``policy`` or the terms given; ``live``: a
        pushed transfer goes on pushing what the stream receives, until it is suspended or ended. ``window``:
        only the readings of (since, until) (either may be None), or of a ``timedelta`` before each transfer
        starts. (``until`` is the policy's end, not the window's.) ``key``: one source's readings only (the value
        of the stream's key field, a station id), or a list of them for several sources; ``quality``: only
        readings flagged so (["good"]); ``fields``: only these fields (the time field always)."""
        terms = _terms(until=until, days=days, count=count, purposes=purposes, participants=participants,
                       organisations=organisations, groups=groups, spatial=spatial, attribution=attribution,
                       delete_after=delete_after)
        offered: dict[str, Any] = {"twin": twin, "stream": stream, "live": live}
        if isinstance(window, timedelta):
            offered["last"] = window.total_seconds()
        elif window is not None:
            offered |= {k: v.isoformat() for k, v in zip(("since", "until"), window, strict=True) if v is not None}
        sources = {"key": key} if isinstance(key, str) else {"keys": list(key)} if key is not None else {}
        offered |= sources | {k: v for k, v in (("quality", quality), ("fields", fields)) if v is not None}
        return self._offer({"stream": offered}, title, description, keywords, policy, terms, manual)

    def offer_run(self, run: str, title: str, *, description: str | None = None, keywords: list[str] | None = None,
                  policy: dict[str, Any] | None = None, until: datetime | None = None, days: int | None = None,
                  count: int | None = None, purposes: list[str] | None = None,
                  participants: list[str] | None = None, organisations: list[str] | None = None,
                  groups: list[str] | None = None, spatial: list[str] | None = None, attribution: bool = False,
                  manual: bool = False, delete_after: int | None = None) -> OfferRead:
        """Offer a finished workflow run's results (its lake dataset ``results:<run id>``), under ``policy`` or the
        terms given."""
        terms = _terms(until=until, days=days, count=count, purposes=purposes, participants=participants,
                       organisations=organisations, groups=groups, spatial=spatial, attribution=attribution,
                       delete_after=delete_after)
        return self._offer({"run": run}, title, description, keywords, policy, terms, manual)

    def offer_collection(self, collection: str, title: str, *, description: str | None = None,
                         keywords: list[str] | None = None, policy: dict[str, Any] | None = None,
                         manual: bool = False, **terms: Any) -> OfferRead:
        """Offer queries of an EDR collection (``scope.name``, as ``client.edr.collections()`` lists it): a
        transfer serves OGC API - EDR queries of that collection, each one an access under the policy, and no
        files. ``terms`` as for ``offer`` (until, days, count, purposes, participants, ...)."""
        return self._offer({"collection": collection}, title, description, keywords, policy, _terms(**terms),
                           manual)

    def _offer(self, source: dict[str, Any], title: str, description: str | None, keywords: list[str] | None,
               policy: dict[str, Any] | None, terms: dict[str, Any], manual: bool) -> OfferRead:
        body: dict[str, Any] = {**source, "title": title, "description": description,
                                "keywords": keywords or [], "manual": manual}
        if policy is not None:
            body["policy"] = policy
        else:
            body["terms"] = {k: v for k, v in terms.items() if v not in (None, False)}
        return self._t.send(OfferRead, "POST", f"{_P}/offers", body)

    def offers(self, *, withdrawn: bool = False) -> list[OfferRead]:
        return _list(OfferRead, self._t.request("GET", f"{_P}/offers", params={"withdrawn": withdrawn}).json())

    def withdraw(self, offer_id: str) -> OfferRead:
        return OfferRead.model_validate(self._t.request("DELETE", f"{_P}/offers/{segment(offer_id)}").json())

    def propose(self, offer_id: str, url: str | None = None, *, participant: str | None = None,
                to: str | None = None, purpose: str | None = None) -> NegotiationRead:
        """Propose an offer of yours to the participant at ``url`` (``participant``: its id, checked; without
        ``url``, the participant alone names it): the provider starts the negotiation, for ``to`` there (a user or
        ``group:NAME``; None: its admins). The answer's ``callback`` and ``callback_source`` say where its
        messages go and why there."""
        body = {"url": url, "participant": participant, "addressee": to, "purpose": purpose}
        return self._t.send(NegotiationRead, "POST", f"{_P}/offers/{segment(offer_id)}/propose", body)

    def participant(self, did: str, *, title: str | None = None, organisation: str | None = None,
                    groups: list[str] | None = None, spatial: list[str] | None = None,
                    callback: str | None = None) -> ParticipantRead:
        """Record what this provider knows of a participant (admins); ``callback``: its protocol callback address,
        where this provider's proposals to it go (on its did:web's origin)."""
        return self._t.send(ParticipantRead, "PUT", f"{_P}/participants", {
            "did": did, "title": title, "organisation": organisation, "groups": groups or [],
            "spatial": spatial or [], "callback": callback})

    def participants(self) -> list[ParticipantRead]:
        return _list(ParticipantRead, self._t.request("GET", f"{_P}/participants").json())

    def remove_participant(self, did: str) -> None:
        """Forget what this provider recorded of a participant (admins); policies asking for its organisation,
        groups or regions then no longer hold for it."""
        self._t.request("DELETE", f"{_P}/participants/{segment(did)}")

    # -- consuming ------------------------------------------------------------------------------------------------

    def catalog(self, url: str) -> dict[str, Any]:
        """The catalog the engine at ``url`` shows this engine (DCAT, as the protocol has it)."""
        found: dict[str, Any] = self._t.request("POST", f"{_P}/catalog", json={"url": url}).json()
        return found

    def negotiate(self, url: str, dataset: str, *, offer: str | None = None, purpose: str | None = None,
                  land: str | None = None, twin: str | None = None, endpoint: str | None = None,
                  push: bool | Literal["bucket"] = False) -> NegotiationRead:
        """Negotiate for ``dataset`` of the engine at ``url``; with ``land`` (scope:name), transfer once finalized
        and land the data there (for ``twin``): pulled, or with ``push`` pushed by the provider (``"bucket"``:
        written into the S3 bucket of ``endpoint``, AmazonS3-PUSH)."""
        body: dict[str, Any] = {"url": url, "dataset": dataset, "offer": offer, "purpose": purpose}
        if land:
            body["land"] = {"did": land, "twin": twin, "endpoint": endpoint, "format": _format(push)}
        return self._t.send(NegotiationRead, "POST", f"{_P}/negotiations", body)

    def negotiations(self, *, role: str | None = None) -> list[NegotiationRead]:
        """Negotiations of yours or of your offers, and providers' proposals for you nobody has taken up yet
        (``owner`` empty; ``step(id, "accept")``, a counter-offer with ``"request"``, or ``"terminate"``)."""
        params = {"role": role} if role else {}
        return _list(NegotiationRead, self._t.request("GET", f"{_P}/negotiations", params=params).json())

    def negotiation(self, negotiation_id: int) -> NegotiationRead:
        return self._t.get(NegotiationRead, f"{_P}/negotiations/{negotiation_id}")

    def step(self, negotiation_id: int, action: str, *, policy: dict[str, Any] | None = None,
             until: datetime | None = None, days: int | None = None, count: int | None = None,
             purposes: list[str] | None = None, participants: list[str] | None = None,
             organisations: list[str] | None = None, groups: list[str] | None = None,
             spatial: list[str] | None = None, attribution: bool = False,
             delete_after: int | None = None) -> NegotiationRead:
        """A step of yours: agree, finalize, offer (provider); request, accept, verify (consumer); terminate.
        With ``policy`` or any of the terms, an ``offer`` or a ``request`` is a counter-offer of those rules."""
        terms = _terms(until=until, days=days, count=count, purposes=purposes, participants=participants,
                       organisations=organisations, groups=groups, spatial=spatial, attribution=attribution,
                       delete_after=delete_after)
        counter = ({"policy": policy} if policy is not None else {}) | (
            {"terms": terms} if any(v not in (None, False) for v in terms.values()) else {})  # both: refused
        return self._t.send(NegotiationRead, "POST", f"{_P}/negotiations/{negotiation_id}/{action}", counter or None)

    def agreements(self, *, role: str | None = None) -> list[AgreementRead]:
        params = {"role": role} if role else {}
        return _list(AgreementRead, self._t.request("GET", f"{_P}/agreements", params=params).json())

    def agreement(self, agreement_id: str) -> AgreementRead:
        return self._t.get(AgreementRead, f"{_P}/agreements/{segment(agreement_id)}")

    def revoke(self, agreement_id: str) -> AgreementRead:
        return self._t.send(AgreementRead, "POST", f"{_P}/agreements/{segment(agreement_id)}/revoke", None)

    def accesses(self, agreement_id: str) -> list[AccessRead]:
        """The provider's usage record of an agreement: every data access, refused ones too."""
        return _list(AccessRead, self._t.request("GET", f"{_P}/agreements/{segment(agreement_id)}/accesses").json())

    def transfer(self, agreement_id: str, land: str | None, *, twin: str | None = None,
                 endpoint: str | None = None, push: bool | Literal["bucket"] = False) -> TransferRead:
        """Transfer under an agreement of yours; the data lands as the dataset ``land`` (None: not pulled),
        pulled by this engine or, with ``push``, pushed by the provider (``"bucket"``: written into the S3
        bucket of ``endpoint``, an endpoint that accepts pushes)."""
        return self._t.send(TransferRead, "POST", f"{_P}/transfers", {
            "agreement": agreement_id, "did": land or "dataspace:unused", "twin": twin, "endpoint": endpoint,
            "land_data": land is not None, "format": _format(push)})

    def transfers(self, *, role: str | None = None, agreement: str | None = None) -> list[TransferRead]:
        params = {k: v for k, v in {"role": role, "agreement": agreement}.items() if v}
        return _list(TransferRead, self._t.request("GET", f"{_P}/transfers", params=params).json())

    def transfer_state(self, transfer_id: int) -> TransferRead:
        return self._t.get(TransferRead, f"{_P}/transfers/{transfer_id}")

    def transfer_step(self, transfer_id: int, action: str) -> TransferRead:
        """start, suspend, complete or terminate a transfer of yours."""
        return self._t.send(TransferRead, "POST", f"{_P}/transfers/{transfer_id}/{action}", None)

    def edr(self, transfer_id: int) -> EDRClient:
        """The EDR collection a started transfer of yours may query, as ``client.edr`` is used:
        ``client.dataspace.edr(7).position(collection, "POINT(8 45)")``. Each request goes through this engine,
        which sends it on with the transfer's token; the provider counts each query as an access."""
        from twinengine.access.sdk import EDRClient

        return EDRClient(self._t, root=f"{_P}/transfers/{transfer_id}/edr")


def _terms(*, until: datetime | None = None, days: int | None = None, count: int | None = None,
           purposes: list[str] | None = None, participants: list[str] | None = None,
           organisations: list[str] | None = None, groups: list[str] | None = None, spatial: list[str] | None = None,
           attribution: bool = False, delete_after: int | None = None) -> dict[str, Any]:
    return {"until": until.isoformat() if until else None, "days": days, "count": count, "purposes": purposes,
            "participants": participants, "organisations": organisations, "groups": groups, "spatial": spatial,
            "attribution": attribution, "delete_after": delete_after}


def _format(push: bool | str) -> str:
    return "AmazonS3-PUSH" if push == "bucket" else "HttpData-PUSH" if push else "HttpData-PULL"
