"""The subscriptions part of the Python SDK, reached as ``client.subscriptions``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from twinengine.subscriptions.schemas import DeliveryRead, SubscriptionCreated, SubscriptionPage, SubscriptionRead
from twinengine.transport import segment

if TYPE_CHECKING:
    from twinengine.transport import Transport

__all__ = ["SubscriptionsClient"]

BASE = "/api/v1/subscriptions"


class SubscriptionsClient:
    def __init__(self, transport: Transport) -> None:
        self._transport = transport

    def subscribe(self, twin: str, when: str, *, email: str | None = None,
                  webhook: str | None = None) -> SubscriptionCreated:
        """Subscribe to ``when`` on ``twin`` (e.g. ``"forecast_alert changes"``); a webhook's secret comes back
        this once, in ``secret``."""
        body = {"twin": twin, "when": when, **({"email": email} if email is not None else {}),
                **({"webhook": webhook} if webhook is not None else {})}
        return self._transport.send(SubscriptionCreated, "POST", BASE, body)

    def list(self, *, twin: str | None = None) -> SubscriptionPage:
        """Your subscriptions (of one twin when ``twin`` is given), each with its last delivery."""
        return self._transport.get(SubscriptionPage, BASE, twin=twin)

    def get(self, id: str) -> SubscriptionRead:
        """One subscription with its latest deliveries and each try."""
        return self._transport.get(SubscriptionRead, f"{BASE}/{segment(id)}")

    def delete(self, id: str) -> None:
        """End a subscription; messages not sent yet are dropped."""
        self._transport.request("DELETE", f"{BASE}/{segment(id)}")

    def test(self, id: str) -> DeliveryRead:
        """Queue a test message; follow its delivery with ``get(id)``."""
        return self._transport.send(DeliveryRead, "POST", f"{BASE}/{segment(id)}/test", {})
