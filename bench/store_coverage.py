"""Which tests need their PostgreSQL variant: the lines of the engine only a PostgreSQL variant reaches.

Every test that uses the ``engine``/``settings`` fixtures can run on both stores; the suite runs the PostgreSQL
variant only of tests marked ``every_store`` (tests/conftest.py). This script is how that mark is chosen and
checked: it runs test files on both stores (``TWIN_TEST_EVERY_STORE=1``) under coverage with one context per
test, then prints the lines that only PostgreSQL variants reach, which of them no marked test reaches, and the
fewest PostgreSQL variants that reach them all (greedy set cover).

    python bench/store_coverage.py                      # every test file that has PostgreSQL variants
    python bench/store_coverage.py tests/integration/test_twins_api.py ...

It needs pytest-cov (dev extras) and a PostgreSQL server (``TWIN_TEST_POSTGRES_URL``). Engines started in
other processes (``twin serve``) are not measured: the end-to-end tests that start them stay marked whole.
"""

from __future__ import annotations

import collections
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
POSTGRES_VARIANT = re.compile(r"\[(?:[^\]]*-)?postgresql(?:-[^\]]*)?\]")


def files_with_postgres_variants() -> list[str]:
    listed = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-m", "postgres"], cwd=ROOT,
                            capture_output=True, text=True, env={**os.environ, "TWIN_TEST_EVERY_STORE": "1"})
    return sorted({line.split("::", 1)[0] for line in listed.stdout.splitlines() if "::" in line})


def measure(files: list[str], data_file: Path) -> None:
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-n", os.environ.get("TEST_WORKERS", "3"), "--dist",
                    "loadfile", "-p", "no:cacheprovider", "--cov=twinengine", "--cov-context=test", "--cov-report=",
                    *files], cwd=ROOT, check=False,
                   env={**os.environ, "TWIN_TEST_EVERY_STORE": "1", "COVERAGE_FILE": str(data_file)})


def marked_tests(files: list[str]) -> set[str]:
    listed = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-m", "every_store", *files],
                            cwd=ROOT, capture_output=True, text=True)
    return {line.strip() for line in listed.stdout.splitlines() if "::" in line}


def report(data_file: Path, marked: set[str]) -> int:
    import coverage

    data = coverage.CoverageData(basename=str(data_file))
    data.read()
    only: dict[tuple[str, int], set[str]] = {}
    covered = 0
    for path in data.measured_files():
        if "/twinengine/" not in path:
            continue
        for line, contexts in data.contexts_by_lineno(path).items():
            covered += 1
            tests = {c.rsplit("|", 1)[0] for c in contexts}
            postgres = {t for t in tests if POSTGRES_VARIANT.search(t)}
            if postgres and postgres == tests:
                only[(path.split("/src/", 1)[-1], line)] = postgres
    unmarked = {k: v for k, v in only.items() if not v & marked}
    print(f"lines covered: {covered}; reached only by a PostgreSQL variant: {len(only)}; "
          f"of those, by no test marked every_store: {len(unmarked)}")
    for (path, line), tests in sorted(unmarked.items()):
        print(f"  {path}:{line}  ({len(tests)} tests, e.g. {sorted(tests)[0]})")
    remaining, chosen = set(only), []
    reach: dict[str, set[tuple[str, int]]] = collections.defaultdict(set)
    for key, tests in only.items():
        for test in tests:
            reach[test].add(key)
    while remaining:
        best = max(reach, key=lambda t: len(reach[t] & remaining))
        chosen.append((best, len(reach[best] & remaining)))
        remaining -= reach[best]
    print(f"the fewest PostgreSQL variants reaching them all: {len(chosen)}")
    for test, gain in chosen:
        print(f"  {gain:5d}  {test}{'' if test in marked else '   (not marked)'}")
    return 1 if unmarked else 0


def main(argv: list[str]) -> int:
    files = argv or files_with_postgres_variants()
    with tempfile.TemporaryDirectory() as tmp:
        data_file = Path(tmp) / ".coverage"
        measure(files, data_file)
        return report(data_file, marked_tests(files))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
