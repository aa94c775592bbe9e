"""HTTP route of forecast skill with and without assimilation, and of the filter's innovation health."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import Path, Query

from twinengine.api.deps import PrincipalDep, RuntimeDep, SessionDep
from twinengine.api.route_actions import acts
from twinengine.api.routing import api_router, long_running
from twinengine.quality.spec import Duration
from twinengine.timeutil import Instant
from twinengine.twin_assimilation import skill
from twinengine.twin_assimilation.service import Engines
from twinengine.twins.assimilation_skill_schemas import AssimilationSkillRead

__all__ = ["router"]

router = api_router("/twins", tag="verification")

TwinRef = Annotated[str, Path(max_length=64, description="The twin's id (tw-...) or name.")]


@router.get("/{twin}/verification/assimilation", name="assimilation_skill",
            summary="Skill per lead time of forecasts from the twin's analyses and without assimilation")
@long_running
@acts("twin.read")
def assimilation_skill(
    twin: TwinRef,
    runtime: RuntimeDep,
    session: SessionDep,
    principal: PrincipalDep,
    property: Annotated[str | None, Query(max_length=64, description="The observation verified (default: the "
                                                                     "first the app assimilates).")] = None,
    lead: Annotated[list[Duration] | None, Query(description="Lead times (repeat; default 1, 3, 6, 12 h for "
                                                             "hourly or faster cycles).")] = None,
    starts: Annotated[int, Query(ge=1, le=skill.MAX_STARTS, description="Analyses to forecast from, spread "
                                                                        "over the cycles.")] = skill.DEFAULT_STARTS,
    tolerance: Annotated[Duration | None, Query(description="Nearest observation within this (default: half a "
                                                            "model step, at most 30 min).")] = None,
    since: Annotated[Instant | None, Query(description="Only analyses valid from this time (past the "
                                                       "filter's spin-up).")] = None,
) -> AssimilationSkillRead:
    """Forecasts from analyses spread over the twin's cycles and from the open loop (the model alone from the
    state before the first cycle), driven by the recorded forcing and scored against the observations; with
    the latest analysis and the innovations against the spread the filter expected."""
    engines = Engines(hub=runtime.streams, code=runtime.app_code)
    return skill.assimilation_skill(session, engines, principal=principal, ref=twin, prop=property,
                                    leads=[timedelta(seconds=d.total_seconds()) for d in lead or []] or None,
                                    starts=starts, tolerance=tolerance, since=since)
