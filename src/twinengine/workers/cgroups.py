"""A sandbox's cgroups: kernel bounds on its processes and threads (``pids.max``) and on the memory its
processes hold together (``memory.max`` in cgroup v2, ``memory.limit_in_bytes`` in v1), that hold for root too.

``RLIMIT_NPROC`` is never applied to the host's root, and ``RLIMIT_AS`` bounds one process, not the tree a
sandbox forks. So where the host lets the engine make cgroups, each sandbox is started inside cgroups of its
own: for each controller, a cgroup v1 hierarchy that has it, else the v2 tree where it is delegated to the
engine's cgroup (one v2 folder holds both: a process is in one v2 cgroup only). The sandbox cannot leave them:
it sees no cgroup file system and holds no capability. Past ``pids.max`` fork and clone fail with EAGAIN;
past the memory limit the kernel reclaims, then kills a process of the group (v2 with ``memory.oom.group``:
all of them); ``Group.oom_kills`` tells the engine it happened. Where no memory cgroup can be made,
``workers/memory_watch.py`` bounds the tree instead.

Any way of starting a worker can use it: ``Group.command`` has a shell write its pid into the group's
``cgroup.procs`` files and become the worker; a fork server writes its child's pid with ``Group.enter``.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CONTROLLERS", "Group", "available", "make", "release"]

CONTROLLERS = ("pids", "memory")
_LOCK = threading.RLock()  # available() holds it while _forget_ended sweeps (which takes it too)
_ROOTS: list[list[_Root]] = []  # found once per process: where the sandboxes' cgroups are made
# Cgroups made for sandboxes whose shell may not have written its pid yet (when each was made): a sweep from
# another thread must not take one of those for ended, or the shell finds no cgroup to enter.
_PENDING: dict[str, float] = {}  # by the folder's path (one sandbox has a folder in each hierarchy)
_PENDING_S = 300.0


@dataclass(frozen=True)
class _Root:
    """This engine's folder (``twinengine-<pid>``) in one hierarchy, and the controllers it bounds there."""

    path: Path
    controllers: frozenset[str]
    v2: bool


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


_PROBES = {"pids": ("pids.max", "8"), "memory": ("memory.limit_in_bytes", str(64 << 20))}
_PROBES_V2 = {"pids": ("pids.max", "8"), "memory": ("memory.max", str(64 << 20))}


def _make(parent: Path, v2: bool, controllers: tuple[str, ...] = ("pids",)) -> Path | None:
    """A folder of this engine under ``parent`` whose children can be bounded by ``controllers``; None when
    none of them can (``_bounds`` says which can)."""
    made = _bounds(parent, v2, controllers)
    return made[0] if made is not None else None


def _bounds(parent: Path, v2: bool, controllers: tuple[str, ...]) -> tuple[Path, frozenset[str]] | None:
    try:
        if v2:
            for name in controllers:  # each on its own: a host may delegate one and not the other
                with contextlib.suppress(OSError):
                    if name not in (parent / "cgroup.subtree_control").read_text().split():
                        (parent / "cgroup.subtree_control").write_text(f"+{name}")
        _forget_ended(parent)
        mine = parent / f"twinengine-{os.getpid()}"
        mine.mkdir(exist_ok=True)
        if v2:
            for name in controllers:
                with contextlib.suppress(OSError):
                    (mine / "cgroup.subtree_control").write_text(f"+{name}")
        probe = mine / f"probe-{uuid.uuid4().hex[:8]}"
        probe.mkdir()
        works = set()
        try:
            for name in controllers:
                limit, value = (_PROBES_V2 if v2 else _PROBES)[name]
                with contextlib.suppress(OSError):
                    (probe / limit).write_text(value)
                    works.add(name)
        finally:
            probe.rmdir()
        if not works:
            with contextlib.suppress(OSError):
                mine.rmdir()
            return None
        return mine, frozenset(works)
    except OSError:
        return None


def _forget_ended(parent: Path) -> None:
    """Remove the folders engines that ended without cleaning up left (killed ones): those of no live pid."""
    for folder in parent.glob("twinengine-*"):
        pid = folder.name.removeprefix("twinengine-")
        if pid.isdigit() and not os.path.exists(f"/proc/{pid}"):
            _remove(folder)


def _find() -> list[_Root]:
    """Per controller, the first place it can bound a sandbox: a v1 hierarchy that has it, else the v2 tree."""
    roots: list[_Root] = []
    wanted = set(CONTROLLERS)
    mounts = _mounts()
    for point, kind, options in mounts:
        carried = tuple(c for c in CONTROLLERS if c in options and c in wanted)
        if kind != "cgroup" or not carried:
            continue
        own = _own(carried[0])
        made = None if own is None else _bounds(Path(point) / own.lstrip("/"), False, carried)
        if made is not None:
            roots.append(_Root(made[0], made[1], v2=False))
            wanted -= made[1]
    if wanted:
        for point, kind, _ in mounts:
            own = _own(None) if kind == "cgroup2" else None
            made = None if own is None else _bounds(Path(point) / own.lstrip("/"), True, tuple(sorted(wanted)))
            if made is not None:
                roots.append(_Root(made[0], made[1], v2=True))
                break
    return roots


def _roots() -> list[_Root]:
    with _LOCK:
        if not _ROOTS:
            _ROOTS.append(_find())
            for root in _ROOTS[0]:
                atexit.register(_remove, root.path)
        return _ROOTS[0]


def available(controller: str = "pids") -> Path | None:
    """The folder this engine makes its sandboxes' cgroups of ``controller`` in, or None where the host
    allows none."""
    return next((r.path for r in _roots() if controller in r.controllers), None)


def _remove(root: Path) -> None:
    _sweep(root)
    with contextlib.suppress(OSError):
        root.rmdir()


class Group:
    """The cgroups one sandbox runs in (one folder per hierarchy), with the bounds they were given. Empty
    (``folders`` empty) where the host allows none: ``command`` then starts the worker as it is."""

    def __init__(self, folders: list[tuple[Path, bool]], memory: tuple[Path, bool] | None,
                 memory_bytes: int = 0) -> None:
        self.folders = folders  # (folder, v2)
        self.memory = memory  # the folder bounding memory, and whether it is v2; None: no memory cgroup
        self.memory_bytes = memory_bytes if memory is not None else 0

    @property
    def bounds_memory(self) -> bool:
        return self.memory is not None

    def command(self, argv: list[str]) -> list[str]:
        """``argv`` started inside the group: a shell writes its own pid into each folder's ``cgroup.procs``,
        then becomes ``argv`` (which fails to start when a folder is gone)."""
        if not self.folders:
            return argv
        count = len(self.folders)
        script = " && ".join(f'echo $$ > "${i}"' for i in range(count)) + (
            f" && shift {count - 1}" if count > 1 else "") + ' && exec "$@"'
        return ["/bin/sh", "-c", script, *(str(f / "cgroup.procs") for f, _ in self.folders), *argv]

    def enter(self, pid: int) -> None:
        """Put ``pid`` (a process not yet running untrusted code) into every folder of the group."""
        for folder, _ in self.folders:
            (folder / "cgroup.procs").write_text(str(pid))
        self._entered()

    def _entered(self) -> None:
        with _LOCK:
            for folder, _ in self.folders:
                _PENDING.pop(str(folder), None)

    def limit_memory(self, limit: int) -> None:
        """Bound the group's memory at ``limit`` bytes from now on (0: no bound): a worker forked ahead of
        its request learns its limit when it is taken (raises ``OSError`` where the kernel refuses)."""
        if self.memory is None:
            return
        folder, v2 = self.memory
        if v2:
            (folder / "memory.max").write_text(str(limit) if limit > 0 else "max")
        else:
            value = str(limit) if limit > 0 else "-1"
            try:  # the swap-inclusive limit may not be below the other: lower that one first, raise it last
                (folder / "memory.limit_in_bytes").write_text(value)
                with contextlib.suppress(OSError):
                    (folder / "memory.memsw.limit_in_bytes").write_text(value)
            except OSError:
                (folder / "memory.memsw.limit_in_bytes").write_text(value)
                (folder / "memory.limit_in_bytes").write_text(value)
        self.memory_bytes = max(0, limit)

    def oom_kills(self) -> int:
        """How many of the group's processes the kernel killed for its memory limit (0 without one)."""
        if self.memory is None:
            return 0
        folder, v2 = self.memory
        try:
            text = (folder / ("memory.events" if v2 else "memory.oom_control")).read_text()
        except OSError:
            return 0
        for line in text.splitlines():
            name, _, value = line.partition(" ")
            if name == "oom_kill" and value.strip().isdigit():
                return int(value)
        return 0

    def peak_bytes(self) -> int | None:
        """The most memory the group held at once, as the kernel counted it (None where it does not say)."""
        if self.memory is None:
            return None
        folder, v2 = self.memory
        try:
            return int((folder / ("memory.peak" if v2 else "memory.max_usage_in_bytes")).read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def pids(self) -> list[int]:
        """The processes in the group now."""
        found: set[int] = set()
        for folder, _ in self.folders:
            with contextlib.suppress(OSError, ValueError):
                found.update(int(p) for p in (folder / "cgroup.procs").read_text().split())
        return sorted(found)

    def kill(self) -> None:
        """SIGKILL every process in the group (``cgroup.kill`` in v2; one by one in v1, again while new ones
        appear: a process forking meanwhile lands in the group too). It does not wait for them to end."""
        for folder, v2 in self.folders:
            if v2:
                with contextlib.suppress(OSError):
                    (folder / "cgroup.kill").write_text("1")
        killed: set[int] = set()
        for _ in range(8):
            left = set(self.pids()) - killed
            if not left:
                return
            for pid in left:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            killed |= left

    def close(self) -> None:
        """Remove the group's folders once its processes have ended (a busy one is left to a later sweep)."""
        self._entered()
        for folder, _ in self.folders:
            with contextlib.suppress(OSError):
                folder.rmdir()


def make(*, processes: int = 0, memory_bytes: int = 0) -> Group:
    """New cgroups for one sandbox: ``pids.max`` = ``processes`` and a memory limit of ``memory_bytes`` for
    its processes together (0: that bound is not asked for), wherever the host allows each."""
    wanted = {name for name, value in (("pids", processes), ("memory", memory_bytes)) if value > 0}
    roots = [r for r in _roots() if r.controllers & wanted]
    folders: list[tuple[Path, bool]] = []
    memory: tuple[Path, bool] | None = None
    name = f"sandbox-{uuid.uuid4().hex[:16]}"
    for root in roots:
        _sweep(root.path)
        group = root.path / name
        with _LOCK:  # pending before it exists: another thread's sweep may list it, still empty, at any moment
            _PENDING[str(group)] = time.monotonic()
        try:
            group.mkdir(parents=True)  # its engine folder too, should another engine have taken it for ended
            if "pids" in root.controllers and "pids" in wanted:
                (group / "pids.max").write_text(str(processes))
            if "memory" in root.controllers and "memory" in wanted:
                _limit_memory(group, root.v2, memory_bytes)
                memory = (group, root.v2)
        except OSError:
            with _LOCK:
                _PENDING.pop(str(group), None)
            with contextlib.suppress(OSError):
                group.rmdir()
            continue
        folders.append((group, root.v2))
    return Group(folders, memory, memory_bytes)


def _limit_memory(group: Path, v2: bool, limit: int) -> None:
    """``limit`` bytes for the group's processes together, swap included (none beyond it), and in v2 the
    whole group killed at once when the kernel kills one of them for it."""
    if v2:
        (group / "memory.max").write_text(str(limit))
        for name, value in (("memory.swap.max", "0"), ("memory.oom.group", "1")):
            with contextlib.suppress(OSError):  # older kernels, or no swap accounting
                (group / name).write_text(value)
        return
    (group / "memory.limit_in_bytes").write_text(str(limit))
    with contextlib.suppress(OSError):  # no swap accounting on this kernel
        (group / "memory.memsw.limit_in_bytes").write_text(str(limit))


def release() -> None:
    """Remove the cgroups of sandboxes that have ended (an empty cgroup is removed, a busy one stays)."""
    for root in _roots():
        _sweep(root.path)


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
                made = _PENDING.get(str(group))
                if busy or (made is not None and now - made > _PENDING_S):
                    _PENDING.pop(str(group), None)  # entered (or never will be): an empty one has ended
                if busy or str(group) in _PENDING:
                    continue
            group.rmdir()
        except OSError:
            continue
