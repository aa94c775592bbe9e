"""Routes of the portal's institutional sign-in: the providers a person may choose, the redirect to one, its
callback (which opens the same session cookie as a pasted token does), the provider's logout, and the
provider's back-channel logout (``auth.backchannel``), by which it ends a person's access here.

A failed sign-in never answers with an error page of its own: the browser goes back to the sign-in page with
the reason in ``?error=``, which the page shows."""

from __future__ import annotations

import math
from typing import Annotated
from urllib.parse import parse_qs, urlencode

from fastapi import Path, Query, Request
from fastapi.responses import JSONResponse, RedirectResponse
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from twinengine.api.cookies import SESSION_COOKIE
from twinengine.api.deps import RuntimeDep
from twinengine.api.route_actions import public
from twinengine.api.routing import Router, api_router
from twinengine.auth import audit, backchannel, sessions, signin
from twinengine.auth.issuer import SignedToken
from twinengine.auth.oidc import OidcVerifier
from twinengine.errors import InvalidInput, TokenInvalid
from twinengine.runtime import Runtime
from twinengine.store.base import utcnow

__all__ = ["FLOW_COOKIE", "PROVIDER_COOKIE", "api", "browser"]

FLOW_COOKIE = "twin_oidc_flow"  # the sign-in under way (signed by the engine), on the callback's path only
PROVIDER_COOKIE = "twin_oidc"  # which provider the session came from, and its ID token: for its logout
SIGNIN_PAGE = "/ui/signin"

api = api_router()
browser = Router(include_in_schema=False)  # a Router: its routes declare their actions too
ProviderPath = Annotated[str, Path(pattern=r"^[\w-]+$", max_length=64)]


class SignInProvider(BaseModel):
    """A provider the portal offers a "Sign in with" button for."""

    id: str
    title: str
    login_url: str


def _signin_capable(runtime: Runtime) -> list[OidcVerifier]:
    return [v for v in runtime.verifiers if isinstance(v, OidcVerifier) and v.provider.client_id]


def _verifier(runtime: Runtime, provider: str) -> OidcVerifier:
    for verifier in _signin_capable(runtime):
        if verifier.provider_id == provider:
            return verifier
    raise InvalidInput(f"provider: no OpenID provider {provider!r} is configured for signing in")


def _back_to_signin(message: str, next_page: str | None = None) -> RedirectResponse:
    query = {"error": message, **({"next": next_page} if next_page else {})}
    response = RedirectResponse(f"{SIGNIN_PAGE}?{urlencode(query)}", status_code=303)
    response.delete_cookie(FLOW_COOKIE, path="/auth/oidc")
    return response


def _callback_uri(request: Request, provider: str) -> str:
    return str(request.base_url).rstrip("/") + f"/auth/oidc/{provider}/callback"


@api.get("/auth/providers", tags=["session"], name="providers",
         summary="The OpenID providers the portal offers \"Sign in with\" for (none: token sign-in only)")
@public
def list_providers(runtime: RuntimeDep) -> list[SignInProvider]:
    return [SignInProvider(id=v.provider.id, title=v.provider.title or v.provider.id,
                           login_url=f"/auth/oidc/{v.provider.id}/login") for v in _signin_capable(runtime)]


def _safe_next(next_page: str | None) -> str:
    """Only a portal page: never another site (an open redirect), nor the sign-in page itself."""
    if next_page and next_page.startswith("/ui/") and not next_page.startswith(("//", SIGNIN_PAGE)):
        return next_page
    return "/ui/"


@browser.get("/auth/oidc/{provider}/login")
@public
async def login(provider: ProviderPath, request: Request, runtime: RuntimeDep,
                next: Annotated[str | None, Query(max_length=2000)] = None) -> RedirectResponse:
    """Send the browser to the provider with a fresh state, nonce and PKCE challenge."""
    try:
        verifier = _verifier(runtime, provider)
        url, pending = await run_in_threadpool(signin.start, verifier, redirect_uri=_callback_uri(request, provider),
                                               next_page=_safe_next(next))
    except (InvalidInput, TokenInvalid) as exc:
        return _back_to_signin(exc.message, next)
    response = RedirectResponse(url, status_code=303)
    # Lax: the provider sends the browser back with a top-level GET from its own site
    response.set_cookie(FLOW_COOKIE, signin.pack(runtime.issuer, pending), max_age=signin.FLOW_TTL_S,
                        path="/auth/oidc", httponly=True, samesite="lax", secure=request.url.scheme == "https")
    return response


@browser.get("/auth/oidc/{provider}/callback")
@public
async def callback(provider: ProviderPath, request: Request, runtime: RuntimeDep,
                   code: Annotated[str | None, Query(max_length=4000)] = None,
                   state: Annotated[str | None, Query(max_length=400)] = None,
                   error: Annotated[str | None, Query(max_length=400)] = None,
                   error_description: Annotated[str | None, Query(max_length=2000)] = None) -> RedirectResponse:
    """Check the state, exchange the code (with the PKCE verifier), verify the ID token and its nonce, record the
    sign-in (identity, groups) and open the portal session; the flow cookie is spent either way."""
    if error:
        return _back_to_signin(f"the provider did not sign you in: {error_description or error}")
    if not code or not state:
        return _back_to_signin("the provider's answer has no code or state")

    def finish() -> tuple[SignedToken, str, str]:
        verifier = _verifier(runtime, provider)
        pending = signin.unpack(runtime.issuer, request.cookies.get(FLOW_COOKIE))
        if pending.provider != provider:
            raise TokenInvalid("this browser's sign-in was started with another provider")
        claims, id_token = signin.finish(verifier, pending, state=state, code=code,
                                         redirect_uri=_callback_uri(request, provider))
        verifier.vouched(claims)  # the provider signed the person in just now: a hold of its own on them is lifted
        sid = claims.get("sid")  # the provider's session: its back-channel logout names it
        made_from = backchannel.session_key(sid) if isinstance(sid, str) and 0 < len(sid) <= 200 else None
        with runtime.db.session(readonly=True) as session:  # the sign-in is recorded in transactions of its own
            principal = verifier.principal(claims, token_id=made_from, session=session)
        with runtime.db.session() as session:
            signed = sessions.open_session(session, runtime.issuer, principal=principal,
                                           ttl=runtime.settings.session_ttl)
            audit.record(session, actor=principal.name, role=principal.role.value, action="session-sign_in",
                         target=f"oidc:{provider}", outcome="ok", status=303,
                         detail={"groups": sorted(principal.groups)})
        return signed, id_token, pending.next

    try:
        signed, id_token, next_page = await run_in_threadpool(finish)
    except (InvalidInput, TokenInvalid) as exc:
        return _back_to_signin(exc.message)
    response = RedirectResponse(next_page, status_code=303)
    response.delete_cookie(FLOW_COOKIE, path="/auth/oidc")
    max_age = int(runtime.settings.session_ttl.total_seconds())
    if signed.expires_at is not None:
        max_age = max(1, min(max_age, math.ceil((signed.expires_at - utcnow()).total_seconds())))
    secure = request.url.scheme == "https"
    response.set_cookie(SESSION_COOKIE, signed.token, max_age=max_age, path="/", httponly=True, samesite="strict",
                        secure=secure)
    response.set_cookie(PROVIDER_COOKIE, signin.pack_logout(runtime.issuer, provider, id_token), max_age=max_age,
                        path="/auth/oidc", httponly=True, samesite="strict", secure=secure)
    return response


@browser.get("/auth/oidc/end-session")
@public
async def end_session(request: Request, runtime: RuntimeDep) -> RedirectResponse:
    """After the portal's own sign-out: end the session at the provider too when it offers that (OpenID
    RP-Initiated Logout), else back to the sign-in page. SameSite=Strict: another site cannot start it."""
    hint = signin.unpack_logout(runtime.issuer, request.cookies.get(PROVIDER_COOKIE))
    target = SIGNIN_PAGE
    if hint is not None:
        provider, id_token = hint
        try:
            verifier = _verifier(runtime, provider)
            endpoint = await run_in_threadpool(verifier.discovery.get, "end_session_endpoint")
        except (InvalidInput, TokenInvalid):
            endpoint = None
        if endpoint:
            query = {"id_token_hint": id_token, "client_id": verifier.provider.client_id or ""}
            target = f"{endpoint}{'&' if '?' in endpoint else '?'}{urlencode(query)}"
    response = RedirectResponse(target, status_code=303)
    response.delete_cookie(PROVIDER_COOKIE, path="/auth/oidc")
    return response


def _logout_refused(reason: str) -> JSONResponse:
    return JSONResponse({"error": "invalid_request", "error_description": reason}, status_code=400,
                        headers={"Cache-Control": "no-store"})


@browser.post("/auth/oidc/{provider}/backchannel-logout")
@public
async def backchannel_logout(provider: ProviderPath, request: Request, runtime: RuntimeDep) -> JSONResponse:
    """OpenID Connect Back-Channel Logout: the provider posts a ``logout_token`` (form-encoded) when a person's
    session there ends; the token, signed by the provider, is the only credential. 200 once what it names has
    ended (or when the engine knows nobody it names), 400 ``invalid_request`` for anything that is not a valid
    logout token of this provider for the engine's client."""
    if not request.headers.get("content-type", "").lower().startswith("application/x-www-form-urlencoded"):
        return _logout_refused("the body must be application/x-www-form-urlencoded")
    body = await request.body()  # bounded by the app's default body limit: no allowance for this route
    try:
        tokens = parse_qs(body.decode("ascii"), max_num_fields=8).get("logout_token", [])
    except (UnicodeDecodeError, ValueError):
        return _logout_refused("the body is not a form")
    if len(tokens) != 1:
        return _logout_refused("the body must carry one logout_token")
    seen = getattr(request.app.state, "logout_tokens", None)
    if seen is None:
        seen = request.app.state.logout_tokens = backchannel.LogoutTokens()

    def end() -> list[str]:
        verifier = _verifier(runtime, provider)
        claims = backchannel.validate(verifier, tokens[0], seen)
        if backchannel.received_before(runtime.db, provider, claims["jti"]):
            raise TokenInvalid("logout_token rejected: this jti was received before (a replay)")
        touched = backchannel.apply(runtime.db, verifier, claims)
        with runtime.db.session() as session:
            audit.record(session, actor=f"oidc:{provider}"[:64], action=backchannel.AUDIT_ACTION,
                         target=backchannel.audit_target(provider, claims["jti"]), outcome="ok", status=200,
                         detail={"identities": touched})
        return touched

    try:
        touched = await run_in_threadpool(end)
    except (InvalidInput, TokenInvalid) as exc:
        return _logout_refused(exc.message)
    for name in touched:
        runtime.verdicts.forget_identity(name)
    return JSONResponse({}, status_code=200, headers={"Cache-Control": "no-store"})
