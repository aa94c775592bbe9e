"""``run_udf`` isolation without an engine: real sandboxed workers with memory and time limits, output kept
to its tail, and nothing a UDF starts survives it."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest

from twinengine.errors import ProcessFailed
from twinengine.workflows.udf import run_udf_process


def test_a_result_comes_back() -> None:
    code = "def udf(data, context):\n    return data * context['k']\n"
    out = run_udf_process(np.arange(3.0), code, {"k": 2}, timeout=60, memory_bytes=2 << 30)
    np.testing.assert_array_equal(out, [0.0, 2.0, 4.0])


def test_memory_beyond_the_limit_fails_the_udf() -> None:
    code = "def udf(data, context):\n    block = bytearray(3 << 30)\n    return len(block)\n"
    with pytest.raises(ProcessFailed, match="MemoryError"):
        run_udf_process(None, code, None, timeout=60, memory_bytes=1 << 30)


def test_only_the_tail_of_a_flood_of_output_is_kept() -> None:
    code = "def udf(data, context):\n    print('x' * (20 << 20))\n    raise ValueError('the end')\n"
    with pytest.raises(ProcessFailed) as info:
        run_udf_process(None, code, None, timeout=60, memory_bytes=2 << 30)
    assert "ValueError: the end" in info.value.message and len(info.value.message) < 1000


def _running(marker: str) -> bool:
    """Is a process whose command line holds ``marker`` alive on this machine (zombies are dead)?"""
    for proc in Path("/proc").iterdir():
        try:
            if marker in (proc / "cmdline").read_bytes().decode(errors="replace") and \
                    (proc / "stat").read_text().split(")")[-1].split()[0] != "Z":
                return True
        except (OSError, IndexError):
            continue
    return False


def test_what_a_udf_starts_does_not_outlive_it() -> None:
    marker = f"{1000 + os.getpid() % 1000}.{time.monotonic_ns() % 10**6}"  # a sleep no one else runs
    code = ("import subprocess, time\ndef udf(data, context):\n"
            f"    subprocess.Popen(['sleep', '{marker}'])\n    time.sleep(0.2)\n    return 1\n")
    assert run_udf_process(None, code, None, timeout=60, memory_bytes=2 << 30) == 1
    for _ in range(100):  # the kill is sent before run_udf_process returns; the reaper may lag
        if not _running(marker):
            break
        time.sleep(0.05)
    assert not _running(marker)
