"""``twin app test`` runs the app's own tests against the app's ``requires``, not the engine's packages: an app
pinning a library version tests against that version (the library exists only in the app's environment here)."""

from __future__ import annotations

from pathlib import Path

from test_workers_envs import LIB, pinned_app, wheel

from twinengine.appdev.harness import check_app

TEST = f'''
import {LIB}


def test_the_pinned_version_is_imported():
    assert {LIB}.VERSION == "1.0"
'''


def test_an_apps_own_tests_import_its_pinned_requirements(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    for version in ("1.0", "2.0"):
        wheel(wheels, LIB, version)
    folder = pinned_app(tmp_path, "pinned-app", "1.0.0", [f"{LIB}==1.0"])
    (folder / "tests").mkdir(exist_ok=True)
    (folder / "tests" / "test_pinned.py").write_text(TEST)
    items = check_app(folder, train=False, envs_index_url="none", envs_find_links=str(wheels),
                      envs_dir=tmp_path / "envs")
    tests = next(item for item in items if item.name == "tests")
    assert tests.ok, tests
    assert (tmp_path / "envs" / "by-requires").is_dir()  # publishing finds the same environment, built once


def test_requirements_that_cannot_be_installed_fail_the_tests_item_naming_requires(tmp_path: Path) -> None:
    folder = pinned_app(tmp_path, "unpinnable", "1.0.0", [f"{LIB}==9.9"])
    (folder / "tests").mkdir(exist_ok=True)
    (folder / "tests" / "test_pinned.py").write_text(TEST)
    items = check_app(folder, train=False, envs_index_url="none", envs_find_links=str(tmp_path / "no-wheels"),
                      envs_dir=tmp_path / "envs")
    tests = next(item for item in items if item.name == "tests")
    assert not tests.ok and tests.where == "requires" and "requires" in (tests.error or "")
