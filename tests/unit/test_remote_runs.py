"""What another engine answers is not trusted: a result it names with a path is refused before anything is
written, and a result whose bytes do not match the checksum it gave fails the run. The other engine is a
stand-in here (its answers crafted); tests/integration/test_engine_sites.py runs two real engines."""

from __future__ import annotations

import hashlib
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from twinengine.errors import ProcessFailed
from twinengine.workflows.remote_runs import run_remotely
from twinengine.workflows.results import LocalResultStore


class HostileEngine:
    """Another engine's answers, as crafted: the run finished with ``assets``, whose bytes are ``content``."""

    address = "http://partner.example"

    def __init__(self, assets: list[dict[str, Any]], content: bytes = b"{}") -> None:
        self.content, self.downloads = content, 0
        run = SimpleNamespace(id="run-there", created_at=None, status="finished", progress=100.0, error=None,
                              assets=assets)
        self.workflows = SimpleNamespace(submit=lambda *a, **k: run, get=lambda _id: run, cancel=lambda _id: run,
                                         download=self._download)
        self.transport = SimpleNamespace()  # its usage cannot be read: nothing is charged from it

    def _download(self, _run: str, _name: str, dest: Path) -> Path:
        self.downloads += 1
        dest.write_bytes(self.content)
        return dest


def _run(tmp_path: Path, remote: HostileEngine) -> SimpleNamespace:
    ctx = SimpleNamespace(run_id="run-here", results=LocalResultStore(tmp_path / "results"), assets=[])
    run_remotely(remote, ctx, site="partner", process={"process_graph": {}}, parameters={}, options={},  # type: ignore[arg-type]
                 log_line=lambda *_: None, progress=lambda *_: None, check=lambda: None,
                 charge=lambda *_: None, note=lambda _: None)
    return ctx


@pytest.mark.parametrize("name", ["../../escape.json", "/etc/passwd", ".hidden", "a/b.json", ""])
def test_a_result_named_as_a_path_is_refused_before_anything_is_written(tmp_path: Path, name: str) -> None:
    remote = HostileEngine([{"name": name, "sha256": "0" * 64, "type": "application/json", "format": "JSON"}])
    with pytest.raises(ProcessFailed, match="not a file name"):
        _run(tmp_path, remote)
    assert remote.downloads == 0
    assert not (tmp_path / "escape.json").exists()


def test_a_result_that_does_not_match_its_checksum_fails_the_run(tmp_path: Path) -> None:
    remote = HostileEngine([{"name": "result.json", "sha256": hashlib.sha256(b"[1]").hexdigest(),
                             "type": "application/json", "format": "JSON"}], content=b"[2]")
    with pytest.raises(ProcessFailed, match="does not match its checksum"):
        _run(tmp_path, remote)
    honest = HostileEngine([{"name": "result.json", "sha256": hashlib.sha256(b"[2]").hexdigest(),
                             "type": "application/json", "format": "JSON"}], content=b"[2]")
    kept = _run(tmp_path / "b", honest)
    assert [a.name for a in kept.assets] == ["result.json"]
