"""This engine's connector: its participant identity and addresses, the DID resolver, and what the state
machines need of the engine (the store, the lake, settings). Made once per runtime (``Runtime.dataspace``)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from twinengine.auth.keyring import Keyring
from twinengine.config import Settings
from twinengine.dataspace import peers
from twinengine.dataspace.identity import DidResolver, Identity, did_of
from twinengine.dataspace.protocol import BASE_PATH, CALLBACK_PATH, DATA_PATH, EDR_PATH, PUSH_PATH
from twinengine.lake.context import Lake
from twinengine.store.engine import Database

__all__ = ["Connector", "public_url"]


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
    due: threading.Event = field(default_factory=threading.Event, repr=False)  # the courier has work
    _resolver: DidResolver | None = field(default=None, repr=False)
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
        """The participant a request comes from (network: outside any unit of work)."""
        return self.resolver.verify(authorization, self.did)

    def send(self, url: str, body: dict[str, Any] | None, audience: str, method: str = "POST") -> tuple[int, Any]:
        return peers.send(self.settings, url, body, self.identity.token(audience), method)
