"""The ``views`` section of a manifest: dashboards an app declares for its users, made of panels that the
portal renders as the twin's own pages. Panels are keyed by name, so every problem names its panel
(``views.flood.panels.level.properties[1]``); ``catalog.validate`` checks what they refer to."""

from __future__ import annotations

from datetime import timedelta
from itertools import pairwise
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from twinengine.catalog.view_text import TemplateError, parse

__all__ = [
    "Band",
    "Forecast",
    "FormPanel",
    "MapPanel",
    "ModelPanel",
    "Outlook",
    "Panel",
    "Skill",
    "TablePanel",
    "Threshold",
    "TimeSeriesPanel",
    "View",
]

_Ident = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=64)]
_Text = Annotated[str, Field(min_length=1, max_length=200)]
_CollectionId = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:*-]{0,127}$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Threshold(_Strict):
    """A horizontal line: a fixed ``value`` or the current value of a state ``property`` (e.g. a desired
    alert threshold)."""

    label: _Text | None = None
    value: float | None = None
    property: _Ident | None = None
    state: Literal["reported", "desired"] = "desired"

    @model_validator(mode="after")
    def _one_source(self) -> Threshold:
        if (self.value is None) == (self.property is None):
            raise ValueError("a threshold has either a value or a property")
        return self


class Band(_Strict):
    """An uncertainty band between two state properties (values that carry their own uncertainty are drawn
    with it wherever they are plotted)."""

    lower: _Ident
    upper: _Ident
    label: _Text | None = None


class Forecast(_Strict):
    """The latest finished run of ``workflow``: its JSON output (a list of numbers) continues the series from
    its last value, one value per ``step``."""

    workflow: _Ident
    output: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    step: timedelta = Field(default=timedelta(hours=1), gt=timedelta(0))
    label: _Text | None = None


class _Panel(_Strict):
    title: _Text
    description: Annotated[str, Field(max_length=2000)] | None = None


class TimeSeriesPanel(_Panel):
    """State properties over time, with thresholds, an uncertainty band and a forecast."""

    kind: Literal["timeseries"]
    properties: list[_Ident] = Field(min_length=1, max_length=8)
    state: Literal["reported", "desired"] = "reported"
    window: timedelta = Field(default=timedelta(days=3), gt=timedelta(0),
                              description="How much history is shown, back from the latest value.")
    thresholds: list[Threshold] = Field(default_factory=list, max_length=8)
    band: Band | None = None
    forecast: Forecast | None = None


class MapPanel(_Panel):
    """Gridded collections (one ``parameter`` drawn by the engine, with a time slider) and twins on a map."""

    kind: Literal["map"]
    collections: list[_CollectionId] = Field(default_factory=list, max_length=8)
    parameter: _Ident | None = None
    twins: bool = True


class TablePanel(_Panel):
    """The current value (reported and desired, with units) of a few state properties."""

    kind: Literal["table"]
    properties: list[_Ident] = Field(min_length=1, max_length=32)


class FormPanel(_Panel):
    """A scenario or parameter form that starts a workflow of the twin (all its parameters, or those named)."""

    kind: Literal["form"]
    workflow: _Ident
    parameters: list[_Ident] | None = Field(default=None, max_length=64)
    what_if: bool = Field(default=False, description="Each run is a what-if on a new fork of the twin (the "
                                                     "engine keeps the twin's own state out of its reach); "
                                                     "false: an operational run of the twin itself.")


class ModelPanel(_Panel):
    """A model's versions, aliases and gate decisions, and the metrics of its latest training runs."""

    kind: Literal["model"]
    model: _Ident
    metrics: list[_Ident] = Field(default_factory=list, max_length=8)


Panel = Annotated[TimeSeriesPanel | MapPanel | TablePanel | FormPanel | ModelPanel, Field(discriminator="kind")]


class Skill(_Strict):
    """Which verification the view states in words: forecasts of ``property`` at ``lead``, over ``window``."""

    property: _Ident | None = Field(default=None, description="Default: the first property of the first time "
                                                              "series panel with a forecast.")
    lead: timedelta = Field(default=timedelta(hours=6), gt=timedelta(0))
    window: timedelta = Field(default=timedelta(days=30), gt=timedelta(0), le=timedelta(days=366))


class Outlook(_Strict):
    """The chance the forecast crosses the view's threshold (its forecast panel's first) within each lead, the
    ensemble's spread there and how good past forecasts were at that lead: the question a flood view answers."""

    leads: list[Annotated[timedelta, Field(gt=timedelta(0), le=timedelta(days=30))]] = Field(
        default_factory=lambda: [timedelta(hours=h) for h in (6, 12, 24, 48)], min_length=1, max_length=8,
        description="Lead times from the forecast's issue; each names its values in the summary (outlook.24h).")

    @field_validator("leads")
    @classmethod
    def _increasing(cls, value: list[timedelta]) -> list[timedelta]:
        if any(b <= a for a, b in pairwise(value)):
            raise ValueError("leads must increase (e.g. [PT6H, PT12H, PT24H, PT48H])")
        return value


class View(_Strict):
    """A dashboard: a plain-language summary first, then panels in the order the manifest lists them."""

    title: _Text
    description: Annotated[str, Field(max_length=2000)] | None = None
    summary: Annotated[str, Field(min_length=1, max_length=1000)] | None = Field(
        default=None, description="What the view answers, in words: a template the engine fills from the twin's "
                                  "state, latest forecast and verification (docs/ui.md#summaries).")
    skill: Skill = Field(default_factory=Skill)
    outlook: Outlook = Field(default_factory=Outlook, description="Exceedance by lead time (for a view with a "
                                                                  "forecast and a threshold).")
    panels: dict[_Ident, Panel] = Field(min_length=1, max_length=24)

    @field_validator("summary")
    @classmethod
    def _summary_parses(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                parse(value)
            except TemplateError as exc:
                raise ValueError(str(exc)) from None
        return value
