"""App environments: an app's ``requires`` resolved to a lock and installed once into a folder of its own.

The lock (every package pinned, with its hash when the index gives one) is resolved when a version is
published and kept beside the environments (``by-app/<archive sha256>.lock``; a later version with the same
``requires`` from the same sources reuses it, ``by-requires/``); the environment is keyed by
the hash of the lock and the Python it was built for, so every app version with the same lock, and every
twin of it, shares one. Workers running the app's code see it at ``/twin/env`` ahead of the engine's own
packages; the engine's environment never gets an app's dependencies. pip resolves the lock; ``uv`` installs
it when found (``envs_installer``), pip otherwise, from the package index (``envs_index_url``) and any
``envs_find_links``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from twinengine.errors import Problem, ValidationFailed

if TYPE_CHECKING:
    from twinengine.catalog.manifest import Manifest
    from twinengine.config import Settings

__all__ = ["EnvironmentFailed", "Environments"]

_RESOLVE_SECONDS = 600.0


class EnvironmentFailed(Exception):
    """Raised when a resolved lock cannot be installed (the installer's last lines included)."""


class Environments:
    def __init__(self, root: Path, *, index_url: str | None = None, find_links: str | None = None,
                 python: str = sys.executable, installer: str = "auto") -> None:
        self.root, self.index_url, self.find_links, self.python = root, index_url, find_links, python
        self.uv = find_uv()
        if installer == "uv" and self.uv is None:
            raise EnvironmentFailed("envs_installer is uv, but no uv is on the PATH or beside the engine's Python")
        self.installer = "uv" if installer == "uv" or (installer == "auto" and self.uv) else "pip"
        self.builds = 0  # environments this process installed (the rest were found ready)

    @classmethod
    def from_settings(cls, settings: Settings) -> Environments:
        return cls(settings.envs_root, index_url=settings.envs_index_url, find_links=settings.envs_find_links,
                   installer=settings.envs_installer)

    def for_app(self, manifest: Manifest, sha256: str) -> Path:
        """The site folder of an app version's environment (resolved and built on first use, else found)."""
        known = self.root / "by-app" / f"{sha256}.lock"
        if known.is_file():
            return self.build(known.read_text()) / "site"
        same = self.root / "by-requires" / f"{self._requires_key(manifest.requires)}.lock"  # a version before
        lock = same.read_text() if same.is_file() else self.resolve(manifest.requires)
        _write_atomically(same, lock)
        _write_atomically(known, lock)
        return self.build(lock) / "site"

    def for_requires(self, requires: list[str]) -> Path:
        """The site folder of the environment of ``requires`` before any version is published (an app's own
        tests in ``twin app test``): resolved once, then found by the requirements' key, where publishing the
        same requirements finds it too."""
        same = self.root / "by-requires" / f"{self._requires_key(requires)}.lock"
        lock = same.read_text() if same.is_file() else self.resolve(requires)
        _write_atomically(same, lock)
        return self.build(lock) / "site"

    def _requires_key(self, requires: list[str]) -> str:
        """Versions requiring the same things from the same sources share a lock (resolved once)."""
        text = json.dumps([sorted(requires), self.index_url, self.find_links, sys.implementation.cache_tag])
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    # -- resolving --------------------------------------------------------------------------------

    def _sources(self) -> list[str]:
        args = []
        if self.index_url == "none":
            args.append("--no-index")
        elif self.index_url:
            args += ["--index-url", self.index_url]
        if self.find_links:
            args += ["--find-links", self.find_links]
        return args

    def resolve(self, requires: list[str]) -> str:
        """The lock of ``requires``: one ``name==version [--hash=sha256:...]`` line per package, sorted.
        Raises ``ValidationFailed`` naming ``requires[i]`` when a requirement is malformed or unresolvable."""
        names: list[str] = []
        for i, text in enumerate(requires):
            try:
                requirement = Requirement(text)
            except InvalidRequirement as exc:
                raise ValidationFailed.one(f"requires[{i}]", f"{text!r} is not a requirement: {exc}") from None
            if requirement.url is not None:
                raise ValidationFailed.one(f"requires[{i}]", f"{text!r} names a URL; apps require packages from "
                                                             "the package index only")
            names.append(canonicalize_name(requirement.name))
        with tempfile.TemporaryDirectory(prefix="twin-resolve-") as tmp:
            report = Path(tmp) / "report.json"
            argv = [self.python, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
                    "--disable-pip-version-check", "--no-input", "--report", str(report), *self._sources(),
                    "--", *requires]
            done = subprocess.run(argv, capture_output=True, text=True, timeout=_RESOLVE_SECONDS, check=False,
                                  env=_installer_env(), cwd=tmp)
            if done.returncode != 0:
                raise _unresolvable(requires, names, done.stderr or done.stdout)
            installs = json.loads(report.read_text()).get("install", [])
        lines = []
        for item in installs:
            name, version = item["metadata"]["name"], item["metadata"]["version"]
            digest = ((item.get("download_info") or {}).get("archive_info") or {}).get("hashes", {}).get("sha256")
            lines.append((canonicalize_name(name), version, digest))
        hashed = all(d for _n, _v, d in lines)
        return "".join(f"{n}=={v}" + (f" --hash=sha256:{d}" if hashed else "") + "\n" for n, v, d in sorted(lines))

    # -- building ---------------------------------------------------------------------------------

    def key(self, lock: str) -> str:
        """The environment's folder name: the hash of the lock and of the Python it runs on."""
        tag = f"{sys.implementation.cache_tag}-{sys.platform}-{os.uname().machine}"
        return hashlib.sha256(f"{tag}\n{lock}".encode()).hexdigest()[:32]

    def build(self, lock: str) -> Path:
        """Install ``lock`` once into ``root/<key>`` (a full folder is renamed into place, so a crash or a
        concurrent build never leaves half an environment to be used)."""
        folder = self.root / self.key(lock)
        if (folder / ".complete").is_file():
            return folder
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".build-", dir=self.root))
        try:
            (tmp / "lock.txt").write_text(lock)
            site = tmp / "site"
            if self.installer == "uv":
                argv = [str(self.uv), "pip", "install", "--no-deps", "--target", str(site), "--quiet",
                        "--python", self.python, *self._sources(), "-r", str(tmp / "lock.txt")]
            else:
                argv = [self.python, "-m", "pip", "install", "--no-deps", "--target", str(site), "--no-compile",
                        "--disable-pip-version-check", "--no-input", "--quiet", *self._sources(),
                        "-r", str(tmp / "lock.txt")]
            done = subprocess.run(argv, capture_output=True, text=True, timeout=_RESOLVE_SECONDS, check=False,
                                  env=_installer_env(), cwd=tmp)
            if done.returncode != 0:
                raise EnvironmentFailed(f"installing the app's requirements failed: "
                                        f"{(done.stderr or done.stdout).strip()[-1500:]}")
            site.mkdir(exist_ok=True)
            os.chmod(tmp, 0o755)
            (tmp / ".complete").write_text(lock)
            try:
                os.replace(tmp, folder)
                self.builds += 1
            except OSError:  # built by another thread or process meanwhile: use theirs
                if not (folder / ".complete").is_file():
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return folder


def find_uv() -> Path | None:
    """uv on the PATH, or installed beside the engine's Python (a virtual environment's ``bin/``)."""
    found = shutil.which("uv") or shutil.which("uv", path=str(Path(sys.executable).parent))
    return Path(found) if found else None


def _installer_env() -> dict[str, str]:
    """The installer runs without the engine's settings or credentials in its environment."""
    return {k: v for k, v in os.environ.items() if not k.startswith("TWIN_")}


def _unresolvable(requires: list[str], names: list[str], output: str) -> ValidationFailed:
    errors = [line for line in output.splitlines() if line.startswith("ERROR")] or output.splitlines()
    tail = " ".join(line.strip() for line in errors[-3:])[-600:]
    import re

    for line in errors:
        lowered = line.lower().replace("_", "-")
        for i, name in sorted(enumerate(names), key=lambda pair: -len(pair[1])):
            if re.search(rf"(?<![a-z0-9.-]){re.escape(name)}(?![a-z0-9.-])", lowered):
                return ValidationFailed([Problem(f"requires[{i}]", f"{requires[i]!r} cannot be resolved: {tail}")])
    return ValidationFailed([Problem("requires", f"the requirements cannot be resolved: {tail}")])


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".lock-")
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    with contextlib.suppress(OSError):
        os.replace(tmp, path)
    Path(tmp).unlink(missing_ok=True)
