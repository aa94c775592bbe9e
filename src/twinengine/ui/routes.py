"""Serving the portal: one HTML shell for every page under ``/ui/`` (the modules route in the browser) and
the static files beside it, all from the package (no network), under a Content-Security-Policy that allows
scripts and styles from this origin only: no inline script, no inline event handler, no inline style."""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.types import Scope

from twinengine._version import __version__

__all__ = ["CONTENT_SECURITY_POLICY", "STATIC_DIR", "install_ui"]

STATIC_DIR = Path(__file__).parent / "static"
CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'none'", "script-src 'self'", "style-src 'self'", "img-src 'self' data: blob:", "font-src 'self'",
    "connect-src 'self'", "form-action 'self'", "base-uri 'none'", "frame-ancestors 'none'"])
SECURITY_HEADERS = {"Content-Security-Policy": CONTENT_SECURITY_POLICY, "X-Content-Type-Options": "nosniff",
                    "Referrer-Policy": "same-origin", "X-Frame-Options": "DENY", "Cache-Control": "no-cache"}


@cache
def _shell() -> str:
    """index.html with the assets' version: a digest of the static files, so a new engine is never served
    stale modules (they are revalidated anyway: ``no-cache`` with ETags)."""
    digest = hashlib.sha256(__version__.encode())
    for path in sorted(STATIC_DIR.rglob("*")):
        if path.is_file():
            digest.update(path.relative_to(STATIC_DIR).as_posix().encode())
            digest.update(path.read_bytes())
    return (STATIC_DIR / "index.html").read_text(encoding="utf-8").replace("{{v}}", digest.hexdigest()[:12])


class _Static(StaticFiles):
    """Static files with the portal's security headers."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers.update({k: v for k, v in SECURITY_HEADERS.items() if k != "Content-Security-Policy"})
        return response


def install_ui(app: FastAPI) -> None:
    """Mount the portal's files at ``/ui/static`` and its pages at ``/ui/...``; ``/`` leads there."""
    app.mount("/ui/static", _Static(directory=STATIC_DIR), name="ui-static")

    async def root() -> RedirectResponse:
        return RedirectResponse("/ui/", status_code=302)

    async def page(request: Request) -> Response:
        if request.path_params.get("path", "").startswith("static/"):
            return Response("not found", status_code=404, media_type="text/plain")
        return HTMLResponse(_shell(), headers=SECURITY_HEADERS)

    app.add_api_route("/", root, methods=["GET"], include_in_schema=False)
    app.add_api_route("/ui", root, methods=["GET"], include_in_schema=False)
    app.add_api_route("/ui/{path:path}", page, methods=["GET"], include_in_schema=False)
