#!/usr/bin/env bash
# Build the engine's image from Debian packages: the wheel, its dependencies as wheels, a bookworm root file
# system made by mmdebstrap, then `buildah build` (or `podman build`) with deploy/Containerfile.
#
#   deploy/build-image.sh                 # twinengine:VERSION, without the ML extra
#   TWIN_EXTRAS=ml deploy/build-image.sh  # twinengine:VERSION-ml, with the ml extra (torch pinned, CPU build)
#
# Settings (environment): PYTHON (builds the wheel; default .venv/bin/python), TAG, TWIN_EXTRAS (ml or empty),
# DEBIAN_MIRROR and DEBIAN_SECURITY_MIRROR (default deb.debian.org; snapshot.debian.org URLs pin the packages),
# SOURCE_DATE_EPOCH (default: the last commit's time), WORKDIR (the build context; default a folder in /tmp),
# BUILDER (buildah or podman). Needs root, or a user with subordinate ids, for mmdebstrap and the build.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
PYTHON=${PYTHON:-$REPO/.venv/bin/python}
TWIN_EXTRAS=${TWIN_EXTRAS:-}
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
DEBIAN_SECURITY_MIRROR=${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git -C "$REPO" log -1 --format=%ct 2>/dev/null || echo 0)}
export SOURCE_DATE_EPOCH
VERSION=$("$PYTHON" -c 'import sys; sys.path.insert(0, sys.argv[1]); from twinengine._version import __version__; print(__version__)' "$REPO/src")
TAG=${TAG:-twinengine:$VERSION${TWIN_EXTRAS:+-$TWIN_EXTRAS}}
WORKDIR=${WORKDIR:-${TMPDIR:-/tmp}/twinengine-image}
BUILDER=${BUILDER:-$(command -v buildah >/dev/null && echo buildah || echo podman)}

say() { printf '== %s\n' "$*" >&2; }

rm -rf "$WORKDIR"
mkdir -p "$WORKDIR/dist" "$WORKDIR/context/wheels"

say "wheel of twinengine $VERSION"
"$PYTHON" -m build --no-isolation --wheel --outdir "$WORKDIR/dist" "$REPO" >"$WORKDIR/build.log" 2>&1 \
    || { tail -n 40 "$WORKDIR/build.log" >&2; exit 1; }
WHEEL=$WORKDIR/dist/twinengine-$VERSION-py3-none-any.whl
cp "$WHEEL" "$WORKDIR/context/wheels/"
cp "$REPO/deploy/twin-env" "$WORKDIR/context/twin-env"
touch -d "@$SOURCE_DATE_EPOCH" "$WORKDIR/context/twin-env"

# Every dependency as a wheel for bookworm's CPython 3.11 on x86_64 with glibc 2.36 (--only-binary: no
# compiler is needed, here or in the image), whatever the host; pip's own index settings apply.
platforms=(--platform manylinux1_x86_64 --platform manylinux2010_x86_64 --platform manylinux2014_x86_64)
for minor in $(seq 5 36); do platforms+=(--platform "manylinux_2_${minor}_x86_64"); done
say "dependencies as wheels${TWIN_EXTRAS:+ (extra $TWIN_EXTRAS)}"
# Pure-Python dependencies released only as source (promise, which mlflow's graphene needs) are made into
# wheels here, on the host: the image still gets wheels only, and needs no compiler.
if [ "$TWIN_EXTRAS" = ml ]; then
    "$PYTHON" -m pip wheel --quiet --no-deps --wheel-dir "$WORKDIR/context/wheels" -c "$REPO/constraints.txt" promise
fi
"$PYTHON" -m pip download --quiet --only-binary=:all: --find-links "$WORKDIR/context/wheels" \
    --dest "$WORKDIR/context/wheels" \
    --python-version 3.11 --implementation cp --abi cp311 --abi abi3 --abi none \
    "${platforms[@]}" -c "$REPO/constraints.txt" "$WHEEL${TWIN_EXTRAS:+[$TWIN_EXTRAS]}"

# yprov4wfs (GPL-3.0) is a dependency of the openEO graph parser's graph module, which the engine never imports
# (twinengine/workflows/openeo_schema.py): it stays out of the image, which installs its wheels without resolving.
rm -f "$WORKDIR"/context/wheels/yprov4wfs-*.whl

# The root file system: bookworm's python3 (3.11, the engine's Python) with libstdc++ (which manylinux
# wheels may use), bubblewrap for the sandbox, tini as
# PID 1; no apt, no compiler, no documentation. The user twin (10001) and its data dir are made here so that
# the Containerfile's final stage runs nothing. mmdebstrap honours SOURCE_DATE_EPOCH (file times, no
# random machine id); the hooks drop what would differ between two builds or only takes room.
say "root file system (mmdebstrap, $DEBIAN_MIRROR)"
mmdebstrap --variant=essential --mode=root --format=tar \
    --include=python3,python3-venv,libstdc++6,libgomp1,bubblewrap,tini,ca-certificates,tzdata,passwd \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-include=/usr/share/locale/locale.alias' \
    --dpkgopt='path-exclude=/usr/share/lintian/*' \
    --customize-hook='chroot "$1" groupadd --system --gid 10001 twin' \
    --customize-hook='chroot "$1" useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /var/lib/twinengine --shell /usr/sbin/nologin twin' \
    --customize-hook='install -d -m 0750 -o 10001 -g 10001 "$1/var/lib/twinengine" "$1/var/lib/twinengine/keys"' \
    --customize-hook='rm -rf "$1"/var/cache/apt/* "$1"/var/lib/apt/lists/* "$1"/var/log/apt "$1"/var/log/dpkg.log "$1"/var/log/alternatives.log "$1"/var/log/bootstrap.log "$1"/var/cache/ldconfig/aux-cache "$1"/var/cache/debconf/*-old "$1"/var/lib/dpkg/*-old "$1"/etc/*-' \
    --customize-hook='find "$1"/usr/lib/python3* -name __pycache__ -prune -exec rm -rf {} +' \
    --customize-hook='rm -f "$1"/etc/machine-id "$1"/var/lib/dbus/machine-id && : >"$1"/etc/machine-id' \
    bookworm "$WORKDIR/context/rootfs.tar" "deb $DEBIAN_MIRROR bookworm main" \
    "deb $DEBIAN_MIRROR bookworm-updates main" "deb $DEBIAN_SECURITY_MIRROR bookworm-security main"

say "image $TAG ($BUILDER, SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH)"
args=(build --isolation chroot --format docker --timestamp "$SOURCE_DATE_EPOCH" --omit-history --layers=false
      --build-arg "TWIN_VERSION=$VERSION"
      --build-arg "SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH" -f "$REPO/deploy/Containerfile" -t "$TAG")
"$BUILDER" "${args[@]}" "$WORKDIR/context"

# buildah writes the build container's id and hostname into a Docker-format configuration (the one format that
# keeps HEALTHCHECK): saved, rewritten without them (deploy/normalise-image.py) and loaded again, the same
# sources, packages and wheels give the same image id and digest.
say "the image's configuration without the build container's id and hostname"
rm -f "$WORKDIR/built.tar" "$WORKDIR/image.tar"
"$BUILDER" push -q "$TAG" "docker-archive:$WORKDIR/built.tar:$TAG"
"$PYTHON" "$REPO/deploy/normalise-image.py" "$WORKDIR/built.tar" "$WORKDIR/image.tar" >/dev/null
"$BUILDER" rmi "$TAG" >/dev/null
"$BUILDER" tag "$("$BUILDER" pull -q "docker-archive:$WORKDIR/image.tar")" "$TAG"
rm -f "$WORKDIR/built.tar"
# The image's bill of materials, read from the saved image itself: its Python distributions (with the SHA-256 of
# the wheel each came from) and its Debian packages, with their licences.
SBOM=${SBOM:-$WORKDIR/twinengine-image.cdx.json}
say "software bill of materials ($SBOM)"
"$PYTHON" "$REPO/deploy/sbom/image.py" "$WORKDIR/image.tar" "$WORKDIR/context/wheels" "$SBOM"
"$BUILDER" inspect --format '{{.FromImageDigest}} {{.FromImageID}}' "$TAG" 2>/dev/null \
    || podman image inspect --format '{{.Digest}} {{.Id}}' "$TAG"
