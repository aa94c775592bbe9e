"""Webhook signatures: HMAC-SHA256 over ``<unix time>.<body>`` with the subscription's secret, sent as
``Twin-Signature: t=<unix time>,v1=<hex digest>`` (the layout Stripe uses). The time is inside what is
signed, so a receiver that refuses old times refuses a replayed delivery (``verify``; docs/subscriptions.md).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time

__all__ = ["HEADER", "TOLERANCE_S", "new_secret", "sign", "signature_header", "verify"]

HEADER = "Twin-Signature"
TOLERANCE_S = 300  # how old a signed time a receiver accepts by default


def new_secret() -> str:
    """A fresh signing key, shown to the subscriber once."""
    return "whsec_" + secrets.token_urlsafe(32)


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The hex HMAC-SHA256 of ``<timestamp>.<body>`` under ``secret``."""
    return hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()


def signature_header(secret: str, body: bytes, timestamp: int | None = None) -> str:
    stamp = int(time.time()) if timestamp is None else timestamp
    return f"t={stamp},v1={sign(secret, body, stamp)}"


def verify(secret: str, body: bytes, header: str, *, tolerance_s: float = TOLERANCE_S,
           now: float | None = None) -> bool:
    """Whether ``header`` signs ``body`` with ``secret`` at a time at most ``tolerance_s`` from ``now``: what
    a receiver checks (a replay carries its old time, and a new time would not match the digest)."""
    fields = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    try:
        stamp = int(fields["t"])
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - stamp) > tolerance_s:
        return False
    return hmac.compare_digest(sign(secret, body, stamp), fields.get("v1", ""))
