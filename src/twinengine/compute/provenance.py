"""What a run's PROV document says about where it ran: its site and the reasons it was placed there."""

from __future__ import annotations

from typing import Any

__all__ = ["placement_attributes"]


def placement_attributes(options: dict[str, Any] | None) -> dict[Any, Any]:
    """``twin:site``, ``twin:placement`` (the placement's reasons, one per line) and ``twin:staged`` (what
    was replicated near the site before the run started) from a run's options; nothing for runs stored
    before sites existed."""
    options = options or {}
    site = options.get("site")
    if not site:
        return {}
    out: dict[Any, Any] = {"twin:site": str(site)}
    reasons = (options.get("placement") or {}).get("reasons") or []
    if reasons:
        out["twin:placement"] = "\n".join(str(r) for r in reasons)
    staging = options.get("staging") or {}
    if staging:
        lines = [f"{s['did']} -> {', '.join(staging.get('endpoints') or [])} (rule {s['rule']}, {s['files']} files, "
                 f"{s['bytes']} bytes)" for s in staging.get("staged") or []]
        lines += [f"{did}: near the site already" for did in staging.get("near") or []]
        if staging.get("outputs_endpoint"):
            lines.append(f"outputs to {staging['outputs_endpoint']}")
        if lines:
            out["twin:staged"] = "\n".join(lines)
    return out
