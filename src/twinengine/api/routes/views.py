"""HTTP route of a twin's views answered in words (the portal's pages are served by ``routes``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path

from twinengine.api.deps import PrincipalDep, SessionDep
from twinengine.api.route_actions import acts
from twinengine.api.routing import api_router
from twinengine.ui import summaries
from twinengine.ui.schemas import ViewRead

__all__ = ["router"]

router = api_router("/twins", tag="views")

TwinRef = Annotated[str, Path(max_length=64, description="The twin's id (tw-...) or name.")]
ViewName = Annotated[str, Path(max_length=64, description="A view the twin's app declares (manifest views).")]


@router.get("/{twin}/views/{view}", name="get_view",
            summary="A view of the twin with its summary, forecast skill and model said in words")
@acts("twin.read")
def get_view(twin: TwinRef, view: ViewName, session: SessionDep, principal: PrincipalDep) -> ViewRead:
    return summaries.read_view(session, principal=principal, ref=twin, name=view)
