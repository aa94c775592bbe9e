"""What a worker answers for each entrypoint a manifest names: callable as the engine calls it, or why not
(a missing attribute with the likely name, a wrong signature, a module that fails to import, a non-function);
and the manifest paths ``twin app validate`` and publishing report them under."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from twinengine.app._entrypoints import entrypoint_problem
from twinengine.catalog.validate import declared_entrypoints, load_manifest

SOURCE = '''
LIMIT = 3

def ingest(ctx, records):
    pass

def flexible(ctx, *records, **options):
    pass

def one(ctx):
    pass

def build():
    return None

def build_sized(size):
    return None
'''


@pytest.fixture
def package(tmp_path: Path) -> Iterator[str]:
    root = tmp_path / "probe_app"
    root.mkdir()
    (root / "__init__.py").write_text("")
    (root / "functions.py").write_text(SOURCE)
    (root / "broken.py").write_text("VALUE = 1\nraise RuntimeError('no sensor table')\n")
    sys.path.insert(0, str(tmp_path))
    try:
        yield "probe_app"
    finally:
        sys.path.remove(str(tmp_path))
        for name in [n for n in sys.modules if n == "probe_app" or n.startswith("probe_app.")]:
            del sys.modules[name]


def test_callable_entrypoints_pass(package: str) -> None:
    assert entrypoint_problem("function", f"{package}.functions:ingest") is None
    assert entrypoint_problem("function", f"{package}.functions:flexible") is None
    assert entrypoint_problem("model", f"{package}.functions:build") is None


def test_each_problem_says_what_the_engine_could_not_do(package: str) -> None:
    module = f"{package}.functions"
    assert entrypoint_problem("function", f"{module}:injest") == (
        f"module '{module}' has no attribute 'injest'; did you mean 'ingest'?")
    assert "(it defines build, build_sized, flexible, ingest, one)" in str(
        entrypoint_problem("function", f"{module}:zzz"))
    assert "cannot be called as fn(ctx, records)" in str(entrypoint_problem("function", f"{module}:one"))
    assert "cannot be called as fn()" in str(entrypoint_problem("model", f"{module}:build_sized"))
    assert entrypoint_problem("function", f"{module}:LIMIT") == (
        f"{module}:LIMIT is int, not a function; the engine calls it as fn(ctx, records)")
    assert entrypoint_problem("function", f"{package}.nothing:ingest") == (
        f"no module '{package}.nothing' in the app")
    broken = str(entrypoint_problem("function", f"{package}.broken:ingest"))
    assert broken.startswith(f"importing module '{package}.broken' failed: RuntimeError: no sensor table")
    assert "broken.py:2" in broken


def test_every_declared_entrypoint_has_its_manifest_path() -> None:
    manifest, problems = load_manifest("""
manifest_version: 1
name: probe-app
version: 0.1.0
title: Probe
description: An app for tests.
domain: testing
authors: [{name: Tester}]
license: MIT
streams:
  readings: {time_field: time, fields: {time: {type: timestamp}, value: {type: float}}}
models:
  net: {entrypoint: 'probe_app.model:build'}
functions:
  on_reading: {entrypoint: 'probe_app.functions:injest', stream: readings}
""")
    assert manifest is not None and not problems, problems
    assert declared_entrypoints(manifest) == [
        ("models.net.entrypoint", "model", "probe_app.model:build"),
        ("functions.on_reading.entrypoint", "function", "probe_app.functions:injest")]
