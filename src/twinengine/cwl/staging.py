"""Stage in and out (OGC Best Practice for EO Application Packages): a package's File and Directory inputs come
from the engine's own data, its outputs go back as the run's results.

An input is named by a URL of this engine (its host is not contacted: only the path counts): a STAC item
(``/stac/collections/{c}/items/{i}``) becomes a Directory holding a STAC catalog of that item and its asset files,
a lake file (``/api/v1/lake/dids/{did}/content``) or a run's asset (``/openeo/1.2/jobs/{run}/results/assets/{n}``)
a File. Each is read as the run's owner, checked against its checksum, and recorded as an input of the run.
Every file an output names is kept as an asset of the run (in the lake, with the run's STAC item, where results
go to the lake); a Directory keeps its STAC catalog.
"""

from __future__ import annotations

import json
import mimetypes
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

from twinengine.errors import ChecksumMismatch, ProcessParameterInvalid
from twinengine.workflows.results import file_sha256

if TYPE_CHECKING:
    from twinengine.cwl.package import Package
    from twinengine.workflows.context import RunContext

__all__ = ["keep_outputs", "stage_inputs"]

_ITEM = re.compile(r"/stac/collections/(?P<c>[^/]+)/items/(?P<i>[^/]+)/?$")
_DID = re.compile(r"/api/v1/lake/dids/(?P<did>.+)/content$")
_ASSET = re.compile(r"/openeo/1\.2/jobs/(?P<run>[^/]+)/results/assets/(?P<name>[^/]+)$")
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def stage_inputs(package: Package, inputs: dict[str, Any], folder: Path, ctx: RunContext) -> dict[str, Any]:
    """The cwltool job for ``inputs``: values as they are, File and Directory inputs staged under ``folder``."""
    job: dict[str, Any] = {}
    kinds = {i.id: i.kind for i in package.inputs}
    for name, value in inputs.items():
        kind = kinds.get(name)
        if kind is None:
            job[name] = value
        elif isinstance(value, list):
            job[name] = [_stage(name, f"{name}[{n}]", v, kind, folder / f"{name}-{n}", ctx)
                         for n, v in enumerate(value)]
        else:
            job[name] = _stage(name, name, value, kind, folder / name, ctx)
    return job


def _href(place: str, value: Any) -> str:
    if isinstance(value, dict) and isinstance(value.get("href"), str):
        return str(value["href"])
    if isinstance(value, str):
        return value
    raise ProcessParameterInvalid(f"inputs.{place}: a reference ({{\"href\": URL}}) to the engine's data is required")


def _stage(name: str, place: str, value: Any, kind: str, into: Path, ctx: RunContext) -> dict[str, Any]:
    href = _href(place, value)
    path = unquote(urlparse(href).path)
    into.mkdir(parents=True, exist_ok=True)
    if (item := _ITEM.search(path)) is not None:
        catalog = _stage_item(item.group("c"), item.group("i"), into, ctx)
        if kind == "Directory":
            return {"class": "Directory", "location": str(catalog.parent)}
        raise ProcessParameterInvalid(f"inputs.{place}: a STAC item is a Directory (a catalog); this input is a File")
    if kind == "Directory":
        raise ProcessParameterInvalid(f"inputs.{place}: a Directory input takes a STAC item of this engine "
                                      "(/stac/collections/{c}/items/{i})")
    if (did := _DID.search(path)) is not None:
        return {"class": "File", "location": str(_stage_did(did.group("did"), into, ctx))}
    if (asset := _ASSET.search(path)) is not None:
        return {"class": "File", "location": str(_stage_asset(asset.group("run"), asset.group("name"), into, ctx))}
    raise ProcessParameterInvalid(f"inputs.{place}: {href} is not data of this engine (a STAC item, a lake file "
                                  "or a run's result asset); nothing is fetched from elsewhere")


def _session(ctx: RunContext) -> Any:
    if ctx.db is None:
        raise ProcessParameterInvalid("this run has no store to read its inputs from")
    return ctx.db.session(readonly=True)


def _stage_did(did: str, into: Path, ctx: RunContext, *, name: str | None = None) -> Path:
    from twinengine.lake.replicas import open_replica

    lake = ctx.services.get("lake")
    if lake is None:
        raise ProcessParameterInvalid(f"{did}: this engine has no data lake to read it from")
    with _session(ctx) as session:
        readable = open_replica(session, lake, principal=ctx.principal, did=did, db=ctx.db)
    target = into / _SAFE.sub("_", name or did.rpartition("/")[2].rpartition(":")[2] or "file")
    with target.open("wb") as fh:
        for chunk in readable.read():
            fh.write(chunk)
    if file_sha256(target) != readable.checksums.sha256:
        raise ChecksumMismatch(f"{did}: the bytes read do not match its registered SHA-256")
    ctx.inputs.append({"collection": f"lake:{did}", "version": readable.checksums.sha256, "node": ctx.node})
    return target


def _stage_asset(run_id: str, name: str, into: Path, ctx: RunContext) -> Path:
    from twinengine.workflows import service as runs

    with _session(ctx) as session:
        run = runs.get_run(session, principal=ctx.principal, run_id=run_id)
        asset = next((a for a in run.assets if a["name"] == name), None)
        if run.status != "finished" or asset is None:
            raise ProcessParameterInvalid(f"run {run_id} has no result asset {name!r}")
        sha = str(asset["sha256"])
    source = ctx.results.path(run_id, name)
    target = into / _SAFE.sub("_", name)
    target.write_bytes(source.read_bytes())
    if file_sha256(target) != sha:
        raise ChecksumMismatch(f"run {run_id}'s asset {name}: its bytes do not match its SHA-256")
    ctx.inputs.append({"collection": f"run:{run_id}/{name}", "version": sha, "node": ctx.node})
    return target


def _stage_item(collection: str, item_id: str, into: Path, ctx: RunContext) -> Path:
    """A STAC catalog of one item under ``into``: ``catalog.json``, ``<item>/<item>.json`` and its asset files
    beside it, the hrefs relative (as a package stages in)."""
    from twinengine.lake.stac import service as stac
    from twinengine.lake.stac.objects import Links

    with _session(ctx) as session:
        item = stac.item(session, principal=ctx.principal, links=Links("http://engine"), cid=collection, iid=item_id)
    folder = into / _SAFE.sub("_", item_id)
    folder.mkdir(parents=True, exist_ok=True)
    for key, asset in (item.get("assets") or {}).items():
        did = asset.get("lake:did")
        if not isinstance(did, str):
            continue
        local = _stage_did(did, folder, ctx, name=f"{key}{Path(urlparse(str(asset['href'])).path).suffix}")
        asset["href"] = f"./{local.name}"
        asset.pop("alternate", None)
    item["links"] = [{"rel": "root", "href": "../catalog.json", "type": "application/json"},
                     {"rel": "parent", "href": "../catalog.json", "type": "application/json"}]
    (folder / f"{folder.name}.json").write_text(json.dumps(item))
    catalog = {"type": "Catalog", "stac_version": "1.0.0", "id": f"{collection}-{item_id}",
               "description": f"item {item_id} of collection {collection}",
               "links": [{"rel": "root", "href": "./catalog.json", "type": "application/json"},
                         {"rel": "item", "href": f"./{folder.name}/{folder.name}.json",
                          "type": "application/geo+json"}]}
    (into / "catalog.json").write_text(json.dumps(catalog))
    return into / "catalog.json"


def keep_outputs(output: dict[str, Any], outdir: Path, ctx: RunContext) -> dict[str, Any]:
    """The package's output object with every File kept as an asset of the run (``{"asset": name, ...}``) and
    every Directory as its files (``{"files": [...]}``); other values as they are."""
    return {name: _keep(name, value, outdir, ctx) for name, value in output.items()}


def _keep(name: str, value: Any, outdir: Path, ctx: RunContext) -> Any:
    if isinstance(value, list):
        return [_keep(f"{name}-{n}", v, outdir, ctx) for n, v in enumerate(value)]
    if not isinstance(value, dict):
        return value
    if value.get("class") == "File":
        return _keep_file(name, Path(unquote(urlparse(str(value["location"])).path)), outdir, ctx)
    if value.get("class") == "Directory":
        root = Path(unquote(urlparse(str(value["location"])).path))
        files = [_keep_file(f"{name}-{_SAFE.sub('_', str(p.relative_to(root)))}", p, outdir, ctx)
                 | {"path": str(p.relative_to(root))}
                 for p in sorted(root.rglob("*")) if p.is_file()]
        return {"class": "Directory", "files": files}
    return {k: _keep(f"{name}-{k}", v, outdir, ctx) for k, v in value.items()}


def _keep_file(name: str, path: Path, outdir: Path, ctx: RunContext) -> dict[str, Any]:
    resolved = path.resolve()
    if outdir.resolve() not in resolved.parents:
        raise ProcessParameterInvalid(f"output {name}: it names a file outside the package's outputs")
    media = mimetypes.guess_type(resolved.name)[0] or "application/octet-stream"
    if resolved.suffix == ".json" and resolved.name.endswith(("catalog.json", "collection.json")):
        media = "application/json"
    taken = {a.name for a in ctx.assets}
    asset_name = _SAFE.sub("_", name)[:180] or "output"
    while asset_name in taken:
        asset_name = "_" + asset_name
    scratch = ctx.results.scratch(ctx.run_id) / asset_name
    scratch.write_bytes(resolved.read_bytes())
    asset = ctx.results.keep(ctx.run_id, scratch, name=asset_name, media_type=media, fmt=resolved.suffix.lstrip("."))
    ctx.assets.append(asset)
    return {"asset": asset.name, "type": media, "size": asset.size, "sha256": asset.sha256}
