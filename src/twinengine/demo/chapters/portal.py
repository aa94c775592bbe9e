"""The portal chapter: the engine serves its web portal at ``/ui/``; the demo checks it answers with its
security policy and names the pages to open (the twin, its flood view, the map)."""

from __future__ import annotations

import httpx2 as httpx

from twinengine.demo.context import DemoContext

__all__ = ["portal"]


def portal(ctx: DemoContext) -> None:
    page = httpx.get(f"{ctx.url}/ui/", timeout=10)
    policy = page.headers.get("content-security-policy", "")
    if page.status_code != 200 or "script-src 'self'" not in policy:
        raise RuntimeError(f"the portal did not answer as it should: {page.status_code}, policy {policy!r}")
    twin = ctx.facts["twin_name"]
    pages = {"portal": f"{ctx.url}/ui/", "twin": f"{ctx.url}/ui/twins/{twin}",
             "flood view": f"{ctx.url}/ui/twins/{twin}/views/flood", "map": f"{ctx.url}/ui/map"}
    ctx.facts["portal"] = pages
    ctx.say(f"the portal answers at {pages['portal']} (served by the engine, no internet needed): the twin at "
            f"/ui/twins/{twin}, its flood view at /ui/twins/{twin}/views/flood, the map at /ui/map")
    ctx.summary.append(("portal", f"{pages['portal']} (sign in with a token; `twin demo --serve` keeps it up)"))
