"""Where the engine may connect on someone's behalf (STAC imports, webhooks, compute sites): one policy for the
addresses a URL names or its host resolves to. An IPv4 address is read only in its four-decimal form (resolvers
also read ``2130706433``, ``0177.0.0.1`` or ``127.1`` as addresses, so those are refused as hosts); an IPv6
address that carries an IPv4 one (mapped, compatible, NAT64, 6to4) is judged by both. Unspecified, link-local
(the cloud metadata service), multicast and broadcast addresses are never reached; loopback, private and
reserved ones only where a setting lists them as an address or network (or, for compute sites, always:
providers run their schedulers on their own networks). A host's name never counts as such a listing."""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable, Sequence

__all__ = ["IP", "Network", "forms", "literal", "networks", "refusal", "resolved", "shorthand"]

IP = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

_NEVER: tuple[Network, ...] = tuple(ipaddress.ip_network(n) for n in (
    "0.0.0.0/8", "::/128", "169.254.0.0/16", "fe80::/10", "224.0.0.0/4", "ff00::/8", "255.255.255.255/32",
    "fd00:ec2::/32"))  # unspecified (reaches the host itself), link-local, multicast, broadcast, AWS metadata (v6)
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_SIXTOFOUR = ipaddress.ip_network("2002::/16")
_COMPATIBLE = ipaddress.ip_network("::/96")
_INET_ATON = re.compile(r"^(0x[0-9a-f]*|[0-9]+)(\.(0x[0-9a-f]*|[0-9]+)){0,3}$", re.IGNORECASE)


def literal(host: str) -> IP | None:
    """The address ``host`` is written as (brackets allowed), or None for a name."""
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def shorthand(host: str) -> bool:
    """Whether ``host`` is an IPv4 address in a form other than four decimal numbers (an integer, octal or hex
    parts, fewer than four parts): resolvers connect to those while a name check sees a name."""
    return literal(host) is None and bool(_INET_ATON.match(host))


def forms(ip: IP) -> list[IP]:
    """``ip`` and any IPv4 address an IPv6 address carries (where some network would deliver it)."""
    out: list[IP] = [ip]
    if isinstance(ip, ipaddress.IPv6Address):
        value = int(ip)
        if ip.ipv4_mapped is not None:
            out.append(ip.ipv4_mapped)
        elif (ip in _COMPATIBLE and value > 1) or any(ip in net for net in _NAT64):
            out.append(ipaddress.IPv4Address(value & 0xFFFFFFFF))
        elif ip in _SIXTOFOUR:
            out.append(ipaddress.IPv4Address((value >> 80) & 0xFFFFFFFF))
    return out


def networks(entries: Iterable[str]) -> list[Network]:
    """The addresses and networks among a setting's entries (names are skipped)."""
    out: list[Network] = []
    for entry in entries:
        try:
            out.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
        except ValueError:
            continue
    return out


def _public(ip: IP) -> bool:
    return ip.is_global and not ip.is_reserved and not ip.is_multicast


def refusal(ip: IP, allowed: Sequence[Network] = (), *, private: bool = False) -> str | None:
    """Why the engine may not connect to ``ip``, or None when it may. ``allowed`` holds the networks a setting
    lists (never ones taken from the URL itself); ``private`` admits loopback and private addresses."""
    every = forms(ip)
    if any(form in net for form in every for net in _NEVER):
        return "an unspecified, link-local, multicast or broadcast address"
    if private or all(_public(form) for form in every):
        return None
    if any(form in net for form in every for net in allowed if form.version == net.version):
        return None
    return "a loopback, private or reserved address"


def resolved(host: str, port: int | None = None) -> list[IP]:
    """Every address ``host`` resolves to now (OSError when it does not)."""
    found: list[IP] = []
    for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
        ip = literal(str(info[4][0]).split("%")[0])
        if ip is not None and ip not in found:
            found.append(ip)
    return found
