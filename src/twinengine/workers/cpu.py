"""The CPU a worker used, read from outside it: ``/proc`` of the worker's process and every process under it
(its sandbox's launcher, the Python it runs, what that forks), their reaped children included. The kernel
keeps these figures; code in the sandbox can neither see nor change them, so a run cannot hide what its app
code or UDF spent from its usage record."""

from __future__ import annotations

import os
import time

__all__ = ["TreeCpu", "tree_cpu_seconds", "tree_pids"]

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


class TreeCpu:
    """``tree_cpu_seconds`` of one process tree read often (every slice of calls a warm worker runs on the
    stream path): the tree is walked at most every ``rescan`` seconds and the processes found then are read in
    between (a stat file each, tens of microseconds, where a walk takes about a millisecond on a busy host). A
    process that ended meanwhile is left out: once its parent reaped it, its CPU is in the parent's figures.
    One started since the last walk is counted from the next walk on, with all it used so far."""

    def __init__(self, root: int, *, rescan: float = 1.0) -> None:
        self.root, self.rescan = root, rescan
        self._parents: dict[int, int] = {}  # pid -> its parent's pid when walked
        self._walked = float("-inf")

    def seconds(self) -> float:
        now = time.monotonic()
        if now - self._walked > self.rescan:
            tree = _walk(self.root)
            if tree is None:  # no children files: every process is read each time
                return _scanned_tree_cpu_seconds(self.root)
            self._parents, self._walked = {pid: parent for pid, (parent, _) in tree.items()}, now
            return sum(spent for _, spent in tree.values())
        total = 0.0
        for pid, parent in self._parents.items():
            fields = _stat(pid)
            if fields is not None and (pid == self.root or int(fields[1]) == parent):  # not a reused pid
                total += _spent(fields)
        return total


def _walk(root: int) -> dict[int, tuple[int, float]] | None:
    """The living processes of the tree under ``root`` through each thread's ``children`` file: pid -> (its
    parent, its seconds); None where the kernel keeps no such files."""
    tree: dict[int, tuple[int, float]] = {}
    stack = [(root, 0)]
    while stack:
        pid, parent = stack.pop()
        fields = _stat(pid)
        if fields is None:
            continue
        tree[pid] = (parent, _spent(fields))
        try:
            for thread in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{thread}/children", "rb") as fh:
                    stack.extend((int(child), pid) for child in fh.read().split())
        except FileNotFoundError:
            if not os.path.exists(f"/proc/{pid}/task/{pid}/children"):
                return None
        except OSError:  # ended meanwhile
            continue
    return tree


def tree_cpu_seconds(root: int) -> float:
    """User and system seconds of ``root`` and its living descendants, with the children each has reaped
    (0.0 where ``/proc`` cannot be read). The tree is walked through each thread's ``children`` file (a few
    reads); where the kernel keeps no such file, every process is read once."""
    tree = _walk(root)
    return _scanned_tree_cpu_seconds(root) if tree is None else sum(spent for _, spent in tree.values())


def tree_pids(root: int) -> set[int]:
    """The pids of ``root`` and its living descendants (empty when ``root`` has ended)."""
    tree = _walk(root)
    if tree is not None:
        return set(tree)
    children, _ = _scan()
    found, stack = set(), [root]
    while stack:
        pid = stack.pop()
        found.add(pid)
        stack.extend(children.get(pid, ()))
    return found if os.path.exists(f"/proc/{root}") else set()


def _stat(pid: int) -> list[bytes] | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            raw = fh.read()
    except OSError:  # ended meanwhile
        return None
    fields = raw.rpartition(b")")[2].split()  # after the command name, which may hold spaces
    return fields if len(fields) >= 15 else None


def _spent(fields: list[bytes]) -> float:
    return sum(int(f) for f in fields[11:15]) / _TICKS  # utime, stime, cutime, cstime


def _scan() -> tuple[dict[int, list[int]], dict[int, float]]:
    """Every process of ``/proc`` once: each pid's children, and each pid's seconds."""
    children: dict[int, list[int]] = {}
    spent: dict[int, float] = {}
    try:
        entries = os.scandir("/proc")
    except OSError:
        return children, spent
    with entries:
        for entry in entries:
            if not entry.name.isdigit():
                continue
            fields = _stat(int(entry.name))
            if fields is None:
                continue
            pid = int(entry.name)
            children.setdefault(int(fields[1]), []).append(pid)
            spent[pid] = _spent(fields)
    return children, spent


def _scanned_tree_cpu_seconds(root: int) -> float:
    children, spent = _scan()
    total, stack = 0.0, [root]
    while stack:
        pid = stack.pop()
        total += spent.get(pid, 0.0)
        stack.extend(children.get(pid, ()))
    return total
