"""Talking to other participants: every request goes through the lake's SSRF-safe client (``lake.remote``: each URL
checked, its host resolved once and the connection pinned to the checked address), follows no redirect and is
bounded by ``dataspace_message_timeout``. Hosts: ``dataspace_peer_hosts``, or any host with public addresses when
it is empty; loopback and private addresses only where that setting lists them.

These calls wait on the network: they are made outside every unit of work of the store (``store.guard``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import httpx2 as httpx

from twinengine.config import Settings
from twinengine.lake import remote

__all__ = ["PeerUnreachable", "allowed_hosts", "check", "get_json", "open_stream", "post_json", "put_stream",
           "relay", "send"]

MAX_ANSWER_BYTES = 4 * 1024 * 1024  # a peer's JSON answer; more is refused
MAX_RELAYED_BYTES = 256 * 1024 * 1024  # an EDR answer relayed to this engine's user; more is refused


class PeerUnreachable(Exception):
    """Raised when another participant cannot be reached or answers with something unreadable; says why."""


def allowed_hosts(settings: Settings, url: str) -> list[str]:
    host = (urlsplit(url).hostname or "").rstrip(".").lower()
    remote.check_url(url, [host])  # its form first: scheme, user part, backslashes, spaces, short IPv4 forms
    return list(settings.dataspace_peer_hosts) if settings.dataspace_peer_hosts else [host]


def check(settings: Settings, url: str) -> str:
    """``url`` when the engine may reach it (scheme, form, host, address); ``PeerUnreachable`` says why not."""
    try:
        _scheme, host, port = remote.check_url(url, allowed_hosts(settings, url))
        remote.resolve(host, port, allow=settings.dataspace_peer_hosts)
    except remote.Refused as exc:
        raise PeerUnreachable(str(exc).replace("lake_import_hosts (TWIN_LAKE_IMPORT_HOSTS)", "dataspace_peer_hosts")
                              .replace("lake_import_hosts", "dataspace_peer_hosts")) from None
    except (remote.FetchFailed, ValueError):
        raise PeerUnreachable(f"{url}: the host cannot be resolved or the URL parsed") from None
    return url


@contextmanager
def _client(settings: Settings, url: str, token: str | None = None) -> Iterator[httpx.Client]:
    """The guarded client for ``url``; ``token`` goes as its bearer to that URL's origin only."""
    try:
        with remote.guarded_client(url, allowed_hosts(settings, url), token, allow=settings.dataspace_peer_hosts,
                                   timeout=settings.dataspace_message_timeout.total_seconds()) as http:
            yield http
    except remote.Refused as exc:
        raise PeerUnreachable(f"refused: {exc}") from None
    except remote.FetchFailed as exc:
        raise PeerUnreachable(f"{url}: {exc}") from None
    except ValueError as exc:
        raise PeerUnreachable(f"{url}: {exc}") from None


def _json(response: httpx.Response) -> Any:
    body = response.read()
    if len(body) > MAX_ANSWER_BYTES:
        raise PeerUnreachable(f"{response.request.url}: the answer is over {MAX_ANSWER_BYTES} bytes")
    if not body:
        return None
    try:
        return json.loads(body)
    except ValueError:
        return None


def send(settings: Settings, url: str, message: dict[str, Any] | None, token: str,
         method: str = "POST") -> tuple[int, Any]:
    """POST ``message`` (or GET) to ``url`` with our token; the status and the JSON answer (None if not JSON)."""
    try:
        with _client(settings, url, token) as http:
            response = http.request(method, url, json=message, follow_redirects=False,
                                    headers={"Accept": "application/json"})
            return response.status_code, _json(response)
    except PeerUnreachable:
        raise
    except httpx.HTTPError as exc:
        raise PeerUnreachable(f"{url}: {type(exc).__name__}: {exc}") from None


def post_json(settings: Settings, url: str, document: dict[str, Any], token: str) -> tuple[int, Any]:
    """POST a data-plane document (not a protocol message: a push's listing) with ``token`` as its bearer."""
    try:
        with _client(settings, url, token) as http:
            response = http.post(url, json=document, follow_redirects=False, headers={"Accept": "application/json"})
            return response.status_code, _json(response)
    except PeerUnreachable:
        raise
    except httpx.HTTPError as exc:
        raise PeerUnreachable(f"{url}: {type(exc).__name__}: {exc}") from None


def get_json(settings: Settings, url: str) -> Any:
    """GET a public JSON document (a DID document, a version list); ``PeerUnreachable`` unless 200 and JSON."""
    try:
        with _client(settings, url) as http:
            response = http.get(url, follow_redirects=False, headers={"Accept": "application/json"})
            if response.status_code != 200:
                raise PeerUnreachable(f"{url} answered HTTP {response.status_code}")
            found = _json(response)
    except PeerUnreachable:
        raise
    except httpx.HTTPError as exc:
        raise PeerUnreachable(f"{url}: {type(exc).__name__}: {exc}") from None
    if found is None:
        raise PeerUnreachable(f"{url} did not answer JSON")
    return found


def relay(settings: Settings, url: str, token: str | None, params: list[tuple[str, str]]) -> tuple[int, bytes, str]:
    """GET ``url`` with ``params`` and ``token`` as its bearer, for a user of this engine: whatever the status, the
    answer's status, body (at most ``MAX_RELAYED_BYTES``) and media type."""
    try:
        with _client(settings, url, token) as http, \
                http.stream("GET", url, params=tuple(params), follow_redirects=False) as response:
            body = bytearray()
            for chunk in response.iter_bytes(1 << 20):
                body += chunk
                if len(body) > MAX_RELAYED_BYTES:
                    raise PeerUnreachable(f"{url}: the answer is over {MAX_RELAYED_BYTES} bytes")
            return response.status_code, bytes(body), response.headers.get("content-type", "application/json")
    except PeerUnreachable:
        raise
    except httpx.HTTPError as exc:
        raise PeerUnreachable(f"{url}: {type(exc).__name__}: {exc}") from None


@contextmanager
def open_stream(settings: Settings, url: str, token: str | None) -> Iterator[httpx.Response]:
    """GET ``url`` as a stream of bytes (a data address), with ``token`` as its bearer; raises on a non-200."""
    try:
        with _client(settings, url, token) as http, \
                http.stream("GET", url, follow_redirects=False) as response:
            if response.status_code != 200:
                response.read()
                raise PeerUnreachable(f"{url} answered HTTP {response.status_code}: {response.text[:300]}")
            yield response
    except PeerUnreachable:
        raise
    except httpx.HTTPError as exc:
        raise PeerUnreachable(f"{url}: {type(exc).__name__}: {exc}") from None


def put_stream(settings: Settings, url: str, token: str, chunks: Iterable[bytes], *, size: int,
               media_type: str | None = None) -> tuple[int, Any]:
    """PUT ``chunks`` (``size`` bytes) to ``url`` with ``token`` as its bearer (a push); raises on a non-2xx."""
    headers = {"Content-Type": media_type or "application/octet-stream", "Content-Length": str(size),
               "Accept": "application/json"}
    try:
        with _client(settings, url, token) as http:
            response = http.request("PUT", url, content=chunks, headers=headers, follow_redirects=False,
                                    timeout=None)
            if not 200 <= response.status_code < 300:
                raise PeerUnreachable(f"{url} answered HTTP {response.status_code}: {response.text[:300]}")
            return response.status_code, _json(response)
    except PeerUnreachable:
        raise
    except httpx.HTTPError as exc:
        raise PeerUnreachable(f"{url}: {type(exc).__name__}: {exc}") from None
