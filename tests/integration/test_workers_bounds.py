"""A sandbox is bounded as a whole, not per process: its root is read-only (nothing written there can fill
the machine's memory), /dev/shm has a size, a file in the scratch folder has a largest size, the sandbox's
processes and threads have a cap, and what its processes hold in memory together has a limit (forks and
threads alike). A UDF that tries each fails, and the engine answers the next one, whether its worker started
fresh or was forked from a warm image."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from helpers import Engine, need_sandbox
from sandbox_probe import KINDS, workers_kind
from streams_fixtures import eventually
from twinengine.config import Settings
from twinengine.workers import cgroups, memory_watch
from twinengine.workers.cpu import tree_pids
from twinengine.workers.process import Worker, WorkerOutOfMemory
from twinengine.workers.protocol import pickled
from twinengine.workers.sandbox import Layout, Limits, Sandbox
from twinengine.workers.service import Workers
from twinengine.workers.zygote import Zygote

MiB = 1 << 20
LIMIT = 512 * MiB  # a sandbox's memory in this module: three children of 300 MiB each go over it together


@pytest.fixture(autouse=True)
def _bwrap() -> None:
    need_sandbox()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", udf_memory_bytes=LIMIT)


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest, engine: Engine) -> Iterator[str]:
    with workers_kind(engine, request.param) as chosen:
        yield chosen


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


def test_a_udf_cannot_fill_the_machine_and_the_engine_answers_the_next(engine: Engine, kind: str) -> None:
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
    if os.geteuid() == 0 and cgroups.available() is None:  # RLIMIT_NPROC never binds the host's root
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


def test_a_fork_bomb_meets_the_cap_as_root_too_and_the_error_names_it(engine: Engine, kind: str) -> None:
    """Root is the case RLIMIT_NPROC misses (CI and containers run engines as root): a pids cgroup per
    sandbox holds there."""
    if os.geteuid() == 0 and cgroups.available() is None:
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


FORKS = """
import os
import time


def udf(data, context):
    children = []
    for _ in range(3):  # each touches 300 MiB, 4 MiB at a time, and holds it: 900 MiB together
        pid = os.fork()
        if pid == 0:
            held = []
            for _ in range(75):
                held.append(b"x" * (4 << 20))
                time.sleep(0.01)
            time.sleep(3)
            os._exit(0)
        children.append(pid)
    return [os.waitpid(pid, 0)[1] for pid in children]
"""

THREADS = """
import threading
import time


def udf(data, context):
    held = []

    def touch():
        for _ in range(75):  # 300 MiB, 4 MiB at a time
            held.append(b"x" * (4 << 20))
            time.sleep(0.01)

    threads = [threading.Thread(target=touch) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    time.sleep(3)
    return len(held)
"""


def _sandboxes_bytes(images: list[Zygote]) -> int:
    """What the largest sandbox under this process holds (its tree's proportional set size; the engine's own
    processes not counted): the limit is each sandbox's own, and an image keeps its next worker forked ahead
    (a sandbox of its own) beside the one that runs. A worker forked from one of ``images`` counts on its own
    (not its image)."""
    held = [0]
    for image in images:
        for pid in image.worker_pids():
            held.append(memory_watch.tree_memory_bytes(pid))
    forking = {image.process.pid for image in images}
    for pid in set(tree_pids(os.getpid())) - forking:
        try:
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
            parent = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[1]
            parent_comm = Path(f"/proc/{parent}/comm").read_text().strip()
        except OSError:
            continue
        if comm == "bwrap" and parent_comm != "bwrap" and not forking & set(tree_pids(pid)):
            held.append(memory_watch.tree_memory_bytes(pid))  # (an image's own sandbox: its workers counted above)
    return max(held)


def _groups_bytes() -> int:
    """What the largest sandbox's memory cgroup holds now, as the kernel counts it (the bound it enforces).
    Not the tree's proportional set sizes: those count pages another group was charged for (the libraries'
    file pages, what a forked worker shares with its image), which the sandbox's limit rightly leaves out."""
    root = cgroups.available("memory")
    held = [0]
    for group in root.glob("sandbox-*") if root is not None else ():
        for name in ("memory.current", "memory.usage_in_bytes"):  # v2, v1
            try:
                held.append(int((group / name).read_text().split()[0]))
                break
            except (OSError, ValueError, IndexError):  # gone meanwhile, or the other version's file
                continue
    return max(held)


@contextmanager
def most_held(images: Callable[[], list[Zygote]] = list) -> Iterator[Callable[[], int]]:
    """The most one sandbox held at one look, looked at every 20 ms while the body runs: its memory cgroup's
    count where the host gives the engine one, else its tree's proportional set size (those forked from
    ``images()`` each on its own)."""
    peak, stop = [0], threading.Event()
    kernel = cgroups.available("memory") is not None

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], _groups_bytes() if kernel else _sandboxes_bytes(images()))
            stop.wait(0.02)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield lambda: peak[0]
    finally:
        stop.set()
        thread.join(timeout=30)


def test_forked_children_share_one_memory_limit_and_the_run_says_so(engine: Engine, kind: str) -> None:
    """Three children of a UDF touch 300 MiB each under a limit of 512 MiB: each alone is within its
    address-space limit, together they are not. The sandbox is stopped, the answer names the memory limit, the
    sandboxes never held more than the limit (the kernel's bound, where the host gives the engine a memory
    cgroup), and the engine answers the next UDF."""
    user = engine.headers(engine.token("mallory", "user"))

    def run(code: str, data: Any) -> Any:
        graph = {"process_graph": {"udf": {"process_id": "run_udf", "result": True, "arguments": {
            "data": data, "udf": code, "runtime": "Python"}}}}
        return engine.http.post("/openeo/1.2/result", json={"process": graph}, headers=user)

    with most_held(engine.runtime.workers.images.warm) as peak:
        answer = run(FORKS, 1)
    assert 400 <= answer.status_code < 500, answer.text
    assert "ran out of memory" in answer.text and f"udf_memory_bytes ({LIMIT} bytes)" in answer.text, answer.text
    if cgroups.available("memory") is not None:
        assert 256 * MiB <= peak() <= LIMIT + 32 * MiB, \
            f"the sandbox held {peak() / MiB:.0f} MiB under a limit of 512 MiB (a child alone holds 300)"
    else:
        print(f"no memory cgroup here: the watch stopped the tree at {peak() / MiB:.0f} MiB (a look every "
              f"{memory_watch.INTERVAL} s)")
    assert engine.http.get("/health").status_code == 200
    again = run("def udf(data, context):\n    return data + 1\n", 41)
    assert again.status_code == 200 and json.loads(again.text) == 42, again.text


def _udf(worker: Worker, code: str) -> Any:
    return worker.request({"op": "udf"}, [pickled({"data": 1, "code": code, "context": None})], timeout=120)


def test_threads_share_the_limit_where_no_address_space_limit_applies(tmp_path: Path) -> None:
    """An app's worker given the machine's GPUs has no address-space limit (CUDA would not start under one):
    its threads are bounded by the sandbox's limit all the same."""
    (tmp_path / "scratch").mkdir()
    worker = Worker(Sandbox("bwrap", hidden=[]), Layout(scratch=tmp_path / "scratch"), memory_bytes=0,
                    label="threads", tree_bytes=LIMIT)
    try:
        with most_held() as peak, pytest.raises(WorkerOutOfMemory) as failed:
            _udf(worker, THREADS)
        assert "memory limit of 536870912 bytes" in str(failed.value) and not worker.alive
        if cgroups.available("memory") is not None:
            assert peak() <= LIMIT + 32 * MiB, f"the sandbox held {peak() / MiB:.0f} MiB under a limit of 512 MiB"
    finally:
        worker.close()


@pytest.mark.parametrize("kind", KINDS)
def test_without_a_memory_cgroup_the_engine_stops_the_whole_tree(kind: str, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The fallback where the host allows no memory cgroup: the engine's watch sums the tree's memory and
    kills every process of it, forks included; the per-process limits still hold."""
    roots = [r for r in cgroups._roots() if "memory" not in r.controllers]
    monkeypatch.setattr(cgroups, "_ROOTS", [roots])
    workers = Workers(sandbox=Sandbox("bwrap", hidden=[]), scratch_root=tmp_path, timeout=120, memory_bytes=LIMIT,
                      images=0 if kind == "fresh" else 4, images_after=0)
    started = time.monotonic()
    try:
        with pytest.raises(WorkerOutOfMemory) as failed:
            workers.run_udf(1, FORKS, None, timeout=120, memory_bytes=LIMIT)
        assert "over the sandbox's memory limit of 536870912 bytes" in str(failed.value)
        assert time.monotonic() - started < 60, "the tree was left to run out its time"  # the children sleep 3 s
        images = workers.images.warm()
        assert len(images) == (kind == "forked")
        if images:  # the next worker, forked ahead, is all that is left of the image's
            eventually(lambda: len(images[0].worker_pids()) == 1, timeout=60)
    finally:
        workers.close()
    def sandboxes_left() -> list[int]:
        """This call's sandboxes: a sandbox's outer ``bwrap`` works in a folder under the scratch root given
        (an engine shared by the session's tests keeps warm sandboxes of its own in this process, which
        outlive this test by design)."""
        left = []
        for pid in tree_pids(os.getpid()):
            try:
                ours = Path(f"/proc/{pid}/comm").read_text().strip() == "bwrap" and \
                    Path(os.readlink(f"/proc/{pid}/cwd")).is_relative_to(tmp_path)
            except OSError:  # gone meanwhile
                continue
            if ours:
                left.append(pid)
        return left

    # stopped means gone soon after, not at the same instant: the kernel reaps a killed tree on its own time
    deadline = time.monotonic() + 15
    while sandboxes_left() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not sandboxes_left(), "a sandbox outlived its call"
