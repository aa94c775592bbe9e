"""``twin app new``: a working app folder from one of the templates kept with the engine.

A template is a folder under ``twinengine/templates/``; files ending in ``.tmpl`` are rendered with
``string.Template`` (``$name``, ``$package``, ``$title``, ``$version``; ``$$`` is a dollar sign), a path part
``__package__`` becomes the app's package, and other files are copied as they are.
"""

from __future__ import annotations

import keyword
import re
import shutil
import sys
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from string import Template

from twinengine.catalog.manifest import APP_NAME_PATTERN
from twinengine.errors import Problem, ValidationFailed

__all__ = ["DEFAULT_TEMPLATE", "DEV_VERSION", "TEMPLATES", "new_app", "templates"]

DEV_VERSION = "0.1.0-dev"  # a development version: publish it again with every edit (docs/apps.md)
TEMPLATES: dict[str, str] = {
    "hybrid-forecast": "a stream with quality checks, state with checks, a function on arrival, a process "
                       "model with a learned correction, and a forecast workflow",
    "generative-sampler": "a Gaussian mixture fitted by a training task, and a sampling workflow",
    "stream-classifier": "a function that classifies windows of a stream as they arrive and writes state",
}
# The template ``twin app new`` writes when given none: it shows every part of an app (stream, checks,
# function, model, workflow, tests) and passes ``twin app test`` as written.
DEFAULT_TEMPLATE = "hybrid-forecast"


def templates() -> Traversable:
    return resources.files("twinengine").joinpath("templates")


def _check(name: str, template: str, target: Path) -> str:
    """The app's package name, or a ValidationFailed naming the argument that is wrong."""
    if template not in TEMPLATES:
        raise ValidationFailed([Problem("--template", f"{template!r} is not a template; choose one of "
                                                      f"{', '.join(TEMPLATES)}")])
    if not re.fullmatch(APP_NAME_PATTERN, name) or len(name) > 64:
        raise ValidationFailed([Problem("NAME", f"{name!r} is not an app name: lower-case letters, digits and "
                                                "single '-' between words, starting with a letter (e.g. "
                                                "'lake-temperature')")])
    package = name.replace("-", "_")
    if keyword.iskeyword(package) or package in sys.stdlib_module_names or package in ("twinengine", "tests"):
        raise ValidationFailed([Problem("NAME", f"{name!r} would make the package {package!r}, which clashes "
                                                "with a Python keyword or module; choose another name")])
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise ValidationFailed([Problem("--dir", f"{target} exists and is not an empty folder; nothing was "
                                                 "written")])
    return package


def new_app(name: str, template: str = DEFAULT_TEMPLATE, target: Path | None = None, *,
            title: str | None = None) -> list[Path]:
    """Write the template as app ``name`` into ``target`` (absent or empty; default ``./name``); returns the
    files written."""
    target = Path(name) if target is None else target
    package = _check(name, template, target)
    values = {"name": name, "package": package, "version": DEV_VERSION,
              "title": title or name.replace("-", " ").capitalize()}
    written: list[Path] = []
    created = not target.exists()
    try:
        _copy(templates().joinpath(template), target, values, written)
    except BaseException:
        if created:  # nothing half-written
            shutil.rmtree(target, ignore_errors=True)
        else:
            for path in written:
                path.unlink(missing_ok=True)
        raise
    return written


def _copy(source: Traversable, target: Path, values: dict[str, str], written: list[Path]) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for entry in sorted(source.iterdir(), key=lambda e: e.name):
        if entry.name == "__pycache__":
            continue
        name = entry.name.replace("__package__", values["package"])
        if entry.is_dir():
            _copy(entry, target / name, values, written)
            continue
        path = target / name.removesuffix(".tmpl")
        if entry.name.endswith(".tmpl"):
            path.write_text(Template(entry.read_text(encoding="utf-8")).substitute(values), encoding="utf-8")
        else:
            path.write_bytes(entry.read_bytes())
        written.append(path)
