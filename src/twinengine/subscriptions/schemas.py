"""Request and response bodies of ``/api/v1/subscriptions``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["AttemptRead", "DeliveryRead", "SubscriptionCreate", "SubscriptionCreated", "SubscriptionPage",
           "SubscriptionRead"]


class SubscriptionCreate(BaseModel):
    """Subscribe to a twin's condition, told by e-mail or by a webhook (exactly one of them)."""

    model_config = ConfigDict(extra="forbid")

    twin: str = Field(max_length=64, description="The twin's id or name.")
    when: str = Field(max_length=200, examples=["forecast_alert changes", "forecast_exceedance_probability > 0.5",
                                                "level stale 30m"],
                      description="'<property> changes', '<property> > <number>' (>=, <, <=) or "
                                  "'<property> stale <duration>'.")
    email: str | None = Field(default=None, max_length=254, description="Send e-mail to this address.")
    webhook: str | None = Field(default=None, max_length=2048, description="POST signed JSON to this http(s) URL.")

    @model_validator(mode="after")
    def _one_channel(self) -> SubscriptionCreate:
        if (self.email is None) == (self.webhook is None):
            raise ValueError("give exactly one of email and webhook")
        return self


class AttemptRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    at: datetime
    status: str = Field(description="ok, error or withheld.")
    error: str | None = None


class DeliveryRead(BaseModel):
    """One message of the outbox with its tries."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    event: str = Field(description="changed, crossed, stale or test.")
    status: str = Field(description="pending, sending, sent, failed (tries used up) or withheld (the subscriber "
                                    "may no longer read the twin).")
    attempts: int
    created_at: datetime
    next_attempt_at: datetime | None = None
    sent_at: datetime | None = None
    last_error: str | None = None
    summary: str = Field(default="", description="What the message says happened.")
    tries: list[AttemptRead] = Field(default_factory=list)


class SubscriptionRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    owner: str
    twin_id: str
    twin_name: str
    when: str = Field(description="The condition in its canonical form.")
    channel: str = Field(description="email or webhook.")
    target: str = Field(description="The e-mail address or the webhook URL.")
    created_at: datetime
    deliveries: list[DeliveryRead] = Field(default_factory=list, description="The latest deliveries, newest first.")


class SubscriptionCreated(SubscriptionRead):
    secret: str | None = Field(default=None, description="The webhook's signing secret: shown this once only.")


class SubscriptionPage(BaseModel):
    items: list[SubscriptionRead]
    total: int


def delivery_read(row: Any, tries: list[Any], summary: str) -> DeliveryRead:
    read = DeliveryRead.model_validate(row)
    return read.model_copy(update={"tries": [AttemptRead.model_validate(t) for t in tries], "summary": summary})
