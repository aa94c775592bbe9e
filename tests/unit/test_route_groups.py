"""The table of route groups (``api.route_groups.GROUPS``) says, without importing a group, which paths it may
serve: an engine that imports its groups lazily lets a request reach the router only once every group that
may serve its path is in. A route outside its group's declared paths would be matched against an app that
lacks it, and answered 404 (or by another route) while its group is still being imported."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.routing import iter_route_contexts

from twinengine.api.route_groups import GROUPS, ONE_SEGMENT, RouteGroup, group_routes


def _template_segments(path: str) -> list[str]:
    return [s for s in path.strip("/").split("/") if s]


def _covers(pattern: str, template: str) -> bool:
    """Whether every path the route ``template`` matches lies under ``pattern``: each segment of the pattern
    is the template's literal segment, or ``{}`` standing for a template parameter or literal; no parameter
    that spans segments (``{x:path}``) within the pattern's length."""
    wanted, got = _template_segments(pattern), _template_segments(template)
    if len(wanted) > len(got):
        return False
    for p, t in zip(wanted, got, strict=False):
        if t.startswith("{") and ":path" in t:
            return False
        if p != ONE_SEGMENT and (p != t or t.startswith("{")):
            return False
    return True


def _templates(index: int) -> list[str]:
    shared = APIRouter()
    shared.routes.extend(group_routes(index))
    return [getattr(context, "path", None) or context.original_route.path  # type: ignore[union-attr]
            for context in iter_route_contexts(shared.routes)]


def test_every_route_lies_under_a_path_its_group_declares() -> None:
    outside = [(group.name, template) for index, group in enumerate(GROUPS) for template in _templates(index)
               if not any(_covers(pattern, template) for pattern in group.paths)]
    assert not outside, f"routes outside their group's paths: {outside}"


def test_a_group_serves_the_paths_under_its_declared_ones() -> None:
    group = RouteGroup("twinengine.api.routes.streams", ("/api/v1/twins/{}/streams", "/api/v1/twins/{}/functions"))
    assert group.serves("/api/v1/twins/reach/streams/gauges/records")
    assert group.serves("/api/v1/twins/reach/streams/")  # a trailing slash, redirected by the router
    assert group.serves("/api/v1/twins//reach/functions")  # doubled slashes, as openEO clients send
    assert not group.serves("/api/v1/twins/reach/state")
    assert not group.serves("/api/v1/twins")
    assert not group.serves("/api/v1/twins/reach")


def test_listing_twins_needs_only_the_twins_group() -> None:
    """The first request a client sends after a start imports the one group that serves it."""
    assert [g.name for g in GROUPS if g.serves("/api/v1/twins")] == ["twins"]
