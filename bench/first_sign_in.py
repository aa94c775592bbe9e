"""What a person's first sign-in through the token exchange costs the engine's other writers (SQLite).

An engine on SQLite trusts a real OpenID provider on loopback (panva's oidc-provider, as the tests start it:
Node.js and ``npm ci --prefix tests/oidc_provider``). While a writer thread writes a row every 20 ms, each
round exchanges (``POST /api/v1/oauth/token``) a provider token of a person the engine has never seen (the
sign-in creates the identity), a new token of a person it knows (the sign-in is recorded again), and the same
token again (nothing recorded), side by side. It prints each one's answer and time, the longest write
transaction of the store meanwhile and the longest wait of the other writer's writes.

Usage: python bench/first_sign_in.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from write_locks import LockHolds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="people signing in for the first time (default 3)")
    args = parser.parse_args()

    from fastapi.testclient import TestClient

    from helpers import stop_process
    from oidc_fixtures import PEOPLE, start_provider
    from twinengine.api import create_app
    from twinengine.config import Settings
    from twinengine.delegation.exchange import ACCESS_TOKEN, GRANT_TYPE
    from twinengine.lake.models import Endpoint
    from twinengine.runtime import Runtime

    people = {f"p{i}": dict(PEOPLE["alice"], name=f"Person {i}") for i in range(args.rounds)}
    with tempfile.TemporaryDirectory() as tmp:
        provider = start_provider(Path(tmp) / "provider", people=people)
        runtime = Runtime.from_settings(Settings(data_dir=Path(tmp) / "data", warm_routes=False,
                                                 oidc_providers=[provider.settings("loop")]))
        try:
            with TestClient(create_app(runtime=runtime)) as http:
                db = runtime.db
                with db.session() as session:
                    session.add(Endpoint(name="site-x", protocol="file", location=str(Path(tmp) / "x"),
                                         created_by="admin"))
                    session.execute(text("CREATE TABLE bench_writes (at REAL)"))
                holds = LockHolds(db.engine)

                def exchange(token: str) -> tuple[int, float]:
                    began = time.perf_counter()
                    answer = http.post("/api/v1/oauth/token", data={
                        "grant_type": GRANT_TYPE, "subject_token": "oidc/loop/" + token,
                        "subject_token_type": ACCESS_TOKEN, "audience": "lake:site-x", "scope": "lake:read"})
                    return answer.status_code, time.perf_counter() - began

                tokens = {login: [provider.device_tokens(login)["access_token"] for _ in range(2)]
                          for login in people}
                waits: list[float] = []
                refused: list[str] = []
                stop = threading.Event()

                def writer() -> None:
                    while not stop.is_set():
                        began = time.perf_counter()
                        try:
                            with db.session() as session:
                                session.execute(text("INSERT INTO bench_writes (at) VALUES (:at)"), {"at": began})
                        except Exception as error:  # "database is locked": it waited the whole busy timeout
                            refused.append(str(error))
                        waits.append(time.perf_counter() - began)
                        stop.wait(0.02)

                thread = threading.Thread(target=writer)
                thread.start()
                kinds: dict[str, list[tuple[int, float]]] = {"first sign-in (new person)": [],
                                                            "new token, known person": [], "same token again": []}
                try:
                    for login in people:
                        first, second = tokens[login]
                        kinds["first sign-in (new person)"].append(exchange(first))
                        kinds["new token, known person"].append(exchange(second))
                        kinds["same token again"].append(exchange(second))
                finally:
                    stop.set()
                    thread.join()
        finally:
            runtime.close()
            stop_process(provider.process, timeout=10)
    print(f"token exchanges of {args.rounds} people on SQLite, a writer beside them every 20 ms; "
          f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}")
    print(f"{'exchange':<28} {'answers':>12} {'median':>10} {'longest':>10}")
    medians: dict[str, float] = {}
    for kind, seen in kinds.items():
        statuses = ",".join(sorted({str(s) for s, _ in seen}))
        took = [t for _, t in seen]
        medians[kind] = statistics.median(took)
        print(f"{kind:<28} {statuses:>12} {medians[kind] * 1000:>7.1f} ms {max(took) * 1000:>7.1f} ms")
    ratio = medians["first sign-in (new person)"] / medians["same token again"]
    print(f"first sign-in / same token again: x{ratio:.1f}"
          f"; longest write transaction {holds.longest * 1000:.1f} ms; longest other write "
          f"{max(waits, default=0.0) * 1000:.1f} ms ({len(waits)} writes, {len(refused)} refused)")


if __name__ == "__main__":
    main()
