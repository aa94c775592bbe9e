"""``docs/configuration.md``, written from the ``Settings`` object itself so the reference cannot drift.

``python -m twinengine.settings_reference > docs/configuration.md`` (``make docs-config``) writes it; a unit
test fails when the committed page differs from what this module renders.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic import AliasChoices
from pydantic.fields import FieldInfo

from twinengine.config import OidcGroupRule, OidcProvider, OidcRoleRule, Settings

__all__ = ["render"]

HEADER = """# Configuration

Every setting of an engine, written from its settings object (`twinengine.config.Settings`) by
`make docs-config`; a test fails when this page and the code disagree. Settings come from one object:
command-line options, then `TWIN_*` environment variables, then `<data dir>/twin.toml`, then these defaults.
Durations are ISO 8601 (`PT10S`, `P30D`) or seconds; sizes are bytes.

The CLI itself reads `TWIN_URL` (default `http://127.0.0.1:8000`) and `TWIN_TOKEN`, or `--url` and `--token`.

| setting | environment variable | type | default | meaning |
|---|---|---|---|---|
"""


def _env_names(name: str, field: FieldInfo) -> list[str]:
    alias = field.validation_alias
    if isinstance(alias, AliasChoices):
        return [str(choice) for choice in alias.choices if str(choice).startswith("TWIN_")]
    return [f"TWIN_{name.upper()}"]


def _type(field: FieldInfo) -> str:
    text = str(field.annotation).replace("typing.", "").replace("pathlib.", "").replace("datetime.", "")
    text = re.sub(r"<class '([\w.]+)'>", r"\1", text)
    text = text.replace("Literal[", "one of [").replace("twinengine.config.", "")
    return "duration" if text == "timedelta" else text.replace("NoneType", "None")


def _size(value: int) -> str:
    for unit, scale in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if value >= scale and value % scale == 0:
            return f"{value // scale} {unit}"
    return f"{value:,}"


def _duration(value: timedelta) -> str:
    seconds = value.total_seconds()
    for unit, scale in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= scale and seconds % scale == 0:
            return f"{int(seconds // scale)} {unit}"
    return f"{seconds:g} s"


def _default(name: str, field: FieldInfo) -> str:
    if field.default_factory is not None:
        return "see meaning"
    value: Any = field.default
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, timedelta):
        return _duration(value)
    if isinstance(value, int) and name.endswith("bytes"):
        return _size(value) if value else "0 (none)"
    if isinstance(value, Path):
        return f"`{value}`"
    if isinstance(value, (int, float)):
        return f"{value:,}" if abs(value) >= 10_000 else f"{value}"
    if value in ("", [], {}):
        return "empty"
    return f"`{value}`"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def render() -> str:
    """The whole page, one row per setting in the order the settings object declares them."""
    rows = []
    for name, field in Settings.model_fields.items():
        envs = ", ".join(f"`{env}`" for env in _env_names(name, field))
        rows.append(f"| `{name}` | {envs} | {_cell(_type(field))} | {_cell(_default(name, field))} | "
                    f"{_cell(field.description or '')} |")
    return HEADER + "\n".join(rows) + "\n" + _providers()


def _providers() -> str:
    """The fields of each ``oidc_providers`` entry and of its rules (docs/access.md shows them at work)."""
    parts = ["\n## OpenID providers (`oidc_providers`)\n\nEach entry connects one institutional provider; "
             "[access](access.md#sign-in-with-your-institution) has a worked example.\n"]
    for title, model in (("provider", OidcProvider), ("`group_rules` entry", OidcGroupRule),
                         ("`role_rules` entry", OidcRoleRule)):
        parts.append(f"\n| {title} field | type | default | meaning |\n|---|---|---|---|\n")
        for name, field in model.model_fields.items():
            default = "required" if field.is_required() else _cell(_default(name, field))
            parts.append(f"| `{name}` | {_cell(_type(field))} | {default} | {_cell(field.description or '')} |\n")
    return "".join(parts)


if __name__ == "__main__":
    print(render(), end="")
