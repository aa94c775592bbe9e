"""``auth.liveness``: the provider is asked (token introspection) on a token's first use and then at most every
``recheck_s`` seconds; ``active: false`` is kept for good; a provider that cannot answer is not taken as a no."""

from __future__ import annotations

from typing import Any

import httpx2 as httpx
import pytest

from twinengine.auth import liveness
from twinengine.auth.liveness import Liveness, refreshed, suspended
from twinengine.config import OidcProvider

ENDPOINT = "https://idp.example.org/introspect"


def _provider(**extra: Any) -> OidcProvider:
    return OidcProvider(id="idp", issuer="https://idp.example.org", client_id="engine", client_secret="s", **extra)


class Provider:
    """The provider's introspection endpoint: answers per token, and the questions it was asked."""

    def __init__(self, answers: dict[str, httpx.Response]) -> None:
        self.answers = answers
        self.asked: list[str] = []

    def post(self, url: str, *, data: dict[str, str], auth: tuple[str, str], timeout: float) -> httpx.Response:
        assert url == ENDPOINT and auth == ("engine", "s") and data["token_type_hint"] == "access_token"
        self.asked.append(data["token"])
        answer = self.answers[data["token"]]
        answer.request = httpx.Request("POST", url)
        return answer


@pytest.fixture
def idp(monkeypatch: pytest.MonkeyPatch) -> Provider:
    fake = Provider({"live": httpx.Response(200, json={"active": True, "sub": "a"}),
                     "dead": httpx.Response(200, json={"active": False}),
                     "jwt": httpx.Response(400, json={"error": "unsupported_token_type"}),
                     "down": httpx.Response(503, text="maintenance")})
    monkeypatch.setattr(liveness.httpx, "post", fake.post)
    return fake


def test_answers_are_kept_for_recheck_s_and_a_refusal_for_good(idp: Provider) -> None:
    kept = Liveness(_provider(recheck_s=3600), ENDPOINT)
    assert kept.active("live") and kept.active("live")
    assert not kept.active("dead") and not kept.active("dead")
    assert idp.asked == ["live", "dead"]
    every = Liveness(_provider(recheck_s=0), ENDPOINT)
    assert every.active("live") and every.active("live")
    assert idp.asked[2:] == ["live", "live"]


def test_a_provider_that_cannot_answer_is_not_a_refusal(idp: Provider) -> None:
    check = Liveness(_provider(recheck_s=0), ENDPOINT)
    assert check.active("down") and check.active("down")
    assert idp.asked == ["down", "down"]  # unreachable now: asked again next time
    assert check.active("jwt") and check.enabled is False  # cannot introspect its tokens: not asked again
    assert check.active("dead") and idp.asked == ["down", "down", "jwt"]


def test_nothing_is_asked_without_a_confidential_client_or_when_switched_off(idp: Provider) -> None:
    public = OidcProvider(id="idp", issuer="https://idp.example.org", client_id="cli")
    assert Liveness(public, ENDPOINT).active("dead")
    assert Liveness(_provider(recheck_s=None), ENDPOINT).active("dead")
    assert idp.asked == []


def test_the_suspended_flag_in_claims() -> None:
    flagged = _provider(disabled_claim="account_disabled")
    assert suspended(flagged, {"account_disabled": True}) and suspended(flagged, {"account_disabled": "TRUE"})
    assert not suspended(flagged, {"account_disabled": False}) and not suspended(flagged, {})
    assert not suspended(_provider(), {"account_disabled": True})


def test_the_providers_answer_replaces_the_groups_a_token_was_issued_with() -> None:
    p = _provider(groups_claim="groups", entitlements_claim="eduperson_entitlement")
    token = {"sub": "carol", "groups": ["hydrology"], "eduperson_entitlement": ["urn:x"], "name": "Carol"}
    now = refreshed(p, token, {"active": True, "sub": "carol", "groups": []})
    assert now == {"sub": "carol", "groups": [], "eduperson_entitlement": None, "name": "Carol"}
    assert refreshed(p, token, {"active": True, "sub": "carol"}) is token  # it tells nothing of groups
    assert refreshed(p, token, None) is token
    assert refreshed(_provider(), token, {"groups": []}) is token  # no claim mapped: nothing to refresh


def test_an_answer_is_kept_with_what_it_said(idp: Provider) -> None:
    check = Liveness(_provider(recheck_s=3600), ENDPOINT)
    first, again = check.check("live"), check.check("live")
    assert first.fresh and first.said == {"active": True, "sub": "a"}
    assert not again.fresh and again.said == first.said and idp.asked == ["live"]
    assert check.check("dead").said is None


def test_a_fresh_answer_is_asked_for_a_person_on_hold_but_a_refusal_stays(idp: Provider) -> None:
    """A token of a person the engine holds is asked about again (the provider vouching now lifts the hold);
    a token the provider refused is not asked again, so using it again cannot put anyone on hold again."""
    check = Liveness(_provider(recheck_s=3600), ENDPOINT)
    assert check.check("live").fresh and not check.check("live").fresh
    assert check.check("live", fresh=True).fresh and idp.asked == ["live", "live"]
    assert check.check("dead").fresh and not check.check("dead", fresh=True).fresh
    assert idp.asked == ["live", "live", "dead"]
