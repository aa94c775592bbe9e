"""The portal's session cookie as a second credential beside ``Authorization: Bearer``.

A request with a bearer header uses it; otherwise the ``twin_session`` cookie (httpOnly, SameSite=Strict)
is the credential, and a write that comes with it must also carry the session's CSRF token in
``X-CSRF-Token`` (a form on another site can neither read it nor set the header).
"""

from __future__ import annotations

import hmac

from fastapi.security import HTTPAuthorizationCredentials
from starlette.requests import HTTPConnection

from twinengine.auth.principal import Principal
from twinengine.auth.sessions import csrf_token
from twinengine.errors import CsrfRejected
from twinengine.runtime import Runtime

__all__ = ["CREDENTIAL_SCOPE_KEY", "CSRF_HEADER", "SAFE_METHODS", "SESSION_COOKIE", "check_csrf", "request_token"]

SESSION_COOKIE = "twin_session"
CSRF_HEADER = "X-CSRF-Token"
CREDENTIAL_SCOPE_KEY = "twinengine.credential"  # "bearer" or "cookie": where the request's token came from
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def request_token(conn: HTTPConnection, credentials: HTTPAuthorizationCredentials | None) -> str | None:
    """The bearer token if one came along, else the session cookie's; records which in the scope."""
    if credentials is not None:
        conn.scope[CREDENTIAL_SCOPE_KEY] = "bearer"
        return credentials.credentials
    cookie = conn.cookies.get(SESSION_COOKIE)
    if cookie:
        conn.scope[CREDENTIAL_SCOPE_KEY] = "cookie"
        return cookie
    return None


def check_csrf(conn: HTTPConnection, runtime: Runtime, principal: Principal) -> None:
    """Writes authenticated by the cookie need the session's CSRF token; bearer requests and reads do not."""
    method = conn.scope.get("method", "GET")
    if conn.scope.get(CREDENTIAL_SCOPE_KEY) != "cookie" or method in SAFE_METHODS:
        return
    sent = conn.headers.get(CSRF_HEADER, "")
    expected = csrf_token(runtime.issuer, principal.token_id) if principal.token_id else ""
    if not sent or not expected or not hmac.compare_digest(sent, expected):
        raise CsrfRejected(f"a {method} with the session cookie needs the session's {CSRF_HEADER} header")
