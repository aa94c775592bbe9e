"""Negotiation plus transfer of a 10 MB dataset between two engines, beside a plain authenticated lake download of
the same bytes, in the same run.

Two ``twin serve`` processes on loopback, each with a data dir and SQLite store of its own (provider and
consumer), each ready as an operator's probe sees it (``/health/ready``: started, its routes built). The
provider offers a dataset holding one file of ``--mb`` MB of random bytes. Each run, the consumer asks (SDK:
``client.dataspace.negotiate(..., land=...)``) and the time is taken until its transfer is COMPLETED on the
consumer's side (the time its engine recorded it, found by looking ten times a second: looking a hundred times
a second took the CPU the two engines work with, and slowed what it timed): catalog look-up of the offer,
request, agreement, verification, finalization, transfer request, start, the pull into the consumer's lake
(SHA-256 checked) and completion; then the same with the provider pushing the file into the consumer's lake
(HttpData-PUSH). Beside them, alternating run by run so all see the same load (the first run of each is
printed on its own, its figures left out of the rest: it pays for the engines' first requests of its kind):
(a) the plain download: ``GET /api/v1/lake/dids/.../content`` from the provider with a token, the bytes hashed
as they arrive; (b) the same download landed in the consumer's lake (an upload through its API), the work the
transfer does on the data beside the protocol.

Usage: python bench/dataspace.py [--runs 20] [--mb 10]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import httpx2 as httpx

from twinengine.client import Client


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve(data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "TWIN_DATA_DIR": str(data_dir), "TWIN_DATASPACE_URL": f"http://127.0.0.1:{port}",
           "TWIN_DATASPACE_PEER_HOSTS": "127.0.0.1"}
    process = subprocess.Popen([sys.executable, "-m", "twinengine.cli.main", "serve", "--port", str(port)],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # ready as an operator's probe sees it: started and its routes built
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=10).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit("twin serve was not ready within 120 s")


def admin_token(data_dir: Path) -> str:
    from twinengine.auth.issuer import BuiltinIssuer
    from twinengine.auth.keys import load_or_create_signing_key
    from twinengine.auth.principal import SYSTEM, Role
    from twinengine.auth.service import issue_token
    from twinengine.config import Settings
    from twinengine.store.engine import Database

    settings = Settings(data_dir=data_dir)
    issuer = BuiltinIssuer(load_or_create_signing_key(data_dir / "keys" / "issuer-es256.pem"), settings.token_issuer)
    db = Database(settings.db_url)
    try:
        with db.session() as session:
            return issue_token(session, issuer, principal=SYSTEM, name="admin", role=Role.ADMIN,
                               ttl=timedelta(hours=2)).token
    finally:
        db.dispose()


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--mb", type=float, default=10.0)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-dataspace-"))
    ports = free_port(), free_port()
    processes = []
    try:
        for name, port in zip(("provider", "consumer"), ports, strict=True):
            processes.append(serve(root / name, port))
        urls = [f"http://127.0.0.1:{p}" for p in ports]
        tokens = [admin_token(root / name) for name in ("provider", "consumer")]
        provider, consumer = Client(urls[0], tokens[0], timeout=120), Client(urls[1], tokens[1], timeout=120)
        for client, name in ((provider, "provider"), (consumer, "consumer")):
            client.lake.add_endpoint("site", "file", str(root / name / "lake" / "site"))
        payload = os.urandom(int(args.mb * 1e6))
        digest = hashlib.sha256(payload).hexdigest()
        source = root / "payload.bin"
        source.write_bytes(payload)
        provider.lake.add_dataset("bench:gauges")
        provider.lake.upload(source, "bench:gauges/payload.bin", endpoint="site", dataset="bench:gauges")
        offer = provider.dataspace.offer("bench:gauges", "Bench payload")
        timings: dict[str, list[float]] = {"negotiation + transfer": [], "negotiation + push": [],
                                           "plain download": [], "download + land": []}
        failed = 0
        headers = {"Authorization": f"Bearer {tokens[0]}"}
        content = f"{urls[0]}/api/v1/lake/dids/bench:gauges/payload.bin/content"
        def transferred(land: str, push: bool) -> tuple[float, bool]:
            """Negotiation and transfer (pulled, or pushed by the provider) until COMPLETED on this side."""
            start = time.time()
            row = consumer.dataspace.negotiate(urls[0], offer.dataset_id, land=land, push=push)
            while True:  # looked at ten times a second: asking more often takes the CPU the engines work with
                moved = consumer.dataspace.negotiation(row.id)
                if moved.state == "TERMINATED":
                    break
                found = consumer.dataspace.transfers(role="consumer", agreement=moved.agreement_id) \
                    if moved.agreement_id else []
                if found and found[0].state in ("COMPLETED", "TERMINATED") and not found[0].pending:
                    break
                time.sleep(0.1)
            # until the consumer's engine recorded the transfer done (its own clock, this machine's), not until
            # this loop next looked
            elapsed = (found[0].updated_at.timestamp() if found else time.time()) - start
            ok = bool(found) and found[0].state == "COMPLETED" and found[0].files is not None and \
                found[0].files[0]["sha256"] == digest
            return elapsed, ok

        for run in range(args.runs):
            for name, push in (("negotiation + transfer", False), ("negotiation + push", True)):
                elapsed, ok = transferred(f"bench:{'pushed' if push else 'landed'}-{run}", push)
                failed += not ok
                timings[name].append(elapsed)
            start = time.perf_counter()
            sha = hashlib.sha256()
            with httpx.stream("GET", content, headers=headers, timeout=120) as response:
                for chunk in response.iter_bytes(1 << 20):
                    sha.update(chunk)
            assert sha.hexdigest() == digest
            timings["plain download"].append(time.perf_counter() - start)
            start = time.perf_counter()
            with httpx.stream("GET", content, headers=headers, timeout=120) as response:
                httpx.post(f"{urls[1]}/api/v1/lake/uploads", params={
                    "did": f"bench:plain-{run}/payload.bin", "endpoint": "site", "sha256": digest},
                    content=response.iter_bytes(1 << 20), headers={"Authorization": f"Bearer {tokens[1]}"},
                    timeout=120).raise_for_status()
            timings["download + land"].append(time.perf_counter() - start)
        load = os.getloadavg()
        print(f"{args.runs} runs of {args.mb:g} MB, {2 * args.runs - failed} of {2 * args.runs} transfers (pulled "
              f"and pushed) completed with equal "
              f"SHA-256; load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}, {os.cpu_count()} CPUs")
        # the first run of each kind pays for the engines' first requests of it (routes built, DID documents
        # read, the lake's first writes): said on its own, and left out of the figures of the runs after it
        firsts = {name: values.pop(0) for name, values in timings.items() if len(values) > 1}
        print("  first run after start: " + ", ".join(f"{name} {value:.3f} s" for name, value in firsts.items()))
        base = statistics.median(timings["plain download"])
        for name, values in timings.items():
            print(f"  {name:24s} p50 {statistics.median(values):6.3f} s  p95 {pct(values, 0.95):6.3f} s  "
                  f"max {max(values):6.3f} s  (p50 x{statistics.median(values) / base:.2f} of the plain download)")
        for name in ("negotiation + transfer", "negotiation + push"):
            ratio = pct(timings[name], 0.95) / pct(timings["plain download"], 0.95)
            print(f"  p95 ratio, {name} : plain download = {ratio:.2f}")
        provider.close()
        consumer.close()
    finally:
        for process in processes:
            process.terminate()
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
