"""Tables of the twins package: twins, grants, the append-only state log (revisions and values), and the
state heads derived from it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Float, ForeignKey, ForeignKeyConstraint, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from twinengine.auth.policy import Permission
from twinengine.store.base import Base, JSONValue, LogId, UTCDateTime, utcnow
from twinengine.store.changes import watch

__all__ = ["StateHead", "StateRevision", "StateValue", "Twin", "TwinGrant", "TwinGroupGrant", "TwinParameter",
           "TwinTag"]


class Twin(Base):
    """An instance of an app bound to one physical twin. ``head_revision`` numbers its state changes."""

    __tablename__ = "twins"
    # What a fleet aggregate reads of each twin it joins by id (its owner for access, its app as a group key):
    # the join needs no table row (migration 0014).
    __table_args__ = (Index("ix_twins_access", "id", "owner", "owner_group", "app_name", "app_version"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("app_versions.id", ondelete="RESTRICT"), index=True)
    app_name: Mapped[str] = mapped_column(String(64))
    app_version: Mapped[str] = mapped_column(String(64))
    owner: Mapped[str] = mapped_column(ForeignKey("identities.name", ondelete="RESTRICT"), index=True)
    # A group-owned twin belongs to the group's members; ``owner`` then records who created it (migration 0022).
    # The name of a row of ``groups`` (no foreign key: see the migration); a group is deleted only once its
    # twins are handed on (auth.group_delete, which finds them by this column's ``info``).
    owner_group: Mapped[str | None] = mapped_column(String(64), index=True,
                                                    info={"owner": "owner", "kind": "twin"})
    description: Mapped[str | None] = mapped_column(Text)
    parameters: Mapped[dict[str, Any]] = mapped_column(JSONValue)
    origin_id: Mapped[str | None] = mapped_column(ForeignKey("twins.id", ondelete="SET NULL"), index=True)
    origin_name: Mapped[str | None] = mapped_column(String(64))
    origin_revision: Mapped[int | None] = mapped_column(Integer)
    head_revision: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # When the engine deletes the twin (a what-if's fork, ``what_if_ttl`` after it was made; migration 0036):
    # the expiry loop finds the due ones by this index. None: kept until someone deletes it.
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)
    # Fleet attributes: tags (also rows of twin_tags, which the tag filter reads) and a GeoJSON location
    # whose bounding box the bbox filter prefilters on through the four indexed columns.
    tags: Mapped[list[str] | None] = mapped_column(JSONValue)
    location: Mapped[dict[str, Any] | None] = mapped_column(JSONValue)
    bbox_minx: Mapped[float | None] = mapped_column(Float, index=True)
    bbox_miny: Mapped[float | None] = mapped_column(Float, index=True)
    bbox_maxx: Mapped[float | None] = mapped_column(Float, index=True)
    bbox_maxy: Mapped[float | None] = mapped_column(Float, index=True)

    # Loaded on first use: an owner's own requests never need them.
    grants: Mapped[list[TwinGrant]] = relationship(
        back_populates="twin", cascade="all, delete-orphan", lazy="select", passive_deletes=True
    )

    group_grants: Mapped[list[TwinGroupGrant]] = relationship(
        back_populates="twin", cascade="all, delete-orphan", lazy="select", passive_deletes=True
    )

    @property
    def twin_id(self) -> str:
        """The twin this is: what everything of a twin names it by (``auth.scopes.twin_of``)."""
        return self.id

    def permission_of(self, identity: str) -> Permission | None:
        for grant in self.grants:
            if grant.identity == identity:
                return Permission(grant.permission)
        return None

    def group_permission_of(self, groups: frozenset[str]) -> Permission | None:
        """The best grant to any of ``groups`` (operate over read)."""
        found = {Permission(g.permission) for g in self.group_grants if g.group in groups}
        return Permission.OPERATE if Permission.OPERATE in found else next(iter(found), None)


class TwinGrant(Base):
    """Access the owner gave another identity: ``read`` or ``operate``."""

    __tablename__ = "twin_grants"

    twin_id: Mapped[str] = mapped_column(ForeignKey("twins.id", ondelete="CASCADE"), primary_key=True)
    identity: Mapped[str] = mapped_column(ForeignKey("identities.name", ondelete="CASCADE"), primary_key=True,
                                          index=True)
    permission: Mapped[str] = mapped_column(String(16))
    granted_by: Mapped[str] = mapped_column(String(64))
    granted_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    twin: Mapped[Twin] = relationship(back_populates="grants")


class TwinGroupGrant(Base):
    """Access the owner gave a group: every member has it, for as long as it is a member."""

    __tablename__ = "twin_group_grants"

    twin_id: Mapped[str] = mapped_column(ForeignKey("twins.id", ondelete="CASCADE"), primary_key=True)
    group: Mapped[str] = mapped_column(ForeignKey("groups.name", ondelete="CASCADE"), primary_key=True, index=True)
    permission: Mapped[str] = mapped_column(String(16))
    granted_by: Mapped[str] = mapped_column(String(64))
    granted_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    twin: Mapped[Twin] = relationship(back_populates="group_grants")


class TwinTag(Base):
    """One tag of a twin: the index the tag filter and the group-by-tag aggregation read."""

    __tablename__ = "twin_tags"
    # By twin, tag included: ``by=tag`` reads a twin's tags off this index alone, in the twin order the
    # heads' index hands the twins in.
    __table_args__ = (Index("ix_twin_tags_twin_id", "twin_id", "tag"),)

    tag: Mapped[str] = mapped_column(String(64), primary_key=True)
    twin_id: Mapped[str] = mapped_column(ForeignKey("twins.id", ondelete="CASCADE"), primary_key=True)


class TwinParameter(Base):
    """A twin's top-level parameter, copied out of ``twins.parameters`` so that fleet filters and groups seek
    an index instead of reading every twin's JSON: its JSON type (``kind``: string, number, boolean, null,
    object, array), its text when a string of at most 200 characters, its number when a number (or a
    boolean, as 1 or 0), and, for numbers and booleans, the text a group key shows. Written with the twin
    (parameters do not change after create); see ``twins/parameter_index.py``."""

    __tablename__ = "twin_parameters"
    # On SQLite without rowid: the row sits in its primary key's tree, so the seek a page or a group makes
    # per twin, by (twin_id, name), is one lookup instead of two.
    __table_args__ = (Index("ix_twin_parameters_value", "name", "value", "twin_id"),
                      Index("ix_twin_parameters_number", "name", "kind", "num_value", "twin_id"),
                      {"sqlite_with_rowid": False})

    twin_id: Mapped[str] = mapped_column(ForeignKey("twins.id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(8))
    value: Mapped[str | None] = mapped_column(String(200))
    num_value: Mapped[float | None] = mapped_column(Float)
    label: Mapped[str | None] = mapped_column(Text)


class StateRevision(Base):
    """One change of a twin's state, numbered 1, 2, 3... without gaps. Never updated or deleted alone."""

    __tablename__ = "state_revisions"

    twin_id: Mapped[str] = mapped_column(ForeignKey("twins.id", ondelete="CASCADE"), primary_key=True)
    revision: Mapped[int] = mapped_column(Integer, primary_key=True)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    author: Mapped[str] = mapped_column(String(64))
    message: Mapped[str | None] = mapped_column(String(500))

    values: Mapped[list[StateValue]] = relationship(
        lazy="selectin", order_by="StateValue.id", cascade="all, delete-orphan", passive_deletes=True
    )


class StateValue(Base):
    """A property value written in a revision: reported (by the physical twin) or desired (by users).

    ``timestamp`` is when the value was true (valid time); the revision's ``recorded_at`` is when the
    engine learned it. Queries "as of a time" use the former, "as of a revision" the latter.
    """

    __tablename__ = "state_values"
    __table_args__ = (
        ForeignKeyConstraint(["twin_id", "revision"], ["state_revisions.twin_id", "state_revisions.revision"],
                             ondelete="CASCADE"),
        UniqueConstraint("twin_id", "revision", "property", "kind"),
        Index("ix_state_values_by_revision", "twin_id", "property", "kind", "revision"),
        # Both indexes end in the order a read "as of" picks the latest value by, so that read is one seek
        # per property, whatever the length of the history (see twins/state.py).
        Index("ix_state_values_by_time", "twin_id", "property", "kind", "timestamp", "revision"),
    )

    id: Mapped[int] = mapped_column(LogId, primary_key=True, autoincrement=True)
    twin_id: Mapped[str] = mapped_column(String(32))
    revision: Mapped[int] = mapped_column(Integer)
    property: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    value: Mapped[Any] = mapped_column(JSONValue)
    unit: Mapped[str | None] = mapped_column(String(64))
    timestamp: Mapped[datetime] = mapped_column(UTCDateTime())


class StateHead(Base):
    """The current value of each (property, kind) of a twin: a copy of its newest ``StateValue``.

    Derived from the log and written in the same transaction as each revision, so reading the current state
    is one short index range, and the heads name the properties a read "as of" must look up. The log stays
    the truth: ``twin db rebuild-state`` recomputes these rows from it.

    ``num_value`` copies ``value`` when it is a finite JSON number (NULL otherwise, booleans included), so
    fleet filters and aggregates read a plain indexed column instead of parsing JSON on every row.
    """

    __tablename__ = "state_heads"
    __table_args__ = (
        # A property's heads in twin order with their numbers: an aggregate reads this index alone and joins
        # the twins in id order (cache-friendly seeks; value order made each seek land anywhere, 2-3x slower
        # on SQLite), and a numeric filter's seek per twin needs no table row.
        Index("ix_state_heads_numbers", "property", "kind", "twin_id", "num_value"),
    )

    twin_id: Mapped[str] = mapped_column(ForeignKey("twins.id", ondelete="CASCADE"), primary_key=True)
    property: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    revision: Mapped[int] = mapped_column(Integer)
    value: Mapped[Any] = mapped_column(JSONValue)
    unit: Mapped[str | None] = mapped_column(String(64))
    timestamp: Mapped[datetime] = mapped_column(UTCDateTime())
    num_value: Mapped[float | None] = mapped_column(Float)


watch(Twin, "twins", lambda twin: twin.id)  # background loops learn of new and deleted twins from the counter
