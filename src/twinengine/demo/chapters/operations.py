"""The operations chapter: what a provider hosting the engine relies on, on the demo's own engine: the release it
runs (as ``/health`` and the OpenAPI document say it), its readiness, and a backup taken while it serves, checked
against its manifest file by file and row by row, then removed. The image, compose file and Helm chart that run
the same engine elsewhere are in deploy/ (docs/deploy.md: upgrades, restore on another host, sizing)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import httpx2 as httpx

from twinengine.demo.context import DemoContext

__all__ = ["backup_while_serving"]


def backup_while_serving(ctx: DemoContext) -> None:
    from twinengine.backup.service import backup, verify

    admin = ctx.client("admin")
    health = admin.health()
    ready = httpx.get(f"{ctx.url}/health/ready", timeout=60).json()  # no token: what a readiness probe asks
    folder = Path(tempfile.mkdtemp(prefix="twin-demo-backup-"))
    try:
        report = backup(ctx.runtime.settings, folder / "backup")
        verify(report.folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    version, tables, files = health.get("version"), len(report.manifest.tables), len(report.manifest.files)
    said = "ready for traffic" if ready.get("status") == "ready" else f"not ready ({ready.get('status')})"
    ctx.say(f"release {version}, {said} (/health/ready); a backup taken while serving: {report.rows} rows of "
            f"{tables} tables and {files} files ({report.bytes / 1e6:.1f} MB) in {report.seconds:.1f} s, verified "
            "against its checksums, then removed")
    ctx.facts["operations"] = {"version": version, "ready": ready.get("status"), "rows": report.rows, "files": files,
                               "seconds": round(report.seconds, 2)}
    ctx.summary.append(("operations", f"release {version}, {said}; backup of {report.rows} rows and {files} files in "
                                      f"{report.seconds:.1f} s while serving, verified (`twin admin backup`; deploy/: "
                                      "image, compose, chart)"))
