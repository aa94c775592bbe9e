"""The built-in issuer remembers verified signatures (they cannot change) but re-checks expiry every time;
revocation is looked up on every request (tested over HTTP in tests/integration)."""

from __future__ import annotations

from datetime import timedelta

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

import twinengine.auth.issuer as issuer_module
from twinengine.auth.issuer import BuiltinIssuer
from twinengine.auth.principal import Role
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
