"""How the state log keeps a value with what it carries: its uncertainty (``quality.uncertainty``) and the
quality of the inputs it was computed from (``quality.pedigree``).

Inside the value's JSON: ``{"value": 2.1, "uncertainty": {"std": 0.3}}``, with ``"quality": {...}`` when the
inputs were suspect or bad. Plain values stay exactly as they were stored before (no migration). A stored
object whose keys are exactly ``value`` and ``uncertainty`` (and maybe ``quality``) is always such an envelope:
an object value that happens to have those keys is stored wrapped, with ``"uncertainty": null``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

__all__ = ["Stored", "pack", "unpack"]

_PLAIN = frozenset({"value", "uncertainty"})
_FULL = _PLAIN | {"quality"}


class Stored(NamedTuple):
    value: Any
    uncertainty: dict[str, Any] | None
    quality: dict[str, Any] | None


def _envelope(stored: Any) -> bool:
    return isinstance(stored, dict) and stored.keys() in (_PLAIN, _FULL)


def pack(value: Any, uncertainty: dict[str, Any] | None = None, quality: dict[str, Any] | None = None) -> Any:
    if uncertainty is None and quality is None and not _envelope(value):
        return value
    out = {"value": value, "uncertainty": uncertainty}
    return out | {"quality": quality} if quality is not None else out


def unpack(stored: Any) -> Stored:
    """What the log holds, apart. Quantiles come back ordered by level (PostgreSQL's jsonb keeps object keys
    in its own order)."""
    if not _envelope(stored):
        return Stored(stored, None, None)
    uncertainty = stored["uncertainty"]
    if isinstance(uncertainty, dict) and isinstance(uncertainty.get("quantiles"), dict):
        ordered = sorted(uncertainty["quantiles"].items(), key=lambda kv: float(kv[0]))
        uncertainty = {**uncertainty, "quantiles": dict(ordered)}
    return Stored(stored["value"], uncertainty, stored.get("quality"))
