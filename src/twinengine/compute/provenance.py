"""What a run's PROV document says about where it ran: its site and the reasons it was placed there."""

from __future__ import annotations

from typing import Any

__all__ = ["placement_attributes"]


def placement_attributes(options: dict[str, Any] | None) -> dict[Any, Any]:
    """``twin:site`` and ``twin:placement`` (the placement's reasons, one per line) from a run's options;
    nothing for runs stored before sites existed."""
    options = options or {}
    site = options.get("site")
    if not site:
        return {}
    out: dict[Any, Any] = {"twin:site": str(site)}
    reasons = (options.get("placement") or {}).get("reasons") or []
    if reasons:
        out["twin:placement"] = "\n".join(str(r) for r in reasons)
    return out
