"""An OpenID provider's discovery document (``<issuer>/.well-known/openid-configuration``), fetched when first
needed and kept for a while: where its keys, authorization, token, device and end-session endpoints are."""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx2 as httpx

from twinengine.errors import TokenInvalid

__all__ = ["Discovery"]

_KEEP_S = 3600.0


class Discovery:
    """The metadata of the provider at ``issuer``; its ``issuer`` must be that URL (OpenID Discovery §4.3)."""

    def __init__(self, issuer: str, *, timeout: float = 10.0) -> None:
        self.issuer = issuer
        self._timeout = timeout
        self._document: dict[str, Any] | None = None
        self._fetched = 0.0
        self._lock = threading.Lock()

    def document(self) -> dict[str, Any]:
        with self._lock:
            if self._document is not None and time.monotonic() - self._fetched < _KEEP_S:
                return self._document
        url = self.issuer.rstrip("/") + "/.well-known/openid-configuration"
        try:
            response = httpx.get(url, timeout=self._timeout)
            response.raise_for_status()
            document = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise TokenInvalid(f"the discovery document of {self.issuer} could not be read: {exc}") from exc
        if not isinstance(document, dict) or document.get("issuer") != self.issuer:
            raise TokenInvalid(f"the discovery document at {url} is not that of issuer {self.issuer}")
        with self._lock:
            self._document, self._fetched = document, time.monotonic()
        return document

    def get(self, key: str) -> str | None:
        """An endpoint (or other string) of the document, None when the provider does not offer it."""
        value = self.document().get(key)
        return value if isinstance(value, str) else None

    def require(self, key: str) -> str:
        value = self.get(key)
        if value is None:
            raise TokenInvalid(f"the provider {self.issuer} offers no {key}")
        return value
