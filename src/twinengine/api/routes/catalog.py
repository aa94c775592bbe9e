"""HTTP routes of the catalogue: publish archives, list/search apps, show versions, pull archives."""

from __future__ import annotations

import base64
from typing import Annotated, Any

from fastapi import BackgroundTasks, Depends, Path, Query, Request, Response, status

from twinengine.api.deps import PrincipalDep, RuntimeDep, SessionDep
from twinengine.api.route_actions import acts, signed_in
from twinengine.api.routing import api_router, long_running
from twinengine.auth.principal import GROUP_NAME_PATTERN
from twinengine.catalog import service
from twinengine.catalog.definitions import workflow_definitions
from twinengine.catalog.manifest import APP_NAME_PATTERN, Manifest
from twinengine.catalog.schemas import AppPage, AppRead, AppSummary, AppVersionRead, PublishResult, WorkflowDefinition
from twinengine.catalog.validate import manifest_warnings
from twinengine.types import INT32_MAX

__all__ = ["router"]

router = api_router("/apps", tag="apps")

AppName = Annotated[str, Path(pattern=APP_NAME_PATTERN, max_length=64)]
Version = Annotated[str, Path(max_length=64, description="A semantic version, or 'latest'.")]

_ARCHIVE_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "The app folder as a gzip-compressed tar (what `twin app publish` sends).",
        "content": {"application/gzip": {"schema": {"type": "string", "format": "binary"}}},
    }
}


async def _raw_body(request: Request) -> bytes:
    return await request.body()


@router.post("", name="publish", openapi_extra=_ARCHIVE_BODY,
             responses={200: {"model": PublishResult, "description": "Identical content was already published, or a "
                                                                     "development version (-dev) was replaced"},
                        201: {"model": PublishResult, "description": "Published"}})
@long_running
@acts("app.publish")
def publish(principal: PrincipalDep, archive: Annotated[bytes, Depends(_raw_body)], response: Response,
            session: SessionDep, runtime: RuntimeDep, after: BackgroundTasks,
            group: Annotated[str | None, Query(pattern=GROUP_NAME_PATTERN, max_length=64,
                                               description="The group whose app it is: only its members publish "
                                                           "its versions")] = None) -> PublishResult:
    """Publish an app version. The token is checked before the body is read."""
    settings = runtime.settings
    done = service.publish(session, runtime.blobs, principal=principal, archive=archive,
                           max_archive_bytes=settings.max_app_archive_bytes,
                           max_unpacked_bytes=settings.max_app_unpacked_bytes,
                           max_manifest_bytes=settings.max_manifest_bytes, steps=runtime.publish_steps,
                           group=group, db=runtime.db)
    if done.replaced is not None:  # a development version's old code: its idle workers stop once it is committed
        after.add_task(runtime.app_code.retire, done.replaced)  # (stopping one waits: never in the transaction)
    row = done.row
    response.status_code = status.HTTP_201_CREATED if done.created else status.HTTP_200_OK
    response.headers["Location"] = f"/api/v1/apps/{row.name}/versions/{row.version}"
    warnings = manifest_warnings(Manifest.model_validate(row.manifest))  # the manifest the archive just passed
    return PublishResult(created=done.created, replaced=done.replaced is not None,
                         app=AppVersionRead.model_validate(row), warnings=[w.to_dict() for w in warnings])


@router.get("", name="list", summary="Apps in the catalogue, optionally matching a text")
@acts("app.read")
def list_apps(
    session: SessionDep,
    principal: PrincipalDep,
    q: Annotated[str | None, Query(max_length=200, description="Words to find in name, title, description, "
                                                               "domain or keywords")] = None,
    domain: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=INT32_MAX)] = 0,
) -> AppPage:
    rows, total = service.list_apps(session, principal=principal, text=q, domain=domain, limit=limit,
                                    offset=offset)
    items = [AppSummary(name=row.name, latest_version=row.version, title=row.title, domain=row.domain,
                        description=str(row.manifest.get("description", "")), versions=versions)
             for row, versions in rows]
    return AppPage(items=items, total=total)


@router.get("/manifest-schema", name="manifest_schema", summary="JSON Schema of twinapp.yaml")
@signed_in
def manifest_schema(principal: PrincipalDep) -> dict[str, Any]:
    return Manifest.model_json_schema()


@router.get("/{name}", name="get", summary="All versions of an app, newest first")
@acts("app.read")
def get_app(name: AppName, session: SessionDep, principal: PrincipalDep) -> AppRead:
    rows = service.list_versions(session, principal=principal, name=name)
    return AppRead(name=name, versions=[AppVersionRead.model_validate(r) for r in rows])


@router.get("/{name}/versions/{version}", name="get_version", summary="One app version with its manifest")
@acts("app.read")
def get_version(name: AppName, version: Version, session: SessionDep, principal: PrincipalDep) -> AppVersionRead:
    row = service.get_app_version(session, principal=principal, name=name, version=version)
    return AppVersionRead.model_validate(row)


@router.get("/{name}/versions/{version}/archive", name="pull", response_class=Response,
            summary="The version's archive; Repr-Digest carries its sha-256",
            responses={200: {"content": {"application/gzip": {}}}})
@acts("app.read")
def pull(name: AppName, version: Version, session: SessionDep, runtime: RuntimeDep,
         principal: PrincipalDep) -> Response:
    row = service.get_app_version(session, principal=principal, name=name, version=version)
    data = service.get_archive(runtime.blobs, row)
    digest = base64.b64encode(bytes.fromhex(row.archive_sha256)).decode()
    return Response(data, media_type="application/gzip", headers={
        "ETag": f'"{row.archive_sha256}"',
        "Repr-Digest": f"sha-256=:{digest}:",
        "Content-Disposition": f'attachment; filename="{row.name}-{row.version}.tar.gz"',
    })


@router.get("/{name}/versions/{version}/workflows", name="workflows",
            summary="The version's workflows and the parameters each takes (openEO parameter objects)")
@acts("app.read")
def workflows(name: AppName, version: Version, session: SessionDep, runtime: RuntimeDep,
              principal: PrincipalDep) -> list[WorkflowDefinition]:
    row = service.get_app_version(session, principal=principal, name=name, version=version)
    return workflow_definitions(runtime.blobs, row)
