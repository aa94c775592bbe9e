"""Reading other servers for the lake (STAC imports, and webhooks through the same client). Each URL is parsed
once and refused when parsers could disagree on its host (a user part, a backslash, spaces, an IPv4 address in a
short form); its host must be on the allow-list; it is resolved once and the connection goes to the address that
was checked against ``twinengine.outbound`` (loopback and private addresses only when a setting lists them as an
address or network: ``allow``, never the URL's own host). Credentials go only to the origin the user named, on
every request, redirects included."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import httpx2 as httpx

from twinengine import outbound
from twinengine.transport import tls_context

__all__ = ["FetchFailed", "Refused", "check_url", "guarded_client", "resolve", "stac_io"]

_NAME = re.compile(r"^[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*$")
_DEFAULT_PORT = {"http": 80, "https": 443}
Origin = tuple[str, str, int]


class Refused(Exception):
    """Raised when a URL the import would read breaks the rules (scheme, form, host, address); says why."""


class FetchFailed(Exception):
    """Raised for any failure to read a remote document: one kind, so answers never map internal networks."""


def _listed(host: str, hosts: Sequence[str]) -> bool:
    ip = outbound.literal(host)
    if ip is not None:
        nets = outbound.networks(hosts)
        return any(form in net for form in outbound.forms(ip) for net in nets if form.version == net.version)
    return any(host == h or (h.startswith("*.") and host.endswith(h[1:])) for h in hosts)


def _off(hosts: Sequence[str], host: str) -> str:
    return (f"host {host!r} is not in lake_import_hosts (TWIN_LAKE_IMPORT_HOSTS)" if hosts
            else "STAC imports are off: an admin lists the hosts they may read in lake_import_hosts "
                 "(TWIN_LAKE_IMPORT_HOSTS)")


def check_url(url: str, hosts: Sequence[str]) -> Origin:
    """The origin (scheme, host, port) of ``url`` when the import may read it; :class:`Refused` says why not."""
    if not url.isascii() or any(c <= " " or c in "\\\x7f" for c in url):
        raise Refused("the URL holds a backslash, a space, a control or a non-ASCII character")
    parts = urlsplit(url)
    if parts.scheme not in _DEFAULT_PORT:
        raise Refused("only http and https URLs are read")
    if "@" in parts.netloc:
        raise Refused("the URL names a user (user@host); the source's credential goes in `token`")
    host = (parts.hostname or "").rstrip(".")
    try:
        port = _DEFAULT_PORT[parts.scheme] if parts.port is None else parts.port
    except ValueError:
        port = 0
    if not 0 < port < 65536:
        raise Refused("the URL's port is not a number from 1 to 65535")
    if not host:
        raise Refused("the URL names no host")
    if outbound.shorthand(host):
        raise Refused("the URL's host is an IPv4 address in a short form (an integer, octal or hex parts); "
                      "write it as four decimal numbers")
    if outbound.literal(host) is None and not _NAME.match(host):
        raise Refused("the URL's host is neither a host name nor an address")
    if not _listed(host, hosts):
        raise Refused(_off(hosts, host))
    return parts.scheme, host, port


def resolve(host: str, port: int, *, allow: Sequence[str]) -> str:
    """The address to connect to: every address ``host`` has must pass :func:`twinengine.outbound.refusal`,
    loopback and private ones only when ``allow`` (a setting, never the URL) lists them as an address or a
    network; a name on a list never makes such an address readable."""
    literal = outbound.literal(host)
    if literal is not None:
        found = [literal]
    else:
        try:
            found = outbound.resolved(host, port)
        except OSError:
            raise FetchFailed("name resolution") from None
    allowed = outbound.networks(allow)
    for ip in found:
        why = outbound.refusal(ip, allowed)
        if why is not None:
            raise Refused(f"{host} has {why}; an admin lists a loopback or private one as an address or network "
                          "in lake_import_hosts to read it")
    if not found:
        raise FetchFailed("no address")
    return str(found[0])


class _Pinned(httpx.BaseTransport):
    """Checks and resolves every request, connects to the checked address (the Host header and TLS name stay
    the host's), and adds the token only for the named origin."""

    def __init__(self, hosts: Sequence[str], allow: Sequence[str], origin: Origin, token: str | None) -> None:
        self._hosts, self._allow, self._origin, self._token = tuple(hosts), tuple(allow), origin, token
        self._transports: dict[str, httpx.HTTPTransport] = {}

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        scheme, host, port = check_url(str(request.url), self._hosts)
        address = resolve(host, port, allow=self._allow)
        headers = request.headers.copy()
        headers.pop("Authorization", None)
        if self._token and (scheme, host, port) == self._origin:
            headers["Authorization"] = f"Bearer {self._token}"
        headers["Host"] = request.url.netloc.decode("ascii")
        extensions = {**request.extensions, **({"sni_hostname": host} if scheme == "https" else {})}
        pinned = httpx.Request(request.method, request.url.copy_with(host=address), headers=headers,
                               stream=request.stream, extensions=extensions)  # the client's request stays as sent
        transport = self._transports.get(host)  # one pool per host: a connection's TLS name is that host's
        if transport is None:  # the process's one TLS context: a new one reads the whole CA bundle (~20 ms)
            transport = self._transports[host] = httpx.HTTPTransport(retries=0, verify=tls_context())
        return transport.handle_request(pinned)

    def close(self) -> None:
        for transport in self._transports.values():
            transport.close()


def guarded_client(url: str, hosts: Sequence[str], token: str | None, *, allow: Sequence[str],
                   timeout: float = 60.0) -> httpx.Client:
    """An HTTP client for everything one import reads, starting at ``url`` (checked here); ``allow`` is the
    setting whose addresses and networks may be loopback or private."""
    origin = check_url(url, hosts)
    resolve(origin[1], origin[2], allow=allow)
    return httpx.Client(transport=_Pinned(hosts, allow, origin, token), follow_redirects=True, max_redirects=5,
                        timeout=timeout, trust_env=False)


def stac_io(http: httpx.Client) -> Any:
    """pystac-client's reader over ``http``: every page and link goes through the checks above."""
    from pystac.link import Link
    from pystac_client.stac_api_io import StacApiIO

    class _IO(StacApiIO):
        def read_text(self, source: Any, *args: Any, **kwargs: Any) -> str:
            href = source.href if isinstance(source, Link) else str(source)
            if urlsplit(href).scheme not in _DEFAULT_PORT:
                raise Refused("only http and https URLs are read")
            text: str = super().read_text(source, *args, **kwargs)
            return text

        def request(self, href: str, method: str | None = None, headers: dict[str, str] | None = None,
                    parameters: dict[str, Any] | None = None) -> str:
            verb = (method or "GET").upper()  # headers a link carries are ignored: the client sets its own
            try:
                if verb in ("POST", "PUT", "PATCH"):
                    response = http.request(verb, href, json=parameters)
                else:
                    response = http.request(verb, href, params=parameters or None)
            except (httpx.HTTPError, OSError) as exc:
                raise FetchFailed(type(exc).__name__) from None
            if not 200 <= response.status_code < 300:
                raise FetchFailed(f"HTTP {response.status_code}")
            return response.text

    return _IO(max_retries=None, timeout=60.0)
