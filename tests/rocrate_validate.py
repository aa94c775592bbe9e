"""Runs ``rocrate-validator`` (PyPI ``roc-validator``) on crates, offline, and prints what it found as JSON.

Run with the validator's own interpreter (``TWIN_ROCRATE_VALIDATOR_PYTHON``: its pins of rich and click clash
with the engine's, so it lives in a virtualenv of its own that ``.ci/run`` makes). The validator fetches the
RO-Crate 1.1 JSON-LD context from https://w3id.org/ro/crate/1.1/context and fails outright without the network;
here every HTTP request goes to a transport that answers that one URL from the copy kept as data
(``tests/data/rocrate/ro-crate-1.1-context.jsonld``, the context the ``rocrate`` 0.11 wheel carries, Apache-2.0;
0.16 carries the 1.3 context, which fails 1.1 crates) and refuses every other, so nothing is fetched unseen.

    python rocrate_validate.py PROFILE SEVERITY CRATE.zip...   ->  {"CRATE": {"passed": bool, "issues": [...]}, ...}

Each crate's metadata is validated as published (the validator's entry point for a metadata document,
``validate_metadata_as_dict``, which reads the crate's relative identifiers against the https URL it stands at, as
a reader of a crate published on the web does; it checks no payload). ``--local`` validates the zip from its path
with every payload check; there the identifiers become ``file:`` URIs, and the Process Run Crate's SHOULD "The
SoftwareApplication id SHOULD be an absolute URI" flags the crate's tools and its main workflow, which a Workflow
RO-Crate MUST carry as a file of the crate: no crate with its workflow inside can pass that one from a path.
"""

from __future__ import annotations

import io
import json
import sys
import zipfile
from pathlib import Path

import requests
import urllib3
from requests.adapters import HTTPAdapter

CONTEXTS = {"https://w3id.org/ro/crate/1.1/context":
            Path(__file__).resolve().parent / "data" / "rocrate" / "ro-crate-1.1-context.jsonld"}
FETCHED: list[str] = []


def _send(self: HTTPAdapter, request: requests.PreparedRequest, *args: object, **kwargs: object) -> requests.Response:
    url = str(request.url).split("#")[0]
    FETCHED.append(url)
    found = CONTEXTS.get(url.rstrip("/"))
    response = requests.Response()
    response.request, response.url = request, url
    if found is None:
        raise requests.ConnectionError(f"offline: {url} is not kept as data")
    content = found.read_bytes()
    raw = urllib3.HTTPResponse(body=io.BytesIO(content), headers={"Content-Type": "application/ld+json"}, status=200,
                               preload_content=False, request_url=url)
    raw._request_url = url
    response.raw, response.status_code = raw, 200
    response._content = content
    response.headers.update({"Content-Type": "application/ld+json"})
    response.encoding = "utf-8"
    return response


def main(profile: str, severity: str, crates: list[str], *, local: bool = False) -> dict[str, object]:
    HTTPAdapter.send = _send  # type: ignore[method-assign]
    from rocrate_validator import services
    from rocrate_validator.models import ValidationSettings

    out: dict[str, object] = {}
    for crate in crates:
        common = {"profile_identifier": profile, "requirement_severity": severity, "abort_on_first": False,
                  "no_cache": True}
        if local:
            result = services.validate(ValidationSettings(rocrate_uri=crate, **common))
        else:
            with zipfile.ZipFile(crate) as archive:
                document = json.loads(archive.read("ro-crate-metadata.json"))
            result = services.validate_metadata_as_dict(document, ValidationSettings(metadata_dict=document, **common))
        issues = [{"severity": str(i.severity.name), "check": str(i.check.identifier) if i.check else "",
                   "message": str(i.message), "node": str(getattr(i, "violatingEntity", "") or "")}
                  for i in result.get_issues()]
        out[crate] = {"passed": bool(result.passed()), "issues": issues}
    out["_fetched"] = sorted(set(FETCHED))
    return out


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--local"]
    print(json.dumps(main(args[0], args[1], args[2:], local="--local" in sys.argv), indent=1))
