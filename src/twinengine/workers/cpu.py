"""The CPU a worker used, read from outside it: ``/proc`` of the worker's process and every process under it
(its sandbox's launcher, the Python it runs, what that forks), their reaped children included. The kernel
keeps these figures; code in the sandbox can neither see nor change them, so a run cannot hide what its app
code or UDF spent from its usage record."""

from __future__ import annotations

import os

__all__ = ["tree_cpu_seconds"]

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def tree_cpu_seconds(root: int) -> float:
    """User and system seconds of ``root`` and its living descendants, with the children each has reaped
    (0.0 where ``/proc`` cannot be read)."""
    children: dict[int, list[int]] = {}
    spent: dict[int, float] = {}
    try:
        entries = os.scandir("/proc")
    except OSError:
        return 0.0
    with entries:
        for entry in entries:
            if not entry.name.isdigit():
                continue
            try:
                with open(f"/proc/{entry.name}/stat", "rb") as fh:
                    raw = fh.read()
            except OSError:  # ended meanwhile
                continue
            fields = raw.rpartition(b")")[2].split()  # after the command name, which may hold spaces
            if len(fields) < 15:
                continue
            pid = int(entry.name)
            children.setdefault(int(fields[1]), []).append(pid)
            spent[pid] = sum(int(f) for f in fields[11:15]) / _TICKS  # utime, stime, cutime, cstime
    total, stack = 0.0, [root]
    while stack:
        pid = stack.pop()
        total += spent.get(pid, 0.0)
        stack.extend(children.get(pid, ()))
    return total
