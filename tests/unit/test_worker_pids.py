"""The per-sandbox pids cgroups: folders of ended engines are swept without a deadlock, and a cgroup made for a
sandbox whose shell has not entered it yet is never swept away under it (both races met under load)."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import pytest

from twinengine.workers import pids


@pytest.fixture(autouse=True)
def cgroup_rmdir(monkeypatch: pytest.MonkeyPatch) -> None:
    """A plain folder stands in for the cgroup file system (the real one is the host's and is tested in
    tests/integration/test_workers_bounds.py): there, rmdir removes a cgroup with its control files."""
    monkeypatch.setattr(Path, "rmdir", lambda self: shutil.rmtree(self))


def _engine_folder(parent: Path, pid: int, groups: dict[str, str]) -> Path:
    folder = parent / f"twinengine-{pid}"
    for name, procs in groups.items():
        (folder / name).mkdir(parents=True)
        (folder / name / "cgroup.procs").write_text(procs)
    return folder


def test_the_folder_of_an_ended_engine_is_swept_while_the_lock_is_held(tmp_path: Path) -> None:
    """``available()`` holds the lock while ``_make`` removes ended engines' folders, and that sweep takes it
    too: with a plain lock the engine's first sandbox waited forever."""
    ended = _engine_folder(tmp_path, 2**22 + 7, {"sandbox-old": ""})  # above pid_max: no such process
    made: list[Path | None] = []

    def find() -> None:
        with pids._LOCK:
            made.append(pids._make(tmp_path, v2=False))

    thread = threading.Thread(target=find, daemon=True)
    thread.start()
    thread.join(timeout=30)
    assert not thread.is_alive(), "sweeping an ended engine's folder deadlocked"
    assert made and made[0] is not None and made[0].name.startswith("twinengine-")
    assert not (ended / "sandbox-old").exists()


def test_a_cgroup_not_yet_entered_is_kept_and_an_ended_one_removed(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    root = _engine_folder(tmp_path, 1, {"sandbox-ended": "", "sandbox-busy": "4242\n"})
    monkeypatch.setattr(pids, "_ROOT", [root])
    monkeypatch.setattr(pids, "_PENDING", {})
    argv = pids.enter_command(["true"], processes=8)
    fresh = Path(argv[3]).parent  # /bin/sh -c SCRIPT <cgroup.procs> true
    assert fresh.parent == root and fresh.name.startswith("sandbox-")
    (fresh / "cgroup.procs").write_text("")  # a real cgroup lists no process until the shell writes its pid
    pids.release()
    assert fresh.exists(), "a cgroup made for a sandbox about to start was swept before it was entered"
    assert (root / "sandbox-busy").exists() and not (root / "sandbox-ended").exists()


def test_a_sweep_between_making_a_cgroup_and_setting_its_limit_keeps_it(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Four ensemble members start sandboxes at once: another thread's sweep may list the new, still empty
    cgroup before ``enter_command`` is done with it; it must already count as pending then (it was removed,
    and the member's shell failed to enter it)."""
    root = _engine_folder(tmp_path, 1, {})
    monkeypatch.setattr(pids, "_ROOT", [root])
    monkeypatch.setattr(pids, "_PENDING", {})
    write_text = Path.write_text

    def limit_then_sweep(self: Path, data: str, *args: object, **kwargs: object) -> int:
        written = write_text(self, data)
        if self.name == "pids.max":
            write_text(self.parent / "cgroup.procs", "")  # a real cgroup lists no process yet
            pids._sweep(root)  # what another thread's enter_command or release may do at this moment
        return written

    monkeypatch.setattr(Path, "write_text", limit_then_sweep)
    argv = pids.enter_command(["true"], processes=8)
    assert argv[0] == "/bin/sh", "the cgroup was lost while being made"
    assert Path(argv[3]).parent.exists(), "a cgroup made for a sandbox about to start was swept before it was entered"
