"""A kernel cap on a sandbox's processes and threads that holds for root too: a ``pids`` cgroup per sandbox.

``RLIMIT_NPROC`` is never applied to the host's root (uid 0 outside the sandbox's user namespace, which is what
bubblewrap maps the sandbox's user to when the engine runs as root), so where the host lets the engine make
cgroups (cgroup v1's ``pids`` hierarchy, or a v2 tree with the ``pids`` controller delegated) each sandbox is
started inside a cgroup of its own whose ``pids.max`` is ``worker_processes``: fork and clone fail there with
EAGAIN past it, whoever the processes are. The sandbox cannot leave it: it sees no cgroup file system and holds
no capability. Where no cgroup can be made, ``RLIMIT_NPROC`` is the only cap (none for root; said at start).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import threading
import time
import uuid
from pathlib import Path

__all__ = ["available", "enter_command", "release"]

_LOCK = threading.RLock()  # available() holds it while _forget_ended sweeps (which takes it too)
_ROOT: list[Path | None] = []  # found once per process: the folder the sandboxes' cgroups are made in
# Cgroups made for sandboxes whose shell may not have written its pid yet (when each was made): a sweep from
# another thread must not take one of those for ended, or the shell finds no cgroup to enter.
_PENDING: dict[str, float] = {}
_PENDING_S = 300.0


def _mounts() -> list[tuple[str, str, set[str]]]:
    """(mount point, file system type, options) of the cgroup file systems."""
    found = []
    try:
        with open("/proc/self/mountinfo") as fh:
            for line in fh:
                left, _, right = line.partition(" - ")
                fields, tail = left.split(), right.split()
                if len(fields) >= 6 and len(tail) >= 3 and tail[0] in ("cgroup", "cgroup2"):
                    found.append((fields[4], tail[0], set(tail[2].split(","))))
    except OSError:
        pass
    return found


def _own(controller: str | None) -> str | None:
    """This process's cgroup path in the v1 hierarchy of ``controller`` (None: the v2 one)."""
    try:
        with open("/proc/self/cgroup") as fh:
            for line in fh:
                _, names, path = line.rstrip("\n").split(":", 2)
                if (controller is None and names == "") or (controller is not None and controller in names.split(",")):
                    return path
    except (OSError, ValueError):
        pass
    return None


def _make(parent: Path, v2: bool) -> Path | None:
    """A folder of this engine under ``parent`` whose children can be given ``pids.max``; None when not."""
    try:
        if v2:
            enabled = (parent / "cgroup.subtree_control").read_text().split()
            if "pids" not in enabled:
                (parent / "cgroup.subtree_control").write_text("+pids")
        _forget_ended(parent)
        mine = parent / f"twinengine-{os.getpid()}"
        mine.mkdir(exist_ok=True)
        if v2:
            (mine / "cgroup.subtree_control").write_text("+pids")
        probe = mine / f"probe-{uuid.uuid4().hex[:8]}"
        probe.mkdir()
        try:
            (probe / "pids.max").write_text("8")
        finally:
            probe.rmdir()
        return mine
    except OSError:
        return None


def _forget_ended(parent: Path) -> None:
    """Remove the folders engines that ended without cleaning up left (killed ones): those of no live pid."""
    for folder in parent.glob("twinengine-*"):
        pid = folder.name.removeprefix("twinengine-")
        if pid.isdigit() and not os.path.exists(f"/proc/{pid}"):
            _remove(folder)


def _find() -> Path | None:
    for point, kind, options in _mounts():
        if kind == "cgroup" and "pids" in options:
            own = _own("pids")
            if own is not None:
                made = _make(Path(point) / own.lstrip("/"), v2=False)
                if made is not None:
                    return made
    for point, kind, _ in _mounts():
        if kind == "cgroup2":
            own = _own(None)
            if own is not None:
                made = _make(Path(point) / own.lstrip("/"), v2=True)
                if made is not None:
                    return made
    return None


def available() -> Path | None:
    """The folder this engine makes its sandboxes' cgroups in, or None where the host allows none."""
    with _LOCK:
        if not _ROOT:
            _ROOT.append(_find())
            if _ROOT[0] is not None:
                atexit.register(_remove, _ROOT[0])
        return _ROOT[0]


def _remove(root: Path) -> None:
    _sweep(root)
    with contextlib.suppress(OSError):
        root.rmdir()


def enter_command(argv: list[str], processes: int) -> list[str]:
    """``argv`` started in a new cgroup whose ``pids.max`` is ``processes`` (a shell writes its own pid into
    it, then becomes ``argv``); ``argv`` as it is where no cgroup can be made."""
    root = available()
    if root is None or processes <= 0:
        return argv
    _sweep(root)
    group = root / f"sandbox-{uuid.uuid4().hex[:16]}"
    with _LOCK:  # pending before it exists: another thread's sweep may list it, still empty, at any moment
        _PENDING[group.name] = time.monotonic()
    try:
        group.mkdir(parents=True)  # its engine folder too, should another engine have taken it for ended
        (group / "pids.max").write_text(str(processes))
    except OSError:
        with _LOCK:
            _PENDING.pop(group.name, None)
        return argv
    return ["/bin/sh", "-c", 'echo $$ > "$0" && exec "$@"', str(group / "cgroup.procs"), *argv]


def release() -> None:
    """Remove the cgroups of sandboxes that have ended (an empty cgroup is removed, a busy one stays)."""
    root = available()
    if root is not None:
        _sweep(root)


def _sweep(root: Path) -> None:
    try:
        groups = [p for p in root.iterdir() if p.is_dir() and p.name.startswith("sandbox-")]
    except OSError:
        return
    now = time.monotonic()
    for group in groups:
        try:
            busy = bool((group / "cgroup.procs").read_text().strip())
            with _LOCK:
                made = _PENDING.get(group.name)
                if busy or (made is not None and now - made > _PENDING_S):
                    _PENDING.pop(group.name, None)  # entered (or never will be): an empty one has ended
                if busy or group.name in _PENDING:
                    continue
            group.rmdir()
        except OSError:
            continue
