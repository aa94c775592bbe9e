"""``Client.login()``: the sign-in ``twin login`` keeps for an engine (``twinengine.credentials``), or a new one
through the device flow, checked with the engine before it is kept."""

from __future__ import annotations

from collections.abc import Callable

from twinengine import credentials
from twinengine.transport import Transport

__all__ = ["login"]


def _print(verification_uri: str, user_code: str, complete: str | None) -> None:
    print(f"To sign in, open {verification_uri} and enter the code {user_code}"
          + (f" (or open {complete})" if complete else ""), flush=True)


def login(url: str, *, provider: str | None = None, show: Callable[[str, str, str | None], None] | None = None,
          browser: bool = False, profile: str = credentials.DEFAULT_PROFILE) -> Callable[[], str | None]:
    """What gives the bearer token of ``url``'s sign-in in ``profile`` each time it is asked (renewed when due):
    the kept one when it is through ``provider`` (any, when None), else a new one, kept once the engine
    accepted it."""
    engine = url.rstrip("/")
    kept = credentials.load(engine, profile)
    if kept is None or (provider is not None and kept.provider != provider):
        saved = credentials.sign_in(engine, provider, show=show or _print, browser=browser, profile=profile)
        probe = Transport(engine, saved.bearer())
        try:
            probe.request("GET", "/api/v1/me")  # the engine accepts it, and records the sign-in, before it is kept
        finally:
            probe.close()
        credentials.save(saved)

    def bearer() -> str | None:
        return credentials.bearer(engine, profile)

    return bearer
