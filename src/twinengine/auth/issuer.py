"""Token verification: one entry point, many issuers. The built-in issuer signs ES256 JWTs itself;
external OIDC issuers (verified through their JWKS) plug in as further ``TokenVerifier`` classes."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ClassVar

import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy.orm import Session

from twinengine.auth.models import ApiToken, Identity
from twinengine.auth.principal import Principal, Role
from twinengine.errors import AuthenticationRequired, TokenInvalid
from twinengine.store.base import utcnow

__all__ = ["BuiltinIssuer", "SignedToken", "TokenVerifier", "verify_bearer"]


class TokenVerifier:
    """Verifies tokens from one issuer. ``accepts`` looks at unverified claims to route a token here."""

    name: ClassVar[str] = "abstract"

    def accepts(self, claims: dict[str, Any]) -> bool:
        return False

    def verify(self, token: str, *, session: Session) -> Principal:
        raise NotImplementedError


@dataclass(frozen=True)
class SignedToken:
    token: str
    jti: str
    name: str
    role: Role
    issued_at: datetime
    expires_at: datetime | None


class BuiltinIssuer(TokenVerifier):
    """The engine's own issuer: signs tokens and accepts only those still recorded and not revoked."""

    name = "builtin"
    algorithm = "ES256"

    def __init__(self, key: ec.EllipticCurvePrivateKey, issuer: str) -> None:
        self._key = key
        self._public = key.public_key()
        self.issuer = issuer

    def sign(self, name: str, role: Role, ttl: timedelta | None) -> SignedToken:
        now = utcnow()
        jti = uuid.uuid4().hex
        expires = now + ttl if ttl is not None else None
        claims: dict[str, Any] = {"iss": self.issuer, "sub": name, "role": role.value, "jti": jti,
                                  "iat": int(now.timestamp())}
        if expires is not None:
            claims["exp"] = int(expires.timestamp())
        token = jwt.encode(claims, self._key, algorithm=self.algorithm)
        return SignedToken(token, jti, name, role, now, expires)

    def accepts(self, claims: dict[str, Any]) -> bool:
        return claims.get("iss") == self.issuer

    def verify(self, token: str, *, session: Session) -> Principal:
        try:
            claims = jwt.decode(token, self._public, algorithms=[self.algorithm], issuer=self.issuer,
                                options={"require": ["iss", "sub", "jti", "iat"]})
        except jwt.ExpiredSignatureError as exc:
            raise TokenInvalid("token has expired") from exc
        except jwt.InvalidTokenError as exc:
            raise TokenInvalid(f"token rejected: {exc}") from exc
        record = session.get(ApiToken, str(claims["jti"]))
        if record is None or record.identity != claims["sub"]:
            raise TokenInvalid("token is not known to this engine")
        if record.revoked_at is not None:
            raise TokenInvalid("token has been revoked")
        identity = session.get(Identity, record.identity)
        if identity is None or identity.disabled:
            raise TokenInvalid(f"identity {record.identity!r} is disabled")
        return Principal(name=record.identity, role=Role(record.role), issuer=self.issuer, token_id=record.jti)


def verify_bearer(token: str | None, *, session: Session, verifiers: Sequence[TokenVerifier]) -> Principal:
    """The one function every request's token goes through.

    openEO clients prefix the token with how they got it: ``basic//<token>`` (from ``/credentials/basic``,
    where an engine token is the password) or ``oidc/<provider>/<token>``; the prefix is dropped and the
    token verified as any other, an OIDC one only by the verifier of the provider it names.
    """
    if not token:
        raise AuthenticationRequired("a bearer token is required (Authorization: Bearer <token>)")
    provider: str | None = None
    if token.startswith("basic//"):
        token = token.removeprefix("basic//")
    elif token.startswith("oidc/"):
        _, provider, token = token.split("/", 2) if token.count("/") >= 2 else ("", "", "")
        chosen = [v for v in verifiers if getattr(v, "provider_id", None) == provider]
        if not chosen:
            raise TokenInvalid(f"no OIDC provider {provider!r} is configured")
        verifiers = chosen
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.InvalidTokenError as exc:
        raise TokenInvalid("token is not a valid JWT") from exc
    for verifier in verifiers:
        if verifier.accepts(claims):
            return verifier.verify(token, session=session)
    if provider is not None:
        raise TokenInvalid(f"the token was not issued by OIDC provider {provider!r}")
    raise TokenInvalid(f"no trusted issuer for tokens from {claims.get('iss')!r}")
