"""Tables of the catalogue: one row per published, immutable app version."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from twinengine.store.base import Base, JSONValue, UTCDateTime, utcnow
from twinengine.store.changes import watch

__all__ = ["AppVersion"]


class AppVersion(Base):
    """A published DT application version; its archive lives in the blob store under ``archive_sha256``."""

    __tablename__ = "app_versions"
    __table_args__ = (
        UniqueConstraint("name", "version"),
        Index("ix_app_versions_name_order", "name", "major", "minor", "patch"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64))
    version: Mapped[str] = mapped_column(String(64))
    major: Mapped[int] = mapped_column(Integer)
    minor: Mapped[int] = mapped_column(Integer)
    patch: Mapped[int] = mapped_column(Integer)
    prerelease: Mapped[str | None] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(String(200))
    domain: Mapped[str] = mapped_column(String(64), index=True)
    search_text: Mapped[str] = mapped_column(Text)
    manifest: Mapped[dict[str, Any]] = mapped_column(JSONValue)
    archive_sha256: Mapped[str] = mapped_column(String(64))
    archive_size: Mapped[int] = mapped_column(Integer)
    files: Mapped[list[str]] = mapped_column(JSONValue)
    published_by: Mapped[str] = mapped_column(String(64))
    # an app (all its versions) published for a group: only its members publish it again (catalog.service)
    owner_group: Mapped[str | None] = mapped_column(String(64), index=True, info={"owner": None, "kind": "app"})
    published_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


watch(AppVersion, "apps", lambda row: f"{row.name}@{row.version}")  # published or replaced versions
