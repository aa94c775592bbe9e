"""Usage as EGI APEL summary records (the OGF Usage Record's summary form that EGI's accounting takes):
one record per site, month, user and group, in the ``APEL-summary-job-message: v0.3`` text form.

Fields, as the engine fills them:

===================== ===========================================================================
Site                  the compute site's name
Month, Year           of the executions' end (UTC)
GlobalUserName        the OIDC subject (``sub``) of the identity that ran them, when it signed in through an
                      OpenID provider; the engine's identity name otherwise (a local or built-in identity)
VO, VOGroup           the first group the identity was in when it submitted (``none`` without one)
VORole                ``Role=NULL``: the engine has no VOMS roles
MachineName           the engine's host, where the run was accounted
SubmitHost            the engine's host
Infrastructure        ``twinengine:<site kind>``
NodeCount, Processors 1 and the cores a record counts (1 per execution; core-seconds carry the rest)
EarliestEndTime       first end in the group (Unix seconds)
LatestEndTime         last end in the group (Unix seconds)
WallDuration          sum of wall seconds, rounded
CpuDuration           sum of core-seconds, rounded
NormalisedWallDuration, NormalisedCpuDuration  the same (no benchmark factor is known: HEPSPEC 1.0)
NumberOfJobs          executions in the group
===================== ===========================================================================

The summary form has no field for bytes (read, written, transferred between endpoints or stored) nor for
GPU-seconds: those stay in the engine's own records (``twin usage``, ``/api/v1/usage``).
"""

from __future__ import annotations

import socket
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from twinengine.auth.models import Identity
from twinengine.compute.models import UsageRecord

__all__ = ["HEADER", "apel_message", "apel_summaries", "oidc_subjects"]

HEADER = "APEL-summary-job-message: v0.3"
FIELDS = ("Site", "Month", "Year", "GlobalUserName", "VO", "VOGroup", "VORole", "MachineName", "SubmitHost",
          "Infrastructure", "NodeCount", "Processors", "EarliestEndTime", "LatestEndTime", "WallDuration",
          "CpuDuration", "NormalisedWallDuration", "NormalisedCpuDuration", "NumberOfJobs")


def oidc_subjects(session: Session, identities: Iterable[str]) -> dict[str, str]:
    """The OIDC subject of each of ``identities`` that signed in through an OpenID provider (name -> ``sub``)."""
    names = sorted(set(identities))
    if not names:
        return {}
    rows = session.execute(select(Identity.name, Identity.subject).where(Identity.name.in_(names),
                                                                        Identity.subject.is_not(None)))
    return {str(name): str(subject) for name, subject in rows}


def apel_summaries(rows: Sequence[UsageRecord], *, site_kinds: dict[str, str] | None = None,
                   host: str | None = None, subjects: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """One summary per site, month, user and group; ``subjects``: the OIDC subject of each identity that has
    one (``oidc_subjects``), its ``GlobalUserName``."""
    host = host or socket.getfqdn()
    subjects = subjects or {}
    groups: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in rows:
        vo = (row.groups or ["none"])[0]
        key = (row.site, row.finished_at.month, row.finished_at.year, row.identity, vo)
        end = int(row.finished_at.timestamp())
        summary = groups.get(key)
        if summary is None:
            summary = groups[key] = {
                "Site": row.site, "Month": row.finished_at.month, "Year": row.finished_at.year,
                "GlobalUserName": subjects.get(row.identity, row.identity), "VO": vo, "VOGroup": f"/{vo}",
                "VORole": "Role=NULL",
                "MachineName": host, "SubmitHost": host,
                "Infrastructure": f"twinengine:{(site_kinds or {}).get(row.site, 'unknown')}",
                "NodeCount": 1, "Processors": row.cores, "EarliestEndTime": end, "LatestEndTime": end,
                "WallDuration": 0.0, "CpuDuration": 0.0, "NumberOfJobs": 0}
        summary["EarliestEndTime"] = min(summary["EarliestEndTime"], end)
        summary["LatestEndTime"] = max(summary["LatestEndTime"], end)
        summary["WallDuration"] += row.wall_seconds
        summary["CpuDuration"] += row.core_seconds
        summary["Processors"] = max(summary["Processors"], row.cores)
        summary["NumberOfJobs"] += 1
    out = []
    for summary in groups.values():
        summary["WallDuration"] = round(summary["WallDuration"])
        summary["CpuDuration"] = round(summary["CpuDuration"])
        summary["NormalisedWallDuration"] = summary["WallDuration"]
        summary["NormalisedCpuDuration"] = summary["CpuDuration"]
        out.append({name: summary[name] for name in FIELDS})
    return out


def apel_message(summaries: Sequence[dict[str, Any]]) -> str:
    """The summaries as one APEL message: the header, then ``Field: value`` lines, records ended by ``%%``."""
    lines = [HEADER]
    for summary in summaries:
        lines.extend(f"{name}: {summary[name]}" for name in FIELDS)
        lines.append("%%")
    return "\n".join(lines) + "\n"
