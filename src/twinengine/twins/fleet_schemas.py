"""Request and response models of the fleet API."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from twinengine.twins.schemas import TwinRead

__all__ = ["FleetAggregate", "FleetGroup", "FleetPage", "TwinPlacement"]


class TwinPlacement(BaseModel):
    """What PATCH changes: the fields given (``location: null`` removes the location)."""

    model_config = ConfigDict(extra="forbid")

    tags: list[str] | None = Field(default=None, max_length=32, description="Replaces the twin's tags.")
    location: dict[str, JsonValue] | None = Field(default=None,
                                                  description="GeoJSON Point, Polygon or MultiPolygon (WGS 84).")


class FleetPage(BaseModel):
    items: list[TwinRead]
    next: str | None = Field(description="URL of the next page (same filters); absent on the last page.")
    cursor: str | None = Field(description="The next page's cursor, for clients that build URLs themselves.")


class FleetGroup(BaseModel):
    key: str | None = Field(description="The group's app, tag or parameter value (null: the whole fleet).")
    count: int
    mean: float | None
    min: float | None
    max: float | None
    quantiles: dict[str, float | None] = Field(default_factory=dict, description="By quantile, e.g. '0.5'.")


class FleetAggregate(BaseModel):
    property: str
    kind: str
    by: str | None
    at: datetime | None
    groups: list[FleetGroup]
