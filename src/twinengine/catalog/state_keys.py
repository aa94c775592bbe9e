"""Keyed state properties: one declaration (``head: {type: number, key: well}``) holds a value per key
(``head[ow3]``), so a well field of 800 wells declares its head once.

Each key is stored as a property path of its own, ``name[key]``: the log, the heads, history, time travel,
checks, uncertainty and quality flags then work per key unchanged. A stored name fits the log's property
column (``MAX_STORED_NAME`` characters), which bounds a key's length.
"""

from __future__ import annotations

import re

from twinengine.catalog.manifest import Manifest, StateProperty

__all__ = ["KEY_PATTERN", "MAX_STORED_NAME", "KeyProblem", "base_of", "join", "resolve", "split"]

KEY_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$"  # no brackets, spaces or slashes: safe in paths and URLs
MAX_STORED_NAME = 64  # the width of state_values.property and state_heads.property
_KEY = re.compile(KEY_PATTERN)
_PATH = re.compile(r"^([^\[\]]+)\[(.*)\]$", re.DOTALL)


class KeyProblem(ValueError):
    """Raised by ``resolve`` when a property path names no declared property, or its key is missing, not
    allowed or malformed; the message says which and why."""


def split(path: str) -> tuple[str, str | None]:
    """``head[ow3]`` → ("head", "ow3"); ``level`` → ("level", None). Malformed brackets stay in the name."""
    found = _PATH.match(path)
    return (found.group(1), found.group(2)) if found else (path, None)


def base_of(path: str) -> str:
    """The declared property a stored path belongs to (``head[ow3]`` → ``head``)."""
    return split(path)[0]


def join(name: str, key: str) -> str:
    return f"{name}[{key}]"


def resolve(manifest: Manifest, path: str, *, every_key: bool = False) -> tuple[str, StateProperty, str | None]:
    """The declared property of a written or read path, with its key; raises ``KeyProblem`` when the path
    names no declared property, a keyed property lacks its key (unless ``every_key``: a read of all its
    keys), an unkeyed one has one, or the key's text is not allowed."""
    name, key = split(path)
    declared = manifest.state.get(name)
    if declared is None:
        known = ", ".join(sorted(manifest.state)) or "none"
        raise KeyProblem(f"{path!r} is not a state property of {manifest.ref} (declared: {known})")
    if key is None and declared.key is not None and not every_key:
        raise KeyProblem(f"{name!r} is keyed by {declared.key}: write or read one key as {name}[<{declared.key}>]")
    if key is not None and declared.key is None:
        raise KeyProblem(f"{name!r} has no key (declare 'key:' on it in twinapp.yaml to hold a value per key)")
    if key is not None:
        room = MAX_STORED_NAME - len(name) - 2
        if not key or len(key) > room:
            raise KeyProblem(f"the {declared.key} key of {name!r} is 1 to {room} characters long, not {len(key)}")
        if not _KEY.match(key):
            raise KeyProblem(f"the {declared.key} key {key!r} may hold letters, digits and _ . : - only, and "
                             "begins with a letter or digit")
    return name, declared, key
