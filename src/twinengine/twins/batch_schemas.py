"""Request and response models of the batched state write: many revisions of many twins in one request."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from twinengine.twins.schemas import PropertyWrite

__all__ = ["BatchRevision", "StateBatch", "StateBatchItem", "StateBatchResult"]


class StateBatchItem(BaseModel):
    """One revision of one twin, as ``PATCH .../state`` would write it."""

    model_config = ConfigDict(extra="forbid")

    twin: str = Field(max_length=64, description="The twin's id (tw-...) or name.")
    reported: dict[str, PropertyWrite] = Field(default_factory=dict, max_length=1000)
    desired: dict[str, PropertyWrite] = Field(default_factory=dict, max_length=1000)
    message: str | None = Field(default=None, max_length=500)


class StateBatch(BaseModel):
    """Items become revisions in their order (items of the same twin get consecutive numbers), all in one
    transaction: either every item is written or none is."""

    model_config = ConfigDict(extra="forbid")

    items: list[StateBatchItem] = Field(min_length=1, description="At most `state_batch_max_items` (413 above).")


class BatchRevision(BaseModel):
    twin_id: str
    revision: int


class StateBatchResult(BaseModel):
    revisions: list[BatchRevision] = Field(description="The revision each item became, in the items' order.")
    values: int = Field(description="Property values written in all.")
