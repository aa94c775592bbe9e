"""HTTP route of batched state writes: many revisions of many twins in one request and one transaction."""

from __future__ import annotations

from twinengine.api.deps import PrincipalDep, RuntimeDep, SessionDep
from twinengine.api.route_actions import acts
from twinengine.api.routing import API_PREFIX, api_router
from twinengine.twins import batch
from twinengine.twins.batch_schemas import StateBatch, StateBatchResult

__all__ = ["BATCH_PATH", "router"]

router = api_router("/state", tag="twins")
BATCH_PATH = f"{API_PREFIX}/state/batch"


@router.post("/batch", name="state_batch",
             summary="Write many revisions of many twins at once: all or nothing, errors name the item")
@acts("twin.operate")
def state_batch(body: StateBatch, session: SessionDep, principal: PrincipalDep,
                runtime: RuntimeDep) -> StateBatchResult:
    return batch.write_batch(session, principal=principal, items=body.items,
                             max_items=runtime.settings.state_batch_max_items)
