"""The SDK's compute namespace: ``client.compute.add_site(...)``, ``client.compute.usage(...)`` and friends."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from twinengine.compute.schemas import QuotaPage, QuotaRead, SitePage, SiteRead, UsagePage, UsageSummary

if TYPE_CHECKING:
    from twinengine.transport import Transport

__all__ = ["ComputeClient"]

BASE = "/api/v1/compute"


def _when(value: datetime | str | None) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else value


class ComputeClient:
    """Compute sites, usage records and summaries (with the APEL export), and quotas."""

    def __init__(self, transport: Transport) -> None:
        self._transport = transport

    # -- sites
    def add_site(self, name: str, kind: str, *, cores: int, memory_bytes: int, gpus: int = 0,
                 address: str | None = None, options: dict[str, str] | None = None,
                 environments: list[str] | None = None, endpoints: list[str] | None = None,
                 credential: dict[str, str] | None = None) -> SiteRead:
        body: dict[str, Any] = {"name": name, "kind": kind, "cores": cores, "memory_bytes": memory_bytes,
                                "gpus": gpus, "options": options or {}, "environments": environments or [],
                                "endpoints": endpoints or []}
        if address is not None:
            body["address"] = address
        if credential is not None:
            body["credential"] = credential
        return self._transport.send(SiteRead, "POST", f"{BASE}/sites", body)

    def sites(self) -> SitePage:
        return self._transport.get(SitePage, f"{BASE}/sites")

    def site(self, name: str) -> SiteRead:
        return self._transport.get(SiteRead, f"{BASE}/sites/{quote(name, safe='')}")

    def drain_site(self, name: str, *, undo: bool = False) -> SiteRead:
        path = f"{BASE}/sites/{quote(name, safe='')}/drain" + ("?undo=true" if undo else "")
        return self._transport.send(SiteRead, "POST", path, {})

    def heartbeat(self, name: str) -> SiteRead:
        return self._transport.send(SiteRead, "POST", f"{BASE}/sites/{quote(name, safe='')}/heartbeat", {})

    def remove_site(self, name: str) -> None:
        self._transport.request("DELETE", f"{BASE}/sites/{quote(name, safe='')}")

    # -- usage
    def usage(self, *, by: str = "identity", since: datetime | str | None = None,
              until: datetime | str | None = None, identity: str | None = None,
              site: str | None = None) -> UsageSummary:
        return self._transport.get(UsageSummary, "/api/v1/usage", by=by, since=_when(since), until=_when(until),
                                   identity=identity, site=site)

    def usage_records(self, *, since: datetime | str | None = None, until: datetime | str | None = None,
                      identity: str | None = None, site: str | None = None) -> UsagePage:
        return self._transport.get(UsagePage, "/api/v1/usage/records", since=_when(since), until=_when(until),
                                   identity=identity, site=site)

    def usage_apel(self, *, since: datetime | str | None = None, until: datetime | str | None = None,
                   identity: str | None = None, site: str | None = None) -> str:
        params = {k: v for k, v in (("since", _when(since)), ("until", _when(until)), ("identity", identity),
                                    ("site", site)) if v is not None}
        return self._transport.request("GET", "/api/v1/usage/apel", params=params).text

    # -- quotas
    def set_quota(self, subject: str, core_hours: float, *, site: str = "*", period: str = "month") -> QuotaRead:
        body = {"subject": subject, "site": site, "core_hours": core_hours, "period": period}
        return self._transport.send(QuotaRead, "PUT", f"{BASE}/quotas", body)

    def quotas(self) -> QuotaPage:
        return self._transport.get(QuotaPage, f"{BASE}/quotas")

    def remove_quota(self, subject: str, *, site: str = "*") -> None:
        self._transport.request("DELETE", f"{BASE}/quotas", params={"subject": subject, "site": site})
