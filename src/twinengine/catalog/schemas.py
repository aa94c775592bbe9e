"""Response models of the catalogue API."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["AppPage", "AppRead", "AppSummary", "AppVersionRead", "PublishResult", "WorkflowDefinition"]


class AppVersionRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    name: str
    version: str
    title: str
    domain: str
    archive_sha256: str
    archive_size: int
    files: list[str]
    published_by: str
    published_at: datetime
    manifest: dict[str, Any]
    owner_group: str | None = Field(default=None, description="The group whose app it is (its members publish it)")

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"


class PublishResult(BaseModel):
    created: bool
    replaced: bool = False  # a development version (-dev) got new files
    app: AppVersionRead
    warnings: list[dict[str, str]] = Field(
        default_factory=list, description="What is valid but probably not meant ({loc, msg}), e.g. a unit read "
                                          "through an unusual prefix; the version is published all the same.")


class AppSummary(BaseModel):
    name: str
    latest_version: str
    title: str
    domain: str
    description: str
    versions: list[str]


class AppPage(BaseModel):
    items: list[AppSummary]
    total: int


class AppRead(BaseModel):
    name: str
    versions: list[AppVersionRead]


class WorkflowDefinition(BaseModel):
    """A workflow of an app version: its process graph and the parameters it takes (openEO objects)."""

    name: str
    description: str | None
    summary: str | None
    parameters: list[dict[str, Any]]
    process_graph: dict[str, Any]
    initial_state: dict[str, str | list[str]] = Field(
        default_factory=dict, description="Parameters a run takes from the twin's state unless given: parameter -> "
                                          "state property, or a list of them of which the newest value is taken "
                                          "(the manifest's initial_state).")
    state_titles: dict[str, str] = Field(
        default_factory=dict, description="The titles of the state properties initial_state names, where the "
                                          "manifest gives one (what a form says in their place).")
