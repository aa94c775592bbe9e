"""HTTP routes of subscriptions: subscribe, list one's own, show, delete, send a test message."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query, Response, status

from twinengine.api.deps import PrincipalDep, RuntimeDep, SessionDep
from twinengine.api.route_actions import acts
from twinengine.api.routing import api_router
from twinengine.auth.policy import allowed
from twinengine.subscriptions import service
from twinengine.subscriptions.schemas import (
    DeliveryRead,
    SubscriptionCreate,
    SubscriptionCreated,
    SubscriptionPage,
    SubscriptionRead,
)

__all__ = ["router"]

router = api_router("/subscriptions", tag="subscriptions")

SubscriptionId = Annotated[str, Path(max_length=40, description="The subscription's id (sub-...).")]


@router.post("", name="create", status_code=status.HTTP_201_CREATED,
             summary="Subscribe to a twin's condition, told by e-mail or a signed webhook")
@acts("subscription.create", "twin.read")
def create(body: SubscriptionCreate, session: SessionDep, principal: PrincipalDep,
           runtime: RuntimeDep) -> SubscriptionCreated:
    sub, secret = service.create(session, principal=principal, settings=runtime.settings, body=body)
    return SubscriptionCreated.model_validate(sub).model_copy(update={"secret": secret})


@router.get("", name="list", summary="Your subscriptions")
@acts("subscription.create")
def list_subscriptions(
    session: SessionDep,
    principal: PrincipalDep,
    twin: Annotated[str | None, Query(max_length=64, description="Only those of this twin (id or name).")] = None,
) -> SubscriptionPage:
    # as each one's page does (auth.policy): a token limited to some twins lists only the subscriptions of those
    rows = [r for r in service.list_own(session, principal=principal, twin=twin)
            if allowed(principal, "subscription.manage", r)]
    return SubscriptionPage(items=[service.read(session, r, deliveries=1) for r in rows], total=len(rows))


@router.get("/{id}", name="show", summary="One of your subscriptions with its latest deliveries and their tries")
@acts("subscription.manage")
def show(id: SubscriptionId, session: SessionDep, principal: PrincipalDep) -> SubscriptionRead:
    return service.read(session, service.get(session, principal=principal, id=id))


@router.delete("/{id}", name="delete", status_code=status.HTTP_204_NO_CONTENT,
               summary="End a subscription (its pending messages are dropped)")
@acts("subscription.manage")
def delete(id: SubscriptionId, session: SessionDep, principal: PrincipalDep) -> Response:
    service.delete(session, principal=principal, id=id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{id}/test", name="test", status_code=status.HTTP_202_ACCEPTED,
             summary="Queue a test message through the subscription's channel; follow it on the subscription")
@acts("subscription.manage", "twin.read")
def test(id: SubscriptionId, session: SessionDep, principal: PrincipalDep, runtime: RuntimeDep) -> DeliveryRead:
    row = service.queue_test(session, principal=principal, settings=runtime.settings, id=id)
    return DeliveryRead.model_validate(row)
