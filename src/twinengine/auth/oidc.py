"""External OpenID Connect issuers: their access tokens (JWTs) are checked against the issuer's JWKS.

One ``OidcVerifier`` per provider in the settings; ``verify_bearer`` routes ``oidc/<provider>/<token>`` to it.
The principal is the identity keyed by the token's issuer and subject (``auth.external``), with the role and
groups the provider's rules map its claims to (``auth.claims``). The first use of a token counts as a sign-in:
the identity is created or updated and the asserted groups recorded; a disabled identity is refused. Whether
the provider still vouches for a token in use is asked every ``recheck_s`` seconds (``auth.liveness``): when
it does not, the token is refused and the person held until the provider vouches for them again (a new sign-in
lifts the hold); the groups its answer holds replace the token's. The principal carries the token's end
(``expires_at``): nothing made from it outlives it (``auth.lifetimes``). A token that is not a JWT
(an opaque access token) is known only through that answer: it is accepted only where the provider introspects
it and says it is active, issued by it, for the engine's audience and not expired.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from dataclasses import replace
from typing import Any, ClassVar

import jwt
from sqlalchemy.orm import Session

from twinengine.auth.claims import person_from_claims
from twinengine.auth.discovery import Discovery
from twinengine.auth.external import find_identity, principal_for, record_sign_in
from twinengine.auth.groups import groups_of
from twinengine.auth.issuer import TokenVerifier
from twinengine.auth.lifetimes import token_end
from twinengine.auth.liveness import (
    Answer,
    Liveness,
    block,
    held_by,
    hold,
    issued_at,
    refreshed,
    refused,
    release,
    suspended,
)
from twinengine.auth.principal import Principal
from twinengine.config import OidcProvider, web_url
from twinengine.errors import TokenInvalid
from twinengine.store.base import utcnow
from twinengine.store.engine import Database

__all__ = ["OidcVerifier"]

_SIGNED_IN = 4096  # tokens whose first use (the sign-in) is remembered

# asymmetric algorithms only: a JWKS holds public keys, and "none"/HMAC must never be accepted
ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"]


class OidcVerifier(TokenVerifier):
    """Tokens of one OIDC provider, verified with the signing keys its JWKS publishes (cached)."""

    name: ClassVar[str] = "oidc"

    def __init__(self, provider: OidcProvider, *, db: Database | None = None, timeout: float = 10.0) -> None:
        self.provider = provider
        self.provider_id = provider.id
        self._db = db
        self._signed_in: OrderedDict[bytes, None] = OrderedDict()
        self._lock = threading.Lock()
        self.discovery = Discovery(provider.issuer, timeout=timeout)
        self._timeout = timeout
        self._jwks_client: jwt.PyJWKClient | None = None
        self._liveness: Liveness | None = None

    @property
    def liveness(self) -> Liveness:
        """The provider's answers whether tokens still stand (its introspection endpoint, from discovery)."""
        if self._liveness is None:
            p = self.provider
            if p.recheck_s is None or p.client_secret is None:
                self._liveness = Liveness(p, None)
            else:
                try:
                    endpoint = self.discovery.get("introspection_endpoint")
                except TokenInvalid:  # discovery unreachable now: not asked this time, looked up again next time
                    return Liveness(p, None)
                self._liveness = Liveness(p, endpoint, timeout=self._timeout)
        return self._liveness

    @property
    def _jwks(self) -> jwt.PyJWKClient:
        """The provider's keys (cached), at ``jwks_uri`` or where its discovery document says."""
        if self._jwks_client is None:
            uri = self.provider.jwks_uri or self.discovery.require("jwks_uri")
            try:  # the key fetcher would also read file: and ftp: URLs, so a document naming one is refused
                web_url(uri)
            except ValueError as exc:
                raise TokenInvalid(f"the keys of OIDC provider {self.provider.id!r} cannot be fetched: its "
                                   f"jwks_uri {exc}") from None
            self._jwks_client = jwt.PyJWKClient(uri, cache_keys=True, lifespan=300, timeout=int(self._timeout))
        return self._jwks_client

    def accepts(self, claims: dict[str, Any]) -> bool:
        return claims.get("iss") == self.provider.issuer

    def describe(self) -> dict[str, Any]:
        """The provider as openEO's ``/credentials/oidc`` lists it."""
        p = self.provider
        described: dict[str, Any] = {"id": p.id, "issuer": p.issuer, "title": p.title or p.id,
                                     "description": p.description, "scopes": p.scopes}
        client = self.public_client_id
        if client is not None:  # the official client then signs in with no client of its own configured
            described["default_clients"] = [{"id": client, "grant_types": [
                "urn:ietf:params:oauth:grant-type:device_code+pkce", "authorization_code+pkce", "refresh_token"],
                "redirect_urls": ["http://localhost/callback", "http://127.0.0.1/callback"]}]  # any port (RFC 8252)
        return described

    @property
    def public_client_id(self) -> str | None:
        """The client people's own programs (``twin login``, openEO clients) use: one without a secret."""
        p = self.provider
        return p.cli_client_id or (p.client_id if p.client_secret is None else None)

    def _first_use(self, token: str) -> bool:
        """Whether ``token`` is new here: its first use records the sign-in, later ones only look up."""
        digest = hashlib.sha256(token.encode()).digest()
        with self._lock:
            if digest in self._signed_in:
                self._signed_in.move_to_end(digest)
                return False
            self._signed_in[digest] = None
            while len(self._signed_in) > _SIGNED_IN:
                self._signed_in.popitem(last=False)
        return True

    def signing_key(self, token: str) -> Any:
        """The provider's public key that signed ``token`` (by its ``kid``), from the JWKS."""
        try:
            return self._jwks.get_signing_key_from_jwt(token).key
        except jwt.PyJWKClientConnectionError as exc:
            raise TokenInvalid(f"the keys of OIDC provider {self.provider.id!r} could not be fetched") from exc
        except jwt.PyJWKClientError as exc:
            raise TokenInvalid(f"token rejected: {exc}") from exc
        except jwt.InvalidTokenError as exc:
            raise TokenInvalid(f"token rejected: {exc}") from exc

    def decode(self, token: str, *, audience: str | None = None) -> dict[str, Any]:
        """The claims of an access token of this provider: signature, issuer, expiry and audience (the
        provider's, or ``audience``: a data space credential's) checked."""
        key = self.signing_key(token)
        audience = audience or self.provider.audience
        required = ["iss", "exp", self.provider.name_claim] + (["aud"] if audience else [])
        try:
            claims: dict[str, Any] = jwt.decode(
                token, key, algorithms=ALGORITHMS, issuer=self.provider.issuer, audience=audience,
                options={"require": required, "verify_aud": bool(audience)})
        except jwt.ExpiredSignatureError as exc:
            raise TokenInvalid("token has expired") from exc
        except jwt.InvalidTokenError as exc:
            raise TokenInvalid(f"token rejected: {exc}") from exc
        return claims

    def claims(self, token: str) -> dict[str, Any] | None:
        """``decode``'s claims, or None when ``token`` is not a valid access token for the engine."""
        try:
            return self.decode(token)
        except TokenInvalid:
            return None

    def verify(self, token: str, *, session: Session) -> Principal:
        if _is_jwt(token):
            claims = self.decode(token)
            answer = self.liveness.check(token)
        else:
            answer = self.liveness.check(token)
            claims = self._introspected(answer)
        if not answer.active:
            if self._db is not None and answer.fresh:  # news from the provider: the person is held, not disabled
                hold(self._db, person_from_claims(self.provider, claims),
                     ended=str(claims["jti"]) if "jti" in claims else None)
            raise refused(self.provider)
        said = refreshed(self.provider, claims, answer.said)
        answer = self._released(token, said, answer)
        # an answer asked for this use that tells the groups is recorded as a sign-in: memberships follow it
        sign_in = self._first_use(token) or (answer.fresh and said is not claims)
        principal = self.principal(said, token_id=str(claims["jti"]) if "jti" in claims else None,
                                   session=session, sign_in=sign_in)
        return replace(principal, expires_at=token_end(claims))

    def _released(self, token: str, claims: dict[str, Any], answer: Answer) -> Answer:
        """Lift the provider's hold on the token's person (``liveness.hold``) when the provider vouches for them
        now: an answer asked for this use, or a token it issued after the hold began; a token from before is
        asked about again. Looked up in units of work of their own, so the verification sees the outcome."""
        if self._db is None or suspended(self.provider, claims):
            return answer  # a token flagging the person suspended is refused where the person is made
        person = person_from_claims(self.provider, claims)
        with self._db.session(readonly=True) as lookup:
            identity = find_identity(lookup, issuer=person.issuer, subject=person.subject)
            began = identity.disabled_at if identity is not None and identity.disabled and \
                identity.disabled_by == held_by(person.provider) else None
        if began is None:
            return answer
        since = issued_at(claims)
        if not answer.fresh and (since is None or since <= began) and self.liveness.enabled:
            answer = self.liveness.check(token, fresh=True)
            if not answer.active:
                raise refused(self.provider)
        if answer.fresh:
            since = utcnow()
        release(self._db, person, since=since)
        return answer

    def vouched(self, claims: dict[str, Any]) -> None:
        """The provider signed the person in just now (the portal's code flow): a hold on them is lifted."""
        if self._db is not None and not suspended(self.provider, claims):
            release(self._db, person_from_claims(self.provider, claims), since=utcnow())

    def _introspected(self, answer: Answer) -> dict[str, Any]:
        """The claims of an opaque access token: the provider's introspection answer, checked as ``decode``
        checks a JWT's (issuer, audience, expiry, subject)."""
        p = self.provider
        if not self.liveness.enabled:
            raise TokenInvalid(f"token is not a valid JWT, and OIDC provider {p.id!r} introspects no tokens "
                               "for the engine")
        if not answer.active:
            raise TokenInvalid(f"OIDC provider {p.id!r} says the token is not active")
        said = answer.said
        if said is None:
            raise TokenInvalid(f"OIDC provider {p.id!r} could not be asked about the token; try again")
        audiences = said.get("aud")
        audiences = [audiences] if isinstance(audiences, str) else audiences if isinstance(audiences, list) else []
        exp = said.get("exp")
        if said.get("iss", p.issuer) != p.issuer:
            raise TokenInvalid(f"token rejected: issued by {said.get('iss')!r}, not {p.issuer!r}")
        if p.audience and p.audience not in audiences:
            raise TokenInvalid(f"token rejected: it is not for audience {p.audience!r}")
        if not isinstance(exp, int | float) or exp <= time.time():
            raise TokenInvalid("token has expired")
        return said

    def principal(self, claims: dict[str, Any], *, token_id: str | None, session: Session,
                  sign_in: bool = True) -> Principal:
        """The principal verified ``claims`` of this provider stand for; ``sign_in`` records the sign-in."""
        person = person_from_claims(self.provider, claims)
        if suspended(self.provider, claims):
            if self._db is not None:
                block(self._db, person)
            raise refused(self.provider)
        identity = find_identity(session, issuer=person.issuer, subject=person.subject)
        if identity is not None and identity.disabled:
            raise TokenInvalid(f"identity {identity.name!r} is disabled")
        if sign_in or identity is None:
            if self._db is None:
                raise TokenInvalid(f"subject {person.subject!r} has no identity here yet")
            name, groups = record_sign_in(self._db, person)
        else:
            name, groups = identity.name, groups_of(session, identity.name)
        return principal_for(name, person, groups=groups, token_id=token_id)


def _is_jwt(token: str) -> bool:
    """Whether ``token`` has a JWT's shape (three parts with a JSON header); others are opaque."""
    try:
        jwt.get_unverified_header(token)
    except jwt.InvalidTokenError:
        return False
    return True
