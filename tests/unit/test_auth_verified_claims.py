"""The built-in issuer remembers verified signatures (they cannot change) but re-checks expiry every time;
a verdict (signature, expiry and store lookup together) is trusted for ``settings.token_recheck`` at most,
never past the token's expiry (revocation over HTTP is tested in tests/integration)."""

from __future__ import annotations

from datetime import timedelta

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

import twinengine.auth.issuer as issuer_module
import twinengine.auth.verdicts as verdicts_module
from twinengine.auth.issuer import BuiltinIssuer, split_bearer
from twinengine.auth.principal import Principal, Role
from twinengine.auth.verdicts import VerdictCache
from twinengine.errors import TokenInvalid


def test_verified_claims_are_remembered_and_expiry_is_checked_on_every_use(monkeypatch: pytest.MonkeyPatch) -> None:
    issuer = BuiltinIssuer(ec.generate_private_key(ec.SECP256R1()), "twinengine")
    signed = issuer.sign("ann", Role.USER, timedelta(minutes=5))
    claims = issuer._claims(signed.token)
    assert issuer._claims(signed.token) is claims  # the signature was not verified again
    monkeypatch.setattr(issuer_module.time, "time", lambda: float(claims["exp"]) + 1)
    with pytest.raises(TokenInvalid, match="expired"):
        issuer._claims(signed.token)


def test_a_forged_token_is_never_remembered() -> None:
    issuer = BuiltinIssuer(ec.generate_private_key(ec.SECP256R1()), "twinengine")
    forged = jwt.encode({"iss": "twinengine", "sub": "ann", "jti": "x", "iat": 0},
                        ec.generate_private_key(ec.SECP256R1()), algorithm="ES256")
    for _ in range(2):
        with pytest.raises(TokenInvalid, match="rejected"):
            issuer._claims(forged)
    assert len(issuer._verified) == 0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


def test_verdicts_last_the_recheck_interval_and_never_past_expiry(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    monkeypatch.setattr(verdicts_module.time, "monotonic", clock.monotonic)
    issuer = BuiltinIssuer(ec.generate_private_key(ec.SECP256R1()), "twinengine")
    lasting = issuer.sign("ann", Role.USER, timedelta(days=1))
    ann = Principal("ann", Role.USER, token_id=lasting.jti)
    cache = VerdictCache(2.0)
    cache.put("basic//" + lasting.token, ann)  # as openEO clients send it
    clock.now += 1.9
    assert cache.get("basic//" + lasting.token) is ann
    clock.now += 0.2
    assert cache.get("basic//" + lasting.token) is None  # looked up again
    short = issuer.sign("bob", Role.USER, timedelta(seconds=1))
    cache.put(short.token, Principal("bob", Role.USER, token_id=short.jti))
    clock.now += 1.5
    assert cache.get(short.token) is None  # expired before the interval ended


def test_forgetting_a_token_id_and_a_zero_interval() -> None:
    issuer = BuiltinIssuer(ec.generate_private_key(ec.SECP256R1()), "twinengine")
    tokens = [issuer.sign(name, Role.USER, None) for name in ("ann", "bob")]
    cache = VerdictCache(60.0, capacity=2)
    for t in tokens:
        cache.put(t.token, Principal(t.name, Role.USER, token_id=t.jti))
    cache.forget(tokens[0].jti)
    assert cache.get(tokens[0].token) is None and cache.get(tokens[1].token) is not None
    never = VerdictCache(0.0)
    never.put(tokens[1].token, Principal("bob", Role.USER))
    assert never.get(tokens[1].token) is None


def test_openeo_prefixes_are_split_off_in_one_place() -> None:
    assert split_bearer("basic//a.b.c") == (None, "a.b.c")
    assert split_bearer("oidc/egi/a.b.c") == ("egi", "a.b.c")
    assert split_bearer("oidc/broken") == ("", "")
    assert split_bearer("a.b.c") == (None, "a.b.c")
