"""deploy/normalise-image.py: two docker-archives of the same layers, whose configurations differ only in the
build container's id and hostname (what buildah 1.28 writes into every Docker-format image), become the same
archive and the same image id; what the image says (its health check, user, entry point) is kept."""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import tarfile
from pathlib import Path
from typing import Any

SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "normalise-image.py"
spec = importlib.util.spec_from_file_location("normalise_image", SCRIPT)
assert spec is not None and spec.loader is not None
normalise_image = importlib.util.module_from_spec(spec)
spec.loader.exec_module(normalise_image)

LAYER = b"layer bytes" * 100


def built(path: Path, container: str, hostname: str) -> Path:
    """A docker-archive as buildah writes one: the layer, the configuration, the manifest and the legacy
    per-layer folder with ``repositories``, each naming the build's own ids."""
    config: dict[str, Any] = {
        "architecture": "amd64", "os": "linux", "created": "2026-11-01T00:00:00Z", "container": container,
        "config": {"Hostname": hostname, "User": "10001", "Entrypoint": ["/usr/bin/tini", "--", "twin-env"],
                   "Healthcheck": {"Test": ["CMD", "/opt/twinengine/bin/python", "-c", "..."],
                                   "Interval": 30_000_000_000}},
        "container_config": {"Hostname": hostname, "Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(LAYER).hexdigest()]}}
    raw = json.dumps(config).encode()
    name = hashlib.sha256(raw).hexdigest()
    legacy = hashlib.sha256(container.encode()).hexdigest()
    files = {f"{name}.json": raw, "abc.tar": LAYER, f"{legacy}/json": raw, f"{legacy}/VERSION": b"1.0",
             "repositories": json.dumps({"localhost/twinengine": {"0.1": legacy}}).encode(),
             "manifest.json": json.dumps([{"Config": f"{name}.json", "RepoTags": ["localhost/twinengine:0.1"],
                                           "Layers": ["abc.tar"]}]).encode()}
    with tarfile.open(path, "w") as archive:
        for entry, body in files.items():
            info = tarfile.TarInfo(entry)
            info.size, info.mtime = len(body), 1_800_000_000
            archive.addfile(info, io.BytesIO(body))
    return path


def test_two_builds_become_the_same_image(tmp_path: Path) -> None:
    first = built(tmp_path / "a.tar", "9dc4" * 16, "489210afcf89")
    second = built(tmp_path / "b.tar", "e6f5" * 16, "8e7375a3a711")
    assert first.read_bytes() != second.read_bytes()
    ids = [normalise_image.normalise(first, tmp_path / "a-out.tar"), normalise_image.normalise(second,
                                                                                                tmp_path / "b-out.tar")]
    assert ids[0] == ids[1]
    assert (tmp_path / "a-out.tar").read_bytes() == (tmp_path / "b-out.tar").read_bytes()
    with tarfile.open(tmp_path / "a-out.tar") as archive:
        assert archive.getnames() == sorted(["abc.tar", f"{ids[0]}.json", "manifest.json"])
        config_bytes = archive.extractfile(f"{ids[0]}.json").read()  # type: ignore[union-attr]
        assert hashlib.sha256(config_bytes).hexdigest() == ids[0]  # the id is the configuration's digest
        assert archive.extractfile("abc.tar").read() == LAYER  # type: ignore[union-attr]
        manifest = json.loads(archive.extractfile("manifest.json").read())  # type: ignore[union-attr]
    config = json.loads(config_bytes)
    assert "container" not in config and config["config"]["Hostname"] == config["container_config"]["Hostname"] == ""
    assert config["config"]["Healthcheck"]["Test"][0] == "CMD" and config["config"]["User"] == "10001"
    assert manifest == [{"Config": f"{ids[0]}.json", "RepoTags": ["localhost/twinengine:0.1"], "Layers": ["abc.tar"]}]


def test_the_build_script_normalises_what_it_built() -> None:
    script = (SCRIPT.parent / "build-image.sh").read_text()
    assert "normalise-image.py" in script and "docker-archive:" in script
