"""HTTP to one engine for the Python SDK: the token on every request, error answers raised as the
``twinengine.errors`` class the server raised, answers parsed into pydantic models.

It lives below ``twinengine.client``: the SDK's namespaces (``client.lake``, ``client.streams``, ...) take a
``Transport``, and ``Client`` assembles them over its own, so none of them imports the ``Client``.
"""

from __future__ import annotations

import functools
import ssl
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, NoReturn, TypeVar
from urllib.parse import quote

import httpx2 as httpx
from pydantic import BaseModel

from twinengine.errors import EngineUnavailable, error_from_payload

__all__ = ["Transport", "segment", "tls_context"]

M = TypeVar("M", bound=BaseModel)


@functools.cache
def tls_context() -> ssl.SSLContext:
    """The TLS settings every SDK client of the process verifies servers with (the system's CAs, or
    ``SSL_CERT_FILE``/``SSL_CERT_DIR`` as set when the first client is made). Made once: each new context
    reads the whole CA bundle (tens of ms), which a process opening many clients paid each time, and one
    context is safe to share between connections."""
    return httpx.create_ssl_context()


def segment(value: str) -> str:
    """``value`` escaped as one path segment (a name with ``/`` in it stays one segment)."""
    return quote(value, safe="")


class Transport:
    """Requests to the engine at ``url``, as the holder of ``token``."""

    def __init__(self, url: str, token: str | Callable[[], str | None] | None = None, *, timeout: float = 30.0,
                 http: httpx.Client | None = None) -> None:
        self.url = url.rstrip("/")
        self._token = token
        self._owns_http = http is None
        # An existing client (e.g. a test client bound to an in-process app) may be shared by several SDK
        # clients with different tokens, so the token travels per request, not on the shared client.
        self.http = http if http is not None else httpx.Client(base_url=self.url, timeout=timeout,
                                                               verify=tls_context())

    @property
    def auth(self) -> dict[str, str]:
        """The Authorization header; a token given as a callable is asked each time (a sign-in renews itself)."""
        token = self._token() if callable(self._token) else self._token
        return {"Authorization": f"Bearer {token}"} if token else {}

    def close(self) -> None:
        """Close the HTTP connections (only when this transport opened them: a passed-in ``httpx.Client``
        stays open)."""
        if self._owns_http:
            self.http.close()

    def request(self, method: str, path: str, *, headers: dict[str, str] | None = None,
                **kwargs: Any) -> httpx.Response:
        """The answer of a successful request; an error answer raises its ``twinengine.errors`` class, an
        unreachable engine ``EngineUnavailable``."""
        try:
            response = self.http.request(method, path, headers={**self.auth, **(headers or {})}, **kwargs)
        except httpx.ReadTimeout as exc:  # it was reached: it did not answer in time
            waited = kwargs.get("timeout", self.http.timeout)
            within = f" within {waited.read:g} s" if isinstance(waited, httpx.Timeout) and waited.read else ""
            raise EngineUnavailable(f"the engine at {self.url} did not answer {method} {path}{within}") from exc
        except httpx.TransportError as exc:
            raise EngineUnavailable(f"cannot reach the engine at {self.url}: {exc}") from exc
        if response.status_code >= 400:
            self.raise_for(response)
        return response

    def raise_for(self, response: httpx.Response) -> NoReturn:
        """Raise the error an error answer (already read) carries."""
        try:
            payload: Any = response.json()
        except ValueError:
            payload = response.text
        raise error_from_payload(response.status_code, payload)

    def stream(self, method: str, path: str, *, headers: dict[str, str] | None = None,
               **kwargs: Any) -> AbstractContextManager[httpx.Response]:
        """A streamed answer, whatever its status (the caller reads an error answer and calls ``raise_for``)."""
        return self.http.stream(method, path, headers={**self.auth, **(headers or {})}, **kwargs)

    def get(self, model: type[M], path: str, **params: Any) -> M:
        """GET ``path`` with the query ``params`` that are not None, parsed as ``model``."""
        query = {k: v for k, v in params.items() if v is not None}
        return model.model_validate(self.request("GET", path, params=query).json())

    def send(self, model: type[M], method: str, path: str, body: Any, *, until_done: bool = False) -> M:
        """``method`` ``path`` with the JSON ``body``, the answer parsed as ``model``. ``until_done``: the engine
        answers when the work ends (a synchronous run or ensemble), within its own budget (``sync_timeout``,
        after which it answers that the run timed out), so the answer is waited for without a read timeout."""
        extra: dict[str, Any] = {}
        if until_done and self._owns_http:
            current = self.http.timeout
            extra["timeout"] = httpx.Timeout(connect=current.connect, read=None, write=current.write,
                                             pool=current.pool)
        return model.model_validate(self.request(method, path, json=body, **extra).json())
