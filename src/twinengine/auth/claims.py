"""What an OpenID provider's claims say about a person: who (issuer + subject, a display name, an e-mail) and
which engine groups and role follow from the groups and AARC-G002 entitlements it asserts, by the provider's
rules. Entitlements are parsed and compared by ``aarc-entitlement``; nothing unmatched grants anything."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from aarc_entitlement import G002
from aarc_entitlement import Error as EntitlementError

from twinengine.auth.principal import Role
from twinengine.config import OidcProvider
from twinengine.errors import TokenInvalid

__all__ = ["ExternalPerson", "identity_name", "person_from_claims"]

# roles from least to most powerful: the highest matching rule wins
_RANK = {Role.USER: 0, Role.DEVELOPER: 1, Role.PROVIDER: 2, Role.ADMIN: 3}
_UNSAFE = re.compile(r"[^a-z0-9._-]+")


@dataclass(frozen=True)
class ExternalPerson:
    """A person as one provider asserts them; ``issuer`` and ``subject`` are the key of their identity."""

    provider: str
    issuer: str
    subject: str
    display_name: str | None
    email: str | None
    groups: frozenset[str]
    role: Role


def identity_name(provider_id: str, subject: str, *, issuer: str, digest: bool = False) -> str:
    """A readable, stable name for a new external identity: ``<provider>.<subject>`` when the subject is already a
    lower-case name, else (or with ``digest``) a slug of it with a digest of issuer and subject, so distinct
    subjects stay distinct. The name is made once; the identity is found by issuer and subject."""
    prefix = _UNSAFE.sub("-", provider_id.lower())
    prefix = prefix if prefix[:1].isalpha() else f"p{prefix}"
    slug = _UNSAFE.sub("-", subject.lower()).strip("-._") or "x"
    name = f"{prefix}.{slug}"
    if slug == subject and len(name) <= 64 and not digest:
        return name
    mark = hashlib.sha256(f"{issuer}\x00{subject}".encode()).hexdigest()[:10]
    return f"{prefix}.{slug[: max(1, 64 - len(prefix) - 12)]}-{mark}"


def _strings(value: Any) -> list[str]:
    """A claim as a list of strings: providers send a list, one string, or (some) a space-separated string."""
    if value is None:
        return []
    if isinstance(value, str):
        return value.split()
    if isinstance(value, list | tuple):
        return [v for v in value if isinstance(v, str)]
    return []


def _entitlements(values: Iterable[str]) -> list[G002]:
    """The values that are AARC-G002 entitlements; others (another scheme, malformed) grant nothing."""
    parsed = []
    for value in values:
        try:
            parsed.append(G002(value))
        except EntitlementError:
            continue
    return parsed


def _matches(rule_entitlement: str | None, claim_value: str | None, held: list[G002], groups: set[str]) -> bool:
    if claim_value is not None:
        return claim_value in groups
    if rule_entitlement is None:
        return False
    required = G002(rule_entitlement.removesuffix(":*"))
    return any(e.satisfies(required) for e in held)


def person_from_claims(provider: OidcProvider, claims: dict[str, Any]) -> ExternalPerson:
    """The person ``claims`` (verified, of ``provider``) describe, with groups and role mapped by its rules."""
    subject = claims.get(provider.name_claim)
    if not isinstance(subject, str) or not subject or len(subject) > 255:
        raise TokenInvalid(f"claim {provider.name_claim!r} must hold the subject (1 to 255 characters)",
                           details=[{"loc": provider.name_claim, "msg": "missing or not a subject"}])
    asserted = set(_strings(claims.get(provider.groups_claim))) if provider.groups_claim else set()
    held = _entitlements(_strings(claims.get(provider.entitlements_claim))) if provider.entitlements_claim else []
    groups = frozenset(r.group for r in provider.group_rules if _matches(r.entitlement, r.claim_value, held,
                                                                         asserted))
    role = Role(provider.role)
    for rule in provider.role_rules:
        if _matches(rule.entitlement, rule.claim_value, held, asserted) and _RANK[Role(rule.role)] > _RANK[role]:
            role = Role(rule.role)
    name = claims.get("name") or claims.get("preferred_username")
    email = claims.get("email")
    return ExternalPerson(provider=provider.id, issuer=provider.issuer, subject=subject,
                          display_name=str(name)[:200] if name else None,
                          email=str(email)[:320] if email else None, groups=groups, role=role)
