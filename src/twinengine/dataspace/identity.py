"""Who an engine is in the data space, and how it proves it: a ``did:web`` and self-signed tokens.

The participant id is ``did:web:`` of the engine's public URL (``dataspace_url``): its DID document
(``/.well-known/did.json``) publishes the public halves of the engine's signing keys (the issuer's key ring,
current and next, ``auth.keyring``). Every message to another engine carries ``Authorization: Bearer <JWT>``,
ES256, signed by this engine for that one audience: ``iss`` = ``sub`` = our DID, ``aud`` = theirs, two minutes.
The receiver resolves the issuer's DID document (through the outbound address policy: ``dataspace.peers``), picks
the key by ``kid`` and verifies with PyJWT. A rotated key was published as *next* before it signs, and an unknown
``kid`` makes the receiver read the document again (at most once a second), so rotation breaks no agreement:
agreements name participants, never keys.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import jwt
from jwt.algorithms import ECAlgorithm

from twinengine import outbound
from twinengine.auth.keyring import Keyring, public_jwk
from twinengine.errors import AuthenticationRequired, TokenInvalid

__all__ = ["DidResolver", "Identity", "callback_on", "did_document", "did_of", "document_url", "participant_base"]

TOKEN_SECONDS = 120
MAX_TOKEN_SECONDS = 300  # a token the other side made to live longer is refused
CACHE_SECONDS = 60.0
DID_CONTEXT = ["https://www.w3.org/ns/did/v1", "https://w3id.org/security/suites/jws-2020/v1"]


def did_of(url: str) -> str:
    """``did:web`` of the engine at ``url`` (``http://127.0.0.1:8001`` -> ``did:web:127.0.0.1%3A8001``)."""
    parts = urlsplit(url)
    host = parts.netloc
    segments = [quote(host, safe="")] + [quote(s, safe="") for s in parts.path.strip("/").split("/") if s]
    return "did:web:" + ":".join(segments)


def _loopback(host: str) -> bool:
    ip = outbound.literal(host)
    return host == "localhost" or (ip is not None and ip.is_loopback)


def participant_base(did: str) -> str:
    """The URL a ``did:web`` names (its origin and path): https, or http for a loopback host (two engines on one
    machine; did:web itself asks for https)."""
    if not did.startswith("did:web:") or len(did) > 300:
        raise TokenInvalid("the participant is not a did:web")
    segments = [unquote(s) for s in did[len("did:web:"):].split(":")]
    host = segments[0]
    name = urlsplit(f"//{host}").hostname or ""
    if not host or "/" in host or "@" in host:
        raise TokenInvalid("the participant's did:web names no host")
    scheme = "http" if _loopback(name) else "https"
    return f"{scheme}://{host}" + "".join(f"/{s}" for s in segments[1:])


def callback_on(address: object, did: str) -> str:
    """``address`` when it is an http(s) URL on the origin of ``did`` (messages to a participant go nowhere else:
    the engine is no proxy to other hosts); ``ValueError`` says why not."""
    if not isinstance(address, str) or not address.startswith(("http://", "https://")):
        raise ValueError("callbackAddress is not an http(s) URL")
    origin = participant_base(did)
    if not (address.rstrip("/") + "/").startswith(origin.rstrip("/") + "/"):
        raise ValueError(f"callbackAddress is not on {origin}, the origin of {did}")
    return address.rstrip("/")


def document_url(did: str) -> str:
    base = participant_base(did)
    return f"{base}/.well-known/did.json" if urlsplit(base).path in ("", "/") else f"{base}/did.json"


def did_document(did: str, keyring: Keyring, catalog_url: str) -> dict[str, Any]:
    """This engine's DID document: its published keys as JsonWebKey2020 and its catalog service."""
    methods = []
    for generation in keyring.published():
        jwk = {**public_jwk(generation.public), "kid": generation.kid, "alg": "ES256", "use": "sig"}
        methods.append({"id": f"{did}#{generation.kid}", "type": "JsonWebKey2020", "controller": did,
                        "publicKeyJwk": jwk})
    ids = [m["id"] for m in methods]
    return {"@context": DID_CONTEXT, "id": did, "verificationMethod": methods, "authentication": ids,
            "assertionMethod": ids,
            "service": [{"id": f"{did}#catalog", "type": "CatalogService", "serviceEndpoint": catalog_url}]}


@dataclass
class Identity:
    """This engine as a participant: its DID and the key ring it signs with."""

    did: str
    keyring: Keyring

    def token(self, audience: str, credential: str | None = None) -> str:
        """A token for one message to ``audience``; ``credential``: this engine's access token from the data
        space's shared identity provider (``dataspace.vouching``), carried inside, bound to this message."""
        kid, key = self.keyring.signing_key()
        now = int(time.time())
        claims: dict[str, Any] = {"iss": self.did, "sub": self.did, "aud": audience, "iat": now, "nbf": now - 5,
                                  "exp": now + TOKEN_SECONDS, "jti": str(uuid.uuid4())}
        if credential is not None:
            claims["credential"] = credential
        return jwt.encode(claims, key, algorithm="ES256", headers={"kid": kid, "typ": "JWT"})


class DidResolver:
    """DID documents of other participants, read through ``fetch`` (a callable that GETs a URL and returns JSON
    through the outbound policy) and kept ``CACHE_SECONDS``; an unknown key id reads the document again, at most
    once a second per participant."""

    def __init__(self, fetch: Any) -> None:
        self._fetch = fetch
        self._lock = threading.Lock()
        self._documents: dict[str, tuple[float, dict[str, Any]]] = {}
        self._missed: dict[str, float] = {}

    def _document(self, did: str, *, fresh: bool = False) -> dict[str, Any]:
        with self._lock:
            cached = self._documents.get(did)
        if cached is not None and not fresh and time.monotonic() - cached[0] < CACHE_SECONDS:
            return cached[1]
        try:
            document = self._fetch(document_url(did))
        except TokenInvalid:
            raise
        except Exception as exc:
            raise TokenInvalid(f"the DID document of {did} cannot be read: {exc}") from None
        if not isinstance(document, dict) or document.get("id") != did:
            raise TokenInvalid(f"the DID document of {did} does not name it")
        with self._lock:
            self._documents[did] = (time.monotonic(), document)
        return document

    def key(self, did: str, kid: str) -> Any:
        document = self._document(did)
        found = _method(document, did, kid)
        if found is None:
            with self._lock:
                last = self._missed.get(did, 0.0)
                again = time.monotonic() - last > 1.0
                if again:
                    self._missed[did] = time.monotonic()
            if again:
                found = _method(self._document(did, fresh=True), did, kid)
        if found is None:
            raise TokenInvalid(f"{did} publishes no key {kid!r}")
        return ECAlgorithm(ECAlgorithm.SHA256).from_jwk(found)

    def verify(self, authorization: str | None, audience: str) -> str:
        """The participant id a request's ``Authorization`` proves (its bearer token), or 401."""
        return self.verify_claims(authorization, audience)[0]

    def verify_claims(self, authorization: str | None, audience: str) -> tuple[str, dict[str, Any]]:
        """``verify``'s participant id and the token's claims (a ``credential`` among them, if carried)."""
        if not authorization:
            raise AuthenticationRequired("a data space message carries its sender's token (Authorization)")
        token = authorization.split(" ", 1)[1].strip() if authorization.lower().startswith("bearer ") \
            else authorization.strip()
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise TokenInvalid("the Authorization token is not a JWT") from None
        issuer, kid = unverified.get("iss"), header.get("kid")
        if header.get("alg") != "ES256" or not isinstance(kid, str) or not isinstance(issuer, str):
            raise TokenInvalid("a participant token is ES256 with a kid and an issuer")
        key = self.key(issuer, kid)
        try:
            claims = jwt.decode(token, key, algorithms=["ES256"], audience=audience, issuer=issuer,
                                options={"require": ["iss", "sub", "aud", "exp", "iat"]}, leeway=10)
        except jwt.PyJWTError as exc:
            raise TokenInvalid(f"the participant token is not valid: {exc}") from None
        if claims["sub"] != issuer or claims["exp"] - claims["iat"] > MAX_TOKEN_SECONDS:
            raise TokenInvalid("a participant token is its issuer's own and lives at most five minutes")
        return issuer, claims


def _method(document: dict[str, Any], did: str, kid: str) -> dict[str, Any] | None:
    for method in document.get("verificationMethod", []) or []:
        if not isinstance(method, dict):
            continue
        jwk = method.get("publicKeyJwk")
        if method.get("id") in (f"{did}#{kid}", f"#{kid}") and isinstance(jwk, dict) and jwk.get("kty") == "EC":
            return jwk
    return None
