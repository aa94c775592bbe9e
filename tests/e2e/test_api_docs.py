"""``make docs-api``: the API reference of ``twinengine.app`` and ``twinengine.client`` is built from their
docstrings, and every public name is in it with its docstring (a name without one fails here)."""

from __future__ import annotations

import html
import importlib
import inspect
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from helpers import REPO

MODULES = ("twinengine.app", "twinengine.client")


def _words(text: str) -> str:
    """Letters and digits only: markup (backquotes, roles, tags) renders differently from the source."""
    text = re.sub(r":[a-z]+:`~?([^`]+)`", r"\1", text)
    return " ".join(re.findall(r"[A-Za-z0-9]+", text))


def own_doc(obj: Any) -> str:
    """The object's own docstring; a class does not count its base's (pydantic's BaseModel would)."""
    doc = vars(obj).get("__doc__") if inspect.isclass(obj) else obj.__doc__
    return inspect.cleandoc(doc) if isinstance(doc, str) else ""


def public_names(module: Any) -> list[tuple[str, Any]]:
    """The module's ``__all__`` and, for its classes, the public functions they define themselves."""
    found = []
    for name in module.__all__:
        obj = getattr(module, name)
        found.append((name, obj))
        if inspect.isclass(obj) and module.__name__ == "twinengine.app":
            for attr, value in vars(obj).items():
                func = value.fget if isinstance(value, property) else value
                if not attr.startswith("_") and inspect.isfunction(func) and func.__name__ != "<lambda>":
                    found.append((f"{name}.{attr}", func))
    return found


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The reference as ``make docs-api`` builds it, with this interpreter and into a temporary folder."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    out = tmp_path_factory.mktemp("api")
    subprocess.run(["make", "-s", "-C", str(REPO), "docs-api", f"BIN={Path(sys.executable).parent}", "STAMP=",
                    f"API_OUT={out}"], check=True, timeout=300)
    return out


@pytest.mark.parametrize("module_name", MODULES)
def test_every_public_name_has_a_docstring(module_name: str) -> None:
    module = importlib.import_module(module_name)
    missing = [name for name, obj in public_names(module) if not own_doc(obj)]
    assert not missing, f"{module_name}: public names without a docstring: {missing}"


@pytest.mark.parametrize("module_name", MODULES)
def test_the_reference_shows_every_public_name_with_its_docstring(built: Path, module_name: str) -> None:
    page = built / (module_name.replace(".", "/") + ".html")
    assert page.is_file(), sorted(p.name for p in built.rglob("*.html"))
    source = page.read_text()
    text = _words(html.unescape(re.sub(r"<[^>]+>", " ", source)))
    module = importlib.import_module(module_name)
    assert _words(own_doc(module).split("\n\n")[0]) in text  # the module's own summary
    for name, obj in public_names(module):
        assert f'id="{name}"' in source, f"{name} has no entry in {page.name}"
        first = own_doc(obj).split("\n\n")[0]
        assert _words(first) in text, f"the docstring of {name} is not in {page.name}: {first!r}"
    assert (built / "index.html").is_file()


def test_docs_api_is_built_not_committed() -> None:
    assert "docs/api/" in (REPO / ".gitignore").read_text().splitlines()
