"""What a run's PROV document says about where it ran: its site and the reasons it was placed there."""

from __future__ import annotations

from typing import Any

__all__ = ["placement_attributes"]


def placement_attributes(options: dict[str, Any] | None) -> dict[Any, Any]:
    """``twin:site``, ``twin:placement`` (the placement's reasons, one per line), ``twin:remote_run`` (the run
    another engine evaluated for it) and ``twin:staged`` (what was replicated near the site before the run
    started, and near sites lost under it before) from a run's options; nothing for runs stored before sites
    existed."""
    options = options or {}
    site = options.get("site")
    if not site:
        return {}
    out: dict[Any, Any] = {"twin:site": str(site)}
    reasons = (options.get("placement") or {}).get("reasons") or []
    if reasons:
        out["twin:placement"] = "\n".join(str(r) for r in reasons)
    remote = options.get("remote") or {}
    if remote.get("run"):  # evaluated by another engine (a site of kind engine): its own run there
        out["twin:remote_run"] = f"run {remote['run']} of the engine at {remote.get('engine', '?')}"
    staging = options.get("staging") or {}
    if staging:
        lines = [f"before site {e.get('site')} was lost: {line}" for e in staging.get("earlier") or []
                 for line in _staged(e)]
        lines += _staged(staging)
        if staging.get("outputs_endpoint"):
            lines.append(f"outputs to {staging['outputs_endpoint']}")
        if lines:
            out["twin:staged"] = "\n".join(lines)
    return out


def _staged(staging: dict[str, Any]) -> list[str]:
    lines = [f"{s['did']} -> {', '.join(staging.get('endpoints') or [])} (rule {s['rule']}, {s['files']} files, "
             f"{s['bytes']} bytes)" for s in staging.get("staged") or []]
    return lines + [f"{did}: near the site already" for did in staging.get("near") or []]
