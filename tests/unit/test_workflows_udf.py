"""``run_udf`` isolation without an engine: real child processes with memory and time limits, output kept
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


def _gone(pid: int) -> bool:
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text().split(")")[-1].split()[0] == "Z"  # a zombie waiting for its reaper is dead
    except FileNotFoundError:
        return True


def test_what_a_udf_starts_does_not_outlive_it(tmp_path: Path) -> None:
    code = ("import subprocess\ndef udf(data, context):\n"
            "    return subprocess.Popen(['sleep', '1000'], stdout=None).pid\n")
    pid = run_udf_process(None, code, None, timeout=60, memory_bytes=2 << 30)
    assert isinstance(pid, int) and pid != os.getpid()
    for _ in range(100):  # the kill is sent before run_udf_process returns; the reaper may lag
        if _gone(pid):
            break
        time.sleep(0.05)
    assert _gone(pid)
