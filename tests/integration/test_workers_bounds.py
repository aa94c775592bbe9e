"""A sandbox is bounded as a whole, not per process: its root is read-only (nothing written there can fill
the machine's memory), /dev/shm has a size, a file in the scratch folder has a largest size, and the sandbox's
processes and threads have a cap. A UDF that tries each fails, and the engine answers the next one."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from helpers import Engine, need_sandbox
from twinengine.config import Settings
from twinengine.workers import pids
from twinengine.workers.sandbox import Limits


@pytest.fixture(autouse=True)
def _bwrap() -> None:
    need_sandbox()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data")


FILL = '''
import os
import resource
import time


def attempt(action):
    try:
        return action()
    except OSError as exc:
        return exc.strerror


def write(path, size):
    with open(path, "wb") as fh:
        for _ in range(size >> 20):
            fh.write(b"x" * (1 << 20))
    return "written"


def forks(count):
    children = []
    try:
        for _ in range(count):
            pid = os.fork()
            if pid == 0:
                time.sleep(10)
                os._exit(0)
            children.append(pid)
        return len(children)
    except OSError as exc:
        return exc.strerror
    finally:
        for pid in children:
            os.kill(pid, 9)
            os.waitpid(pid, 0)


def udf(data, context):
    mib = 1 << 20
    seen = {name: attempt(lambda: write(path, size)) for name, path, size in (
        ("root", "/filler", mib), ("etc", "/etc/filler", mib), ("twin", "/twin/filler", mib),
        ("shm", "/dev/shm/f", 16 * mib), ("scratch", "/twin/scratch/f", 16 * mib), ("tmp", "/tmp/f", mib))}
    return seen | {"forks": forks(100), "nproc": resource.getrlimit(resource.RLIMIT_NPROC)[0]}
'''


def test_a_udf_cannot_fill_the_machine_and_the_engine_answers_the_next(engine: Engine) -> None:
    engine.runtime.workers.sandbox.limits = Limits(processes=32, file_bytes=8 << 20, shm_bytes=4 << 20)
    user = engine.headers(engine.token("mallory", "user"))

    def run(code: str, data: Any) -> Any:
        graph = {"process_graph": {"udf": {"process_id": "run_udf", "result": True, "arguments": {
            "data": data, "udf": code, "runtime": "Python"}}}}
        answer = engine.http.post("/openeo/1.2/result", json={"process": graph}, headers=user)
        assert answer.status_code == 200, answer.text
        return json.loads(answer.text)

    seen = run(FILL, 1)
    assert seen["root"] == seen["etc"] == seen["twin"] == "Read-only file system"  # no RAM-backed root to fill
    assert seen["shm"] == "No space left on device"  # the one place in memory has its size
    assert seen["scratch"] == "File too large" and seen["tmp"] == "written"  # on disk, a file's size bounded
    assert seen["nproc"] == 32
    if os.geteuid() == 0 and pids.available() is None:  # RLIMIT_NPROC never binds the host's root
        print("the process cap is set (RLIMIT_NPROC 32) but not applied: root, and no pids cgroup here")
    else:
        assert seen["forks"] == "Resource temporarily unavailable", seen["forks"]
    assert engine.http.get("/health").status_code == 200
    assert run("def udf(data, context):\n    return data + 1\n", 41) == 42


BOMB = """
import os
import time


def udf(data, context):
    children = []
    try:
        for _ in range(data):  # a fork bomb, bounded here so that an uncapped engine is not hurt
            pid = os.fork()
            if pid == 0:
                time.sleep(30)
                os._exit(0)
            children.append(pid)
    finally:
        for pid in children:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
    return len(children)
"""


def test_a_fork_bomb_meets_the_cap_as_root_too_and_the_error_names_it(engine: Engine) -> None:
    """Root is the case RLIMIT_NPROC misses (CI and containers run engines as root): a pids cgroup per
    sandbox holds there."""
    if os.geteuid() == 0 and pids.available() is None:
        pytest.skip("this host lets a root engine make no pids cgroup (see docs/access.md)")
    engine.runtime.workers.sandbox.limits = Limits(processes=32)
    user = engine.headers(engine.token("mallory", "user"))
    graph = {"process_graph": {"udf": {"process_id": "run_udf", "result": True, "arguments": {
        "data": 400, "udf": BOMB, "runtime": "Python"}}}}
    answer = engine.http.post("/openeo/1.2/result", json={"process": graph}, headers=user)
    assert 400 <= answer.status_code < 500, answer.text
    assert "Resource temporarily unavailable" in answer.text and "worker_processes" in answer.text, answer.text
    assert "capped at 32" in answer.text
    assert engine.http.get("/health").status_code == 200
    graph["process_graph"]["udf"]["arguments"] = {"data": 41, "udf": "def udf(data, context):\n    return data + 1\n",
                                                 "runtime": "Python"}
    again = engine.http.post("/openeo/1.2/result", json={"process": graph}, headers=user)
    assert again.status_code == 200 and json.loads(again.text) == 42, again.text
