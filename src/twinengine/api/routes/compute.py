"""HTTP routes of federated compute: sites (``/compute/sites``), quotas (``/compute/quotas``) and usage
(``/usage``, with the APEL export)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query, status
from fastapi.responses import PlainTextResponse

from twinengine.api.deps import PrincipalDep, RuntimeDep, SessionDep
from twinengine.api.route_actions import acts
from twinengine.api.routing import api_router
from twinengine.compute import quotas, sites
from twinengine.compute import usage as usage_service
from twinengine.compute.apel import apel_message, apel_summaries, oidc_subjects
from twinengine.compute.schemas import (
    SITE_NAME,
    QuotaPage,
    QuotaRead,
    QuotaSet,
    SiteCreate,
    SitePage,
    SiteRead,
    StorageUse,
    UsageKey,
    UsagePage,
    UsageSummary,
)
from twinengine.compute.site_executors import SiteExecutors
from twinengine.lake.endpoints import list_endpoints
from twinengine.lake.endpoints import usage as endpoint_usage
from twinengine.timeutil import Instant

__all__ = ["routers"]

router = api_router("/compute", tag="compute")
usage_router = api_router("/usage", tag="usage")
routers = (router, usage_router)

SitePath = Annotated[str, Path(pattern=SITE_NAME)]
Since = Annotated[Instant | None, Query(description="records that ended at or after (ISO 8601)")]
Until = Annotated[Instant | None, Query(description="records that ended before (ISO 8601)")]
Identity = Annotated[str | None, Query(max_length=64, description="admins: one identity's usage")]
SiteQuery = Annotated[str | None, Query(pattern=SITE_NAME)]


# -- sites ------------------------------------------------------------------------------------------------------

@router.post("/sites", name="site_add", status_code=status.HTTP_201_CREATED,
             summary="Register a compute site (providers); its credential is never shown")
@acts("compute.site.manage")
def site_add(body: SiteCreate, session: SessionDep, principal: PrincipalDep, runtime: RuntimeDep) -> SiteRead:
    return sites.site_read(sites.add_site(session, runtime.lake.keyring, principal=principal, spec=body))


@router.get("/sites", name="site_list", summary="Compute sites with capacity and status")
@acts("compute.site.read")
def site_list(session: SessionDep, principal: PrincipalDep) -> SitePage:
    rows = sites.list_sites(session, principal=principal)
    return SitePage(items=[sites.site_read(r) for r in rows], total=len(rows))


@router.get("/sites/{name}", name="site_get", summary="One compute site")
@acts("compute.site.read")
def site_get(name: SitePath, session: SessionDep, principal: PrincipalDep) -> SiteRead:
    return sites.site_read(sites.show_site(session, principal=principal, name=name))


@router.post("/sites/{name}/drain", name="site_drain", summary="Take no new runs (providers); undo=true opens")
@acts("compute.site.manage")
def site_drain(name: SitePath, session: SessionDep, principal: PrincipalDep, undo: bool = False) -> SiteRead:
    return sites.site_read(sites.drain_site(session, principal=principal, name=name, drain=not undo))


@router.post("/sites/{name}/heartbeat", name="site_heartbeat", summary="Probe the site now (providers)")
@acts("compute.site.manage")
def site_heartbeat(name: SitePath, principal: PrincipalDep, runtime: RuntimeDep) -> SiteRead:
    return sites.site_read(sites.probe_site(runtime.db, runtime.lake.keyring, principal=principal, name=name))


@router.delete("/sites/{name}", name="site_remove", status_code=status.HTTP_204_NO_CONTENT,
               summary="Remove a compute site (providers)")
@acts("compute.site.manage")
def site_remove(name: SitePath, session: SessionDep, principal: PrincipalDep, runtime: RuntimeDep) -> None:
    sites.remove_site(session, principal=principal, name=name)
    executors: SiteExecutors | None = runtime.workflows.services.get("sites")
    if executors is not None:
        executors.close_site(name)


# -- quotas -----------------------------------------------------------------------------------------------------

@router.put("/quotas", name="quota_set", summary="Set a compute quota (admins): core-hours per period")
@acts("compute.quota.manage")
def quota_set(body: QuotaSet, session: SessionDep, principal: PrincipalDep) -> QuotaRead:
    return quotas.quota_read(session, quotas.set_quota(session, principal=principal, spec=body))


@router.get("/quotas", name="quota_list", summary="Compute quotas with their use (yours; admins: all)")
@acts("compute.usage.read")
def quota_list(session: SessionDep, principal: PrincipalDep) -> QuotaPage:
    rows = quotas.list_quotas(session, principal=principal)
    return QuotaPage(items=[quotas.quota_read(session, r) for r in rows], total=len(rows))


@router.delete("/quotas", name="quota_remove", status_code=status.HTTP_204_NO_CONTENT,
               summary="Remove a compute quota (admins)")
@acts("compute.quota.manage")
def quota_remove(session: SessionDep, principal: PrincipalDep,
                 subject: Annotated[str, Query(max_length=80)],
                 site: Annotated[str, Query(pattern=r"^(\*|[A-Za-z0-9][A-Za-z0-9_.-]{0,63})$")] = "*") -> None:
    quotas.remove_quota(session, principal=principal, subject=subject, site=site)


# -- usage ------------------------------------------------------------------------------------------------------

@usage_router.get("", name="usage_summary", summary="Usage summed by identity, group, twin, app, site or kind")
@acts("compute.usage.read")
def usage_summary(session: SessionDep, principal: PrincipalDep, by: UsageKey = UsageKey.IDENTITY,
                  since: Since = None, until: Until = None, identity: Identity = None,
                  site: SiteQuery = None) -> UsageSummary:
    rows = usage_service.list_usage(session, principal=principal, since=since, until=until, identity=identity,
                                    site=site)
    storage = [StorageUse(endpoint=e.name, used_bytes=endpoint_usage(session, e.id)[0], quota_bytes=e.quota_bytes)
               for e in list_endpoints(session, principal=principal)]
    return UsageSummary(by=by, since=since, until=until, groups=usage_service.summarize(rows, by),
                        storage=storage)


@usage_router.get("/records", name="usage_records", summary="One record per execution (yours; admins: all)")
@acts("compute.usage.read")
def usage_records(session: SessionDep, principal: PrincipalDep, since: Since = None, until: Until = None,
                  identity: Identity = None, site: SiteQuery = None) -> UsagePage:
    rows = usage_service.list_usage(session, principal=principal, since=since, until=until, identity=identity,
                                    site=site)
    return UsagePage(items=[usage_service.usage_read(r) for r in rows], total=len(rows))


@usage_router.get("/apel", name="usage_apel", response_class=PlainTextResponse,
                  summary="Usage as EGI APEL summary records (APEL-summary-job-message v0.3)")
@acts("compute.usage.read")
def usage_apel(session: SessionDep, principal: PrincipalDep, since: Since = None, until: Until = None,
               identity: Identity = None, site: SiteQuery = None) -> str:
    rows = usage_service.list_usage(session, principal=principal, since=since, until=until, identity=identity,
                                    site=site)
    kinds = {s.name: s.kind for s in sites.list_sites(session, principal=principal)}
    subjects = oidc_subjects(session, (r.identity for r in rows))  # GlobalUserName: the OIDC subject
    return apel_message(apel_summaries(rows, site_kinds=kinds, subjects=subjects))
