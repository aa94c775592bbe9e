"""What the data space's shared identity provider vouches for about a participant, beside the provider's register.

A provider's admins record a participant's organisation, groups and regions in its register (``Participant``). A
data space whose members share an OpenID provider (a federation's Keycloak, EGI Check-in) lets that provider say
it instead: a consumer engine signs in there as a service (OAuth client credentials, ``dataspace_credential_*``)
and carries the access token it gets, its *credential*, inside the self-signed token of every protocol message
(claim ``credential``), so that the credential travels bound to that message's sender and audience. A provider
that trusts that OpenID provider (``dataspace_claims_provider``, an ``oidc_providers`` entry) checks the
credential as it checks any token of it (signature by its JWKS, issuer, audience, expiry) and that its
``participant_claim`` names the sender's did:web, since a service speaks for one participant only. The
organisation (``organisation_claim``) and the groups the entry's ``group_rules`` map its claims to are recorded
(``VouchedClaims``) and count for ``dataspace_claims_max_age`` after the last message that carried them, so that a
steward's later step or a transfer days after the agreement is judged by them too.

The register stays the provider's own word: its organisation wins over the vouched one, the groups are both sets
together, a participant it disables has no attributes at all, and regions (``spatial``) come from it alone. A
credential that fails a check refuses the message (401): its sender asked to be judged by it.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from twinengine.auth.claims import person_from_claims
from twinengine.auth.discovery import Discovery
from twinengine.auth.oidc import OidcVerifier
from twinengine.dataspace.models import Participant, VouchedClaims
from twinengine.dataspace.peers import PeerUnreachable
from twinengine.errors import TokenInvalid
from twinengine.store.base import upsert

__all__ = ["Attributes", "CredentialGrant", "Vouched", "attributes", "record", "vouched"]

MAX_CREDENTIAL = 16 * 1024  # characters of a credential; a longer one is refused unread
_EARLY_S = 30.0  # a credential this close to its end is fetched anew


@dataclass(frozen=True)
class Vouched:
    """What one checked credential says about its participant."""

    issuer: str
    subject: str
    organisation: str | None
    groups: frozenset[str]


@dataclass(frozen=True)
class Attributes:
    """A participant as policies see it: the register's record and what the shared provider vouched for."""

    organisation: str | None
    groups: frozenset[str]
    spatial: frozenset[str]


def vouched(verifier: OidcVerifier, did: str, credential: object, *, audience: str) -> Vouched:
    """The claims of ``credential`` (a token of the shared provider for the data space's ``audience``) about
    participant ``did``; TokenInvalid names what fails."""
    provider = verifier.provider
    if not isinstance(credential, str) or not credential or len(credential) > MAX_CREDENTIAL:
        raise TokenInvalid("the participant token's credential is not a token")
    try:
        claims = verifier.decode(credential, audience=audience)
    except TokenInvalid as exc:
        raise TokenInvalid(f"the participant's credential from {provider.issuer} is refused: {exc.message}") from None
    named = claims.get(provider.participant_claim)
    if named != did:
        speaks_for = str(named)[:300] if named is not None else "no participant"
        raise TokenInvalid(f"the participant's credential from {provider.issuer} speaks for {speaks_for} "
                           f"({provider.participant_claim}), not for {did}, who sent it")
    organisation = claims.get(provider.organisation_claim) if provider.organisation_claim else None
    person = person_from_claims(provider, claims)  # its subject, and the groups the entry's rules map to
    return Vouched(issuer=provider.issuer, subject=person.subject,
                   organisation=organisation[:200] if isinstance(organisation, str) and organisation else None,
                   groups=person.groups)


def record(session: Session, did: str, said: Vouched, *, now: datetime, max_age: timedelta) -> None:
    """Keep what ``said`` vouches for ``did``, counting until ``max_age`` from ``now``: one statement, so that two
    messages of one participant arriving at once both write instead of the second colliding with the first."""
    values = {"issuer": said.issuer, "subject": said.subject, "organisation": said.organisation,
              "groups": sorted(said.groups), "vouched_at": now, "good_until": now + max_age}
    statement = upsert(session.get_bind().dialect.name, VouchedClaims.__table__).values(did=did, **values)
    session.execute(statement.on_conflict_do_update(index_elements=["did"], set_=values))


def attributes(session: Session, did: str, now: datetime) -> Attributes:
    """What policies judge of ``did`` at ``now``: the register's record joined with unexpired vouched claims."""
    row = session.get(Participant, did)
    if row is not None and row.disabled:
        return Attributes(None, frozenset(), frozenset())
    said = session.get(VouchedClaims, did)
    if said is not None and said.good_until <= now:
        said = None
    organisation = (row.organisation if row is not None else None) or (said.organisation if said else None)
    groups = frozenset(row.groups or []) if row is not None else frozenset()
    return Attributes(organisation=organisation, groups=groups | frozenset(said.groups or [] if said else []),
                      spatial=frozenset(row.spatial or []) if row is not None else frozenset())


class CredentialGrant:
    """This engine's credential at the shared provider: an access token by the OAuth client-credentials grant
    (RFC 6749 §4.4), fetched anew shortly before it ends. A provider that cannot give one makes the message wait
    (``PeerUnreachable``: the courier tries again later) rather than go without it and be refused for good."""

    def __init__(self, issuer: str, client_id: str, client_secret: str, *, resource: str | None = None,
                 timeout: float = 15.0) -> None:
        self.issuer, self.client_id, self._secret, self._timeout = issuer, client_id, client_secret, timeout
        self._resource = {"resource": resource} if resource else {}
        self._discovery = Discovery(issuer, timeout=timeout)
        self._lock = threading.Lock()
        self._token: str | None = None
        self._ends = 0.0

    def token(self) -> str:
        with self._lock:
            if self._token is None or self._ends - _EARLY_S <= time.time():
                self._token, self._ends = self._fetch()
            return self._token

    def _fetch(self) -> tuple[str, float]:
        from authlib.common.errors import AuthlibBaseError
        from authlib.integrations.requests_client import OAuth2Session

        try:
            endpoint = self._discovery.require("token_endpoint")
            with OAuth2Session(self.client_id, self._secret) as client:
                got = dict(client.fetch_token(endpoint, grant_type="client_credentials", timeout=self._timeout,
                                              **self._resource))
        except AuthlibBaseError as exc:
            raise PeerUnreachable(f"the data space's identity provider {self.issuer} refused this engine's client "
                                  f"{self.client_id!r}: {exc.description or exc.error}") from None
        except (TokenInvalid, OSError, ValueError) as exc:
            raise PeerUnreachable(f"the data space's identity provider {self.issuer} gave no credential: "
                                  f"{getattr(exc, 'message', None) or exc}") from None
        token = got.get("access_token")
        if not isinstance(token, str) or not token:
            raise PeerUnreachable(f"the data space's identity provider {self.issuer} answered without an access token")
        ends = float(got.get("expires_at") or time.time() + float(got.get("expires_in") or 300))
        return token, ends
