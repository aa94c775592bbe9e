"""How long what the engine makes from a provider's sign-in lives, and how soon the provider's word reaches it.

An engine on SQLite trusts a real OpenID provider on loopback (panva's oidc-provider, as the tests start it:
Node.js and ``npm ci --prefix tests/oidc_provider``; its access tokens live 300 s and it answers introspection
about them as Keycloak does). From one provider access token it makes a scoped token asked for 365 days, a token
exchanged for a lake site asked for 1 h and a portal session (12 h by default), and prints each one's remaining
life beside the provider token's (the baseline: a ratio of 1.0 or less is "ends with it"). Then, with
``recheck_s`` and ``token_recheck`` as given, it times from the provider's change to the engine's refusal, polling
every 50 ms: a person signing out (the refresh token revoked) and using the old access token, and a person the
provider removes, whose portal session made earlier is refused once their token was seen again.

Usage: python bench/derived_credentials.py [--recheck-s 2] [--token-recheck 2]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def _until(check: Callable[[], bool], limit: float = 120.0) -> float:
    began = time.perf_counter()
    while time.perf_counter() - began < limit:
        if check():
            return time.perf_counter() - began
        time.sleep(0.05)
    return float("inf")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recheck-s", type=int, default=2, help="the provider's recheck_s (default 2; engine: 60)")
    parser.add_argument("--token-recheck", type=float, default=2.0, help="token_recheck in seconds (default 2)")
    args = parser.parse_args()

    import jwt
    from fastapi.testclient import TestClient

    from helpers import stop_process
    from oidc_fixtures import CLI_CLIENT, PEOPLE, start_provider
    from twinengine.api import create_app
    from twinengine.config import Settings
    from twinengine.delegation.exchange import ACCESS_TOKEN, GRANT_TYPE
    from twinengine.lake.models import Endpoint
    from twinengine.runtime import Runtime

    people = {**PEOPLE, "dan": dict(PEOPLE["alice"], name="Dan"), "gil": dict(PEOPLE["alice"], name="Gil")}
    with tempfile.TemporaryDirectory() as tmp:
        provider = start_provider(Path(tmp) / "provider", people=people, introspect_jwt=True)
        settings = Settings(data_dir=Path(tmp) / "data", warm_routes=False,
                            token_recheck=timedelta(seconds=args.token_recheck),
                            oidc_providers=[provider.settings("loop", recheck_s=args.recheck_s)])
        runtime = Runtime.from_settings(settings)
        try:
            with TestClient(create_app(runtime=runtime)) as http:
                with runtime.db.session() as session:
                    session.add(Endpoint(name="site-x", protocol="file", location=str(Path(tmp) / "x"),
                                         created_by="admin"))

                def call(bearer: str, method: str = "GET", path: str = "/api/v1/me", **kw: Any) -> Any:
                    return http.request(method, path, headers={"Authorization": f"Bearer {bearer}"}, **kw)

                tokens = provider.device_tokens("alice")
                bearer = f"oidc/loop/{tokens['access_token']}"
                ends = jwt.decode(tokens["access_token"], options={"verify_signature": False})["exp"]
                now = time.time()
                base = ends - now
                scoped = call(bearer, "POST", "/api/v1/me/tokens", json={"scopes": ["twins:read"],
                                                                         "expires_in": "365d"}).json()
                exchanged = http.post("/api/v1/oauth/token", data={
                    "grant_type": GRANT_TYPE, "subject_token": bearer, "subject_token_type": ACCESS_TOKEN,
                    "audience": "lake:site-x", "scope": "lake:read", "expires_in": "1h"}).json()
                session = http.post("/api/v1/session", json={"token": bearer}).json()
                lives = {
                    "scoped token (asked 365d)": datetime.fromisoformat(scoped["expires_at"]).timestamp() - now,
                    "exchanged token (asked 1h)": float(exchanged["expires_in"]),
                    "portal session (session_ttl 12h)": datetime.fromisoformat(
                        session["expires_at"]).timestamp() - now}
                print(f"provider access token: {base:.0f} s left (baseline)")
                for what, left in lives.items():
                    print(f"  {what:34s} {left:>10.0f} s left  x{left / base:.3f} of the baseline")

                dan = provider.device_tokens("dan")
                old = f"oidc/loop/{dan['access_token']}"
                assert call(old).status_code == 200
                made = call(old, "POST", "/api/v1/me/tokens", json={"scopes": ["twins:read"],
                                                                    "expires_in": "1d"}).json()["token"]
                import httpx2 as httpx

                httpx.post(f"{provider.issuer}/token/revocation", data={
                    "token": dan["refresh_token"], "client_id": CLI_CLIENT, "token_type_hint": "refresh_token"})
                refused = _until(lambda: call(old).status_code == 401)
                derived = _until(lambda: call(made).status_code == 401)
                began = time.perf_counter()
                again = call(f"oidc/loop/{provider.device_tokens('dan')['access_token']}").status_code
                signed_in = time.perf_counter() - began
                print(f"sign-out (recheck_s {args.recheck_s}, token_recheck {args.token_recheck:g}): old token "
                      f"refused after {refused:.2f} s, the token made from it after {refused + derived:.2f} s; "
                      f"signing in again: {again} in {signed_in:.2f} s (device flow included)")

                gil = f"oidc/loop/{provider.device_tokens('gil')['access_token']}"
                opened = http.post("/api/v1/session", json={"token": gil})
                if opened.status_code != 201:
                    print(f"removal at the provider: no portal session to watch ({opened.status_code} {opened.text})")
                    return
                portal = opened.cookies["twin_session"]
                provider.forget("gil")
                seen = _until(lambda: call(gil).status_code == 401)
                ended = _until(lambda: http.get("/api/v1/me", cookies={"twin_session": portal}).status_code == 401)
                print(f"removal at the provider: his token refused after {seen:.2f} s, the portal session made "
                      f"from it after {seen + ended:.2f} s")
        finally:
            runtime.close()
            stop_process(provider.process, timeout=10)


if __name__ == "__main__":
    main()
