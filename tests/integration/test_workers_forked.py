"""Workers forked from a warm image (``workers/zygote.py``) against workers started fresh, side by side: a worker
finds nothing of a neighbour of the same image nor of the worker before it (scratch folder, memory, descriptors,
processes, shared memory, sockets), whichever kind it is; images are kept least recently used, a dead one is
started again, and where forking is impossible workers start fresh, said in the log."""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import signal
import sys
from pathlib import Path
from typing import Any

import pytest

from helpers import need_sandbox
from sandbox_probe import NEIGHBOURS, nothing_found
from streams_fixtures import eventually
from twinengine.workers.images import UDF, WORKER
from twinengine.workers.process import Worker
from twinengine.workers.protocol import decode, pickled
from twinengine.workers.sandbox import Sandbox
from twinengine.workers.service import Workers
from twinengine.workers.zygote import ForkedProcess

KINDS = ("fresh", "forked")


@pytest.fixture(autouse=True)
def _bwrap() -> None:
    need_sandbox()


def workers_of(kind: str, tmp_path: Path, *, sandbox: str = "bwrap", images: int = 4) -> Workers:
    """Workers whose every worker starts fresh, or is forked from the warm image of its kind (from the first)."""
    (tmp_path / "scratch").mkdir(exist_ok=True)
    return Workers(sandbox=Sandbox(sandbox, hidden=[]), scratch_root=tmp_path / "scratch", timeout=60,  # type: ignore[arg-type]
                   memory_bytes=2 << 30, images=0 if kind == "fresh" else images, images_after=0)


def app(root: Path, name: str, files: dict[str, str]) -> Path:
    folder = root / name
    package = folder / name.replace("-", "_")
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    for path, text in files.items():
        (folder / path).write_text(text)
    return folder


def call(worker: Worker, function: str, **arguments: Any) -> Any:
    reply, blobs = worker.request({"op": "process", "function": function}, [pickled(arguments)], timeout=60)
    return decode(reply.get("value"), blobs)


@pytest.mark.parametrize("kind", KINDS)
def test_a_worker_finds_nothing_of_its_neighbour_nor_of_the_worker_before_it(kind: str, tmp_path: Path) -> None:
    code = app(tmp_path, "probe-app", {"probe_app/procs.py": NEIGHBOURS})
    workers = workers_of(kind, tmp_path)
    prefix, secret = f"mark-{secrets.token_hex(8)}-", secrets.token_hex(16)
    digest = hashlib.sha256((prefix + secret).encode()).hexdigest()
    key = secrets.randbelow(1 << 30) + 1

    def start() -> Worker:
        return workers.start(label="probe-app", code=code, env=None, preload=WORKER)

    try:
        first = start()
        left = call(first, "probe_app.procs:leave", prefix=prefix, secret=secret, key=key)
        assert left["shm"] and left["port"]
        look = {"prefix": prefix, "digest": digest, "key": key, "port": left["port"], "scratch": left["scratch"]}
        itself = nothing_found(call(first, "probe_app.procs:look", **look))  # the probe finds what is there
        assert {"module", "environ", "shm", "abstract_socket", "loopback", "memory"} <= set(itself), itself
        neighbour = start()  # running beside the first, another twin's
        assert nothing_found(call(neighbour, "probe_app.procs:look", **look)) == {}
        first.close()
        after = start()  # the next worker, once the first has ended
        assert nothing_found(call(after, "probe_app.procs:look", **look)) == {}
        forked = [isinstance(w.process, ForkedProcess) for w in (first, neighbour, after)]
        assert forked == [kind == "forked"] * 3
        if kind == "forked":
            assert first.image is neighbour.image is after.image is not None  # one image forked all three
            assert call(after, "probe_app.procs:look", **look)["traced_init"] is False  # not even its own init
        neighbour.close()
        after.close()
    finally:
        workers.close()


@pytest.mark.parametrize("kind", KINDS)
def test_a_worker_is_nobody_without_capabilities_in_a_pid_namespace_of_its_own(kind: str, tmp_path: Path) -> None:
    workers = workers_of(kind, tmp_path)
    try:
        workers.start(label="first").close()  # the image's first worker was forked ahead; this one too
        worker = workers.start(label="udf")
        try:
            who = worker.request({"op": "hello"}, timeout=30)[0]
            assert who["uid"] == 65534 and int(who["capabilities"], 16) == 0 and who["pid"] == 2
            udf = "def udf(data, context):\n    import os\n    return sorted(os.listdir('/proc'))\n"
            seen = workers.run_udf(None, udf, None, timeout=60, memory_bytes=1 << 30)
            assert [p for p in seen if p.isdigit()] == ["1", "2"]  # its init and itself
        finally:
            worker.close()
    finally:
        workers.close()


def test_images_are_kept_least_recently_used_and_a_dead_one_is_started_again(tmp_path: Path,
                                                                           caplog: pytest.LogCaptureFixture) -> None:
    code = app(tmp_path, "lru-app", {"lru_app/procs.py": "def twice(x):\n    return 2 * x\n"})
    workers = workers_of("forked", tmp_path, images=1)
    try:
        udf = workers.start(label="udf", preload=UDF)
        udf_image = udf.image
        assert udf_image is not None
        worker = workers.start(label="lru-app", code=code, env=None, preload=WORKER)  # the UDFs' image retires
        assert worker.image is not udf_image and workers.images.warm() == [worker.image]
        assert udf.request({"op": "hello"}, timeout=30)[0]["uid"] == 65534  # a retired image's worker goes on
        assert not udf_image.alive and udf_image.process.poll() is None  # it forks no more, and lives on
        udf.close()
        eventually(lambda: udf_image.process.poll() is not None, timeout=60)  # until its last worker ended
        assert call(worker, "lru_app.procs:twice", x=21) == 42
        image = worker.image
        assert image is not None
        os.killpg(image.process.pid, signal.SIGKILL)  # the image dies, its workers with it
        eventually(lambda: not image.alive, timeout=60)
        with caplog.at_level(logging.WARNING, logger="twinengine.workers"):
            again = workers.start(label="lru-app", code=code, env=None, preload=WORKER)
        assert "the warm image of lru-app ended; it is started again" in caplog.text
        assert again.image is not None and again.image is not image
        assert call(again, "lru_app.procs:twice", x=4) == 8
        again.close()
        worker.close()
    finally:
        workers.close()


def test_where_forking_is_impossible_workers_start_fresh_and_the_log_says_why(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    unsandboxed = workers_of("forked", tmp_path, sandbox="none")
    try:
        with caplog.at_level(logging.INFO, logger="twinengine.workers"):
            for _ in range(2):
                unsandboxed.start(label="none").close()
        assert caplog.text.count("workers start fresh, without a warm image: forking one needs bubblewrap") == 1
    finally:
        unsandboxed.close()
    caplog.clear()
    workers = workers_of("forked", tmp_path)
    # an image that cannot start (its sandbox's command is one that ends at once): the workers start fresh, and
    # after three such images the engine stops trying
    monkeypatch.setattr(Sandbox, "image_command", lambda self, module, layout, scratches: (
        [sys.executable, "-c", "import sys; print('no image here', file=sys.stderr); sys.exit(3)"],
        {"PATH": "/usr/bin:/bin"}, str(layout.scratch)))
    try:
        with caplog.at_level(logging.WARNING, logger="twinengine.workers"):
            started = [workers.start(label="udf") for _ in range(4)]
        assert not any(isinstance(w.process, ForkedProcess) for w in started)
        assert caplog.text.count("the warm image of udf could not start") == 3 and "no image here" in caplog.text
        assert "warm images could not start 3 times: this engine starts every worker fresh" in caplog.text
        for worker in started:
            worker.close()
    finally:
        workers.close()


def test_a_module_the_app_provides_is_imported_from_the_app_never_by_the_image(tmp_path: Path) -> None:
    """The image preloads only the engine's own packages: a module of the same name in the app's folder is left
    to the worker, which imports the app's (as a fresh worker does), and the image never runs it."""
    marker = tmp_path / "imported-by-the-image"
    code = app(tmp_path, "shadow-app", {
        "colorsys.py": f"import os\nif os.getpid() != 2:\n    open({str(marker)!r}, 'w').close()\nWHOSE = 'the app'\n",
        "shadow_app/procs.py": "def whose():\n    import colorsys\n    return colorsys.WHOSE\n"})
    workers = workers_of("forked", tmp_path)
    try:
        worker = workers.start(label="shadow-app", code=code, env=None, preload=(*WORKER, "colorsys"))
        assert worker.image is not None and "colorsys" in worker.image.skipped
        assert call(worker, "shadow_app.procs:whose") == "the app"
        assert not marker.exists()
        worker.close()
    finally:
        workers.close()


def test_a_forked_workers_cpu_is_its_own_not_its_images(tmp_path: Path) -> None:
    """The CPU charged for a forked worker is what its own processes used: not the image's preloading."""
    from twinengine.workers.cpu import tree_cpu_seconds

    workers = workers_of("forked", tmp_path)
    spent: list[float] = []
    try:
        spin = ("def udf(data, context):\n    import time\n    end = time.process_time() + data\n"
                "    while time.process_time() < end:\n        pass\n    return data\n")
        assert workers.run_udf(0.3, spin, None, timeout=60, memory_bytes=1 << 30, cpu=spent.append) == 0.3
        image = workers.images.warm()[0]
        assert 0.2 <= spent[0] < tree_cpu_seconds(image.host_pid)  # (ticks of 10 ms) xarray's import is the image's
    finally:
        workers.close()


def test_an_engine_stopping_leaves_no_image_behind(tmp_path: Path) -> None:
    workers = workers_of("forked", tmp_path)
    worker = workers.start(label="udf")
    image = worker.image
    assert image is not None
    workers.close()
    assert not image.alive and image.process.poll() is not None
    assert not image.root.exists()
    eventually(lambda: not worker.alive, timeout=60)  # forked from it: stopped with it
    worker.close()
