"""Request and response models of twin relationships: links, and the twins a traversal reaches."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from twinengine.timeutil import Instant
from twinengine.twins.schemas import TwinState

__all__ = ["Direction", "LinkCreate", "LinkPage", "LinkRead", "RelatedPage", "RelatedTwin"]

RELATION_TYPE = r"^[A-Za-z_][A-Za-z0-9_]*$"
MAX_DEPTH = 64


class Direction(StrEnum):
    """Which links a traversal follows from a twin: to its targets, from its sources, or both."""

    OUT = "out"
    IN = "in"
    BOTH = "both"


class LinkCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: str = Field(pattern=RELATION_TYPE, max_length=64, description="A relationship type the source's app "
                                                                        "declares under `relationships`.")
    target: str = Field(min_length=1, max_length=64, description="The target twin's id or name.")
    at: Instant | None = Field(default=None, description="When the link began (ISO 8601); default now. Not in "
                                                         "the future, nor before the type's latest change.")


class LinkRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    type: str
    source_id: str
    target_id: str
    valid_from: datetime
    valid_to: datetime | None = Field(description="When the link was closed; absent while it holds.")
    opened_revision: int = Field(description="Number of the change that opened it, counted per type.")
    closed_revision: int | None
    opened_by: str
    closed_by: str | None


class LinkPage(BaseModel):
    items: list[LinkRead]
    total: int


class RelatedTwin(BaseModel):
    """A twin a traversal reached, at its shortest distance, with the link that reached it."""

    id: str
    name: str
    app: str
    depth: int = Field(description="Hops from the starting twin (1: linked to it directly).")
    via: LinkRead
    state: TwinState | None = Field(default=None, description="Its state (now, or as of `at`), when asked for.")


class RelatedPage(BaseModel):
    twin_id: str
    type: str | None
    direction: Direction
    depth: int
    at: datetime | None
    items: list[RelatedTwin] = Field(description="Nearest first, then by name.")
    truncated: bool = Field(description="True when `limit` cut the answer short.")
