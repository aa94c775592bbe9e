"""This engine's connector: its participant identity and addresses, the DID resolver, and what the state
machines need of the engine (the store, the lake, settings). Made once per runtime (``Runtime.dataspace``)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from twinengine.auth.keyring import Keyring
from twinengine.auth.oidc import OidcVerifier
from twinengine.config import Settings
from twinengine.dataspace import peers, vouching
from twinengine.dataspace.identity import DidResolver, Identity, did_of
from twinengine.dataspace.protocol import BASE_PATH, CALLBACK_PATH, DATA_PATH, EDR_PATH, PUSH_PATH
from twinengine.dataspace.vouching import CredentialGrant, Vouched
from twinengine.lake.context import Lake
from twinengine.store.base import utcnow
from twinengine.store.engine import Database

__all__ = ["Connector", "public_url"]

_REWRITE_S = 60.0  # the same vouched claims are written again at most this often (their time to count moves on)


def public_url(settings: Settings) -> str:
    """The engine's URL in the data space: ``dataspace_url``, else ``http://<host>:<port>`` of ``twin serve``."""
    url = settings.dataspace_url or f"http://{settings.host}:{settings.port}"
    return url.rstrip("/")


@dataclass
class Connector:
    settings: Settings
    db: Database
    lake: Lake
    keyring: Callable[[], Keyring]  # the issuer's key ring, once the store is prepared
    # the stream hub and segment sink, opened on first use: what a stream offer's snapshot reads (None: no streams)
    streams: Callable[[], tuple[Any, Any]] | None = None
    # a keyed digest only this engine can make (``Issuer.mac``): the token of a push transfer's address
    mac: Callable[[str, str], str] | None = None
    # the data space's shared identity provider, as this engine verifies its tokens (None: it trusts none)
    vouching: Callable[[], OidcVerifier | None] | None = None
    due: threading.Event = field(default_factory=threading.Event, repr=False)  # the courier has work
    _resolver: DidResolver | None = field(default=None, repr=False)
    _grant: CredentialGrant | None = field(default=None, repr=False)
    _vouched: dict[str, tuple[Vouched, float]] = field(default_factory=dict, repr=False)  # written when, per did
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def wake(self) -> None:
        """Something is due: the courier's loop passes at once."""
        self.due.set()

    @property
    def url(self) -> str:
        return public_url(self.settings)

    @property
    def did(self) -> str:
        return did_of(self.url)

    @property
    def base(self) -> str:
        return self.url + BASE_PATH

    @property
    def callback(self) -> str:
        return self.url + CALLBACK_PATH

    def data_url(self, provider_pid: str) -> str:
        return f"{self.url}{DATA_PATH}/{provider_pid}"

    def edr_url(self, provider_pid: str) -> str:
        """The EDR API root a transfer of a collection offer answers queries at."""
        return f"{self.url}{EDR_PATH}/{provider_pid}"

    def push_url(self, consumer_pid: str) -> str:
        return f"{self.url}{PUSH_PATH}/{consumer_pid}"

    def push_token(self, consumer_pid: str) -> str:
        """The bearer a provider pushes ``consumer_pid``'s data with: derived from this engine's key, so that a
        request sent again carries the same one and nothing needs storing."""
        if self.mac is None:
            raise RuntimeError("this connector has no key to make push tokens with")
        return self.mac("dataspace-push", consumer_pid)

    @property
    def identity(self) -> Identity:
        return Identity(self.did, self.keyring())

    @property
    def resolver(self) -> DidResolver:
        with self._lock:
            if self._resolver is None:
                self._resolver = DidResolver(lambda url: peers.get_json(self.settings, url))
            return self._resolver

    def verify(self, authorization: str | None) -> str:
        """The participant a request comes from (network: outside any unit of work); a credential its token
        carries is checked and what it vouches for recorded (``dataspace.vouching``)."""
        did, claims = self.resolver.verify_claims(authorization, self.did)
        if "credential" in claims:
            self._vouch(did, claims["credential"])
        return did

    def _vouch(self, did: str, credential: object) -> None:
        verifier = self.vouching() if self.vouching is not None else None
        audience = self.settings.dataspace_claims_audience
        if verifier is None or audience is None:
            return  # this engine trusts no shared identity provider: the register alone counts
        said = vouching.vouched(verifier, did, credential, audience=audience)
        with self._lock:
            seen = self._vouched.get(did)
        if seen is not None and seen[0] == said and time.monotonic() - seen[1] < _REWRITE_S:
            return  # the same claims, written a moment ago: their time to count barely moved
        with self.db.session() as session:
            vouching.record(session, did, said, now=utcnow(), max_age=self.settings.dataspace_claims_max_age)
        with self._lock:
            self._vouched[did] = (said, time.monotonic())

    def credential(self) -> str | None:
        """This engine's credential from the shared identity provider (None: none configured)."""
        s = self.settings
        if s.dataspace_credential_issuer is None or s.dataspace_credential_client_id is None or \
                s.dataspace_credential_client_secret is None:
            return None
        with self._lock:
            if self._grant is None:
                self._grant = vouching.CredentialGrant(s.dataspace_credential_issuer, s.dataspace_credential_client_id,
                                                       s.dataspace_credential_client_secret,
                                                       resource=s.dataspace_credential_resource,
                                                       timeout=s.dataspace_message_timeout.total_seconds())
            grant = self._grant
        return grant.token()

    def send(self, url: str, body: dict[str, Any] | None, audience: str, method: str = "POST") -> tuple[int, Any]:
        return peers.send(self.settings, url, body, self.identity.token(audience, self.credential()), method)
