"""A worker's CPU read from /proc, outside it: a process and what it forks, whatever it says of itself."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from twinengine.workers import cpu
from twinengine.workers.cpu import tree_cpu_seconds

SPIN = """
import os, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time\\ns = time.process_time()\\n"
                          "while time.process_time() - s < 0.6: pass\\ntime.sleep(30)"])
start = time.process_time()
while time.process_time() - start < 0.4:
    pass
print("spun", flush=True)
time.process_time = lambda: 0.0  # what code inside says of itself does not change the kernel's figures
child.wait()
"""


def test_a_process_tree_is_read_whole_from_outside() -> None:
    process = subprocess.Popen([sys.executable, "-c", SPIN], stdout=subprocess.PIPE, text=True,
                               start_new_session=True)  # its child goes with it (killpg)
    try:
        assert process.stdout is not None and process.stdout.readline().strip() == "spun"
        spent = 0.0
        for _ in range(100):  # the child spins 0.6 s; read until both have
            spent = tree_cpu_seconds(process.pid)
            if spent >= 0.9:
                break
            subprocess.run(["sleep", "0.1"], check=True)
        assert spent >= 0.9  # 0.4 s of its own and 0.6 s of the child it has not reaped
        assert tree_cpu_seconds(process.pid) < 30  # the sleeping child adds nothing
        # read through the threads' children files, the figure every process's stat gives (the child may
        # still be spinning between the two readings)
        assert tree_cpu_seconds(process.pid) == pytest.approx(cpu._scanned_tree_cpu_seconds(process.pid), abs=0.1)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def test_no_such_process_has_spent_nothing() -> None:
    assert tree_cpu_seconds(2**22 + 12345) == 0.0


def test_without_children_files_every_process_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    real_exists = os.path.exists
    monkeypatch.setattr(cpu.os, "listdir", lambda path: (_ for _ in ()).throw(FileNotFoundError(path)))
    monkeypatch.setattr(cpu.os.path, "exists", lambda path: False if str(path).endswith("/children")
                        else real_exists(path))
    assert tree_cpu_seconds(os.getpid()) == pytest.approx(cpu._scanned_tree_cpu_seconds(os.getpid()), abs=0.05)
    assert tree_cpu_seconds(os.getpid()) > 0


def test_a_tree_read_often_is_walked_once_a_rescan_and_read_the_same() -> None:
    process = subprocess.Popen([sys.executable, "-c", SPIN], stdout=subprocess.PIPE, text=True,
                               start_new_session=True)
    try:
        assert process.stdout is not None and process.stdout.readline().strip() == "spun"
        reader = cpu.TreeCpu(process.pid, rescan=3600.0)
        first = reader.seconds()
        assert len(reader._parents) == 2  # the process and the child it spins in, found by the first walk
        subprocess.run(["sleep", "0.7"], check=True)  # the child spins on (0.6 s in all)
        later = reader.seconds()  # the same two processes, read without a walk
        assert later >= first and later == pytest.approx(tree_cpu_seconds(process.pid), abs=0.1)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    assert reader.seconds() == 0.0  # both ended: nothing to read
