"""The catalog a participant sees: exactly the offers whose policies it passes at the catalog phase, as DCAT
datasets with their ODRL offers and distributions; and the gate every phase asks (the one policy point:
``auth.policy`` rule ``dataspace.use``).

Beside what the DSP 2025-1 schemas require, the catalog carries what DCAT-AP 3.0.1 makes mandatory, from facts
the engine has: titles and descriptions (the offer's, else a sentence naming the provider), the provider as
``dct:publisher`` (a ``foaf:Agent`` named by its participant id, the one name the engine knows it by), the
service's title and each distribution's ``dcat:accessURL`` (the service's endpoint, as DCAT asks for data
reached through a service).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from twinengine.auth import odrl
from twinengine.auth.policy import require
from twinengine.auth.principal import Principal, Role
from twinengine.dataspace.connector import Connector
from twinengine.dataspace.models import Offer
from twinengine.dataspace.protocol import FORMATS, PULL, DspError, message
from twinengine.dataspace.vouching import attributes
from twinengine.errors import PermissionDenied

__all__ = ["Gate", "catalog_of", "context_of", "dataset_of", "participant_principal", "permit", "visible_offer"]

FOAF = "http://xmlns.com/foaf/0.1/"  # not a prefix of the DSP context: its terms are written out


def participant_principal(context: odrl.Context) -> Principal:
    """A remote participant as the policy point sees it: its id, and the groups the provider records for it or
    the shared identity provider vouches for (``dataspace.vouching``), as ``context_of`` read them."""
    return Principal(name=context.participant, role=Role.USER, issuer="dataspace", groups=context.groups)


def context_of(session: Session, did: str, phase: odrl.Phase, *, purpose: str | None = None,
               agreed_at: datetime | None = None, transfers: int = 0, now: datetime | None = None,
               footprint: Any = None) -> odrl.Context:
    now = now or datetime.now(UTC)
    known = attributes(session, did, now)
    return odrl.Context(phase=phase, participant=did, organisation=known.organisation, groups=known.groups,
                        spatial=known.spatial, purpose=purpose, agreed_at=agreed_at, transfers=transfers, now=now,
                        footprint=footprint)


@dataclass
class Gate:
    """A policy at one phase for one participant: what ``auth.policy``'s ``dataspace.use`` rule asks."""

    policy: dict[str, Any]
    context: odrl.Context
    why: str | None = field(default=None, init=False)

    def permits(self, principal: Principal) -> bool:
        self.why = odrl.decide(self.policy, self.context) if principal.name == self.context.participant else \
            "the participant is not the one the policy is judged for"
        return self.why is None


def permit(policy: dict[str, Any], context: odrl.Context) -> str | None:
    """Why the policy point refuses ``context``'s use (None: permitted)."""
    gate = Gate(policy, context)
    principal = participant_principal(context)
    try:
        require(principal, "dataspace.use", gate)
    except PermissionDenied:
        return gate.why or "refused"
    return None


def _service_id(connector: Connector) -> str:
    return f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, connector.base)}"


def _service(connector: Connector) -> dict[str, Any]:
    """The DSP endpoint as a DCAT data service: whole wherever it appears, so a dataset fetched alone is complete."""
    return {"@id": _service_id(connector), "@type": "DataService", "endpointURL": connector.base,
            "dct:title": f"Dataspace Protocol 2025-1 endpoint of {connector.did}"}


def _publisher(connector: Connector) -> dict[str, Any]:
    return {"@id": connector.did, "@type": FOAF + "Agent", FOAF + "name": connector.did}


def dataset_of(offer: Offer, connector: Connector, policy: dict[str, Any]) -> dict[str, Any]:
    """The offer as a DCAT dataset; DCAT-AP wants a description, so one without its own gets a plain sentence."""
    what = (f"the history of a twin's stream {offer.stream}{window_words(offer.window)} (Arrow IPC, as it stands "
            "when a transfer starts)"
            if offer.stream is not None else f"the results of workflow run {offer.run}" if offer.run is not None
            else f"queries of the EDR collection {offer.collection} (OGC API - EDR 1.1 at the transfer's data "
                 "address: position, radius, area, cube, trajectory, corridor; CoverageJSON, GeoJSON, NetCDF)"
            if offer.collection is not None else "lake data")
    dataset: dict[str, Any] = {"@id": offer.dataset_id, "@type": "Dataset", "dct:title": offer.title,
                               "dct:description": offer.description or f"{offer.title}: {what} offered by "
                               f"{connector.did} under the usage policy of its offer"}
    if offer.keywords:
        dataset["dcat:keyword"] = list(offer.keywords)
    dataset["dct:publisher"] = _publisher(connector)
    dataset["hasPolicy"] = [policy]
    dataset["distribution"] = [{"@type": "Distribution", "format": kind, "accessService": _service(connector),
                                "dcat:accessURL": {"@id": connector.base}} for kind in formats_of(offer)]
    return dataset


def window_words(window: dict[str, Any] | None) -> str:
    """A stream offer's window in words (`` from 2026-03-01T00:00:00Z``, `` of the last 7 days``, `` of station
    RR-01``, `` of station RR-01 and RR-02``, `` flagged good``, `` (fields time, level)``), or ''."""
    if not window:
        return ""
    words = ""
    if window.get("key") is not None:
        words += f" of {window.get('key_field') or 'source'} {window['key']}"
    elif window.get("keys"):
        words += f" of {window.get('key_field') or 'source'} {_listed(list(window['keys']))}"
    if window.get("quality"):
        words += f" flagged {' or '.join(window['quality'])}"
    chosen = f" (fields {', '.join(window['fields'])})" if window.get("fields") else ""
    if window.get("last") is not None:
        seconds = float(window["last"])
        return words + (f" of the last {seconds / 86400:g} days" if seconds % 86400 == 0 else
                        f" of the last {seconds / 3600:g} hours" if seconds % 3600 == 0 else
                        f" of the last {seconds:g} seconds") + chosen
    since, until = window.get("since"), window.get("until")
    return words + (f" from {since}" if since else "") + (f" until {until}" if until else "") + chosen


def _listed(values: list[str], most: int = 12) -> str:
    """``RR-01, RR-02 and RR-03``; past ``most``, the first ones and how many more."""
    if len(values) > most:
        return f"{', '.join(values[:most])} and {len(values) - most} more"
    return values[0] if len(values) == 1 else f"{', '.join(values[:-1])} and {values[-1]}"


def formats_of(offer: Offer) -> tuple[str, ...]:
    """The transfer formats an offer is served in: an EDR collection's queries are pulled, never pushed."""
    return (PULL,) if offer.collection is not None else FORMATS


def _visible(session: Session, did: str) -> list[tuple[Offer, dict[str, Any]]]:
    context = context_of(session, did, odrl.Phase.CATALOG)
    found = []
    for offer in session.scalars(select(Offer).where(Offer.withdrawn_at.is_(None)).order_by(Offer.created_at,
                                                                                            Offer.id)):
        policy = odrl.json_of(offer.policy)
        if permit(policy, context) is None:
            found.append((offer, policy))
    return found


def catalog_of(session: Session, connector: Connector, did: str) -> dict[str, Any]:
    """The catalog ``did`` may see (no ``dataset`` key when it sees none: the schema wants at least one)."""
    datasets = [dataset_of(offer, connector, policy) for offer, policy in _visible(session, did)]
    body = message("Catalog", **{"@id": f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, connector.did)}",
                                 "dct:title": f"Data space catalog of {connector.did}",
                                 "dct:description": f"The lake data {connector.did} offers under the Dataspace "
                                                    "Protocol 2025-1 that the requesting participant may see, "
                                                    "each dataset with its usage policy",
                                 "dct:publisher": _publisher(connector)},
                   participantId=connector.did, service=[_service(connector)])
    if datasets:
        body["dataset"] = datasets
    return body


def visible_offer(session: Session, did: str, *, dataset_id: str | None = None,
                  offer_id: str | None = None) -> tuple[Offer, dict[str, Any]]:
    """The offer of a dataset (or by its own id) ``did`` may see; 404 with a catalog error otherwise."""
    for offer, policy in _visible(session, did):
        if offer.dataset_id == dataset_id or offer.id == offer_id:
            return offer, policy
    raise DspError(404, f"no dataset {dataset_id or offer_id!r} in this catalog", kind="catalog", code="404")
