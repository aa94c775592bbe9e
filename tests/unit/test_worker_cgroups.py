"""The per-sandbox cgroups: folders of ended engines are swept without a deadlock, a cgroup made for a sandbox
whose shell has not entered it yet is never swept away under it (both races met under load), and the shell
that starts a worker enters every hierarchy's folder (pids and memory are apart in cgroup v1)."""

from __future__ import annotations

import shutil
import subprocess
import threading
from pathlib import Path

import pytest

from twinengine.workers import cgroups


@pytest.fixture(autouse=True)
def cgroup_rmdir(monkeypatch: pytest.MonkeyPatch) -> None:
    """A plain folder stands in for the cgroup file system (the real one is the host's and is tested in
    tests/integration/test_workers_bounds.py): there, rmdir removes a cgroup with its control files."""
    monkeypatch.setattr(Path, "rmdir", lambda self: shutil.rmtree(self))


def _engine_folder(parent: Path, pid: int, groups: dict[str, str]) -> Path:
    folder = parent / f"twinengine-{pid}"
    folder.mkdir(parents=True, exist_ok=True)
    for name, procs in groups.items():
        (folder / name).mkdir(parents=True)
        (folder / name / "cgroup.procs").write_text(procs)
    return folder


def _roots(monkeypatch: pytest.MonkeyPatch, *roots: tuple[Path, str]) -> None:
    monkeypatch.setattr(cgroups, "_ROOTS", [[cgroups._Root(p, frozenset({c}), v2=False) for p, c in roots]])
    monkeypatch.setattr(cgroups, "_PENDING", {})


def test_the_folder_of_an_ended_engine_is_swept_while_the_lock_is_held(tmp_path: Path) -> None:
    """``available()`` holds the lock while ``_make`` removes ended engines' folders, and that sweep takes it
    too: with a plain lock the engine's first sandbox waited forever."""
    ended = _engine_folder(tmp_path, 2**22 + 7, {"sandbox-old": ""})  # above pid_max: no such process
    made: list[Path | None] = []

    def find() -> None:
        with cgroups._LOCK:
            made.append(cgroups._make(tmp_path, v2=False))

    thread = threading.Thread(target=find, daemon=True)
    thread.start()
    thread.join(timeout=30)
    assert not thread.is_alive(), "sweeping an ended engine's folder deadlocked"
    assert made and made[0] is not None and made[0].name.startswith("twinengine-")
    assert not (ended / "sandbox-old").exists()


def test_a_cgroup_not_yet_entered_is_kept_and_an_ended_one_removed(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    root = _engine_folder(tmp_path, 1, {"sandbox-ended": "", "sandbox-busy": "4242\n"})
    _roots(monkeypatch, (root, "pids"))
    group = cgroups.make(processes=8)
    fresh = group.folders[0][0]
    assert fresh.parent == root and fresh.name.startswith("sandbox-")
    assert (fresh / "pids.max").read_text() == "8"
    (fresh / "cgroup.procs").write_text("")  # a real cgroup lists no process until the shell writes its pid
    cgroups.release()
    assert fresh.exists(), "a cgroup made for a sandbox about to start was swept before it was entered"
    assert (root / "sandbox-busy").exists() and not (root / "sandbox-ended").exists()


def test_a_sweep_between_making_a_cgroup_and_setting_its_limit_keeps_it(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Four ensemble members start sandboxes at once: another thread's sweep may list the new, still empty
    cgroup before ``make`` is done with it; it must already count as pending then (it was removed, and the
    member's shell failed to enter it)."""
    root = _engine_folder(tmp_path, 1, {})
    _roots(monkeypatch, (root, "pids"))
    write_text = Path.write_text

    def limit_then_sweep(self: Path, data: str, *args: object, **kwargs: object) -> int:
        written = write_text(self, data)
        if self.name == "pids.max":
            write_text(self.parent / "cgroup.procs", "")  # a real cgroup lists no process yet
            cgroups._sweep(root)  # what another thread's make or release may do at this moment
        return written

    monkeypatch.setattr(Path, "write_text", limit_then_sweep)
    group = cgroups.make(processes=8)
    assert group.folders, "the cgroup was lost while being made"
    assert group.folders[0][0].exists(), "a cgroup made for a sandbox about to start was swept before it was entered"


def test_a_sandbox_enters_its_pids_and_its_memory_cgroup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """cgroup v1 keeps pids and memory in hierarchies of their own: the worker's shell writes its pid into
    both before it becomes the worker, and a sweep of one hierarchy after the shell entered the other keeps the
    folder it has yet to enter (the two are pending apart)."""
    pids_root = _engine_folder(tmp_path / "pids", 1, {})
    memory_root = _engine_folder(tmp_path / "memory", 1, {})
    _roots(monkeypatch, (pids_root, "pids"), (memory_root, "memory"))
    group = cgroups.make(processes=16, memory_bytes=64 << 20)
    assert group.bounds_memory and [f.parent for f, _ in group.folders] == [pids_root, memory_root]
    memory = group.folders[1][0]
    assert (memory / "memory.limit_in_bytes").read_text() == str(64 << 20)
    assert (memory / "memory.memsw.limit_in_bytes").read_text() == str(64 << 20)
    for folder, _ in group.folders:
        (folder / "cgroup.procs").write_text("")
    (group.folders[0][0] / "cgroup.procs").write_text("4242\n")  # entered the pids hierarchy only, so far
    cgroups.release()
    assert memory.exists(), "the memory cgroup was swept while the shell was entering the pids one"
    ran = subprocess.run([*group.command(["/bin/sh", "-c", "echo $$"])], capture_output=True, text=True, check=True)
    pid = ran.stdout.strip()
    assert [(f / "cgroup.procs").read_text().strip() for f, _ in group.folders] == [pid, pid]
    (memory / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n")
    assert group.oom_kills() == 2


def test_without_a_cgroup_the_worker_starts_as_it_is(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cgroups, "_ROOTS", [[]])
    group = cgroups.make(processes=8, memory_bytes=1 << 30)
    assert group.command(["true"]) == ["true"] and not group.bounds_memory and group.oom_kills() == 0
