"""What a message says: a subject line and a plain-text body from a delivery's payload, the same words for
e-mail and for the webhook's ``summary``. Text that reaches a mail header is refused if it could end the
header (``header_text``)."""

from __future__ import annotations

import json
from typing import Any

__all__ = ["HeaderRefused", "body_text", "header_text", "headline", "subject"]

_SHOWN = 120  # characters of a value a message shows


class HeaderRefused(ValueError):
    """Raised when text meant for a mail header holds a line break or another control character."""


def header_text(value: str, *, field: str) -> str:
    """``value`` when it may stand in a mail header (no CR, LF or other control character: no injected
    header); ``HeaderRefused`` naming ``field`` otherwise."""
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise HeaderRefused(f"{field} holds a line break or a control character, which could add mail headers")
    return value


def _shown(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= _SHOWN else text[:_SHOWN - 1] + "…"


def headline(payload: dict[str, Any]) -> str:
    """One line saying what happened."""
    event, prop = payload.get("event"), payload.get("property", "")
    if event == "changed":
        return f"{prop} changed from {_shown(payload.get('previous'))} to {_shown(payload.get('value'))}"
    if event == "crossed":
        return f"{payload.get('condition')} now holds: {prop} is {_shown(payload.get('value'))}"
    if event == "stale":
        last = payload.get("last_reported_at") or "never"
        return f"no {prop} reported for {payload.get('stale_for')} (last: {last})"
    return f"test message for '{payload.get('condition')}'"


def subject(payload: dict[str, Any]) -> str:
    twin = payload.get("twin", {})
    line = " ".join(f"[twinengine] {twin.get('name', '')}: {headline(payload)}".split())  # one line
    return "".join(c if ord(c) >= 32 and ord(c) != 127 else " " for c in line)[:200]  # whatever a value held


def body_text(payload: dict[str, Any]) -> str:
    twin = payload.get("twin", {})
    lines = [f"{twin.get('title') or twin.get('name')} ({twin.get('name')})", "", headline(payload), "",
             f"Condition: {payload.get('condition')}"]
    if "value" in payload:
        lines.append(f"Value: {_shown(payload.get('value'))}")
    if payload.get("at"):
        lines.append(f"At: {payload['at']}" + (f" (revision {payload['revision']})" if payload.get("revision") else ""))
    if payload.get("link"):
        lines += ["", f"See the twin: {payload['link']}"]
    lines += ["", f"You subscribed to this ({payload.get('subscription')}); `twin subscriptions delete "
                  f"{payload.get('subscription')}` ends it."]
    return "\n".join(lines) + "\n"
