"""Request and response models of scoped tokens and signing keys."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from twinengine.auth.principal import Role

__all__ = ["OwnTokenRead", "ScopedTokenCreate", "ScopedTokenIssued", "SigningKeyRead", "TokenExchange",
           "TokenExchanged"]


class ScopedTokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    scopes: list[str] = Field(min_length=1, max_length=16, description="e.g. ['twins:read']; see docs/access.md.")
    twins: list[str] | None = Field(default=None, max_length=100,
                                    description="Names or ids of the twins it is for; none: any the creator reaches.")
    expires_in: str | None = Field(default=None, max_length=32,
                                   description="e.g. '7d', '12h'; default from settings; never 'never'.")
    note: str | None = Field(default=None, max_length=200)


class ScopedTokenIssued(BaseModel):
    token: str
    jti: str
    name: str
    role: Role
    scopes: list[str]
    twins: list[str] | None
    expires_at: datetime | None


class OwnTokenRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    jti: str
    identity: str
    role: Role
    issued_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    note: str | None
    scopes: list[str] | None = None
    twins: list[str] | None = None
    parent_jti: str | None = Field(default=None, description="The token it was made with: it works while that does.")
    audience: str | None = Field(default=None, description="The site an exchanged token is for (RFC 8693).")


class SigningKeyRead(BaseModel):
    kid: str
    generation: int
    state: str = Field(description="current (signs), next (published, signs after the next rotation), or retired "
                                   "(verifies tokens with an expiry until it passes).")
    created_at: datetime
    promoted_at: datetime | None
    jwk: dict[str, Any]


class TokenExchange(BaseModel):
    """An RFC 8693 token-exchange request (its form fields)."""

    model_config = ConfigDict(extra="ignore")

    grant_type: str = Field(max_length=100)
    subject_token: str = Field(min_length=1, max_length=8192)
    subject_token_type: str = Field(max_length=100)
    audience: str = Field(min_length=1, max_length=200)
    scope: str = Field(min_length=1, max_length=400)
    resource: list[str] | None = Field(default=None, max_length=100)
    expires_in: str | None = Field(default=None, max_length=32)


class TokenExchanged(BaseModel):
    """RFC 8693's answer."""

    access_token: str
    issued_token_type: str
    token_type: str
    expires_in: int
    scope: str
