"""The lake's speed against baselines measured side by side in the same run (SQLite, local folders):

- upload with checksums (adler32 + sha256 while the bytes flow, temp file, fsync, rename, register) vs a raw
  read of the same file and vs hashlib + zlib alone over the same bytes (goal: ≥ 0.8 of the slower);
- endpoint-to-endpoint transfer (kernel copy, read-back with adler32 + sha256, fsync, rename) vs ``cp``, vs
  ``cp`` followed by ``sync`` of the file (the same durability) and vs hashing the file alone (the same
  verification): a verified copy cannot beat the slower of the two;
- a replication rule evaluated over 100,000 files (locks, transfers, replicas placed in one pass) vs reading
  the same rows the judge must read, and vs bulk-inserting the rows it must write.

Usage: python bench/lake_throughput.py [--megabytes 256] [--files 100000]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import tempfile
import time
import zlib
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import insert, select

from twinengine.auth.principal import SYSTEM
from twinengine.config import Settings
from twinengine.lake import dids, endpoints, rules, transfers, uploads
from twinengine.lake.checksums import Checksums
from twinengine.lake.models import Attachment, Did, Endpoint, Replica, RuleLock, Transfer
from twinengine.lake.schemas import DidType, EndpointCreate
from twinengine.runtime import Runtime
from twinengine.store.base import utcnow

CHUNK = 4 * 1024 * 1024


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def raw_read(path: Path) -> None:
    with open(path, "rb") as fh:
        while fh.read(CHUNK):
            pass


def write_alone(path: Path, target: Path) -> None:
    """The floor of any durable store: copy the bytes into a new file and fsync it (no checksums)."""
    target.unlink(missing_ok=True)
    with open(path, "rb") as src, open(target, "wb") as out:
        while chunk := src.read(CHUNK):
            out.write(chunk)
        out.flush()
        os.fsync(out.fileno())


def hash_alone(path: Path) -> tuple[str, int]:
    sha, adler = hashlib.sha256(), 1
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            sha.update(chunk)
            adler = zlib.adler32(chunk, adler)
    return sha.hexdigest(), adler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--megabytes", type=int, default=256)
    parser.add_argument("--files", type=int, default=100_000)
    args = parser.parse_args()
    size = args.megabytes * 1024 * 1024
    with tempfile.TemporaryDirectory(dir=os.environ.get("TWIN_BENCH_DIR")) as tmp:
        root = Path(tmp)
        runtime = Runtime.from_settings(Settings(data_dir=root / "engine"))
        runtime.start()
        try:
            with runtime.db.session() as session:
                for name in ("a", "b"):
                    endpoints.add_endpoint(session, runtime.lake, principal=SYSTEM, spec=EndpointCreate(
                        name=name, protocol="file", location=str(root / name), attributes={"tier": "1"}))
            source = root / "source.bin"
            with open(source, "wb") as fh:
                for _ in range(size // CHUNK):
                    fh.write(os.urandom(CHUNK))
            raw_read(source)  # warm the page cache: every contender reads from memory
            n = [0]

            def upload() -> None:
                n[0] += 1
                if n[0] > 1:  # keep one copy on disk, like write_alone, so page-cache pressure is the same
                    shutil.rmtree(root / "a" / "bench", ignore_errors=True)
                uploads.upload_file(runtime.db, runtime.lake, principal=SYSTEM, path=source,
                                    did=f"bench:up-{n[0]}.bin", endpoint="a")

            times: dict[str, list[float]] = {"read": [], "hash": [], "write": [], "upload": []}
            for _ in range(3):  # interleaved, so a busy neighbour slows every contender alike
                times["read"].append(timed(lambda: raw_read(source)))
                times["hash"].append(timed(lambda: hash_alone(source)))
                times["write"].append(timed(lambda: write_alone(source, root / "written.bin")))
                times["upload"].append(timed(upload))
            t_read, t_hash, t_write, t_upload = (min(times[k]) for k in ("read", "hash", "write", "upload"))
            mb = size / 1e6
            print(f"\nupload with checksums, {args.megabytes} MiB file (page-cached), best of 3 interleaved\n")
            print(f"{'':<44}{'MB/s':>10}")
            print(f"{'raw read of the file':<44}{mb / t_read:>10.0f}")
            print(f"{'hashlib sha256 + zlib adler32 alone':<44}{mb / t_hash:>10.0f}")
            print(f"{'write + fsync of a new file alone':<44}{mb / t_write:>10.0f}")
            print(f"{'lake upload (checksums, fsync, register)':<44}{mb / t_upload:>10.0f}")
            slower = max(t_read, t_hash)
            print(f"upload ÷ slower of read and hash: {slower / t_upload:.2f}  (goal ≥ 0.80)")
            print(f"upload ÷ slowest of read, hash and write+fsync: {max(slower, t_write) / t_upload:.2f}")

            with runtime.db.session() as session:
                a, b = endpoints.get_endpoint(session, "a"), endpoints.get_endpoint(session, "b")
                file = dids.get_did(session, f"bench:up-{n[0]}.bin")
                expected = Checksums(file.bytes or 0, file.adler32 or "", file.sha256 or "")
                path = session.scalar(select(Replica.path).where(Replica.did_id == file.id))
                session.expunge_all()
            assert path is not None
            src_file = root / "a" / path

            def lake_copy() -> None:
                (root / "b" / path).unlink(missing_ok=True)
                transfers.copy_file(runtime.lake, a, b, path, expected)

            def cp() -> None:
                (root / "cp.bin").unlink(missing_ok=True)
                subprocess.run(["cp", str(src_file), str(root / "cp.bin")], check=True)

            def cp_sync() -> None:
                cp()
                subprocess.run(["sync", str(root / "cp.bin")], check=True)

            rounds: dict[str, list[float]] = {"lake": [], "cp": [], "cp_sync": [], "hash": []}
            for _ in range(3):
                rounds["lake"].append(timed(lake_copy))
                rounds["cp"].append(timed(cp))
                rounds["cp_sync"].append(timed(cp_sync))
                rounds["hash"].append(timed(lambda: hash_alone(src_file)))
            t_copy, t_cp, t_cp_sync, t_vhash = (min(rounds[k]) for k in ("lake", "cp", "cp_sync", "hash"))
            print(f"\nendpoint-to-endpoint transfer, {args.megabytes} MiB, best of 3 interleaved\n")
            print(f"{'':<44}{'MB/s':>10}")
            print(f"{'cp':<44}{mb / t_cp:>10.0f}")
            print(f"{'cp + sync of the file':<44}{mb / t_cp_sync:>10.0f}")
            print(f"{'hashlib sha256 + zlib adler32 of the file':<44}{mb / t_vhash:>10.0f}")
            print(f"{'lake transfer (copy, fsync, verify both)':<44}{mb / t_copy:>10.0f}")
            print(f"lake ÷ cp: {t_cp / t_copy:.2f}   lake ÷ (cp + sync): {t_cp_sync / t_copy:.2f}   "
                  f"lake ÷ slower of (cp + sync) and hash: {max(t_cp_sync, t_vhash) / t_copy:.2f}")
            rule_bench(runtime, args.files)
        finally:
            runtime.close()
            shutil.rmtree(root / "a", ignore_errors=True)


def rule_bench(runtime: Runtime, count: int) -> None:
    """Register ``count`` files with a replica on endpoint a, then time one judge evaluation of a rule asking
    for 2 copies on ``tier=1`` (every file needs a lock, a replica row and a transfer to b)."""
    with runtime.db.session() as session:
        ep_a = session.scalar(select(Endpoint.id).where(Endpoint.name == "a"))
        dataset = dids.add_did(session, principal=SYSTEM, did="bench:many", type=DidType.DATASET)
        first = (session.scalar(select(Did.id).order_by(Did.id.desc()).limit(1)) or 0) + 1
        rows = [{"id": first + i, "scope": "bench", "name": f"many/{i:06d}", "type": "file", "bytes": 1,
                 "adler32": "00620062", "sha256": hashlib.sha256(str(i).encode()).hexdigest(), "meta": {},
                 "created_by": "bench"} for i in range(count)]
        session.execute(insert(Did), rows)
        session.execute(insert(Attachment), [{"parent_id": dataset.id, "child_id": r["id"]} for r in rows])
        session.execute(insert(Replica), [{"did_id": r["id"], "endpoint_id": ep_a, "state": "AVAILABLE",
                                           "path": f"bench/{r['name']}", "bytes": 1} for r in rows])
        rule = rules.add_rule(session, principal=SYSTEM, did="bench:many", copies=2, expression="tier=1")
        rule_id = rule.id

    def floor() -> None:
        with runtime.db.session(readonly=True) as session:
            ids = dids.file_ids_under(session, dids.get_did(session, "bench:many"))
            for start in range(0, len(ids), 2000):
                list(session.execute(select(Replica.did_id, Replica.endpoint_id, Replica.state)
                                     .where(Replica.did_id.in_(ids[start:start + 2000]))))

    def judge() -> None:
        with runtime.db.session() as session:
            rules.evaluate(session, session.get_one(rules.Rule, rule_id))

    t_floor = timed(floor)
    t_judge = timed(judge)
    with runtime.db.session(readonly=True) as session:
        evaluated = session.get_one(rules.Rule, rule_id)
        placed = (evaluated.locks_ok, evaluated.locks_replicating)
        ep_b = session.scalar(select(Endpoint.id).where(Endpoint.name == "b"))

    def write_floor() -> None:
        """The rows one pass must add for files that have one copy and need a second (a lock per copy, a
        replica row and a transfer per missing copy), bulk-inserted from Python as plain rows: another rule,
        destinations on a third endpoint, so nothing collides with what the judge wrote."""
        now = utcnow()
        with runtime.db.session() as session:
            ep_c = endpoints.add_endpoint(session, runtime.lake, principal=SYSTEM, spec=EndpointCreate(
                name="c", protocol="file", location=str(Path(tempfile.gettempdir()) / "c"))).id
            other = rules.add_rule(session, principal=SYSTEM, did="bench:many", copies=1, expression="b").id
            ids = dids.file_ids_under(session, dids.get_did(session, "bench:many"))
            session.execute(insert(RuleLock), [{"rule_id": other, "did_id": i, "endpoint_id": e, "state": "OK"}
                                               for i in ids for e in (ep_b, ep_c)])
            session.execute(insert(Replica), [{"did_id": i, "endpoint_id": ep_c, "state": "COPYING",
                                               "path": f"bench/{i}", "created_at": now, "updated_at": now}
                                              for i in ids])
            session.execute(insert(Transfer), [{"did_id": i, "dest_endpoint_id": ep_c, "state": "QUEUED",
                                                "next_attempt_at": now, "created_at": now, "updated_at": now}
                                               for i in ids])

    t_write = timed(write_floor)
    print(f"\nrule evaluation over {count:,} files (SQLite), one judge pass\n")
    print(f"{'':<52}{'seconds':>10}{'µs/file':>10}")
    print(f"{'read the files and their replicas (read floor)':<52}{t_floor:>10.2f}{t_floor / count * 1e6:>10.1f}")
    print(f"{'bulk-insert the rows a pass adds (write floor)':<52}{t_write:>10.2f}{t_write / count * 1e6:>10.1f}")
    print(f"{'evaluate: place locks, queue transfers, commit':<52}{t_judge:>10.2f}{t_judge / count * 1e6:>10.1f}")
    print(f"evaluate ÷ read floor: {t_judge / t_floor:.1f}; evaluate ÷ (read + write floor): "
          f"{t_judge / (t_floor + t_write):.2f}; locks OK {placed[0]:,}, replicating {placed[1]:,}")

if __name__ == "__main__":
    main()
