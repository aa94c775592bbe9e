"""Sending one message: e-mail through SMTP (the standard library's ``smtplib`` and ``email``) or a signed
JSON POST to a webhook through the lake's SSRF-safe client (``lake.remote``: the address is checked and pinned,
loopback and private addresses only when ``subscription_webhook_hosts`` lists them, no redirects followed)."""

from __future__ import annotations

import contextlib
import json
import re
import smtplib
import socket
import ssl
import threading
from collections.abc import Sequence
from email.errors import HeaderParseError
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any
from urllib.parse import urlsplit

from twinengine._version import __version__
from twinengine.config import Settings
from twinengine.errors import ValidationFailed
from twinengine.lake import remote
from twinengine.subscriptions import messages, signing

__all__ = ["DeliveryFailed", "check_email", "check_webhook", "send_email", "send_webhook"]

_ADDRESS = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?$")


class DeliveryFailed(Exception):
    """Raised when a message could not be handed over (SMTP refused it, the receiver answered an error, the
    address is refused); the text is recorded on the attempt."""


def check_email(address: str) -> str:
    """One plain address (``a@b.org``), nothing a header could be made of; 422 naming ``email`` otherwise."""
    try:
        messages.header_text(address, field="email")
    except messages.HeaderRefused as exc:
        raise ValidationFailed.one("email", str(exc)) from None
    if len(address) > 254 or not _ADDRESS.match(address):
        raise ValidationFailed.one("email", f"{address!r} is not one e-mail address (name@domain)")
    try:
        Address(addr_spec=address)
    except (ValueError, IndexError, HeaderParseError) as exc:
        raise ValidationFailed.one("email", f"{address!r} is not an e-mail address: {exc}") from None
    return address


def _allowed(url: str, hosts: Sequence[str]) -> list[str]:
    """The allow-list a webhook's host is checked against: the configured hosts, or (none configured) its own
    host. Which addresses may be loopback or private comes from the configured list alone (``allow`` below)."""
    host = (urlsplit(url).hostname or "").rstrip(".").lower()
    remote.check_url(url, [host])  # its form first: scheme, user part, backslashes, spaces, short IPv4 forms
    return list(hosts) if hosts else [host]


def check_webhook(url: str, hosts: Sequence[str]) -> str:
    """An http(s) URL whose host may be reached (checked and resolved now); 422 naming ``webhook`` otherwise."""
    if len(url) > 2048:
        raise ValidationFailed.one("webhook", "a webhook URL is at most 2048 characters")
    try:
        scheme = urlsplit(url).scheme.lower() if url.isascii() else ""
    except ValueError:  # e.g. an unclosed [ of an IPv6 address
        raise ValidationFailed.one("webhook", "the URL cannot be parsed") from None
    if scheme not in ("http", "https"):
        raise ValidationFailed.one("webhook", f"only http and https URLs are called, not {scheme or url!r}")
    try:
        allowed = _allowed(url, hosts)
        _scheme, host, port = remote.check_url(url, allowed)
        remote.resolve(host, port, allow=hosts)
    except remote.Refused as exc:
        text = str(exc)
        if "lake_import_hosts" in text:  # remote.py names its own setting; say ours
            text = ("the host is not in subscription_webhook_hosts" if "not in lake_import_hosts" in text else
                    text.replace("lake_import_hosts", "subscription_webhook_hosts").replace("read it", "allow it"))
        raise ValidationFailed.one("webhook", text) from None
    except remote.FetchFailed:
        raise ValidationFailed.one("webhook", "the URL's host name cannot be resolved") from None
    except ValueError:
        raise ValidationFailed.one("webhook", "the URL cannot be parsed") from None
    return url


def send_email(settings: Settings, to: str, payload: dict[str, Any]) -> None:
    """Hand one message to the SMTP server; ``DeliveryFailed`` says why it was not taken."""
    if not settings.smtp_host:
        raise DeliveryFailed("this engine sends no e-mail: smtp_host is not set")
    message = EmailMessage()
    try:
        message["From"] = messages.header_text(settings.smtp_from, field="smtp_from")
        message["To"] = messages.header_text(to, field="email")
        message["Subject"] = messages.header_text(messages.subject(payload), field="subject")
    except (messages.HeaderRefused, ValueError) as exc:
        raise DeliveryFailed(str(exc)) from None
    message["Date"] = formatdate(usegmt=True)
    message["Message-ID"] = make_msgid(domain=settings.smtp_from.rpartition("@")[2] or None)
    message.set_content(messages.body_text(payload))
    timeout = settings.smtp_timeout.total_seconds()
    try:
        if settings.smtp_security == "tls":
            client: smtplib.SMTP = smtplib.SMTP_SSL(settings.smtp_host, settings.smtp_port, timeout=timeout,
                                                    context=ssl.create_default_context())
        else:
            client = smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=timeout)
        with client:
            if settings.smtp_security == "starttls":
                client.starttls(context=ssl.create_default_context())
            if settings.smtp_username:
                client.login(settings.smtp_username, settings.smtp_password or "")
            client.send_message(message)
    except (smtplib.SMTPException, OSError) as exc:
        raise DeliveryFailed(f"SMTP {settings.smtp_host}:{settings.smtp_port}: {exc}") from None


class _Deadline:
    """Ends a webhook try at its deadline however slowly the receiver answers: the sockets the try opened (seen
    through httpcore's ``trace`` extension) are shut down then, which ends any read or write waiting on them
    (a per-read timeout alone lets a receiver that drips a byte now and then hold the try for ever)."""

    def __init__(self, seconds: float) -> None:
        self.seconds, self.passed = seconds, False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._cut)
        self._timer.daemon = True

    def trace(self, event: str, info: dict[str, Any]) -> None:
        if event == "connection.connect_tcp.complete" and info.get("return_value") is not None:
            sock = info["return_value"].get_extra_info("socket")
            if isinstance(sock, socket.socket):
                with self._lock:
                    self._sockets.append(sock)
                    passed = self.passed
                if passed:  # connected just as the deadline passed
                    self._cut()

    def _cut(self) -> None:
        with self._lock:
            self.passed, sockets = True, list(self._sockets)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def __enter__(self) -> _Deadline:
        self._timer.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._timer.cancel()


def send_webhook(settings: Settings, url: str, secret: str, payload: dict[str, Any], *, delivery: int) -> int:
    """POST ``payload`` signed with ``secret``; the receiver's status when 2xx, ``DeliveryFailed`` otherwise.
    The whole try (connecting, sending, the answer's status and headers) takes at most
    ``subscription_webhook_timeout``; the answer's body is never read."""
    body = json.dumps({**payload, "summary": messages.headline(payload)}, separators=(",", ":"),
                      default=str).encode()
    headers = {"Content-Type": "application/json", signing.HEADER: signing.signature_header(secret, body),
               "Twin-Delivery": str(delivery), "User-Agent": f"twinengine/{__version__}"}
    seconds = settings.subscription_webhook_timeout.total_seconds()
    deadline = _Deadline(seconds)
    try:
        allowed = _allowed(url, settings.subscription_webhook_hosts)
        with deadline, \
                remote.guarded_client(url, allowed, None, allow=settings.subscription_webhook_hosts,
                                      timeout=seconds) as http, \
                http.stream("POST", url, content=body, headers=headers, follow_redirects=False,
                            extensions={"trace": deadline.trace}) as response:
            status = response.status_code
    except remote.Refused as exc:
        raise DeliveryFailed(f"refused: {exc}") from None
    except Exception as exc:  # any transport failure: recorded, retried
        if deadline.passed:
            raise DeliveryFailed(f"no answer within {seconds:g} s (subscription_webhook_timeout)") from None
        raise DeliveryFailed(f"{type(exc).__name__}: {exc}") from None
    if not 200 <= status < 300:
        raise DeliveryFailed(f"the receiver answered HTTP {status}")
    return status
