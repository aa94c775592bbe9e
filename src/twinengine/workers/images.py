"""The warm images the engine keeps: fork servers (``workers/zygote.py``) per app version and kind of work (its
function calls, its models' training and serving, or UDFs), each with what that kind imports loaded once.

At most ``capacity`` images are kept (``warm_images``), the least recently used retired first (it forks no
more and ends with the last of its workers). An image is started on the ``after + 1``-th worker of its kind
(the first ones start fresh, as before: an engine that needs one worker of a kind pays for no image), a dead
one is started again, and where forking is impossible the workers start fresh, said once in the log: no
bubblewrap or ``TWIN_SANDBOX=none``, an app in a container image, or a host on which an image cannot start.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from twinengine.errors import SandboxUnavailable
from twinengine.workers.containers import find_runtime
from twinengine.workers.sandbox import Sandbox
from twinengine.workers.zygote import ImageFailed, Zygote

__all__ = ["FRAMEWORKS", "MODELS", "UDF", "WORKER", "ImageKey", "WarmImages", "model_preload"]

log = logging.getLogger("twinengine.workers")

# What an app's worker imports before it answers a function call: the engine's side of the protocol, the app
# SDK, the twin's state as the engine sends it (pydantic schemas, pyarrow: about 0.7 s of a fresh worker's CPU),
# and numpy
WORKER = ("twinengine.workers._child", "twinengine.workers.effects", "twinengine.app", "twinengine.app._context",
          "twinengine.twins.schemas", "numpy")
UDF = ("twinengine.workers._child", "numpy", "xarray")  # a UDF is handed a data cube
MODELS = ("twinengine.ml.task_host", "twinengine.ml.served")  # training and serving a model version
FRAMEWORKS = {"pytorch": ("torch",), "torch": ("torch",), "sklearn": ("sklearn",), "scikit-learn": ("sklearn",),
              "keras": ("keras",), "keras3": ("keras",), "tensorflow": ("tensorflow",)}
_FAILURES = 3  # images that could not start, one after another, before this engine stops trying


def model_preload(frameworks: Iterable[str]) -> tuple[str, ...]:
    """What a worker that trains or serves models of ``frameworks`` (a manifest's names) imports."""
    found: list[str] = [*WORKER, *MODELS]
    for name in frameworks:
        found += [m for m in FRAMEWORKS.get(name, ()) if m not in found]
    return tuple(found)


@dataclass(frozen=True)
class ImageKey:
    """What a warm image is for: the app version's folders (none for UDFs) and what it preloads."""

    code: str | None
    env: str | None
    cache: str | None
    preload: tuple[str, ...]


class WarmImages:
    def __init__(self, sandbox: Sandbox, scratch_root: Path, *, capacity: int, after: int = 1) -> None:
        self.sandbox, self.scratch_root, self.capacity, self.after = sandbox, scratch_root, capacity, after
        self._lock = threading.Lock()  # guards the dicts only; never held while an image starts
        self._images: OrderedDict[ImageKey, Zygote] = OrderedDict()
        self._uses: dict[ImageKey, int] = {}
        self._starting: dict[ImageKey, threading.Event] = {}
        self._failures = 0
        self._said: set[str] = set()
        self.started = 0  # images this engine started

    def image_for(self, *, code: Path | None, env: Path | None, cache: Path | None, preload: tuple[str, ...],
                  image: str | None, label: str) -> Zygote | None:
        """The warm image to fork the next worker of this kind from, started when it is due; None: start the
        worker fresh."""
        if self.capacity <= 0 or self._fresh_here(image):
            return None
        key = ImageKey(None if code is None else str(code), None if env is None else str(env),
                       None if cache is None else str(cache), preload)
        with self._lock:
            self._uses[key] = uses = self._uses.get(key, 0) + 1
            if uses <= self.after or self._failures >= _FAILURES:
                return None
            found = self._images.get(key)
            if found is not None and found.alive:
                self._images.move_to_end(key)
                return found
            if found is not None:
                del self._images[key]
            starting = self._starting.get(key)
            if starting is None:
                self._starting[key] = threading.Event()
        if found is not None:
            log.warning("the warm image of %s ended; it is started again", label)
            found.close()
        if starting is not None:  # another thread starts it: wait for it rather than start a second one
            starting.wait(150.0)
            with self._lock:
                return self._images.get(key)
        return self._start(key, label)

    def _start(self, key: ImageKey, label: str) -> Zygote | None:
        made: Zygote | None = None
        retired: list[Zygote] = []
        try:
            made = Zygote(self.sandbox, code=None if key.code is None else Path(key.code),
                          env=None if key.env is None else Path(key.env),
                          cache=None if key.cache is None else Path(key.cache), preload=key.preload,
                          scratch_root=self.scratch_root, label=label)
        except (ImageFailed, OSError) as exc:
            with self._lock:
                self._failures += 1
                stop = self._failures == _FAILURES
            log.warning("%s; its workers start fresh", exc)
            if stop:
                log.warning("warm images could not start %d times: this engine starts every worker fresh from "
                            "now on", _FAILURES)
        else:
            if made.skipped:
                log.info("the warm image of %s did not preload %s", label, made.skipped)
        finally:
            with self._lock:
                if made is not None:
                    self._failures = 0
                    self.started += 1
                    self._images[key] = made
                    while len(self._images) > self.capacity:  # the least recently used goes
                        retired.append(self._images.popitem(last=False)[1])
                self._starting.pop(key).set()
        for old in retired:
            old.close()
        return made

    def warm(self) -> list[Zygote]:
        with self._lock:
            return list(self._images.values())

    def discard(self, code: Path) -> None:
        """Retire the images of the app version whose code is ``code`` (it was replaced or removed)."""
        with self._lock:
            gone = [k for k in self._images if k.code == str(code)]
            images = [self._images.pop(k) for k in gone]
        for image in images:
            image.close()

    def retire(self) -> None:
        """Retire every image: they fork no more and end with their last workers; new workers start fresh."""
        with self._lock:
            images = list(self._images.values())
            self._images.clear()
            self.capacity = 0
        for image in images:
            image.close()

    def close(self) -> None:
        """Stop every image now (the engine stops: the workers forked from them stop with them)."""
        with self._lock:
            images = list(self._images.values())
            self._images.clear()
            self.capacity = 0
        for image in images:
            image.close(wait=True)

    def _fresh_here(self, image: str | None) -> bool:
        """Whether workers start fresh here whatever their kind (saying why, once)."""
        try:
            mode = self.sandbox.effective()
        except SandboxUnavailable:
            return True  # the fresh start says why it cannot run
        if mode != "bwrap":
            self._say("none", "workers start fresh, without a warm image: forking one needs bubblewrap, and app "
                              "and user code run unsandboxed here (TWIN_SANDBOX=none, or no working bwrap)")
            return True
        try:
            contained = image is not None and find_runtime(self.sandbox.containers) is not None
        except SandboxUnavailable:
            return True
        if contained:
            self._say(f"image:{image}", f"the workers of an app in the container image {image} start fresh in it, "
                                        "without a warm image")
            return True
        return False

    def _say(self, key: str, message: str) -> None:
        with self._lock:
            if key in self._said:
                return
            self._said.add(key)
        log.info("%s", message)
