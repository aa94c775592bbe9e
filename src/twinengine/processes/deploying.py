"""Deploying a CWL application package (Part 2): the request's body read as CWL or as an OGC application
package, its shape checked by the engine, then validated by cwltool in a sandboxed worker before it is stored."""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlparse

from sqlalchemy.orm import Session

from twinengine.auth.principal import Principal
from twinengine.cwl.package import JOB_CONTROL, Package, job_control_options, parse_package
from twinengine.errors import InvalidInput, SandboxUnavailable, ValidationFailed
from twinengine.processes import service
from twinengine.processes.models import DeployedProcess

if TYPE_CHECKING:
    from twinengine.cwl.runner import CwlRunner

__all__ = ["HrefReader", "checked_package", "deploy", "lake_href", "package_from_body"]

_DID = re.compile(r"^/api/v1/lake/dids/(?P<did>.+)/content$")

_CWL_TYPES = ("application/cwl", "application/cwl+json", "application/cwl+yaml", "application/x-yaml",
              "application/yaml", "text/yaml")


HrefReader = Callable[[str], bytes]


def package_from_body(body: bytes, content_type: str, *, read_href: HrefReader | None = None) -> Package:
    """The package a deploy request carries: CWL itself (YAML or JSON), or an OGC application package
    (``application/ogcapppkg+json``: ``executionUnit`` holding the CWL by value, or by reference to a file of
    this engine's lake, read by ``read_href``)."""
    media = content_type.split(";")[0].strip().lower()
    if not body.strip():
        raise InvalidInput("body: a CWL application package is required")
    if media in _CWL_TYPES:
        return parse_package(body)
    try:
        document = json.loads(body)
    except ValueError:
        raise InvalidInput(f"body: JSON is required for {media or 'a body without a content type'} (CWL in YAML is "
                           "sent as application/cwl+yaml)") from None
    if isinstance(document, dict) and "executionUnit" in document:
        unit = document["executionUnit"]
        units = unit if isinstance(unit, list) else [unit]
        if len(units) != 1 or not isinstance(units[0], dict):
            raise ValidationFailed.one("executionUnit", "one execution unit (a CWL document) is required")
        described = document.get("processDescription")
        if described is not None and not isinstance(described, dict):
            raise ValidationFailed.one("processDescription", "a process description (an object) is required")
        control = JOB_CONTROL if described is None or "jobControlOptions" not in described else \
            job_control_options(described["jobControlOptions"], "processDescription.jobControlOptions")
        if "href" in units[0]:
            if read_href is None or not isinstance(units[0]["href"], str):
                raise ValidationFailed.one("executionUnit.href", "a URL of a lake file of this engine is required")
            package = parse_package(read_href(units[0]["href"]), where="executionUnit.href")
        else:
            package = parse_package(units[0].get("value", units[0].get("unit")), where="executionUnit.value")
        return replace(package, job_control=control)
    return parse_package(document)


def lake_href(href: str, *, origin: str, read_did: Callable[[str], bytes]) -> bytes:
    """The bytes of a package deployed by reference: only a lake file of this engine (``origin``, or a path
    alone), read as the caller through the lake's grants and checksum (``read_did``). Any other URL is refused,
    never fetched: a deploy that made the engine fetch what a caller names would reach what the caller cannot
    (the engine's own network, loopback services, cloud metadata)."""
    parsed = urlparse(href)
    if (parsed.scheme or parsed.netloc) and f"{parsed.scheme}://{parsed.netloc}" != origin.rstrip("/"):
        raise ValidationFailed.one("executionUnit.href", f"only a lake file of this engine ({origin.rstrip('/')}"
                                                         "/api/v1/lake/dids/{did}/content) is deployed by reference; "
                                                         "nothing is fetched from elsewhere: send the package by value")
    found = _DID.match(unquote(parsed.path))
    if found is None:
        raise ValidationFailed.one("executionUnit.href", "a lake file of this engine "
                                                         "(/api/v1/lake/dids/{did}/content) is required")
    return read_did(found.group("did"))


def checked_package(runner: CwlRunner | None, body: bytes, content_type: str, *,
                    read_href: HrefReader | None = None) -> Package:
    """The package, checked by the engine and then by ``cwltool --validate`` in a sandboxed worker."""
    package = package_from_body(body, content_type, read_href=read_href)
    if runner is None:
        raise SandboxUnavailable("no CWL runner is configured on this engine")
    from twinengine.cwl.runner import CwlFailed, RunnerUnavailable

    with tempfile.TemporaryDirectory(prefix="twin-deploy-") as folder:
        (Path(folder) / "package.cwl").write_text(json.dumps(package.document))
        try:
            outcome = runner.run(Path(folder), "package.cwl", None, outdir=Path(folder) / "out", validate=True)
        except (CwlFailed, RunnerUnavailable) as exc:
            raise SandboxUnavailable(f"the package cannot be validated now: {exc}") from None
    if outcome.code != 0:
        raise ValidationFailed.one("package", f"cwltool refuses it: {_reason(outcome.log)}")
    return package


def _reason(log: str) -> str:
    lines = [line.strip() for line in log.splitlines() if line.strip() and not line.startswith("INFO")]
    return " ".join(lines)[-1500:] or "invalid CWL"


def deploy(session: Session, *, principal: Principal, package: Package, app: str | None = None,
           replace: str | None = None) -> DeployedProcess:
    """Deploy (or replace) the package; ``app`` (``name`` or ``name@version``) pins it to that app version (its
    latest when no version is given), recorded with the process and every run of it."""
    pinned = _pinned(session, principal, app) if app is not None else None
    return service.deploy(session, principal=principal, package=package, app=pinned, replace=replace)


def _pinned(session: Session, principal: Principal, app: str) -> tuple[str, str]:
    """``name@version`` of the app version ``app`` names, and its archive's SHA-256."""
    from twinengine.catalog import service as catalog

    name, _, version = app.partition("@")
    row = catalog.get_app_version(session, principal=principal, name=name, version=version or None)
    return f"{row.name}@{row.version}", str(row.archive_sha256)
