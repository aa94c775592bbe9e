"""Run a twin's workflow on a twinengine and stage its results out as a STAC catalog.

The command of every application package ``twin app export-cwl`` writes, copied into the package whole. It uses
Python's standard library only (any Python 3 image runs it) and imports nothing of the engine. It checks that the
twin is of the exported app version (an app version is immutable: its workflow is the exported one), runs the
workflow there (``POST /api/v1/twins/{twin}/runs``), waits for the run, and writes ``results/``: a STAC catalog
holding one item (the run) whose assets are the run's files, each checked against the SHA-256 the engine lists,
and the run's W3C PROV document.

Parameters: ``parameters/<name>`` files (JSON, or text for those named in ``kinds.json`` as text); a missing or
empty file leaves the parameter to the engine (its default, or the twin's state). The token is ``TWIN_TOKEN``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

__all__ = ["main"]

WAIT_SECONDS = 3600.0


def _call(engine: str, token: str, method: str, path: str, body: Any = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(engine.rstrip("/") + path, data=data, method=method, headers={
        "Accept": "application/json", **({"Authorization": f"Bearer {token}"} if token else {}),
        **({"Content-Type": "application/json"} if data is not None else {})})
    try:
        with urllib.request.urlopen(request, timeout=600) as answer:
            return json.loads(answer.read() or b"null")
    except urllib.error.HTTPError as exc:
        raise SystemExit(f"{method} {path}: {exc.code} {exc.read()[:2000].decode(errors='replace')}") from None


def _download(engine: str, token: str, path: str, target: Path) -> str:
    request = urllib.request.Request(engine.rstrip("/") + path,
                                     headers={"Authorization": f"Bearer {token}"} if token else {})
    digest = hashlib.sha256()
    with urllib.request.urlopen(request, timeout=600) as answer, target.open("wb") as out:
        while chunk := answer.read(1 << 20):
            digest.update(chunk)
            out.write(chunk)
    return digest.hexdigest()


def _parameters(folder: Path, kinds: dict[str, str]) -> dict[str, Any]:
    given: dict[str, Any] = {}
    for name, kind in kinds.items():
        path = folder / name
        if not path.is_file():
            continue
        text = path.read_text()
        if text.strip() in ("", "null"):
            continue
        given[name] = text if kind == "text" else json.loads(text)
    return given


def _catalog(out: Path, run: dict[str, Any], files: dict[str, dict[str, Any]], request: dict[str, Any]) -> None:
    """``out/catalog.json`` and ``out/<run>/<run>.json``: the run as a STAC item, its files as assets."""
    item_dir = out / run["id"]
    moment = run.get("finished_at") or run.get("created_at")
    item = {
        "type": "Feature", "stac_version": "1.0.0", "id": run["id"], "geometry": None,
        "properties": {"datetime": moment, "created": run.get("created_at"), "twin": request["twin"],
                       "app": request["app"], "workflow": request["workflow"], "parameters": request["parameters"],
                       "run:status": run["status"]},
        "links": [{"rel": "root", "href": "../catalog.json", "type": "application/json"},
                  {"rel": "parent", "href": "../catalog.json", "type": "application/json"}],
        "assets": {name: {"href": f"./{name}", "type": meta.get("type") or "application/octet-stream",
                          "file:size": meta.get("size"), "file:checksum": "1220" + meta["sha256"],
                          "roles": ["data"] if name != "provenance.json" else ["metadata"]}
                   for name, meta in files.items()},
    }
    (item_dir / f"{run['id']}.json").write_text(json.dumps(item, indent=2))
    catalog = {"type": "Catalog", "stac_version": "1.0.0", "id": f"{request['workflow']}-{run['id']}",
               "description": f"Results of {request['workflow']} of {request['app']} on twin {request['twin']}",
               "links": [{"rel": "root", "href": "./catalog.json", "type": "application/json"},
                         {"rel": "item", "href": f"./{run['id']}/{run['id']}.json",
                          "type": "application/geo+json"}]}
    (out / "catalog.json").write_text(json.dumps(catalog, indent=2))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", required=True)
    parser.add_argument("--twin", required=True)
    parser.add_argument("--app", required=True, help="name@version the package was exported from")
    parser.add_argument("--workflow", required=True)
    parser.add_argument("--parameters", type=Path, default=Path("parameters"))
    parser.add_argument("--kinds", type=Path, default=Path("kinds.json"))
    parser.add_argument("--out", type=Path, default=Path("results"))
    args = parser.parse_args(argv)
    token = os.environ.get("TWIN_TOKEN", "")
    twin = _call(args.engine, token, "GET", f"/api/v1/twins/{args.twin}")
    if twin.get("app") != args.app:
        raise SystemExit(f"twin {args.twin} is of {twin.get('app')}, this package runs {args.workflow} of "
                         f"{args.app}: export the package from that app version")
    parameters = _parameters(args.parameters, json.loads(args.kinds.read_text()))
    run = _call(args.engine, token, "POST", f"/api/v1/twins/{args.twin}/runs",
                {"workflow": args.workflow, "parameters": parameters})
    print(f"run {run['id']} of {args.workflow} on twin {twin['name']} ({args.app})", file=sys.stderr)
    deadline = time.monotonic() + WAIT_SECONDS
    while run["status"] not in ("finished", "error", "canceled"):
        if time.monotonic() > deadline:
            raise SystemExit(f"run {run['id']} did not end within {WAIT_SECONDS:g} s")
        time.sleep(1.0)
        run = _call(args.engine, token, "GET", f"/api/v1/runs/{run['id']}")
    if run["status"] != "finished":
        raise SystemExit(f"run {run['id']} ended as {run['status']}: {json.dumps(run.get('error'))}")
    item_dir = args.out / run["id"]
    item_dir.mkdir(parents=True, exist_ok=True)
    files: dict[str, dict[str, Any]] = {}
    for asset in run.get("assets") or []:
        sha = _download(args.engine, token, f"/api/v1/runs/{run['id']}/results/{asset['name']}",
                        item_dir / asset["name"])
        if sha != asset["sha256"]:
            raise SystemExit(f"{asset['name']}: the bytes read do not match the SHA-256 the engine lists")
        files[asset["name"]] = asset
    provenance = _call(args.engine, token, "GET", f"/api/v1/runs/{run['id']}/provenance")
    text = json.dumps(provenance, indent=2).encode()
    (item_dir / "provenance.json").write_bytes(text)
    files["provenance.json"] = {"type": "application/json", "size": len(text),
                                "sha256": hashlib.sha256(text).hexdigest()}
    _catalog(args.out, run, files, {"twin": args.twin, "app": args.app, "workflow": args.workflow,
                                    "parameters": parameters})
    print(f"run {run['id']} finished: {len(files)} files in {args.out}/catalog.json", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
