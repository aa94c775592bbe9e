"""The flood question per lead time: the chance the latest forecast crosses the view's threshold within 6, 12,
24 and 48 h (its members above it at some time up to the lead), how far the ensemble spreads there, and how good
past forecasts of the same system were at that lead (the same verification scores as ``/verification``, with
the Brier score of crossing the threshold). Computed here, once, so the portal, the SDK and the summary say the
same numbers."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import numpy as np

from twinengine.catalog.view_text import Scalar
from twinengine.twins.forecast_schemas import ForecastRead, LeadScores
from twinengine.ui.schemas import LeadOutlook, LeadSkill, OutlookRead

__all__ = ["lead_key", "lead_label", "outlook"]


def lead_key(lead: timedelta) -> str:
    """A lead as the summary names it: ``6h``, ``90min``, ``45s``."""
    seconds = int(lead.total_seconds())
    if seconds % 3600 == 0:
        return f"{seconds // 3600}h"
    return f"{seconds // 60}min" if seconds % 60 == 0 else f"{seconds}s"


def lead_label(lead: timedelta) -> str:
    """A lead in words: ``24 h``, ``90 min``."""
    key = lead_key(lead)
    unit = next(u for u in ("min", "h", "s") if key.endswith(u))
    return f"{key[: -len(unit)]} {unit}"


def _leads(labels: list[str]) -> str:
    """``6 h``, ``12 h``, ``48 h`` → ``6, 12 and 48 h`` (one unit said once when they share it)."""
    units = {label.split(" ")[1] for label in labels}
    if len(units) == 1 and len(labels) > 1:
        numbers = [label.split(" ")[0] for label in labels]
        return f"{', '.join(numbers[:-1])} and {numbers[-1]} {units.pop()}"
    return " and ".join(labels)


def _pct(value: float) -> str:
    return f"{value:.0%}".replace("%", " %")


def _num(value: float) -> str:
    return f"{value:.3g}"


def _skill(groups: list[LeadScores], lead_seconds: int, members: int | None, unit: str | None) -> LeadSkill | None:
    """Past forecasts at this lead, chosen as the view's skill sentence chooses (``summaries._pick``): a group
    whose forecasts carried a band first, then the most pairs (of as many, the same kind of forecast)."""
    found = [g for g in groups if g.lead_seconds == lead_seconds and g.n > 0]
    if not found:
        return None
    g = max(found, key=lambda x: (x.coverage is not None, x.n, (x.members is not None) == (members is not None)))
    parts = []
    if g.nse is not None:
        parts.append(f"NSE {g.nse:.2f}")
    if g.coverage is not None and g.interval_level is not None:
        parts.append(f"within their {_pct(g.interval_level)} band {_pct(g.coverage)} of the time")
    if g.crps is not None:
        parts.append(f"CRPS {_num(g.crps)}{f' {unit}' if unit else ''}")
    elif g.rmse is not None:
        parts.append(f"RMSE {_num(g.rmse)}{f' {unit}' if unit else ''}")
    kind = f" forecasts of {g.members} members" if g.members else ""
    text = f"{', '.join(parts) or 'checked'} ({g.n}{kind} checked)"
    return LeadSkill(n=g.n, members=g.members, nse=g.nse, crps=g.crps, coverage=g.coverage,
                     interval_level=g.interval_level, brier=g.brier, text=text)


def _band(values: list[Any]) -> tuple[list[float | None], list[float | None], str | None]:
    levels = sorted({float(q) for v in values for q in (v.quantiles or {})})
    if len(levels) >= 2:
        lo, hi = str(levels[0]), str(levels[-1])
        return ([(v.quantiles or {}).get(lo) for v in values], [(v.quantiles or {}).get(hi) for v in values],
                f"{round(levels[0] * 100)}-{round(levels[-1] * 100)} %")
    if all(v.members for v in values):
        return [min(v.members) for v in values], [max(v.members) for v in values], "members' range"
    if all(v.lower is not None and v.upper is not None for v in values):
        return [v.lower for v in values], [v.upper for v in values], "forecast interval"
    return [None] * len(values), [None] * len(values), None


def outlook(forecast: ForecastRead, threshold: float, leads: list[timedelta], groups: list[LeadScores],
            unit: str | None, out: dict[str, Scalar]) -> OutlookRead | None:
    """The outlook of ``forecast`` (with its values) against ``threshold`` at ``leads``; ``groups``: the
    verification of past forecasts per lead. Fills the summary's ``outlook.*`` names into ``out``."""
    values = forecast.values or []
    if not values:
        return None
    widths = {len(v.members) for v in values if v.members}
    members = widths.pop() if len(widths) == 1 and all(v.members for v in values) else None
    series = np.asarray([v.members if members else [v.value] for v in values], dtype="float64")  # (step, member)
    above = series > threshold
    lows, highs, band = _band(values)
    lead_of = np.asarray([v.lead_seconds for v in values])
    rows = []
    for lead in leads:
        seconds = int(lead.total_seconds())
        key, label = lead_key(lead), lead_label(lead)
        upto = lead_of <= seconds
        reached = bool(lead_of.max() >= seconds)
        at = int(np.argmin(np.abs(lead_of - seconds))) if reached else None
        within = above[upto].any(axis=0) if upto.any() else None
        skill = _skill(groups, seconds, members, unit)
        row = LeadOutlook(
            lead_seconds=seconds, label=label, key=key, reached=reached,
            valid_time=values[at].valid_time if at is not None else forecast.issued_at + lead,
            probability=float(within.mean()) if within is not None and reached else None,
            probability_at=float(above[at].mean()) if at is not None else None,
            exceeding=int(within.sum()) if within is not None and reached and members else None,
            mean=float(series[at].mean()) if at is not None else None,
            spread=float(series[at].std(ddof=1)) if at is not None and members and members > 1 else None,
            low=lows[at] if at is not None else None, high=highs[at] if at is not None else None, skill=skill)
        rows.append(row)
        for name, value in (("", row.probability), (".at", row.probability_at), (".mean", row.mean),
                            (".spread", row.spread), (".low", row.low), (".high", row.high),
                            (".exceeding", row.exceeding), (".members", members)):
            if value is not None:
                out[f"outlook.{key}{name}"] = value
        out[f"outlook.{key}.skill"] = skill.text if skill is not None else "not checked yet"
        if skill is not None:
            for name, score in (("nse", skill.nse), ("crps", skill.crps), ("coverage", skill.coverage),
                                ("brier", skill.brier), ("n", skill.n)):
                if score is not None:
                    out[f"outlook.{key}.{name}"] = score
    u = f" {unit}" if unit else ""
    shown = [r for r in rows if r.probability is not None]
    what = forecast.property.replace("_", " ")
    text = (f"Chance the {what} exceeds {threshold:g}{u} within "
            + ", ".join(f"{r.label}: {_pct(r.probability or 0.0)}" for r in shown)) if shown else (
        f"The forecast of the {what} reaches none of the outlook's lead times")
    beyond = [r.label for r in rows if not r.reached]
    if beyond:
        text += f" (the forecast ends before {_leads(beyond)})"
    banded = [r for r in shown if r.low is not None and r.high is not None]
    wide = max(banded, key=lambda r: (r.high or 0.0) - (r.low or 0.0), default=None)
    if members and wide is not None:
        text += (f"; {members} ensemble members, spread widest at {wide.label}: {_num(wide.low or 0.0)} to "
                 f"{_num(wide.high or 0.0)}{u} ({band})")
    text += "."
    checked = [r for r in rows if r.skill is not None]
    unchecked = [r.label for r in rows if r.skill is None]
    said = ("; ".join(f"{r.label} ahead {r.skill.text}" for r in checked if r.skill)
            if checked else "none checked against observations yet")
    if checked and unchecked:
        said += f"; {_leads(unchecked)} ahead not checked yet"
    skill_text = f"Past forecasts: {said}."
    out.update({"outlook.threshold": threshold, "outlook.text": text, "outlook.skill": said})
    if members is not None:
        out["outlook.members"] = members
    return OutlookRead(property=forecast.property, unit=unit, threshold=threshold, issued_at=forecast.issued_at,
                       run_id=forecast.run_id, members=members, band=band, leads=rows, text=text,
                       skill_text=skill_text)
