"""Checking a site's address before the engine ever connects to it: the scheme its kind speaks, a host that
is a name or an address, never a link-local one (the cloud metadata service at 169.254.169.254 holds the
host's own credentials), never a file: URL, judged by the engine's one policy for outbound addresses
(``twinengine.outbound``). Loopback and private addresses are allowed: providers run schedulers and engines on
their own networks."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from twinengine import outbound
from twinengine.errors import ValidationFailed

__all__ = ["check_address", "host_port"]

_SCHEMES = {"dask": ("tcp", "tls"), "engine": ("http", "https")}
_DEFAULT_PORT = {"tcp": 8786, "tls": 8786, "http": 80, "https": 443}
_NAME = re.compile(r"^[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*$")
_METADATA_NAMES = frozenset({"metadata", "metadata.google.internal", "instance-data", "metadata.azure.internal"})


def host_port(address: str) -> tuple[str, int]:
    parts = urlsplit(address)
    return (parts.hostname or "").rstrip("."), parts.port or _DEFAULT_PORT.get(parts.scheme, 0)


def check_address(kind: str, address: str | None, *, field: str = "address") -> str | None:
    """The address as given when a site of ``kind`` may use it; ValidationFailed naming ``field`` if not."""
    if kind in ("local", "slurm"):
        if address:
            raise ValidationFailed.one(field, f"a {kind} site has no address (slurm: partition and account go "
                                              "in options)")
        return None
    if not address:
        raise ValidationFailed.one(field, f"a {kind} site needs an address ({' or '.join(_SCHEMES[kind])} URL)")
    if not address.isascii() or any(c <= " " or c in "\\\x7f" for c in address):
        raise ValidationFailed.one(field, "the address holds a backslash, a space, a control or a non-ASCII "
                                          "character")
    parts = urlsplit(address)
    if parts.scheme not in _SCHEMES[kind]:
        raise ValidationFailed.one(field, f"a {kind} site's address is a {' or '.join(_SCHEMES[kind])} URL, "
                                          f"not {parts.scheme or 'a bare'}:")
    if "@" in parts.netloc:
        raise ValidationFailed.one(field, "the address names a user (user@host); a credential goes in credential")
    try:
        port = parts.port
    except ValueError:
        raise ValidationFailed.one(field, "the address's port is not a number from 1 to 65535") from None
    if port is not None and not 0 < port < 65536:
        raise ValidationFailed.one(field, "the address's port is not a number from 1 to 65535")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise ValidationFailed.one(field, "the address names no host")
    if host in _METADATA_NAMES:
        raise ValidationFailed.one(field, f"{host} is a cloud metadata service, not a site")
    if outbound.shorthand(host):
        raise ValidationFailed.one(field, "the address's host is an IPv4 address in a short form (an integer, "
                                          "octal or hex parts); write it as four decimal numbers")
    literal = outbound.literal(host)
    if literal is None and not _NAME.match(host):
        raise ValidationFailed.one(field, "the address's host is neither a host name nor an address")
    addresses = [literal] if literal is not None else _resolve(host)
    for ip in addresses:
        why = outbound.refusal(ip, private=True)
        if why is not None:
            raise ValidationFailed.one(field, f"{host} is or resolves to {why} (the metadata service lives "
                                              "there), not a site")
    return address


def _resolve(host: str) -> list[outbound.IP]:
    """A name's addresses (none when it does not resolve now: the heartbeat then reports the site down)."""
    try:
        return outbound.resolved(host)
    except OSError:
        return []
