"""ODRL policies as the engine enforces them: what an offer may say (refused naming where), and each constraint
at the phases it gates."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from twinengine.auth import odrl
from twinengine.dataspace.offers import build_policy
from twinengine.dataspace.protocol import NEGOTIATION_MOVES, TRANSFER_MOVES, NegotiationState, Role, TransferState

NOW = datetime(2026, 6, 1, tzinfo=UTC)


def ctx(phase: odrl.Phase, **fields: Any) -> odrl.Context:
    return odrl.Context(phase=phase, participant=fields.pop("participant", "did:web:b"), now=NOW, **fields)


def one(left: str, operator: str, right: Any) -> dict[str, Any]:
    return {"permission": [{"action": "use", "constraint": [{"leftOperand": left, "operator": operator,
                                                              "rightOperand": right}]}]}


@pytest.mark.parametrize(("policy", "where"), [
    (one("moonPhase", "eq", "full"), "permission[0].constraint[0].leftOperand"),
    (one("dateTime", "isAnyOf", "2026-01-01T00:00:00Z"), "permission[0].constraint[0].operator"),
    (one("elapsedTime", "lteq", "seven days"), "permission[0].constraint[0].rightOperand"),
    (one("count", "lteq", "-1"), "permission[0].constraint[0].rightOperand"),
    ({"permission": [{"action": "sell"}]}, "permission[0].action"),
    ({"permission": []}, "permission"),
    ({"permission": [{"action": "use", "duty": [{"action": "pay"}]}]}, "permission[0].duty"),
    ({"permission": [{"action": "use"}], "obligation": [{"action": "notify"}]}, "obligation[0].action"),
    ({"permission": [{"action": "use"}], "obligation": [{"action": "delete"}]}, "obligation[0].constraint"),
    ({"permission": [{"action": "use"}], "obligation": [{"action": "delete", "constraint": [
        {"leftOperand": "elapsedTime", "operator": "gteq", "rightOperand": "P1D"}]}]}, "obligation[0].constraint"),
    ({"permission": [{"action": "use"}], "obligation": [{"action": "delete", "constraint": [
        {"leftOperand": "elapsedTime", "operator": "lteq", "rightOperand": "soon"}]}]},
     "obligation[0].constraint[0].rightOperand"),
])
def test_what_the_engine_cannot_enforce_is_refused_naming_where(policy: dict[str, Any], where: str) -> None:
    with pytest.raises(odrl.PolicyError, match=rf"^{where.replace('[', '.').replace(']', '.')}"):
        odrl.check(policy)
    assert odrl.decide(policy, ctx(odrl.Phase.NEGOTIATION)) is not None  # and fails closed when met elsewhere


def test_a_delete_duty_says_by_when() -> None:
    after = build_policy(delete_after=30)
    odrl.check(after)
    assert odrl.delete_by(after, NOW) == NOW + timedelta(days=30)
    assert odrl.decide(after, ctx(odrl.Phase.COPY, agreed_at=NOW - timedelta(days=31))) is None  # a duty, no gate
    dated = {"permission": [{"action": "use"}], "obligation": [
        {"action": "delete", "constraint": [{"leftOperand": "dateTime", "operator": "lteq",
                                             "rightOperand": "2027-01-01T00:00:00Z"}]},
        {"action": "delete", "constraint": [{"leftOperand": "elapsedTime", "operator": "lt",
                                             "rightOperand": "P400D"}]}]}
    assert odrl.delete_by(dated, NOW) == min(NOW + timedelta(days=400), datetime(2027, 1, 1, tzinfo=UTC))
    assert odrl.delete_by(build_policy(attribution=True), NOW) is None


def test_each_constraint_gates_its_phases() -> None:
    until = build_policy(until=NOW - timedelta(days=1))
    assert odrl.decide(until, ctx(odrl.Phase.CATALOG)) is None  # the catalog does not judge time
    for phase in (odrl.Phase.NEGOTIATION, odrl.Phase.TRANSFER, odrl.Phase.ACCESS):
        assert "dateTime lteq" in (odrl.decide(until, ctx(phase)) or "")
    days = build_policy(days=7)
    assert odrl.decide(days, ctx(odrl.Phase.TRANSFER, agreed_at=NOW - timedelta(days=6))) is None
    assert odrl.decide(days, ctx(odrl.Phase.ACCESS, agreed_at=NOW - timedelta(days=8))) is not None
    count = build_policy(count=2)
    assert odrl.decide(count, ctx(odrl.Phase.TRANSFER, transfers=2)) is None
    assert odrl.decide(count, ctx(odrl.Phase.TRANSFER, transfers=3)) is not None
    assert odrl.decide(count, ctx(odrl.Phase.ACCESS, transfers=3)) is None  # not each access: transfers and uses
    assert odrl.decide(count, ctx(odrl.Phase.COPY, transfers=3, uses=2)) is None
    purpose = build_policy(purposes=["research", "flood-forecasting"])
    assert odrl.decide(purpose, ctx(odrl.Phase.NEGOTIATION, purpose="research")) is None
    assert odrl.decide(purpose, ctx(odrl.Phase.NEGOTIATION, purpose="marketing")) is not None
    assert odrl.decide(purpose, ctx(odrl.Phase.NEGOTIATION)) is not None  # no purpose declared
    who = build_policy(participants=["did:web:a"], organisations=["Uni"], groups=["hydro"], spatial=["EU"])
    allowed = dict(participant="did:web:a", organisation="Uni", groups=frozenset({"hydro", "x"}),
                   spatial=frozenset({"EU"}))
    assert odrl.decide(who, ctx(odrl.Phase.CATALOG, **allowed)) is None
    assert odrl.decide(who, ctx(odrl.Phase.CATALOG, **{**allowed, "participant": "did:web:b"})) is not None
    assert odrl.decide(who, ctx(odrl.Phase.CATALOG, **{**allowed, "organisation": "Other"})) is not None
    assert odrl.decide(who, ctx(odrl.Phase.CATALOG, **{**allowed, "groups": frozenset()})) is not None
    assert odrl.decide(who, ctx(odrl.Phase.NEGOTIATION, **{**allowed, "spatial": frozenset({"US"})})) is not None


def test_logical_constraints_and_prohibitions() -> None:
    either = {"permission": [{"action": "use", "constraint": [{"or": [
        {"leftOperand": "purpose", "operator": "eq", "rightOperand": "a"},
        {"leftOperand": "purpose", "operator": "eq", "rightOperand": "b"}]}]}]}
    assert odrl.decide(either, ctx(odrl.Phase.NEGOTIATION, purpose="b")) is None
    assert odrl.decide(either, ctx(odrl.Phase.NEGOTIATION, purpose="c")) is not None
    banned = {"permission": [{"action": "use"}], "prohibition": [{"action": "use", "constraint": [
        {"leftOperand": "recipient", "operator": "eq", "rightOperand": "did:web:bad"}]}]}
    assert odrl.decide(banned, ctx(odrl.Phase.CATALOG, participant="did:web:ok")) is None
    assert odrl.decide(banned, ctx(odrl.Phase.CATALOG, participant="did:web:bad")) is not None


def test_a_prohibition_holds_only_where_its_constraints_are_judged() -> None:
    """A prohibition of a purpose is judged when negotiating (where a purpose is declared): the catalog, which
    cannot judge it, shows the offer to everyone; before, it took the unjudged constraint for met and hid the offer
    from every catalog."""
    no_marketing = {"permission": [{"action": "use"}], "prohibition": [{"action": "use", "constraint": [
        {"leftOperand": "purpose", "operator": "eq", "rightOperand": "marketing"}]}]}
    assert odrl.decide(no_marketing, ctx(odrl.Phase.CATALOG)) is None
    assert odrl.decide(no_marketing, ctx(odrl.Phase.NEGOTIATION, purpose="research")) is None
    assert "prohibition" in (odrl.decide(no_marketing, ctx(odrl.Phase.NEGOTIATION, purpose="marketing")) or "")
    mixed = {"permission": [{"action": "use"}], "prohibition": [{"action": "use", "constraint": [{"and": [
        {"leftOperand": "recipient", "operator": "eq", "rightOperand": "did:web:bad"},
        {"leftOperand": "purpose", "operator": "eq", "rightOperand": "marketing"}]}]}]}
    assert odrl.decide(mixed, ctx(odrl.Phase.CATALOG, participant="did:web:bad")) is None  # purpose unknown there
    assert odrl.decide(mixed, ctx(odrl.Phase.NEGOTIATION, participant="did:web:bad", purpose="marketing"))
    either = {"permission": [{"action": "use"}], "prohibition": [{"action": "use", "constraint": [{"or": [
        {"leftOperand": "recipient", "operator": "eq", "rightOperand": "did:web:bad"},
        {"leftOperand": "purpose", "operator": "eq", "rightOperand": "marketing"}]}]}]}
    assert odrl.decide(either, ctx(odrl.Phase.CATALOG, participant="did:web:bad"))  # one member met: it holds
    assert odrl.decide(either, ctx(odrl.Phase.CATALOG, participant="did:web:ok")) is None


def test_an_agreement_keeps_the_offers_rules_byte_for_byte() -> None:
    offer = {"@id": "urn:uuid:o", "@type": "Offer", **build_policy(count=3, attribution=True)}
    agreement = {"@id": "urn:uuid:a", "@type": "Agreement", **{k: offer[k] for k in odrl.RULE_KEYS if k in offer},
                 "target": "urn:uuid:d", "assigner": "did:web:p", "assignee": "did:web:c"}
    assert odrl.rules_text(agreement) == odrl.rules_text(offer)
    assert odrl.obligations(agreement) == ["attribute"]
    tampered = {**agreement, "permission": [{"action": "use"}]}
    assert odrl.rules_text(tampered) != odrl.rules_text(offer)


def test_the_state_machines_allow_only_the_diagrams_moves() -> None:
    n, t = NegotiationState, TransferState
    assert NEGOTIATION_MOVES[("agree", Role.PROVIDER)][0] == {n.REQUESTED, n.ACCEPTED}
    assert NEGOTIATION_MOVES[("verify", Role.CONSUMER)] == ({n.AGREED}, n.VERIFIED)
    assert n.FINALIZED not in NEGOTIATION_MOVES[("terminate", Role.CONSUMER)][0]
    assert TRANSFER_MOVES[("start", Role.CONSUMER)][0] == {t.SUSPENDED}  # a consumer only resumes
    assert TRANSFER_MOVES[("complete", Role.PROVIDER)][0] == {t.STARTED}
    assert not any(t.COMPLETED in sources or t.TERMINATED in sources for sources, _ in TRANSFER_MOVES.values())


def test_the_consumers_copy_is_judged_by_its_dates_time_since_signing_and_uses() -> None:
    """On the consumer's engine a read of the landed copy judges ``dateTime`` and ``elapsedTime`` by its own
    clock and ``count`` by the copy's uses there; who the participant is, its purpose and the transfers made
    were judged before the data left."""
    copy = odrl.Phase.COPY
    assert odrl.decide(one("dateTime", "lteq", "2026-05-31T00:00:00Z"), ctx(copy)) is not None
    assert odrl.decide(one("dateTime", "lteq", "2026-06-02T00:00:00Z"), ctx(copy)) is None
    assert "elapsedTime" in (odrl.decide(one("elapsedTime", "lteq", "P7D"),
                                         ctx(copy, agreed_at=NOW - timedelta(days=8))) or "")
    assert odrl.decide(one("elapsedTime", "lteq", "P7D"), ctx(copy, agreed_at=NOW - timedelta(days=6))) is None
    for left, right in (("purpose", "flood-forecasting"), ("recipient", "did:web:other")):
        assert odrl.decide(one(left, "eq", right), ctx(copy, transfers=5)) is None
    three = one("count", "lteq", "3")
    assert odrl.decide(three, ctx(copy, transfers=5, uses=3)) is None  # the copy's uses count, not the transfers
    assert "count lteq" in (odrl.decide(three, ctx(copy, transfers=1, uses=4)) or "")
    prohibited = {"permission": [{"action": "use"}], "prohibition": [{"action": "use", "constraint": [
        {"leftOperand": "dateTime", "operator": "gt", "rightOperand": "2026-05-01T00:00:00Z"}]}]}
    assert "prohibition" in (odrl.decide(prohibited, ctx(copy)) or "")


def test_spatial_coordinates_permit_the_reads_within_the_area_only() -> None:
    import shapely

    area = one("spatialCoordinates", "isPartOf", "POLYGON((7 46, 8 46, 8 47, 7 47, 7 46))")
    odrl.check(area)
    inside, across = shapely.Point(7.5, 46.5), shapely.box(7.5, 46.5, 8.5, 46.8)
    assert odrl.decide(area, ctx(odrl.Phase.ACCESS, footprint=inside)) is None
    assert "spatialCoordinates isPartOf" in (odrl.decide(area, ctx(odrl.Phase.ACCESS, footprint=across)) or "")
    assert odrl.decide(area, ctx(odrl.Phase.ACCESS)) is not None  # a file read: no area, fails closed
    assert odrl.decide(area, ctx(odrl.Phase.COPY)) is not None
    assert odrl.decide(area, ctx(odrl.Phase.ACCESS, footprint=odrl.METADATA)) is None  # the description only
    assert odrl.decide(area, ctx(odrl.Phase.NEGOTIATION)) is None  # judged at each access, not before
    for wrong in ("POLYGON((7 46, 8 47))", "POINT(7 46)", "POLYGON((0 0, 1 1, 1 0, 0 1, 0 0))",
                  "POLYGON((7 95, 8 95, 8 96, 7 95))", 7):
        with pytest.raises(odrl.PolicyError, match="POLYGON"):
            odrl.check(one("spatialCoordinates", "isPartOf", wrong))
    with pytest.raises(odrl.PolicyError, match="operator"):
        odrl.check(one("spatialCoordinates", "eq", "POLYGON((7 46, 8 46, 8 47, 7 47, 7 46))"))
    with pytest.raises(odrl.PolicyError, match="only in a permission"):
        odrl.check({"permission": [{"action": "use"}], "prohibition": area["permission"]})
