"""Request and response models of the auth API."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from twinengine.auth.principal import Role

__all__ = ["AuditEventRead", "AuditPage", "IdentityDeleted", "IdentityName", "IdentityRead", "IdentityUpdate", "Me",
           "SessionCreate", "SessionRead", "TokenCreate", "TokenIssued", "TokenRead"]

IdentityName = Field(pattern=r"^[a-z][a-z0-9._-]{0,63}$", min_length=1, max_length=64,
                     description="Lower-case letters, digits, '.', '_' and '-'; starts with a letter.")


class Me(BaseModel):
    name: str
    role: Role
    issuer: str
    groups: list[str] = Field(default_factory=list, description="The groups the caller is in (an identity "
                              "provider's, by its rules, and an admin's).")
    scopes: list[str] | None = Field(default=None, description="The scopes the token used carries (a scoped "
                                     "token's); null: all its role allows.")
    twins: list[str] | None = Field(default=None, description="The twins the token used is limited to; null: "
                                    "any the caller may reach.")


class TokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = IdentityName
    role: Role
    expires_in: str | None = Field(default=None, description="e.g. '30d', '12h', 'never'; default from settings.",
                                   max_length=32)
    note: str | None = Field(default=None, max_length=200)


class TokenIssued(BaseModel):
    token: str
    jti: str
    name: str
    role: Role
    expires_at: datetime | None


class TokenRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    jti: str
    identity: str
    role: Role
    issued_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    note: str | None
    scopes: list[str] | None = Field(default=None, description="A scoped token's scopes; null: all of its role.")
    twins: list[str] | None = Field(default=None, description="The twins a scoped token is for; null: any.")


class AuditEventRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    at: datetime
    actor: str
    role: str | None
    action: str
    target: str
    outcome: str
    status: int | None
    detail: dict[str, Any] | None


class AuditPage(BaseModel):
    items: list[AuditEventRead]
    total: int


class IdentityRead(BaseModel):
    name: str
    id: str | None = Field(default=None, description="Never reused: a name deleted and created again is another "
                                                     "identity, with another id.")
    created_at: datetime
    created_by: str | None
    disabled: bool
    disabled_by: str | None = Field(default=None, description="Who disabled it: an admin's name, or "
                                    "`provider:<id>` for a hold its OpenID provider caused, which ends itself when "
                                    "the provider vouches for the person again.")
    valid_tokens: int
    roles: list[Role]


class IdentityUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    disabled: bool = Field(description="true: the identity's tokens and portal sessions stop working at once; "
                                       "false: they work again.")


class IdentityDeleted(BaseModel):
    name: str
    id: str | None
    tokens_deleted: int


class SessionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: str = Field(min_length=1, max_length=8192, description="An engine or OIDC token; not kept.")


class SessionRead(BaseModel):
    name: str
    role: Role
    issuer: str
    csrf_token: str | None = Field(description="Send as X-CSRF-Token with writes that use the session cookie; "
                                               "null when the caller used a bearer token.")
    expires_at: datetime | None = None
