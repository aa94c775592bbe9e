"""Claims to identities, groups and roles: names made from provider and subject, AARC-G002 entitlements
matched by aarc-entitlement (the VO and its subgroups, roles exactly), nothing granted by what no rule names."""

from __future__ import annotations

import re

import pytest
from pydantic import ValidationError

from twinengine.auth.claims import identity_name, person_from_claims
from twinengine.auth.principal import Role
from twinengine.config import OidcProvider
from twinengine.errors import TokenInvalid

VO = "urn:mace:egi.eu:group:vo.example.org"
EGI = OidcProvider(id="egi", issuer="https://aai.egi.eu/auth/realms/egi", groups_claim="groups",
                   entitlements_claim="eduperson_entitlement",
                   group_rules=[{"entitlement": f"{VO}:*", "group": "example-vo"},
                                {"entitlement": f"{VO}:hydro", "group": "example-vo:hydro"},
                                {"claim_value": "/staff", "group": "staff"}],
                   role_rules=[{"entitlement": f"{VO}:role=manager", "role": "developer"},
                               {"claim_value": "/admins", "role": "admin"}])
NAME = re.compile(r"^[a-z][a-z0-9._-]{0,63}$")  # what grants and tokens accept as an identity name


def person(**claims: object):  # type: ignore[no-untyped-def]
    return person_from_claims(EGI, {"sub": "alice", **claims})


def test_names_are_readable_and_keep_distinct_subjects_apart() -> None:
    assert identity_name("egi", "alice", issuer="i") == "egi.alice"
    upper, lower = identity_name("egi", "Alice", issuer="i"), identity_name("egi", "alice", issuer="i")
    assert upper != lower and upper.startswith("egi.alice-")
    long = identity_name("egi", "a" * 64 + "@egi.eu", issuer="i")
    assert len(long) <= 64 and NAME.match(long)
    assert identity_name("egi", "x@y", issuer="i") != identity_name("egi", "x@y", issuer="j")  # issuer counts
    assert NAME.match(identity_name("2_IdP", "ü", issuer="i"))


def test_entitlements_map_to_groups_and_roles() -> None:
    member = person(eduperson_entitlement=[f"{VO}:role=member#aai.egi.eu"], name="Alice", email="a@x.org")
    assert member.groups == {"example-vo"} and member.role is Role.USER
    assert (member.display_name, member.email, member.issuer) == ("Alice", "a@x.org", EGI.issuer)
    sub = person(eduperson_entitlement=[f"{VO}:hydro:role=member#aai.egi.eu"])
    assert sub.groups == {"example-vo", "example-vo:hydro"}  # a subgroup is in its VO
    manager = person(eduperson_entitlement=[f"{VO}:role=manager#aai.egi.eu"])
    assert manager.role is Role.DEVELOPER
    assert person(eduperson_entitlement=f"{VO}:hydro:role=manager#aai.egi.eu").role is Role.USER  # not the VO's


def test_another_vo_or_a_malformed_entitlement_grants_nothing() -> None:
    other = person(eduperson_entitlement=["urn:mace:egi.eu:group:vo.other.org:role=manager#aai.egi.eu",
                                          "not an entitlement", 42])
    assert other.groups == frozenset() and other.role is Role.USER


def test_group_claims_map_by_exact_value_and_the_highest_role_wins() -> None:
    staff = person(groups=["/staff", "/admins"], eduperson_entitlement=[f"{VO}:role=manager"])
    assert staff.groups == {"staff", "example-vo"} and staff.role is Role.ADMIN
    assert person(groups=["/staff/x"]).groups == frozenset()


def test_a_missing_subject_is_refused_naming_the_claim() -> None:
    with pytest.raises(TokenInvalid, match="claim 'sub'"):
        person_from_claims(EGI, {"name": "no subject"})


def test_rules_are_checked_in_the_settings() -> None:
    with pytest.raises(ValidationError, match="AARC-G002"):
        OidcProvider(id="x", issuer="i", group_rules=[{"entitlement": "urn:nope", "group": "g"}])
    with pytest.raises(ValidationError, match="exactly one"):
        OidcProvider(id="x", issuer="i", role_rules=[{"role": "admin"}])
