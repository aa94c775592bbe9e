"""HTTP route of a model version's quality report: the quality of the records it was trained on."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path

from twinengine.api.deps import PrincipalDep, SessionDep
from twinengine.api.route_actions import acts
from twinengine.api.routing import api_router
from twinengine.ml import service
from twinengine.quality.pedigree import QualityReport

__all__ = ["router"]

router = api_router("/twins", tag="ml")

Name = Annotated[str, Path(max_length=64)]


@router.get("/{twin}/models/{model}/versions/{version}/quality", name="version_quality",
            summary="The quality of the records a model version was trained on")
@acts("twin.read")
def version_quality(twin: Name, model: Name, version: Annotated[str, Path(max_length=16)], session: SessionDep,
                    principal: PrincipalDep) -> QualityReport:
    return service.version_quality(session, principal=principal, twin_ref=twin, model=model, version=version)
