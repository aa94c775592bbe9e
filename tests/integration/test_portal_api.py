"""What the portal relies on in the API: sign-in to an httpOnly session cookie, CSRF on writes with it,
identities, workflow definitions, the EDR field drawn as a PNG, and the pages served under a strict CSP."""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from access_data import write_collections
from helpers import RIVER_REACH, Engine, make_app
from twinengine.api.cookies import SESSION_COOKIE
from twinengine.ui.routes import STATIC_DIR


@pytest.fixture
def twin(engine: Engine, tmp_path: Path) -> str:
    engine.as_role("ada", "developer").publish_app(make_app(tmp_path))
    engine.as_role("uma", "user").create_twin("test-app@1.0.0", "t1", {"station": "S1"})
    return "t1"


def sign_in(engine: Engine, name: str, role: str) -> str:
    response = engine.http.post("/api/v1/session", json={"token": engine.token(name, role)})
    assert response.status_code == 201, response.text
    return str(response.json()["csrf_token"])


def test_sign_in_sets_an_httponly_strict_cookie_with_a_new_session_token(engine: Engine) -> None:
    token = engine.token("uma", "user")
    response = engine.http.post("/api/v1/session", json={"token": token})
    assert response.status_code == 201
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=") and "HttpOnly" in cookie and "samesite=strict" in cookie.lower()
    assert "Path=/" in cookie and "Max-Age=43200" in cookie
    assert token not in cookie  # the user's own token is not what the browser keeps
    body = response.json()
    assert (body["name"], body["role"]) == ("uma", "user") and len(body["csrf_token"]) == 64
    notes = [t.note for t in engine.sdk(engine.admin_token).list_tokens("uma") if t.revoked_at is None]
    assert notes.count("portal session") == 1


def test_a_bad_token_signs_nobody_in(engine: Engine) -> None:
    response = engine.http.post("/api/v1/session", json={"token": "not-a-token"})
    assert response.status_code == 401 and "set-cookie" not in response.headers
    assert engine.http.post("/api/v1/session", json={}).status_code == 422
    # a form on another site cannot sign someone in as the attacker (login CSRF): only JSON bodies are read
    forged = engine.http.post("/api/v1/session", content=f'{{"token": "{engine.token("eve", "user")}"}}'.encode(),
                              headers={"Content-Type": "text/plain"})
    assert forged.status_code == 422 and "set-cookie" not in forged.headers


def test_the_cookie_reads_but_writes_need_the_csrf_token(engine: Engine, twin: str) -> None:
    csrf = sign_in(engine, "uma", "user")
    assert engine.http.get("/api/v1/twins").json()["total"] == 1  # no Authorization header: the cookie
    assert engine.http.get("/api/v1/session").json()["csrf_token"] == csrf
    write = {"reported": {"level": {"value": 1.5}}}
    refused = engine.http.patch(f"/api/v1/twins/{twin}/state", json=write)
    assert refused.status_code == 403 and refused.json()["code"] == "CsrfRejected"
    wrong = engine.http.patch(f"/api/v1/twins/{twin}/state", json=write, headers={"X-CSRF-Token": "0" * 64})
    assert wrong.status_code == 403
    assert engine.http.get(f"/api/v1/twins/{twin}/state").json()["reported"] == {}  # nothing was written
    ok = engine.http.patch(f"/api/v1/twins/{twin}/state", json=write, headers={"X-CSRF-Token": csrf})
    assert ok.status_code == 200 and ok.json()["revision"] == 1
    # a bearer token needs no CSRF token, even beside the cookie
    bearer = engine.headers(engine.token("uma", "user"))
    assert engine.http.patch(f"/api/v1/twins/{twin}/state", json=write, headers=bearer).status_code == 200
    # the stream and SSE routes take the cookie too
    assert engine.http.get(f"/api/v1/twins/{twin}/state/events", params={"after": 0, "count": 1}).status_code == 200
    denied = engine.sdk(engine.admin_token).audit(actor="uma", outcome="denied").items
    assert any(e.status == 403 and e.action == "twins-state_write" for e in denied)


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data"])
def test_a_cross_site_form_post_without_the_csrf_token_fails(engine: Engine, twin: str, content_type: str) -> None:
    """What a form on another site can send: the cookie (were it not SameSite=Strict) and a body shaped like
    JSON, but no custom header."""
    sign_in(engine, "uma", "user")
    body = b'{"name": "stolen", "x": "="}' if content_type == "text/plain" else b"name=stolen"
    response = engine.http.post(f"/api/v1/twins/{twin}/fork", content=body, headers={"Content-Type": content_type})
    assert response.status_code == 403 and response.json()["code"] == "CsrfRejected"
    assert engine.http.post("/api/v1/tokens", content=b"name=x&role=admin",
                            headers={"Content-Type": "application/x-www-form-urlencoded"}).status_code == 403
    names = [t.name for t in engine.sdk(engine.admin_token).list_twins().items]
    assert names == [twin]


def test_sign_out_revokes_the_session(engine: Engine, twin: str) -> None:
    csrf = sign_in(engine, "uma", "user")
    session_token = engine.http.cookies[SESSION_COOKIE]
    assert engine.http.delete("/api/v1/session").status_code == 403  # signing out is a write too
    out = engine.http.delete("/api/v1/session", headers={"X-CSRF-Token": csrf})
    assert out.status_code == 204 and f'{SESSION_COOKIE}=""' in out.headers["set-cookie"]
    engine.http.cookies.clear()
    engine.http.cookies.set(SESSION_COOKIE, session_token)
    assert engine.http.get("/api/v1/twins").status_code == 401
    engine.http.cookies.clear()
    with_bearer = engine.http.get("/api/v1/session", headers=engine.headers(engine.token("uma", "user")))
    assert with_bearer.json()["csrf_token"] is None


def test_identities_are_listed_for_admins(engine: Engine) -> None:
    engine.token("uma", "user")
    engine.token("pat", "provider")
    rows = {i["name"]: i for i in engine.http.get("/api/v1/identities",
                                                  headers=engine.headers(engine.admin_token)).json()}
    assert rows["uma"]["roles"] == ["user"] and rows["uma"]["valid_tokens"] == 1
    assert rows["pat"]["roles"] == ["provider"] and rows["admin"]["roles"] == ["admin"]
    refused = engine.http.get("/api/v1/identities", headers=engine.headers(engine.token("uma", "user")))
    assert refused.status_code == 403
    assert {i.name for i in engine.sdk(engine.admin_token).identities()} == set(rows)  # the SDK reads the same


def test_an_app_versions_workflows_with_their_parameters(engine: Engine) -> None:
    engine.as_role("ada", "developer").publish_app(RIVER_REACH)
    headers = engine.headers(engine.token("uma", "user"))
    found = engine.http.get("/api/v1/apps/river-reach/versions/0.1.0/workflows", headers=headers).json()
    assert [w["name"] for w in found] == ["forecast"]
    assert [p["name"] for p in found[0]["parameters"]] == ["collection", "bbox", "storage_mm", "alert_level",
                                                          "interval_m", "rain_factor", "horizon_hours"]
    assert found[0]["process_graph"]["state"]["process_id"] == "update_twin_state"
    missing = engine.http.get("/api/v1/apps/river-reach/versions/9.9.9/workflows", headers=headers)
    assert missing.status_code == 404
    assert engine.as_role("uma", "user").app_workflows("river-reach")[0].parameters == found[0]["parameters"]


def test_the_edr_cube_drawn_as_a_png(engine: Engine) -> None:
    cubes = write_collections(engine.runtime.settings.collections_dir or engine.runtime.data_dir / "collections")
    rain = cubes["rain"]["rain"]
    headers = engine.headers(engine.token("uma", "user"))
    when = "2026-03-01T05:00:00Z"
    response = engine.http.get("/edr/collections/rain/cube", headers=headers, params={
        "bbox": "-180,-90,180,90", "parameter-name": "rain", "datetime": when, "f": "png"})
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    image = np.asarray(Image.open(io.BytesIO(response.content)))
    assert image.shape == (rain.sizes["lat"], rain.sizes["lon"], 4)
    assert [float(v) for v in response.headers["X-Bounds"].split(",")] == [4.875, 39.875, 15.125, 49.125]
    assert response.headers["X-Datetime"] == when and response.headers["X-Units"] == "mm h-1"
    values = rain.isel(time=5).values  # lat runs north to south in this cube, as image rows do
    lo, hi = (float(v) for v in response.headers["X-Scale"].split(","))
    assert (lo, hi) == (0.0, 20.0) and response.headers["X-Scale-Source"] == "default"  # rain's, not this image's
    assert float(response.headers["X-Floor"]) == 0.1
    assert image[3, 4, 3] == 0  # the missing value is transparent
    assert (image[..., 3][np.isfinite(values) & (values < 0.1)] == 0).all()  # below the floor: drawn as none
    assert (image[..., 3][values >= 0.1] == 255).all()
    peak = np.unravel_index(np.nanargmax(values), values.shape)
    lo, hi = float(np.nanmin(values)), float(np.nanmax(values))
    asked = engine.http.get("/edr/collections/rain/cube", headers=headers, params={
        "bbox": "-180,-90,180,90", "parameter-name": "rain", "datetime": when, "f": "png", "scale": f"{lo},{hi}"})
    assert asked.headers["X-Scale-Source"] == "request"
    assert tuple(np.asarray(Image.open(io.BytesIO(asked.content)))[peak][:3]) == (253, 231, 37)  # the last colour
    drawn, found = engine.sdk(engine.token("uma", "user")).edr.png("rain", "-180,-90,180,90", parameter_name="rain",
                                                                    datetime=when)
    assert drawn == response.content and found["x-bounds"] == response.headers["X-Bounds"]
    fixed = engine.http.get("/edr/collections/rain/cube", headers=headers, params={
        "bbox": "5,40,15,49", "parameter-name": "rain", "datetime": when, "f": "png", "scale": f"0,{hi * 2}"})
    assert np.asarray(Image.open(io.BytesIO(fixed.content)))[peak][:3].tolist() != [253, 231, 37]

    def error(**params: str) -> tuple[int, str]:
        r = engine.http.get("/edr/collections/rain/cube", headers=headers,
                            params={"bbox": "5,40,15,49", "f": "png", **params})
        return r.status_code, r.text

    status, text = error(**{"parameter-name": "rain", "datetime": "2026-03-01T00:00:00Z/2026-03-01T05:00:00Z"})
    assert status == 400 and "datetime" in text
    assert error(**{"parameter-name": "rain,temp", "datetime": when})[0] == 400
    status, text = error(**{"parameter-name": "rain", "datetime": when, "scale": "3,1"})
    assert status == 400 and "scale" in text
    assert engine.http.get("/edr/collections/rain", headers=headers).json()["data_queries"]["cube"]["link"][
        "variables"]["output_formats"][-1] == "PNG"


def test_pages_are_served_under_a_policy_without_inline_script(engine: Engine) -> None:
    for path in ("/ui/", "/ui/twins/anything/views/flood", "/ui/signin"):
        page = engine.http.get(path)
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        policy = page.headers["content-security-policy"]
        assert "script-src 'self'" in policy and "unsafe-inline" not in policy and "unsafe-eval" not in policy
        assert page.headers["x-content-type-options"] == "nosniff" and page.headers["x-frame-options"] == "DENY"
        assert all('src="/ui/static/' in tag for tag in re.findall(r"<script[^>]*>", page.text))
        assert not re.search(r"\son[a-z]+\s*=", page.text) and "style=" not in page.text
    assert engine.http.get("/", follow_redirects=False).headers["location"] == "/ui/"
    module = engine.http.get("/ui/static/js/main.js")
    assert module.status_code == 200 and "javascript" in module.headers["content-type"]
    assert module.headers["x-content-type-options"] == "nosniff"
    assert engine.http.get("/ui/static/js/nothing.js").status_code == 404
    assert engine.http.get("/ui/static/../../config.py").status_code == 404


def test_no_module_turns_strings_into_html() -> None:
    """App-provided text is escaped by construction: pages are built with DOM nodes and text, never parsed."""
    for path in (STATIC_DIR / "js").rglob("*.js"):
        source = path.read_text()
        for forbidden in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
            assert forbidden not in source, f"{path.name} uses {forbidden}"
