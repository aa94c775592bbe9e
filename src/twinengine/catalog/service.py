"""The catalogue: publish immutable, checksummed app versions; list, search, show and pull them."""

from __future__ import annotations

import hashlib
import tempfile
from collections import defaultdict
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import semver
from sqlalchemy import ColumnExpressionArgument, ScalarSelect, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from twinengine.auth.groups import check_owner_group
from twinengine.auth.policy import require
from twinengine.auth.principal import Principal
from twinengine.catalog.archive import pack, unpack
from twinengine.catalog.manifest import Manifest
from twinengine.catalog.models import AppVersion
from twinengine.catalog.validate import MANIFEST_FILE, MAX_MANIFEST_BYTES, check_app_dir
from twinengine.errors import (
    AppNotFound,
    AppVersionConflict,
    InvalidInput,
    PayloadTooLarge,
    PermissionDenied,
    ValidationFailed,
)
from twinengine.store.base import utcnow
from twinengine.store.blobs import BlobStore
from twinengine.store.engine import Database

__all__ = [
    "PUBLISH_HOOKS",
    "PublishStep",
    "Published",
    "cached_manifest",
    "digest_of",
    "get_app_version",
    "get_archive",
    "is_development",
    "list_apps",
    "list_versions",
    "manifest_by_digest",
    "manifest_by_id",
    "manifest_of",
    "publish",
    "register_hook",
]


# Called as hook(session, row, canonical_archive) after a new version is stored, in the same transaction;
# a hook that raises refuses the publish. Capabilities register here (workflows indexes app processes).
PUBLISH_HOOKS: list[Callable[[Session, AppVersion, bytes], None]] = []


# Called as step(manifest, canonical_archive) before a new version is stored, outside the store's write
# transaction (slow work: app environments, indexing app code in a sandbox); returns what to record in the
# version's transaction, called as record(session, row). A step that raises refuses the publish.
PublishStep = Callable[[Manifest, bytes], Callable[[Session, AppVersion], None] | None]


def register_hook(hook: Callable[[Session, AppVersion, bytes], None]) -> None:
    """Add a publish hook once (runtimes built repeatedly in one process register the same function)."""
    if hook not in PUBLISH_HOOKS:
        PUBLISH_HOOKS.append(hook)


def _order_key(row: AppVersion) -> semver.Version:
    return semver.Version.parse(row.version)


def is_development(version: str) -> bool:
    """A version ending in ``-dev`` (``0.1.0-dev``) may be published again with other files; others are immutable."""
    return version.endswith("-dev")


@dataclass
class Published:
    """What a publish did: ``created`` a new version, or ``replaced`` (the archive checksum a development
    version had before), or neither (identical content was already there)."""

    row: AppVersion
    created: bool
    replaced: str | None = None


def publish(
    session: Session,
    blobs: BlobStore,
    *,
    principal: Principal,
    archive: bytes,
    max_archive_bytes: int,
    max_unpacked_bytes: int,
    max_manifest_bytes: int = MAX_MANIFEST_BYTES,
    steps: Sequence[PublishStep] = (),
    group: str | None = None,
    db: Database | None = None,
) -> Published:
    """Publish an app archive; identical content already published is a no-op.

    The archive is unpacked safely, validated like ``twin app validate``, and re-packed canonically, so the
    stored checksum depends on the files alone, not on the tool that built the upload. A development version
    (``-dev``) with other files replaces its stored archive and manifest; a released one is a conflict. With
    ``group`` the app is that group's: its first version claims the name, and only the group's members publish
    its later versions (``app.publish`` on the group: developers, or any role where the group may publish).

    ``db``: where the checks before ``steps`` read, in read-only units of work of their own, made again in
    ``session`` before it writes. On SQLite a unit of work that may write holds the store's write lock from
    its first statement, and the steps (the app's environment, its code indexed in a sandbox) take seconds to
    minutes: no write of the engine waits on them (``store.guard``).
    """
    with _reading(session, db) as reading:
        _may_publish(reading, principal, group)
    if len(archive) > max_archive_bytes:
        raise PayloadTooLarge(f"archive is {len(archive)} bytes; the limit is {max_archive_bytes}")
    with tempfile.TemporaryDirectory(prefix="twinapp-") as tmp:
        root = Path(tmp)
        unpack(archive, root, max_unpacked_bytes=max_unpacked_bytes)
        if not (root / MANIFEST_FILE).is_file():
            raise InvalidInput(f"archive: no {MANIFEST_FILE} at the top level")
        manifest, problems = check_app_dir(root, max_manifest_bytes=max_manifest_bytes)
        if problems or manifest is None:
            raise ValidationFailed(problems)
        canonical = pack(root)
        files = [p.relative_to(root).as_posix() for p in sorted(root.rglob("*")) if p.is_file()]
    digest = hashlib.sha256(canonical).hexdigest()
    with _reading(session, db) as reading:
        done = _published_already(reading, manifest, digest, group)
    if done is not None:
        return done
    records = [step(manifest, canonical) for step in steps]
    blobs.put(canonical)
    if db is not None:  # what the checks read may have changed while the steps ran
        _may_publish(session, principal, group)
        done = _published_already(session, manifest, digest, group)
        if done is not None:
            return done
    existing = _find(session, manifest.name, manifest.version)
    if existing is not None:
        return _replace(session, existing, manifest, canonical, digest, files, principal, records)
    parsed = semver.Version.parse(manifest.version)
    row = AppVersion(
        name=manifest.name, version=manifest.version, major=parsed.major, minor=parsed.minor,
        patch=parsed.patch, prerelease=parsed.prerelease, title=manifest.title, domain=manifest.domain,
        search_text=_search_text(manifest), manifest=manifest.model_dump(mode="json"), archive_sha256=digest,
        archive_size=len(canonical), files=files, published_by=principal.name, owner_group=group,
    )
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:
        # Someone published the same name@version a moment ago: same rule as above.
        raced = _find(session, manifest.name, manifest.version)
        if raced is None:
            raise
        return Published(_same_or_conflict(raced, digest), False)
    _recorded(session, row, canonical, records)
    return Published(row, True)


def _reading(session: Session, db: Database | None) -> AbstractContextManager[Session]:
    return db.session(readonly=True) if db is not None else nullcontext(session)


def _may_publish(session: Session, principal: Principal, group: str | None) -> None:
    if group is None:
        require(principal, "app.publish")
    else:
        held = check_owner_group(session, principal, group, what="apps")
        require(principal, "app.publish", _ForGroup(group, held.publish), target=f"the apps of group {group}")


def _published_already(session: Session, manifest: Manifest, digest: str, group: str | None) -> Published | None:
    """The answer when the version is stored already with these files (or, released, with others: a conflict)."""
    _check_name_owner(session, manifest.name, group)
    existing = _find(session, manifest.name, manifest.version)
    if existing is not None and (existing.archive_sha256 == digest or not is_development(manifest.version)):
        return Published(_same_or_conflict(existing, digest), False)
    return None


@dataclass(frozen=True)
class _ForGroup:
    """What ``app.publish`` is asked on when an app is published for a group (``auth.policy.publisher``)."""

    owner_group: str
    group_publishes: bool


def _check_name_owner(session: Session, name: str, group: str | None) -> None:
    """An app's name belongs to the group its first version was published for (or to nobody): a version for
    another group, or for none, is refused, so a group's apps are published by its members alone."""
    first = session.scalar(select(AppVersion).where(AppVersion.name == name).order_by(AppVersion.id).limit(1))
    if first is None or first.owner_group == group:
        return
    if first.owner_group is None:
        raise PermissionDenied(f"app {name} is not a group's app; publish its versions without a group")
    raise PermissionDenied(f"app {name} belongs to group {first.owner_group}: publish it for that group "
                           f"(--group {first.owner_group}) as one of its members")


def _search_text(manifest: Manifest) -> str:
    return " ".join([manifest.name, manifest.title, manifest.description, manifest.domain,
                     *manifest.keywords]).lower()


def _recorded(session: Session, row: AppVersion, canonical: bytes,
              records: list[Callable[[Session, AppVersion], None] | None]) -> None:
    for hook in PUBLISH_HOOKS:
        hook(session, row, canonical)
    for record in records:
        if record is not None:
            record(session, row)


def _replace(session: Session, row: AppVersion, manifest: Manifest, canonical: bytes, digest: str,
             files: list[str], principal: Principal,
             records: list[Callable[[Session, AppVersion], None] | None]) -> Published:
    """A development version's new files: the same row (its twins keep pointing at it) with the new archive
    and manifest; what publish steps recorded for the old files is recorded again (steps replace, not add)."""
    before = row.archive_sha256
    row.title, row.domain, row.search_text = manifest.title, manifest.domain, _search_text(manifest)
    row.manifest, row.archive_sha256, row.archive_size = manifest.model_dump(mode="json"), digest, len(canonical)
    row.files, row.published_by, row.published_at = files, principal.name, utcnow()
    session.flush()
    _recorded(session, row, canonical, records)
    return Published(row, False, replaced=before)


def _same_or_conflict(existing: AppVersion, digest: str) -> AppVersion:
    if existing.archive_sha256 != digest:
        raise AppVersionConflict(
            f"{existing.name}@{existing.version} is already published with different content "
            f"(sha256 {existing.archive_sha256[:12]}…, yours {digest[:12]}…); versions are immutable, "
            "publish a new version instead (or use a development version ending in -dev while iterating)"
        )
    return existing


def _find(session: Session, name: str, version: str) -> AppVersion | None:
    return session.scalar(select(AppVersion).where(AppVersion.name == name, AppVersion.version == version))


def list_apps(
    session: Session, *, principal: Principal, text: str | None = None, domain: str | None = None,
    limit: int = 50, offset: int = 0,
) -> tuple[list[tuple[AppVersion, list[str]]], int]:
    """Apps (latest version + all version strings), optionally matching ``text`` in name, title,
    description, domain or keywords."""
    require(principal, "app.read")
    query = select(AppVersion)
    if text:
        words = [w for w in text.lower().split() if w]
        query = query.where(*[AppVersion.search_text.contains(w, autoescape=True) for w in words])
    if domain:
        query = query.where(AppVersion.domain == domain)
    grouped: dict[str, list[AppVersion]] = defaultdict(list)
    for row in session.scalars(query):
        grouped[row.name].append(row)
    names = sorted(grouped)
    page = []
    for name in names[offset: offset + limit]:
        versions = sorted(grouped[name], key=_order_key, reverse=True)
        page.append((versions[0], [v.version for v in versions]))
    return page, len(names)


def list_versions(session: Session, *, principal: Principal, name: str) -> list[AppVersion]:
    require(principal, "app.read")
    rows = list(session.scalars(select(AppVersion).where(AppVersion.name == name)))
    if not rows:
        raise AppNotFound(f"no app named {name!r} in the catalogue")
    return sorted(rows, key=_order_key, reverse=True)


def get_app_version(session: Session, *, principal: Principal, name: str, version: str | None) -> AppVersion:
    """One version; ``None`` or ``latest`` means the highest released (non-prerelease if any) version."""
    if version is None or version == "latest":
        versions = list_versions(session, principal=principal, name=name)
        released = [v for v in versions if v.prerelease is None]
        return (released or versions)[0]
    require(principal, "app.read")
    row = _find(session, name, version)
    if row is None:
        raise AppNotFound(f"no app {name}@{version} in the catalogue")
    return row


def get_archive(blobs: BlobStore, row: AppVersion) -> bytes:
    return blobs.get(row.archive_sha256)


_MANIFESTS: dict[str, Manifest] = {}


def manifest_by_id(session: Session, app_id: int) -> Manifest:
    """The manifest of a version by row id, reading the stored JSON only when it is not cached yet."""
    digest = session.scalar(select(AppVersion.archive_sha256).where(AppVersion.id == app_id))
    if digest is not None and digest in _MANIFESTS:
        return _MANIFESTS[digest]
    row = session.get(AppVersion, app_id)
    if row is None:  # foreign keys forbid it; a broken database is a bug, not user error
        raise RuntimeError(f"no app version with id {app_id}")
    return manifest_of(row)


def digest_of(app_id: ColumnExpressionArgument[int]) -> ScalarSelect[str]:
    """The archive checksum of the version ``app_id`` names, as a column for another package's query: with
    ``manifest_by_digest`` a caller gets a version's manifest without a query of its own."""
    return select(AppVersion.archive_sha256).where(AppVersion.id == app_id).scalar_subquery()


def manifest_by_digest(session: Session, app_id: int, digest: str | None) -> Manifest:
    """The manifest of version ``app_id`` whose archive checksum is ``digest`` (``digest_of``), from the cache
    when it holds that content."""
    cached = _MANIFESTS.get(digest) if digest is not None else None
    return cached if cached is not None else manifest_by_id(session, app_id)


def cached_manifest(digest: str | None) -> Manifest | None:
    """The manifest whose archive checksum is ``digest`` if the cache holds it (no statement)."""
    return _MANIFESTS.get(digest) if digest is not None else None


def manifest_of(row: AppVersion) -> Manifest:
    """The parsed manifest of a stored version, cached by archive checksum (the content decides it)."""
    cached = _MANIFESTS.get(row.archive_sha256)
    if cached is None:
        if len(_MANIFESTS) >= 512:
            _MANIFESTS.clear()
        cached = _MANIFESTS[row.archive_sha256] = Manifest.model_validate(row.manifest)
    return cached
