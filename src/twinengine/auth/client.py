"""The SDK's access namespace: ``client.access.create_group(...)``, ``client.access.scoped_token(...)`` and
friends (groups, grants of twins to groups, one's own tokens, the signing keys)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

from pydantic import TypeAdapter

from twinengine.auth.group_schemas import GroupDeletedRead, GroupDetail, GroupGrantRead, GroupRead, MembershipRead
from twinengine.auth.token_schemas import OwnTokenRead, ScopedTokenIssued, SigningKeyRead
from twinengine.transport import segment

if TYPE_CHECKING:
    from twinengine.transport import Transport

__all__ = ["AccessClient"]


class AccessClient:
    """Groups and their members, twins' grants to groups, scoped tokens, and signing-key rotation."""

    def __init__(self, transport: Transport) -> None:
        self._transport = transport

    def _list(self, model: Any, path: str) -> Any:
        return TypeAdapter(list[model]).validate_python(self._transport.request("GET", path).json())

    # -- groups
    def groups(self) -> list[GroupRead]:
        """Your groups (every group, for admins)."""
        result: list[GroupRead] = self._list(GroupRead, "/api/v1/groups")
        return result

    def group(self, name: str) -> GroupDetail:
        return self._transport.get(GroupDetail, f"/api/v1/groups/{segment(name)}")

    def create_group(self, name: str, *, description: str | None = None, publish: bool = False) -> GroupRead:
        """A new, empty group (admins); ``publish``: its members may publish the group's apps."""
        body: dict[str, Any] = {"name": name, **({"description": description} if description else {})}
        if publish:
            body["publish"] = True
        return self._transport.send(GroupRead, "POST", "/api/v1/groups", body)

    def update_group(self, name: str, *, description: str | None = None, publish: bool | None = None) -> GroupRead:
        """Change a group's description or its right to publish its apps (admins); None: unchanged."""
        body = {k: v for k, v in (("description", description), ("publish", publish)) if v is not None}
        return self._transport.send(GroupRead, "PATCH", f"/api/v1/groups/{segment(name)}", body)

    def delete_group(self, name: str, *, force: bool = False) -> GroupDeletedRead:
        """Delete a group (admins): refused (409) while it owns anything, unless ``force`` hands it all to you."""
        response = self._transport.request("DELETE", f"/api/v1/groups/{segment(name)}",
                                           params={"force": "true"} if force else None)
        return GroupDeletedRead.model_validate(response.json())

    def add_member(self, group: str, identity: str) -> MembershipRead:
        """Put ``identity`` in ``group`` (admins)."""
        return MembershipRead.model_validate(self._transport.request(
            "PUT", f"/api/v1/groups/{segment(group)}/members/{segment(identity)}").json())

    def remove_member(self, group: str, identity: str) -> None:
        """Take ``identity`` out of ``group`` (admins): its access through the group ends at once."""
        self._transport.request("DELETE", f"/api/v1/groups/{segment(group)}/members/{segment(identity)}")

    # -- twins' grants to groups
    def group_grants(self, twin: str) -> list[GroupGrantRead]:
        result: list[GroupGrantRead] = self._list(GroupGrantRead, f"/api/v1/twins/{segment(twin)}/group-grants")
        return result

    def grant_group(self, twin: str, group: str, permission: Literal["read", "operate"]) -> GroupGrantRead:
        """Let every member of ``group`` read or operate ``twin`` (its owner and admins may grant)."""
        return self._transport.send(GroupGrantRead, "PUT",
                                    f"/api/v1/twins/{segment(twin)}/group-grants/{segment(group)}",
                                    {"permission": permission})

    def revoke_group(self, twin: str, group: str) -> None:
        self._transport.request("DELETE", f"/api/v1/twins/{segment(twin)}/group-grants/{segment(group)}")

    # -- one's own tokens
    def scoped_token(self, scopes: Sequence[str], *, twins: Sequence[str] | None = None,
                     expires_in: str | None = None, note: str | None = None) -> ScopedTokenIssued:
        """A token for yourself limited to ``scopes``, ``twins`` and a lifetime; it never does more than you."""
        body: dict[str, Any] = {"scopes": list(scopes)}
        if twins is not None:
            body["twins"] = list(twins)
        if expires_in is not None:
            body["expires_in"] = expires_in
        if note is not None:
            body["note"] = note
        return self._transport.send(ScopedTokenIssued, "POST", "/api/v1/me/tokens", body)

    def my_tokens(self) -> list[OwnTokenRead]:
        result: list[OwnTokenRead] = self._list(OwnTokenRead, "/api/v1/me/tokens")
        return result

    def revoke_my_token(self, jti: str) -> OwnTokenRead:
        return OwnTokenRead.model_validate(self._transport.request("DELETE", f"/api/v1/me/tokens/{segment(jti)}")
                                           .json())

    # -- signing keys
    def signing_keys(self) -> list[SigningKeyRead]:
        """Every generation of the engine's signing keys (admins)."""
        result: list[SigningKeyRead] = self._list(SigningKeyRead, "/api/v1/signing-keys")
        return result

    def rotate_keys(self) -> list[SigningKeyRead]:
        """Promote the next signing key to current and make a new next (admins)."""
        return TypeAdapter(list[SigningKeyRead]).validate_python(
            self._transport.request("POST", "/api/v1/signing-keys/rotate").json())

    def jwks(self) -> dict[str, Any]:
        """The engine's published keys (current and next), as ``/.well-known/jwks.json`` serves them."""
        result: dict[str, Any] = self._transport.request("GET", "/.well-known/jwks.json").json()
        return result
