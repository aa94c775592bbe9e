"""External OpenID Connect issuers: their access tokens (JWTs) are checked against the issuer's JWKS.

One ``OidcVerifier`` per provider in the settings; ``verify_bearer`` routes ``oidc/<provider>/<token>`` to it.
The principal is named by a claim (``sub`` by default) and gets the provider's configured role; an
identity of that name disabled in the engine is refused, and one not yet known is recorded on first use.
"""

from __future__ import annotations

from typing import Any, ClassVar

import jwt
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from twinengine.auth.issuer import TokenVerifier
from twinengine.auth.models import Identity
from twinengine.auth.principal import Principal, Role, reserved
from twinengine.config import OidcProvider
from twinengine.errors import TokenInvalid
from twinengine.store.base import utcnow
from twinengine.store.engine import Database

__all__ = ["OidcVerifier"]

# asymmetric algorithms only: a JWKS holds public keys, and "none"/HMAC must never be accepted
ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"]


class OidcVerifier(TokenVerifier):
    """Tokens of one OIDC provider, verified with the signing keys its JWKS publishes (cached)."""

    name: ClassVar[str] = "oidc"

    def __init__(self, provider: OidcProvider, *, db: Database | None = None, timeout: float = 10.0) -> None:
        self.provider = provider
        self.provider_id = provider.id
        self._db = db
        self._known: set[str] = set()
        uri = provider.jwks_uri or provider.issuer.rstrip("/") + "/.well-known/jwks.json"
        self._jwks = jwt.PyJWKClient(uri, cache_keys=True, lifespan=300, timeout=int(timeout))

    def accepts(self, claims: dict[str, Any]) -> bool:
        return claims.get("iss") == self.provider.issuer

    def describe(self) -> dict[str, Any]:
        """The provider as openEO's ``/credentials/oidc`` lists it."""
        p = self.provider
        return {"id": p.id, "issuer": p.issuer, "title": p.title or p.id, "description": p.description,
                "scopes": p.scopes}

    def _provision(self, name: str) -> None:
        """Record a first-seen identity (it may own twins and receive grants), in a transaction of its own."""
        if self._db is None or name in self._known:
            return
        insert = postgresql.insert if self._db.backend == "postgresql" else sqlite.insert
        with self._db.session() as session:
            session.execute(insert(Identity).values(name=name, created_at=utcnow(), disabled=False,
                                                    created_by=f"oidc:{self.provider.id}").on_conflict_do_nothing())
        self._known.add(name)

    def verify(self, token: str, *, session: Session) -> Principal:
        try:
            key = self._jwks.get_signing_key_from_jwt(token)
        except jwt.PyJWKClientConnectionError as exc:
            raise TokenInvalid(f"the keys of OIDC provider {self.provider.id!r} could not be fetched") from exc
        except jwt.PyJWKClientError as exc:
            raise TokenInvalid(f"token rejected: {exc}") from exc
        except jwt.InvalidTokenError as exc:
            raise TokenInvalid(f"token rejected: {exc}") from exc
        required = ["iss", "exp", self.provider.name_claim] + (["aud"] if self.provider.audience else [])
        try:
            claims = jwt.decode(token, key.key, algorithms=ALGORITHMS, issuer=self.provider.issuer,
                                audience=self.provider.audience, options={"require": required,
                                                                          "verify_aud": bool(self.provider.audience)})
        except jwt.ExpiredSignatureError as exc:
            raise TokenInvalid("token has expired") from exc
        except jwt.InvalidTokenError as exc:
            raise TokenInvalid(f"token rejected: {exc}") from exc
        name = str(claims[self.provider.name_claim])
        if not name or len(name) > 64:
            raise TokenInvalid(f"claim {self.provider.name_claim!r} must name an identity (1 to 64 characters)")
        if reserved(name):  # else its holder would own, and read, what the engine made for itself
            raise TokenInvalid(f"claim {self.provider.name_claim!r} names {name!r}, a name the engine keeps for "
                               "itself", details=[{"loc": self.provider.name_claim, "msg": "reserved name"}])
        identity = session.get(Identity, name)
        if identity is not None and identity.disabled:
            raise TokenInvalid(f"identity {name!r} is disabled")
        if identity is None:
            self._provision(name)
        return Principal(name=name, role=Role(self.provider.role), issuer=self.provider.issuer,
                         token_id=str(claims["jti"]) if "jti" in claims else None)
