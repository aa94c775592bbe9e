"""The catalogue over HTTP: immutable checksummed versions, validation with paths, safe archives."""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

import pytest

from helpers import RIVER_REACH, Engine, laughs, make_app
from twinengine.catalog.archive import pack
from twinengine.errors import AppNotFound, AppVersionConflict, DataCorrupted, PermissionDenied, ValidationFailed

GZIP = {"Content-Type": "application/gzip"}


def test_publish_is_immutable_and_identical_content_is_a_no_op(engine: Engine, tmp_path: Path) -> None:
    dev = engine.as_role("ada", "developer")
    first = dev.publish_app(RIVER_REACH)
    assert first.created and first.app.name == "river-reach" and first.app.version == "0.1.0"
    assert first.app.archive_sha256 == hashlib.sha256(pack(RIVER_REACH)).hexdigest()
    again = dev.publish_app(RIVER_REACH)
    assert not again.created and again.app.archive_sha256 == first.app.archive_sha256

    changed = tmp_path / "river-reach"
    changed.mkdir()
    for path in RIVER_REACH.rglob("*"):
        if path.is_file() and "__pycache__" not in path.parts:
            target = changed / path.relative_to(RIVER_REACH)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(path.read_bytes())
    (changed / "river_reach" / "catchment.py").write_text("# changed\n", encoding="utf-8")
    with pytest.raises(AppVersionConflict, match="already published with different content"):
        dev.publish_app(changed)
    assert dev.get_app("river-reach").versions[0].archive_sha256 == first.app.archive_sha256


def test_identical_files_packed_by_another_tool_are_still_identical(engine: Engine) -> None:
    dev = engine.as_role("ada", "developer")
    dev.publish_app(RIVER_REACH)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:  # other mtimes, owners, order
        for path in sorted(RIVER_REACH.rglob("*"), reverse=True):
            if path.is_file() and "__pycache__" not in path.parts:
                tar.add(path, arcname=str(path.relative_to(RIVER_REACH)))
    assert not dev.publish_app(buffer.getvalue()).created


def test_only_developers_publish(engine: Engine) -> None:
    with pytest.raises(PermissionDenied):
        engine.as_role("uma", "user").publish_app(RIVER_REACH)


def test_invalid_apps_are_refused_with_paths(engine: Engine, tmp_path: Path) -> None:
    folder = make_app(tmp_path, manifest={"version": "one",
                                          "state": {"x": {"type": "number", "unit": "parsecs/fortnight-ish"}}})
    with pytest.raises(ValidationFailed) as caught:
        engine.as_role("ada", "developer").publish_app(folder)
    assert {p.loc for p in caught.value.problems} == {"version", "state.x.unit"}
    assert engine.sdk(engine.admin_token).list_apps().total == 0  # nothing half-written


@pytest.mark.parametrize(("body", "status", "needle"), [
    (b"", 400, "archive"),
    (b"\x1f\x8b garbage", 400, "archive"),
    (b"plain text", 400, "archive"),
])
def test_bad_archives_are_4xx(engine: Engine, body: bytes, status: int, needle: str) -> None:
    r = engine.http.post("/api/v1/apps", content=body, headers={**engine.headers(engine.token("d", "developer")),
                                                                 **GZIP})
    assert r.status_code == status and needle in r.json()["message"]


def test_path_traversal_in_an_archive_is_refused(engine: Engine) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        data = (RIVER_REACH / "twinapp.yaml").read_bytes()
        for name in ("twinapp.yaml", "../../escape.txt"):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    r = engine.http.post("/api/v1/apps", content=buffer.getvalue(),
                         headers={**engine.headers(engine.token("d", "developer")), **GZIP})
    assert r.status_code == 400 and "escape.txt" in r.json()["message"]
    assert not (engine.runtime.data_dir.parent / "escape.txt").exists()


def test_archive_size_limit(engine: Engine) -> None:
    limit = engine.runtime.settings.max_app_archive_bytes
    r = engine.http.post("/api/v1/apps", content=b"\0" * (limit + 1),
                         headers={**engine.headers(engine.token("d", "developer")), **GZIP})
    assert r.status_code == 413


def test_list_search_show_and_versions_in_semver_order(engine: Engine, tmp_path: Path) -> None:
    dev = engine.as_role("ada", "developer")
    for version in ("0.9.0", "0.10.0", "0.11.0-rc.1"):
        dev.publish_app(make_app(tmp_path, name="flood-risk", version=version,
                                 manifest={"keywords": ["inundation"], "domain": "hydrology"}))
    dev.publish_app(make_app(tmp_path, name="glacier-melt", manifest={"title": "Alpine glacier melt",
                                                                      "domain": "cryosphere"}))
    user = engine.as_role("uma", "user")
    assert [a.name for a in user.list_apps().items] == ["flood-risk", "glacier-melt"]
    flood = user.list_apps().items[0]
    assert flood.latest_version == "0.11.0-rc.1" and flood.versions == ["0.11.0-rc.1", "0.10.0", "0.9.0"]
    assert user.get_app_version("flood-risk").version == "0.10.0"  # latest release, not the pre-release
    assert [a.name for a in user.search_apps("INUNDATION").items] == ["flood-risk"]
    assert [a.name for a in user.search_apps("alpine melt").items] == ["glacier-melt"]
    assert user.search_apps("100%_match").total == 0
    assert user.list_apps(domain="cryosphere").total == 1
    with pytest.raises(AppNotFound):
        user.get_app_version("flood-risk", "1.0.0")
    with pytest.raises(AppNotFound):
        user.get_app("nope")


def test_pull_returns_the_checksummed_archive(engine: Engine, tmp_path: Path) -> None:
    published = engine.as_role("ada", "developer").publish_app(RIVER_REACH)
    user = engine.as_role("uma", "user")
    data = user.pull_app("river-reach@0.1.0", tmp_path / "pulled")
    assert hashlib.sha256(data).hexdigest() == published.app.archive_sha256
    assert (tmp_path / "pulled" / "river_reach" / "simulator.py").read_bytes() == \
        (RIVER_REACH / "river_reach" / "simulator.py").read_bytes()
    r = engine.http.get("/api/v1/apps/river-reach/versions/0.1.0/archive", headers=engine.headers(engine.admin_token))
    assert r.headers["ETag"] == f'"{published.app.archive_sha256}"'


def test_bit_rot_in_the_blob_store_is_detected(engine: Engine) -> None:
    published = engine.as_role("ada", "developer").publish_app(RIVER_REACH)
    blob = engine.runtime.blobs.path(published.app.archive_sha256)
    blob.write_bytes(blob.read_bytes()[:-1] + b"!")
    with pytest.raises(DataCorrupted, match="no longer matches"):
        engine.as_role("uma", "user").pull_app("river-reach@0.1.0")


def test_manifest_schema_endpoint(engine: Engine) -> None:
    schema = engine.as_role("uma", "user").manifest_schema()
    assert schema["title"] == "Manifest" and "state" in schema["properties"]


def test_a_billion_laughs_manifest_is_refused_and_nothing_is_stored(engine: Engine, tmp_path: Path) -> None:
    folder = make_app(tmp_path)
    manifest = folder / "twinapp.yaml"
    manifest.write_text(manifest.read_text() + laughs(9))
    r = engine.http.post("/api/v1/apps", content=pack(folder),
                         headers={**engine.headers(engine.token("d", "developer")), **GZIP})
    assert r.status_code == 422, r.text
    assert "line" in r.json()["message"] and "max_manifest_bytes" in r.json()["message"]
    assert engine.sdk(engine.admin_token).list_apps().total == 0
