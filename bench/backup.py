"""``twin admin backup`` and ``twin admin restore`` timed against copying the same data dir, side by side:

- the demo's data dir (``twin demo`` run first, or ``--demo-data DIR`` made earlier);
- a data dir whose lake holds ``--lake-megabytes`` (default 1024) in 64 MB files, registered with checksums.

Baselines, measured in the same run on the same disk: ``cp -a`` of the data dir (the floor of any copy), and
``cp -a`` then SHA-256 of every copied byte (what a checked copy costs: a backup checksums each file as it copies
it, then checks the lake's registered checksums; a restore checks every file before it writes and again after).
Ratios above 1 are the price of the snapshot, the checksums and, for a restore, loading the rows.

Usage: python bench/backup.py [--lake-megabytes 1024] [--demo-data DIR] [--skip-demo]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from twinengine.auth.principal import SYSTEM
from twinengine.backup import backup, restore
from twinengine.config import Settings
from twinengine.lake import endpoints, uploads
from twinengine.lake.schemas import EndpointCreate
from twinengine.runtime import Runtime

CHUNK = 4 * 1024 * 1024
FILE_MB = 64


def copy_tree(source: Path, target: Path) -> float:
    started = time.perf_counter()
    subprocess.run(["cp", "-a", str(source), str(target)], check=True)
    subprocess.run(["sync", "-f", str(target)], check=True)
    return time.perf_counter() - started


def copy_and_hash(source: Path, target: Path) -> float:
    started = time.perf_counter()
    copy_tree(source, target)
    for path in target.rglob("*"):
        if path.is_file():
            digest = hashlib.sha256()
            with path.open("rb") as fh:
                while chunk := fh.read(CHUNK):
                    digest.update(chunk)
    return time.perf_counter() - started


def size_of(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def measure(name: str, data: Path, scratch: Path) -> None:
    """Backup and restore of ``data`` against the two copies, each twice, interleaved."""
    rows: dict[str, list[float]] = {"cp -a": [], "cp -a + sha256": [], "backup": [], "restore": []}
    for attempt in range(2):
        rows["cp -a"].append(copy_tree(data, scratch / f"cp-{attempt}"))
        rows["cp -a + sha256"].append(copy_and_hash(data, scratch / f"cph-{attempt}"))
        report = backup(Settings(data_dir=data), scratch / f"backup-{attempt}")
        rows["backup"].append(report.seconds)
        restored = restore(scratch / f"backup-{attempt}", Settings(data_dir=scratch / f"restored-{attempt}"))
        rows["restore"].append(restored.seconds)
        for folder in (f"cp-{attempt}", f"cph-{attempt}", f"restored-{attempt}"):
            shutil.rmtree(scratch / folder)
        if attempt == 0:
            rows_count, files = report.rows, len(report.manifest.files)
        shutil.rmtree(scratch / f"backup-{attempt}")
    size = size_of(data)
    floor = min(rows["cp -a"])
    print(f"\n{name}: {size / 1e6:,.1f} MB in the data dir, {rows_count:,} rows, {files:,} files "
          f"(load average {os.getloadavg()[0]:.1f})")
    for label, times in rows.items():
        best = min(times)
        print(f"  {label:16s} {best:7.2f} s  ({size / 1e6 / best:7.1f} MB/s)  {best / floor:5.2f}x cp -a  "
              f"{best / min(rows['cp -a + sha256']):5.2f}x cp -a + sha256")


def lake_data_dir(root: Path, megabytes: int) -> Path:
    data = root / "lake-engine"
    runtime = Runtime.from_settings(Settings(data_dir=data))
    runtime.start()
    try:
        with runtime.db.session() as session:
            endpoints.add_endpoint(session, runtime.lake, principal=SYSTEM, spec=EndpointCreate(
                name="home", protocol="file", location=str(data / "lake" / "home")))
        source = root / "source.bin"
        for n in range(max(1, megabytes // FILE_MB)):
            with source.open("wb") as fh:
                for _ in range(FILE_MB * 1024 * 1024 // CHUNK):
                    fh.write(os.urandom(CHUNK))
            uploads.upload_file(runtime.db, runtime.lake, principal=SYSTEM, path=source, did=f"bench:part-{n}.bin",
                                endpoint="home")
        source.unlink()
    finally:
        runtime.close()
    return data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lake-megabytes", type=int, default=1024)
    parser.add_argument("--demo-data", type=Path, default=None, help="a data dir `twin demo` made earlier")
    parser.add_argument("--skip-demo", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=os.environ.get("TWIN_BENCH_DIR")) as tmp:
        root = Path(tmp)
        if not args.skip_demo:
            demo = args.demo_data
            if demo is None:
                demo = root / "demo"
                started = time.perf_counter()
                subprocess.run([sys.executable, "-m", "twinengine.cli.main", "demo", "--data-dir", str(demo)],
                               check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                print(f"twin demo made its data dir in {time.perf_counter() - started:.0f} s")
            (root / "demo-runs").mkdir()
            measure("the demo's data", demo, root / "demo-runs")
        data = lake_data_dir(root, args.lake_megabytes)
        (root / "lake-runs").mkdir()
        measure(f"{args.lake_megabytes} MB of lake files", data, root / "lake-runs")


if __name__ == "__main__":
    main()
