"""Token verification: one entry point, many issuers. The built-in issuer signs ES256 JWTs itself;
external OIDC issuers (verified through their JWKS) plug in as further ``TokenVerifier`` classes."""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import select
from sqlalchemy.orm import Session

from twinengine.auth.groups import with_groups
from twinengine.auth.keyring import Keyring, kid_of
from twinengine.auth.lifetimes import token_end
from twinengine.auth.models import ApiToken, Identity
from twinengine.auth.principal import Principal, Role, reserved
from twinengine.errors import AuthenticationRequired, TokenInvalid
from twinengine.store.base import utcnow
from twinengine.store.engine import Database

__all__ = ["BuiltinIssuer", "SignedToken", "TokenVerifier", "disabled_message", "split_bearer", "verify_bearer"]

_VERIFIED_TOKENS = 4096  # tokens whose verified signature is remembered


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
        self.root_kid = kid_of(self._public)
        self.issuer = issuer
        self.keyring: Keyring | None = None  # the store's generations of keys (auth/keyring.py), once prepared
        self._verified: OrderedDict[str, tuple[dict[str, Any], str]] = OrderedDict()  # token -> (claims, kid)
        self._lock = threading.Lock()
        secret = key.private_numbers().private_value.to_bytes(32, "big")
        self._mac_key = hashlib.sha256(b"twinengine mac\x00" + secret).digest()

    def use_store(self, db: Database, key_dir: Path, session: Session) -> Keyring:
        """Sign and verify with the store's generations of keys from now on (made, in ``session``, on the
        first start)."""
        keyring = Keyring(db, key_dir, self._key)
        keyring.prepare(session)
        self.keyring = keyring
        return keyring

    def mac(self, purpose: str, value: str) -> str:
        """A keyed digest of ``value`` that only this engine can make (the CSRF token bound to a portal
        session is ``mac("csrf", jti)``); derived from the signing key, so nothing else needs storing."""
        message = purpose.encode() + b"\x00" + value.encode()
        return hmac.new(self._mac_key, message, hashlib.sha256).hexdigest()

    def sign(self, name: str, role: Role, ttl: timedelta | None, *, not_after: datetime | None = None,
             audience: str | None = None, limits: dict[str, Any] | None = None) -> SignedToken:
        """Sign a token valid for ``ttl`` (None: no expiry), and in any case not after ``not_after``; with
        ``audience``, a token for that site (``aud``), which this engine itself refuses. ``limits`` are claims
        that tell a site verifying the token alone what it is limited to (``scope``, ``twins``); the engine
        itself reads a token's limits from its record, never from the token."""
        now = utcnow()
        jti = uuid.uuid4().hex
        expires = now + ttl if ttl is not None else None
        if not_after is not None:
            expires = not_after if expires is None else min(expires, not_after)
        claims: dict[str, Any] = {"iss": self.issuer, "sub": name, "role": role.value, "jti": jti,
                                  "iat": int(now.timestamp())}
        if expires is not None:
            claims["exp"] = int(expires.timestamp())
        if audience is not None:
            claims["aud"] = audience
        for claim, value in (limits or {}).items():
            claims.setdefault(claim, value)
        kid, key = self.keyring.signing_key() if self.keyring is not None else (self.root_kid, self._key)
        token = jwt.encode(claims, key, algorithm=self.algorithm, headers={"kid": kid})
        return SignedToken(token, jti, name, role, now, expires)

    def accepts(self, claims: dict[str, Any]) -> bool:
        return claims.get("iss") == self.issuer

    def _public_key(self, kid: str) -> tuple[ec.EllipticCurvePublicKey, bool]:
        """The public key named ``kid`` and whether it is retired; TokenInvalid for a key never known here."""
        if self.keyring is None:
            if kid != self.root_kid:
                raise TokenInvalid(f"token signed with an unknown key (kid {kid!r})")
            return self._public, False
        found = self.keyring.find(kid)
        if found is None:
            raise TokenInvalid(f"token signed with an unknown key (kid {kid!r})")
        return found.public, found.state == "retired"

    @staticmethod
    def _check_lifetime(claims: dict[str, Any], kid: str, retired: bool) -> None:
        if "exp" in claims and int(claims["exp"]) <= int(time.time()):
            raise TokenInvalid("token has expired")
        if retired and "exp" not in claims:
            raise TokenInvalid(f"token signed with retired key {kid!r} and without an expiry: ask for a new token")

    def _claims(self, token: str) -> dict[str, Any]:
        """The token's verified claims. A signature, once verified, cannot change, so verified claims are
        remembered (a bounded number of tokens); the expiry, and whether the key was retired since, are
        checked again on every use. A token without ``kid`` (made before keys rotated) names generation 1."""
        with self._lock:
            cached = self._verified.get(token)
            if cached is not None:
                self._verified.move_to_end(token)
        if cached is not None:
            claims, kid = cached
            self._check_lifetime(claims, kid, self._public_key(kid)[1])
            return claims
        try:
            kid = str(jwt.get_unverified_header(token).get("kid") or self.root_kid)
        except jwt.InvalidTokenError as exc:
            raise TokenInvalid(f"token rejected: {exc}") from exc
        public, retired = self._public_key(kid)
        try:
            claims = jwt.decode(token, public, algorithms=[self.algorithm], issuer=self.issuer,
                                options={"require": ["iss", "sub", "jti", "iat"], "verify_aud": False})
        except jwt.ExpiredSignatureError as exc:
            raise TokenInvalid("token has expired") from exc
        except jwt.InvalidTokenError as exc:
            raise TokenInvalid(f"token rejected: {exc}") from exc
        if "aud" in claims:  # exchanged for a site (delegation/exchange.py): good there, not here
            raise TokenInvalid(f"token is for audience {claims['aud']!r}, not this engine")
        self._check_lifetime(claims, kid, retired)
        with self._lock:
            self._verified[token] = (claims, kid)
            while len(self._verified) > _VERIFIED_TOKENS:
                self._verified.popitem(last=False)
        return claims

    def verify(self, token: str, *, session: Session) -> Principal:
        claims = self._claims(token)
        # Revocation and disabled identities: one query whenever the caller verifies (see auth/verdicts.py).
        jti = str(claims["jti"])
        found = session.execute(
            select(ApiToken.identity, ApiToken.identity_id, ApiToken.role, ApiToken.revoked_at, Identity.disabled,
                   Identity.id, ApiToken.scopes, ApiToken.twins, ApiToken.twin_ids, ApiToken.parent_jti,
                   ApiToken.expires_at, Identity.disabled_by)
            .join(Identity, Identity.name == ApiToken.identity, isouter=True).where(ApiToken.jti == jti)).first()
        if found is None or found.identity != claims["sub"]:
            raise TokenInvalid("token is not known to this engine")
        if found.revoked_at is not None:
            raise TokenInvalid("token has been revoked")
        if found.id is None or found.identity_id != found.id:  # a deleted identity, perhaps its name reused
            raise TokenInvalid(f"the identity token {jti} was issued to has been deleted")
        if found.disabled:
            raise TokenInvalid(disabled_message(found.identity, found.disabled_by))
        if reserved(found.identity):  # issued before the name was reserved: it would act as the engine
            raise TokenInvalid(f"identity {found.identity!r} has a name the engine keeps for itself")
        if found.parent_jti is not None:  # a scoped token works only while the token it was made with does
            parent = session.execute(select(ApiToken.identity, ApiToken.revoked_at, ApiToken.expires_at)
                                     .where(ApiToken.jti == found.parent_jti)).first()
            if parent is None or parent.identity != found.identity or parent.revoked_at is not None:
                raise TokenInvalid(f"the token this scoped token was made with ({found.parent_jti}) is revoked "
                                   "or deleted")
            if parent.expires_at is not None and parent.expires_at <= utcnow():
                raise TokenInvalid(f"the token this scoped token was made with ({found.parent_jti}) has expired")
        return Principal(name=found.identity, role=Role(found.role), issuer=self.issuer, token_id=jti,
                         scopes=None if found.scopes is None else frozenset(found.scopes),
                         twins=None if found.twins is None else frozenset(found.twins),
                         twin_ids=None if found.twin_ids is None else frozenset(found.twin_ids),
                         expires_at=token_end(claims, found.expires_at))


def disabled_message(name: str, disabled_by: str | None) -> str:
    """Why a disabled identity's token is refused: an admin's disable, or its provider's hold (``auth.liveness``),
    which the person's next sign-in there lifts."""
    if disabled_by is not None and disabled_by.startswith("provider:"):
        return (f"identity {name!r} is on hold: its OpenID provider ({disabled_by.removeprefix('provider:')}) "
                "no longer vouches for a token of theirs; sign in there again")
    return f"identity {name!r} is disabled"


def split_bearer(token: str) -> tuple[str | None, str]:
    """(OIDC provider named by the prefix or None, the token itself). openEO clients prefix the token with
    how they got it: ``basic//<token>`` (from ``/credentials/basic``, where an engine token is the
    password) or ``oidc/<provider>/<token>``; others send the token alone."""
    if token.startswith("basic//"):
        return None, token.removeprefix("basic//")
    if token.startswith("oidc/"):
        _, provider, raw = token.split("/", 2) if token.count("/") >= 2 else ("", "", "")
        return provider, raw
    return None, token


def verify_bearer(token: str | None, *, session: Session, verifiers: Sequence[TokenVerifier]) -> Principal:
    """The one function every request's token goes through. An openEO prefix (``split_bearer``) is dropped
    and the token verified as any other, an OIDC one only by the verifier of the provider it names."""
    if not token:
        raise AuthenticationRequired("a bearer token is required (Authorization: Bearer <token>)")
    provider, token = split_bearer(token)
    if provider is not None:
        chosen = [v for v in verifiers if getattr(v, "provider_id", None) == provider]
        if not chosen:
            raise TokenInvalid(f"no OIDC provider {provider!r} is configured")
        verifiers = chosen
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.InvalidTokenError as exc:
        if provider is not None:  # an opaque access token: only its provider can say what it is (introspection)
            return with_groups(session, verifiers[0].verify(token, session=session))
        raise TokenInvalid("token is not a valid JWT") from exc
    for verifier in verifiers:
        if verifier.accepts(claims):
            # Groups are read with the token, whatever its issuer: a membership removed applies from the next
            # verification (within ``settings.token_recheck``, at once for removals through this process).
            return with_groups(session, verifier.verify(token, session=session))
    if provider is not None:
        raise TokenInvalid(f"the token was not issued by OIDC provider {provider!r}")
    raise TokenInvalid(f"no trusted issuer for tokens from {claims.get('iss')!r}")
