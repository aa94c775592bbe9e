"""Rewrite a docker-archive image without what differs from one build of the same sources to the next.

buildah (1.28, Debian 12) writes the build container's id (``container``) and its random hostname
(``config.Hostname``, ``container_config.Hostname``) into a Docker-format image's configuration, and only that
format keeps ``HEALTHCHECK``: two builds with the same layers then have different configurations, so different
image ids and digests. This drops the id and empties the hostnames, writes the configuration as canonical JSON
under its new SHA-256, and writes the manifest, the configuration and the layers (nothing else: the legacy
per-layer folders repeat the old ids) in a fixed order with fixed times, so the same layers give the same image
id, the same digest and the same archive.

    python3 deploy/normalise-image.py BUILT.tar IMAGE.tar    # prints the image id (the configuration's SHA-256)
"""

from __future__ import annotations

import hashlib
import io
import json
import sys
import tarfile
from pathlib import Path
from typing import Any

__all__ = ["normalise", "normalised_config"]


def normalised_config(config: dict[str, Any]) -> bytes:
    """The configuration without the build container's id and hostname, as canonical JSON."""
    out = dict(config)
    out.pop("container", None)
    for key in ("config", "container_config"):
        if isinstance(out.get(key), dict):
            out[key] = {**out[key], "Hostname": ""}
    return json.dumps(out, separators=(",", ":"), sort_keys=True).encode()


def normalise(built: Path, image: Path) -> str:
    """Write ``image`` from the docker-archive ``built``; returns the image id (the configuration's SHA-256). The
    layers are copied as they are, streamed (an engine's image is over a gigabyte)."""
    with tarfile.open(built) as archive:
        members = {m.name: m for m in archive.getmembers() if m.isfile()}

        def read(name: str) -> bytes:
            handle = archive.extractfile(members[name])
            if handle is None:
                raise SystemExit(f"{built}: {name} is not a file")
            return handle.read()

        manifest = json.loads(read("manifest.json"))
        if len(manifest) != 1:
            raise SystemExit(f"{built}: an archive of {len(manifest)} images; one was expected")
        old = manifest[0]["Config"]
        config = normalised_config(json.loads(read(old)))
        image_id = hashlib.sha256(config).hexdigest()
        manifest[0]["Config"] = f"{image_id}.json"
        written = {f"{image_id}.json": config, "manifest.json": json.dumps(manifest, separators=(",", ":")).encode()}
        # only what the manifest names: the legacy per-layer folders and ``repositories`` carry the old ids
        names = sorted(set(manifest[0]["Layers"]) | set(written))
        with tarfile.open(image, "w", format=tarfile.PAX_FORMAT) as out:
            for name in names:
                info = tarfile.TarInfo(name)
                info.mtime, info.uid, info.gid = 0, 0, 0
                if name in written:
                    info.size, info.mode = len(written[name]), 0o644
                    out.addfile(info, io.BytesIO(written[name]))
                else:
                    info.size, info.mode = members[name].size, 0o644
                    out.addfile(info, archive.extractfile(members[name]))
    return image_id


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    print(normalise(Path(sys.argv[1]), Path(sys.argv[2])))
