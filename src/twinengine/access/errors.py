"""The OGC API exception body the ``/edr`` routes answer with."""

from __future__ import annotations

from typing import Any

from twinengine.errors import TwinEngineError

__all__ = ["exception_body"]


def exception_body(error: TwinEngineError, *, instance: str | None = None) -> dict[str, Any]:
    """``code`` and ``description`` (the EDR 1.0 exception schema), the RFC 7807 members OGC API Common uses
    (``type``, ``title``, ``status``, ``detail``, ``instance``), and ``details`` naming the offending field."""
    body: dict[str, Any] = {"code": error.code, "description": error.message, "type": "about:blank",
                            "title": error.code, "status": error.status, "detail": error.message}
    if instance:
        body["instance"] = instance
    if error.details:
        body["details"] = error.details
    return body
