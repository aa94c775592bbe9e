"""The sandbox app code gets on a compute site is never weaker than the engine's own: bubblewrap, unless the
engine itself runs app code unsandboxed (``none``; or an embedded engine whose ``auto`` found no working
bubblewrap, which then sends ``auto``: bubblewrap where the site has it, else unsandboxed there too)."""

from __future__ import annotations

import pytest

from twinengine.workers import sandbox
from twinengine.workers.sandbox import Sandbox, bwrap_works
from twinengine.workers.site import _on_sites


def test_a_site_sandboxes_as_the_engine_does(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sandbox, "_WARNED", set())  # what this says once is still said to the tests after it
    missing = "bwrap-not-installed-here"  # a bubblewrap command no PATH holds: as on a machine without it
    assert bwrap_works(missing) is not None
    assert _on_sites(Sandbox("bwrap", hidden=[], binary=missing)) == "bwrap"  # twin serve: never weaker
    assert _on_sites(Sandbox("none", hidden=[], binary=missing)) == "none"
    assert _on_sites(Sandbox("auto", hidden=[], binary=missing)) == "auto"  # the embedded engine ran it so
    if bwrap_works() is None:  # where bubblewrap works, an embedded engine's sites use it too
        assert _on_sites(Sandbox("auto", hidden=[])) == "bwrap"


def test_a_site_keeps_the_workers_of_the_app_versions_it_served_last(monkeypatch: pytest.MonkeyPatch) -> None:
    """The jobs of one app version that come to a Dask worker find its warm images there (their workers are
    forked from them, as the engine's are); the settings used least recently are let go of, their images
    retired (they fork no more)."""
    from twinengine.workers import site

    monkeypatch.setattr(site, "_KEPT", {})

    def spec(sha256: str) -> site.RemoteApp:
        return site.RemoteApp(sha256=sha256, label="app", code="/apps/x", env=None, cache=None, image=None,
                              sandbox="none", hidden=(), timeout=60.0, memory_bytes=1 << 30, processes=64,
                              file_bytes=1 << 30, shm_bytes=1 << 20, images=3)

    first = spec("a").workers()
    assert spec("a").workers() is first and first.images.capacity == 3  # the engine's setting, on the site too
    later = [spec(str(i)).workers() for i in range(site._KEEP)]
    assert first.images.capacity == 0 and list(site._KEPT.values()) == later  # retired: the oldest
    assert spec("a").workers() is not first


def test_a_process_the_engine_starts_for_itself_does_not_say_it_again(monkeypatch: pytest.MonkeyPatch,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """The engine says on stderr once that app code runs unsandboxed; a sync process it starts (a runtime of its
    own with the same settings) finds the same and logs it only: the demo printed it twice before."""
    monkeypatch.setattr(sandbox, "_WARNED", set())
    monkeypatch.setattr(sandbox, "_TO_STDERR", [True])
    missing = Sandbox("auto", hidden=[], binary="bwrap-not-installed-here")
    assert missing.effective() == "none"
    assert capsys.readouterr().err.count("WITHOUT a sandbox") == 1
    monkeypatch.setattr(sandbox, "_WARNED", set())  # as in a new process
    sandbox.said_by_engine()
    assert missing.effective() == "none"
    assert "WITHOUT a sandbox" not in capsys.readouterr().err

