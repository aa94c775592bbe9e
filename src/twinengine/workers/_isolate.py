"""Inside a warm image (``workers/_zygote.py``): the system calls that turn a process just forked from it into a
sandbox of its own, before any code the engine did not write runs there.

The image holds ``CAP_SYS_ADMIN`` in its bubblewrap user namespace (and nothing else), and only ever runs the
engine's code and the engine's own packages. A worker forked from it is made pid 1 of a new pid namespace by the
image (``new_pid_namespace``, ``back_to``), then does the rest itself while it still holds the capability:

- a mount and an IPC namespace of its own: its scratch folder at ``/twin/scratch`` and ``/tmp``, the folder of
  every worker's scratch unmounted, a ``/dev/shm`` of its own, a ``/proc`` that shows its own processes only;
- a user namespace of its own (the same uid, 65534), in which it may make no further one
  (``user.max_user_namespaces`` 0 there), with a network namespace of its own (loopback only, up) and
  ``/proc/sys``, ``/proc/sysrq-trigger``, ``/proc/irq`` and ``/proc/bus`` read-only;
- then every capability dropped (bounding and ambient sets too), ``no_new_privs`` and not dumpable.

Each step that fails raises ``OSError``: the worker then ends before it runs anything.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import socket
import struct

__all__ = ["SCRATCHES", "back_to", "drop_privileges", "isolate", "new_pid_namespace"]

SCRATCHES = "/twin/.scratch"  # where the image sees every worker's scratch folder (one folder each)
_SCRATCH, _TMP = "/twin/scratch", "/tmp"
NEWNS, NEWIPC, NEWUSER, NEWPID, NEWNET = 0x00020000, 0x08000000, 0x10000000, 0x20000000, 0x40000000
_RDONLY, _NOSUID, _NODEV, _NOEXEC, _REMOUNT, _BIND, _REC, _PRIVATE = 1, 2, 4, 8, 32, 4096, 16384, 1 << 18
_DETACH = 2
_SET_DUMPABLE, _CAPBSET_DROP, _NO_NEW_PRIVS, _CAP_AMBIENT, _AMBIENT_CLEAR_ALL = 4, 24, 38, 47, 4
_CAP_VERSION_3 = 0x20080522
_SIOCGIFFLAGS, _SIOCSIFFLAGS, _IFF_UP = 0x8913, 0x8914, 0x1
_COVERED = ("sys", "sysrq-trigger", "irq", "bus")  # what bubblewrap covers in its /proc, and /proc/sys

_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def _unshare(flags: int) -> None:
    _check(_libc.unshare(ctypes.c_int(flags)), f"unshare({flags:#x})")


def _mount(source: str | None, target: str, kind: str | None, flags: int, data: str | None = None) -> None:
    _check(_libc.mount(None if source is None else source.encode(), target.encode(),
                       None if kind is None else kind.encode(), ctypes.c_ulong(flags),
                       None if data is None else data.encode()), f"mount {target}")


def _write(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def new_pid_namespace() -> None:
    """The next process this one forks is pid 1 of a pid namespace of its own (``back_to`` undoes it)."""
    _unshare(NEWPID)


def back_to(pid_namespace: int) -> None:
    """Fork later processes into ``pid_namespace`` again (an open ``/proc/self/ns/pid``: the image's own)."""
    _check(_libc.setns(ctypes.c_int(pid_namespace), ctypes.c_int(NEWPID)), "setns(pid)")


def isolate(scratch: str, shm_bytes: int) -> None:
    """Make this process (pid 1 of its own pid namespace, single-threaded, holding ``CAP_SYS_ADMIN``) a
    sandbox of its own whose scratch folder is ``SCRATCHES/scratch`` (a folder name, nothing more)."""
    if not scratch or "/" in scratch or scratch in (".", ".."):
        raise OSError(22, f"not a scratch folder's name: {scratch!r}")
    own = f"{SCRATCHES}/{scratch}"
    _unshare(NEWNS | NEWIPC)
    _mount(None, "/", None, _REC | _PRIVATE)  # nothing mounted here reaches the image or another worker
    # the worker's own /tmp must not hide a Python, engine or app folder that lives under the host's /tmp (a
    # clone in /tmp): each is mounted (read-only, as the image has it) at its place in the worker's /tmp first
    for folder in _under_tmp():
        place = f"{own}/tmp{folder[len(_TMP):]}"
        os.makedirs(place, exist_ok=True)
        _mount(folder, place, None, _BIND | _REC)
    _mount(f"{own}/tmp", _TMP, None, _BIND | _REC)
    _mount(own, _SCRATCH, None, _BIND)
    _check(_libc.umount2(SCRATCHES.encode(), ctypes.c_int(_DETACH)), "umount the scratch folders")
    size = f"size={shm_bytes}," if shm_bytes > 0 else ""
    _mount("tmpfs", "/dev/shm", "tmpfs", _NOSUID | _NODEV, f"{size}mode=1777")
    _mount("proc", "/proc", "proc", _NOSUID | _NODEV | _NOEXEC)
    uid, gid = os.getuid(), os.getgid()
    _unshare(NEWUSER)
    _write("/proc/self/setgroups", "deny")
    _write("/proc/self/uid_map", f"{uid} {uid} 1")
    _write("/proc/self/gid_map", f"{gid} {gid} 1")
    _write("/proc/sys/user/max_user_namespaces", "0")  # this namespace's: nothing under it makes another
    _unshare(NEWNS | NEWNET)  # owned by the worker's own user namespace: what it copies it cannot unmount
    for name in _COVERED:
        path = f"/proc/{name}"
        if os.path.lexists(path):
            _mount(path, path, None, _BIND | _REC)
            _mount(None, path, None, _REMOUNT | _BIND | _RDONLY | _NOSUID | _NODEV | _NOEXEC)
    _loopback_up()


def _under_tmp() -> list[str]:
    """The folders Python imports from (its prefixes, ``sys.path``) that lie under ``/tmp``, outermost only."""
    import sys

    found = {os.path.normpath(p) for p in (sys.prefix, sys.exec_prefix, sys.base_prefix, *sys.path)
             if p and p.startswith(_TMP + "/") and os.path.isdir(p)}
    return sorted(p for p in found if not any(p.startswith(q + "/") for q in found))


def _loopback_up() -> None:
    """A new network namespace's loopback starts down: DDP's ranks and local servers of the code need it."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        request = struct.pack("16sh22x", b"lo", 0)
        flags = struct.unpack("16sh22x", fcntl.ioctl(probe, _SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(probe, _SIOCSIFFLAGS, struct.pack("16sh22x", b"lo", flags | _IFF_UP))


def drop_privileges() -> None:
    """Every capability gone for good (bounding, ambient, effective, permitted, inheritable), no privilege
    gained by exec (``no_new_privs``), and not dumpable (no other process of its user may ptrace it or read its
    memory through ``/proc``)."""
    with open("/proc/sys/kernel/cap_last_cap") as fh:
        last = int(fh.read())
    for cap in range(last + 1):
        _check(_libc.prctl(_CAPBSET_DROP, ctypes.c_ulong(cap), 0, 0, 0), "drop a capability's bound")
    _check(_libc.prctl(_CAP_AMBIENT, _AMBIENT_CLEAR_ALL, 0, 0, 0), "clear the ambient capabilities")
    header = (ctypes.c_uint32 * 2)(_CAP_VERSION_3, 0)
    _check(_libc.capset(header, (ctypes.c_uint32 * 6)()), "drop the capabilities")
    _check(_libc.prctl(_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
    _check(_libc.prctl(_SET_DUMPABLE, 0, 0, 0, 0), "not dumpable")
