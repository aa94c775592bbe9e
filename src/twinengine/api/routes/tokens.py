"""HTTP routes of one's own tokens (scoped tokens: create, list, revoke), token exchange (RFC 8693) and the
signing keys (the JWKS, and rotation for admins)."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import Depends, Path, Request
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from twinengine.api.deps import PRINCIPAL_SCOPE_KEY, PrincipalDep, RuntimeDep, SessionDep, authorized
from twinengine.api.route_actions import acts, public
from twinengine.api.routing import api_router
from twinengine.auth.issuer import verify_bearer
from twinengine.auth.keyring import Generation, public_jwk
from twinengine.auth.token_schemas import (
    OwnTokenRead,
    ScopedTokenCreate,
    ScopedTokenIssued,
    SigningKeyRead,
    TokenExchange,
    TokenExchanged,
)
from twinengine.delegation import exchange, scoped_tokens
from twinengine.errors import Conflict, InvalidInput, Problem, ValidationFailed, join_loc
from twinengine.runtime import Runtime
from twinengine.timeutil import parse_duration

__all__ = ["routers"]

mine = api_router("/me/tokens", tag="tokens")
keys = api_router("/signing-keys", tag="signing-keys")
well_known = api_router("/.well-known", tag="signing-keys", versioned=False)
oauth = api_router("/oauth", tag="oauth")
routers = (mine, keys, well_known, oauth)


@mine.post("", name="create_scoped", status_code=201,
           summary="Make a scoped token for oneself: some scopes, some twins, a lifetime; never more than its creator")
@acts("token.own")
def create_scoped(body: ScopedTokenCreate, session: SessionDep, runtime: RuntimeDep,
                  principal: PrincipalDep) -> ScopedTokenIssued:
    ttl = runtime.settings.token_ttl
    if body.expires_in is not None:
        try:
            ttl = parse_duration(body.expires_in)  # type: ignore[assignment]
        except ValueError as exc:
            raise ValidationFailed.one("expires_in", str(exc)) from None
    signed = scoped_tokens.issue_scoped_token(session, runtime.issuer, principal=principal, scopes=body.scopes,
                                              twins=body.twins, ttl=ttl, note=body.note)
    record = scoped_tokens.list_own_tokens(session, principal=principal)
    row = next(r for r in record if r.jti == signed.jti)
    return ScopedTokenIssued(token=signed.token, jti=signed.jti, name=signed.name, role=signed.role,
                             scopes=row.scopes or [], twins=row.twins, expires_at=signed.expires_at)


@mine.get("", name="list_own", summary="The caller's own tokens (scoped or not), without their secrets")
@acts("token.own")
def list_own(session: SessionDep, principal: PrincipalDep) -> list[OwnTokenRead]:
    return [OwnTokenRead.model_validate(t) for t in scoped_tokens.list_own_tokens(session, principal=principal)]


@mine.delete("/{jti}", name="revoke_own", summary="Revoke one of the caller's own tokens: it stops at once")
@acts("token.own")
def revoke_own(jti: Annotated[str, Path(max_length=64)], session: SessionDep, principal: PrincipalDep,
               runtime: RuntimeDep) -> OwnTokenRead:
    row = OwnTokenRead.model_validate(scoped_tokens.revoke_own_token(session, principal=principal, jti=jti))
    session.commit()
    runtime.verdicts.forget(jti)
    return row


def _read(generation: Generation) -> SigningKeyRead:
    jwk = {**public_jwk(generation.public), "kid": generation.kid, "use": "sig", "alg": "ES256"}
    return SigningKeyRead(kid=generation.kid, generation=generation.generation, state=generation.state,
                          created_at=generation.created_at, promoted_at=generation.promoted_at, jwk=jwk)


def _keyring(runtime: Runtime) -> Any:
    if runtime.issuer.keyring is None:
        raise Conflict("this engine's store has no signing keys yet")
    return runtime.issuer.keyring


@keys.get("", name="list", summary="Every generation of the engine's signing keys (admins)",
          dependencies=[Depends(authorized("token.keys.rotate"))])
@acts("token.keys.rotate")
def list_keys(runtime: RuntimeDep) -> list[SigningKeyRead]:
    generations = _keyring(runtime).generations(fresh=True).values()
    return [_read(g) for g in sorted(generations, key=lambda g: g.generation)]


@keys.post("/rotate", name="rotate", summary="Rotate the signing keys (admins): next becomes current, a new next",
           dependencies=[Depends(authorized("token.keys.rotate"))])
@acts("token.keys.rotate")
def rotate_keys(session: SessionDep, runtime: RuntimeDep, principal: PrincipalDep) -> list[SigningKeyRead]:
    keyring = _keyring(runtime)
    keyring.rotate(session)
    session.commit()
    generations = keyring.generations(fresh=True).values()
    return [_read(g) for g in sorted(generations, key=lambda g: g.generation)]


@well_known.get("/jwks.json", name="jwks", summary="The engine's public signing keys: current and next")
@public
def jwks(runtime: RuntimeDep) -> dict[str, list[dict[str, Any]]]:
    keyring = runtime.issuer.keyring
    if keyring is None:
        return {"keys": []}
    return {"keys": [_read(g).jwk for g in keyring.published()]}


_EXCHANGE_BODY = {"required": True, "content": {
    "application/x-www-form-urlencoded": {"schema": TokenExchange.model_json_schema()},
    "application/json": {"schema": TokenExchange.model_json_schema()}}}


@oauth.post("/token", name="exchange", summary="Token exchange (RFC 8693): a short-lived token for one site",
            responses={401: {"description": "The subject token is not valid"}},
            openapi_extra={"requestBody": _EXCHANGE_BODY})
@public
async def token_exchange(request: Request, runtime: RuntimeDep) -> TokenExchanged:
    """Form-encoded (``application/x-www-form-urlencoded``) or JSON: ``grant_type`` (token exchange),
    ``subject_token`` and ``subject_token_type`` (an access token or JWT of this engine or a configured OIDC
    provider), ``audience`` (``lake:<endpoint>`` or ``compute:<site>``), ``scope`` (space-separated, e.g.
    ``lake:read``), optional ``resource`` (twin names, repeated or space-separated) and ``expires_in`` (e.g.
    ``10m``; at most 1 h, default 15 min)."""
    fields, ttl = await _exchange_fields(request)

    def issue() -> TokenExchanged:
        # Verified before the write, in a read of its own: a person's first sign-in is recorded in transactions
        # of its own (auth.external), never inside this one (store.guard).
        with runtime.db.session(readonly=True) as session:
            principal = verify_bearer(fields.subject_token, session=session, verifiers=runtime.verifiers)
        request.scope[PRINCIPAL_SCOPE_KEY] = principal  # the audit records who exchanged
        with runtime.db.session() as session:
            signed = exchange.exchange(session, runtime.issuer, principal=principal, audience=fields.audience,
                                       scopes=fields.scope.split(), twins=fields.resource or None,
                                       ttl=ttl)
        lifetime = signed.expires_at - signed.issued_at if signed.expires_at else exchange.MAX_LIFETIME
        return TokenExchanged(access_token=signed.token, issued_token_type=exchange.ACCESS_TOKEN,
                              token_type="Bearer", expires_in=int(lifetime.total_seconds()), scope=fields.scope)

    return await run_in_threadpool(issue)


async def _exchange_fields(request: Request) -> tuple[TokenExchange, timedelta | None]:
    raw = await request.body()
    if request.headers.get("content-type", "").startswith("application/json"):
        try:
            data: dict[str, Any] = json.loads(raw or b"{}")
        except ValueError:
            raise InvalidInput("the body is not JSON") from None
    else:
        pairs = parse_qs(raw.decode("utf-8", "replace"), keep_blank_values=True)
        data = {k: (v if k == "resource" else v[-1]) for k, v in pairs.items()}
    if isinstance(data.get("resource"), str):
        data["resource"] = data["resource"].split()
    elif isinstance(data.get("resource"), list):
        data["resource"] = [r for item in data["resource"] for r in str(item).split()]
    try:
        fields = TokenExchange.model_validate(data)
    except ValidationError as exc:
        raise ValidationFailed([Problem(join_loc(e["loc"]), e["msg"]) for e in exc.errors()]) from None
    if fields.grant_type != exchange.GRANT_TYPE:
        raise ValidationFailed.one("grant_type", f"only {exchange.GRANT_TYPE} is served here")
    if fields.subject_token_type not in exchange.SUBJECT_TOKEN_TYPES:
        raise ValidationFailed.one("subject_token_type", "an access token or a JWT: "
                                                         + ", ".join(sorted(exchange.SUBJECT_TOKEN_TYPES)))
    try:
        ttl = parse_duration(fields.expires_in) if fields.expires_in is not None else None
    except ValueError as exc:
        raise ValidationFailed.one("expires_in", str(exc)) from None
    return fields, ttl
