"""``twin lake``: storage endpoints, uploads and downloads, datasets, replication rules, verify, STAC import,
and the lake's background loops."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import typer
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from twinengine.cli._common import DataDirOption, console, err_console, local_settings, state_of, table
from twinengine.cli.lake_endpoints import endpoint_app, pairs, parse_size
from twinengine.errors import ValidationFailed
from twinengine.lake.schemas import DidRead, RuleRead

app = typer.Typer(help="The federated data lake: endpoints, files and datasets, replication rules, STAC import.",
                  no_args_is_help=True)
dataset_app = typer.Typer(help="Datasets and containers.", no_args_is_help=True)
rule_app = typer.Typer(help="Replication rules.", no_args_is_help=True)
app.add_typer(endpoint_app, name="endpoint")

__all__ = ["app", "parse_size"]
app.add_typer(dataset_app, name="dataset")
app.add_typer(rule_app, name="rule")

def _bar(transient: bool = False) -> Progress:
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), DownloadColumn(), TaskProgressColumn(),
                    TransferSpeedColumn(), TimeRemainingColumn(), console=err_console, transient=transient)


def _show_did(d: DidRead) -> None:
    console.print(f"[bold]{d.did}[/bold] ({d.type.value})" + (f" {d.bytes} bytes, adler32 {d.adler32}, sha256 "
                                                                 f"{d.sha256}" if d.sha256 else ""), highlight=False)
    if d.meta:
        console.print("  meta: " + ", ".join(f"{k}={v}" for k, v in d.meta.items()), highlight=False)
    if d.terms is not None:
        said = "one more use is permitted now" if d.terms.usable else f"refused now: {d.terms.refusal}"
        times = "once" if d.terms.uses == 1 else f"{d.terms.uses} times"
        console.print(f"  a copy of {d.terms.provider}'s data under agreement {d.terms.agreement}: used "
                      f"{times} on this engine; {said}", highlight=False)
    if d.replicas:
        console.print(table("replicas", ["endpoint", "state", "bytes", "verified (UTC)", "error"],
                            [(r.endpoint, r.state.value, r.bytes, r.verified_at, r.error) for r in d.replicas]))
    if d.children:
        console.print(table(f"members ({len(d.children)})", ["did"], [(c,) for c in d.children]))


@app.command("upload")
def upload(ctx: typer.Context, path: Path = typer.Argument(..., exists=True, dir_okay=False),
           did: str = typer.Argument(..., help="scope:name"),
           endpoint: str = typer.Option(..., "--endpoint", "-e"),
           dataset: str | None = typer.Option(None, "--dataset", help="Also attach to this dataset."),
           sha256: str | None = typer.Option(None, "--sha256", help="Reject the upload unless it matches."),
           adler32: str | None = typer.Option(None, "--adler32", help="Reject the upload unless it matches."),
           media_type: str | None = typer.Option(None, "--type", help="Media type, e.g. application/x-netcdf."),
           group: str | None = typer.Option(None, "--group", help="The group whose file it is: its members read "
                                                                   "it (default: the dataset's group)."),
           ) -> None:
    """Upload a file; adler32 and sha256 are computed while it streams."""
    out = state_of(ctx)
    with out.client() as client, _bar(transient=True) as bars:
        task = bars.add_task(f"upload {path.name}", total=path.stat().st_size)
        if out.as_json:
            bars.stop()
        result = client.lake.upload(path, did, endpoint=endpoint, dataset=dataset, sha256=sha256, adler32=adler32,
                                    media_type=media_type, progress=lambda n: bars.advance(task, n), group=group)
    verb = "uploaded" if result.created else "already there:"
    out.emit(result, lambda: console.print(f"{verb} {result.file.did} to {endpoint}: {result.file.bytes} bytes, "
                                           f"adler32 {result.file.adler32}, sha256 {result.file.sha256}",
                                           highlight=False))


@app.command("download")
def download(ctx: typer.Context, did: str = typer.Argument(...), dest: Path | None = typer.Argument(None),
             endpoint: str | None = typer.Option(None, "--endpoint", "-e"),
             verify: bool = typer.Option(False, "--verify", help="Have the server re-read the replica first.")) -> None:
    """Download a file (sha256 checked on arrival)."""
    out = state_of(ctx)
    target = dest or Path(did.partition(":")[2].rsplit("/", 1)[-1])
    with out.client() as client:
        info = client.lake.get(did)
        with _bar(transient=True) as bars:
            task = bars.add_task(f"download {target.name}", total=info.bytes or 0)
            if out.as_json:
                bars.stop()
            client.lake.download(did, target, endpoint=endpoint, verify=verify,
                                 progress=lambda n: bars.advance(task, n))
    out.emit({"did": did, "path": str(target), "bytes": info.bytes, "sha256": info.sha256},
             lambda: console.print(f"downloaded {did} to {target} ({info.bytes} bytes, sha256 verified)",
                                   highlight=False))


@app.command("ls")
def ls(ctx: typer.Context, scope: str | None = typer.Option(None, "--scope"),
       kind: str | None = typer.Option(None, "--type", help="file, dataset or container"),
       prefix: str | None = typer.Option(None, "--prefix"), limit: int = typer.Option(100, "--limit")) -> None:
    """List files, datasets and containers."""
    out = state_of(ctx)
    with out.client() as client:
        page = client.lake.dids(scope=scope, type=kind, prefix=prefix, limit=limit)
    out.emit(page, lambda: console.print(table(f"lake ({len(page.items)} of {page.total})",
                                               ["did", "type", "bytes", "sha256"],
                                               [(d.did, d.type.value, d.bytes, (d.sha256 or "")[:16])
                                                for d in page.items])))


@app.command("show")
def show(ctx: typer.Context, did: str = typer.Argument(...)) -> None:
    """One file (with its replicas) or dataset/container (with its members)."""
    out = state_of(ctx)
    with out.client() as client:
        row = client.lake.get(did)
    out.emit(row, lambda: _show_did(row))


@app.command("rm")
def rm(ctx: typer.Context, did: str = typer.Argument(...)) -> None:
    """Delete a file, dataset or container with its rules and replicas (a dataset's files stay)."""
    out = state_of(ctx)
    with out.client() as client:
        client.lake.remove(did)
    out.emit({"removed": did}, lambda: console.print(f"removed {did}"))


@dataset_app.command("add")
def dataset_add(ctx: typer.Context, did: str = typer.Argument(...),
                container: bool = typer.Option(False, "--container", help="A container instead of a dataset."),
                meta: list[str] = typer.Option([], "--meta", help="key=value metadata."),
                bbox: str | None = typer.Option(None, "--bbox", help="west,south,east,north"),
                start: str | None = typer.Option(None, "--start"),
                end: str | None = typer.Option(None, "--end"),
                group: str | None = typer.Option(None, "--group", help="The group whose it is: its members read "
                                                                        "it and the files uploaded into it."),
                twin: str | None = typer.Option(None, "--twin", help="The twin whose data it is: those who may read "
                                                                      "the twin read it and the files uploaded into "
                                                                      "it (you must operate the twin).")) -> None:
    """Register a dataset (or container) with metadata and an extent for STAC."""
    out = state_of(ctx)
    box = None
    if bbox:
        try:
            west, south, east, north = (float(v) for v in bbox.split(","))
        except ValueError:
            raise ValidationFailed.one("--bbox", "expects west,south,east,north") from None
        box = (west, south, east, north)
    with out.client() as client:
        row = client.lake.add_dataset(did, container=container, meta=pairs(meta, "--meta"), bbox=box,
                                      start_time=start, end_time=end, group=group, twin=twin)
    out.emit(row, lambda: _show_did(row))


@dataset_app.command("attach")
def dataset_attach(ctx: typer.Context, parent: str = typer.Argument(...),
                   children: list[str] = typer.Argument(...)) -> None:
    """Put files into a dataset, or datasets into a container."""
    out = state_of(ctx)
    with out.client() as client:
        row = client.lake.attach(parent, children)
    out.emit(row, lambda: _show_did(row))


def _rule_line(r: RuleRead) -> str:
    error = f"; last error: {r.last_error}" if r.last_error else ""
    return (f"rule {r.id} on {r.did}: {r.copies} copies on '{r.endpoints}' → [bold]{r.state.value}[/bold] "
            f"({r.locks_ok} ok, {r.locks_replicating} replicating, {r.locks_stuck} stuck; {r.percent:.0f}%){error}")


@rule_app.command("add")
def rule_add(ctx: typer.Context, did: str = typer.Argument(...), copies: int = typer.Option(..., "--copies", min=1),
             endpoints: str = typer.Option(..., "--endpoints", help="Expression, e.g. 'site=A|tier=1&type=disk'."),
             lifetime: str | None = typer.Option(None, "--lifetime", help="e.g. 7d"),
             comment: str | None = typer.Option(None, "--comment"),
             wait: bool = typer.Option(False, "--wait", help="Show progress until the rule is OK or STUCK.")) -> None:
    """Keep COPIES replicas of every file under DID on endpoints the expression selects."""
    out = state_of(ctx)
    with out.client() as client:
        rule = client.lake.add_rule(did, copies=copies, endpoints=endpoints, lifetime=lifetime, comment=comment)
        if wait:
            rule = _wait(client, rule, quiet=out.as_json)
    out.emit(rule, lambda: console.print(_rule_line(rule), highlight=False))


def _wait(client: Any, rule: RuleRead, *, quiet: bool, timeout: float = 3600) -> RuleRead:
    deadline = time.monotonic() + timeout
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), TaskProgressColumn(), console=err_console,
                  disable=quiet, transient=True) as bars:
        task = bars.add_task(f"rule {rule.id[:8]}", total=100)
        while rule.state.value == "REPLICATING" and time.monotonic() < deadline:
            time.sleep(0.5)
            rule = client.lake.rule(rule.id)
            bars.update(task, completed=rule.percent)
    return rule


@rule_app.command("list")
def rule_list(ctx: typer.Context, did: str | None = typer.Option(None, "--did"),
              state: str | None = typer.Option(None, "--state")) -> None:
    out = state_of(ctx)
    with out.client() as client:
        page = client.lake.rules(did=did, state=state)
    out.emit(page, lambda: console.print(table(f"rules ({page.total})", [
        "id", "did", "copies", "endpoints", "state", "ok", "replicating", "stuck", "expires (UTC)", "last error"],
        [(r.id, r.did, r.copies, r.endpoints, r.state.value, r.locks_ok, r.locks_replicating, r.locks_stuck,
          r.expires_at, r.last_error) for r in page.items])))


@rule_app.command("show")
def rule_show(ctx: typer.Context, rule_id: str = typer.Argument(...),
              wait: bool = typer.Option(False, "--wait", help="Show progress until OK or STUCK.")) -> None:
    out = state_of(ctx)
    with out.client() as client:
        rule = client.lake.rule(rule_id)
        if wait:
            rule = _wait(client, rule, quiet=out.as_json)
    out.emit(rule, lambda: console.print(_rule_line(rule), highlight=False))


@rule_app.command("remove")
def rule_remove(ctx: typer.Context, rule_id: str = typer.Argument(...)) -> None:
    """Remove a rule; replicas no other rule needs are deleted after the grace period."""
    out = state_of(ctx)
    with out.client() as client:
        client.lake.remove_rule(rule_id)
    out.emit({"removed": rule_id}, lambda: console.print(f"removed rule {rule_id}"))


@rule_app.command("suspend")
def rule_suspend(ctx: typer.Context, rule_id: str = typer.Argument(...)) -> None:
    out = state_of(ctx)
    with out.client() as client:
        rule = client.lake.suspend_rule(rule_id)
    out.emit(rule, lambda: console.print(_rule_line(rule), highlight=False))


@rule_app.command("resume")
def rule_resume(ctx: typer.Context, rule_id: str = typer.Argument(...)) -> None:
    out = state_of(ctx)
    with out.client() as client:
        rule = client.lake.suspend_rule(rule_id, suspended=False)
    out.emit(rule, lambda: console.print(_rule_line(rule), highlight=False))


@app.command("transfers")
def transfers(ctx: typer.Context, rule: str | None = typer.Option(None, "--rule"),
              state: str | None = typer.Option(None, "--state"), limit: int = typer.Option(50, "--limit")) -> None:
    """Recent transfers, newest first."""
    out = state_of(ctx)
    with out.client() as client:
        rows = client.lake.transfers(rule_id=rule, state=state, limit=limit)
    out.emit(rows, lambda: console.print(table(f"transfers ({len(rows)})", [
        "id", "did", "from", "to", "state", "attempts", "bytes", "last error"],
        [(t.id, t.did, t.source, t.destination, t.state, t.attempts, t.bytes_done, t.last_error) for t in rows])))


@app.command("verify")
def verify(ctx: typer.Context,
           did: str | None = typer.Argument(None, help="scope:name (a file, dataset or container)."),
           endpoint: str | None = typer.Option(None, "--endpoint", "-e", help="Every replica on this endpoint."),
           ) -> None:
    """Re-read replicas; corrupted or missing ones become BAD and are re-replicated from a good copy."""
    out = state_of(ctx)
    if not did and not endpoint:
        raise ValidationFailed.one("DID", "name a did or --endpoint")
    checked = ok = queued = 0
    bad = []
    with out.client() as client:
        replicas = client.lake.replicas(did=did, endpoint=endpoint)
        with Progress(TextColumn("[bold]{task.description}"), BarColumn(), TaskProgressColumn(), console=err_console,
                      disable=out.as_json, transient=True) as bars:
            task = bars.add_task("verifying replicas", total=len(replicas))
            for replica in replicas:
                result = client.lake.verify_replica(replica.id)
                checked += result.checked
                ok += result.ok
                queued += result.repairs_queued
                bad += result.bad
                bars.advance(task, 1)
    summary = {"checked": checked, "ok": ok, "bad": [b.model_dump(mode="json") for b in bad],
               "repairs_queued": queued}

    def render() -> None:
        console.print(f"verified {checked} replicas: {ok} good, {len(bad)} bad, {queued} repairs queued")
        if bad:
            console.print(table("bad replicas", ["did", "endpoint", "problem"],
                                [(b.did, b.endpoint, b.error) for b in bad]))

    out.emit(summary, render)
    if bad:
        raise typer.Exit(2)


@app.command("import-stac")
def import_stac(ctx: typer.Context, url: str = typer.Argument(..., help="The STAC API's landing page."),
                collection: str = typer.Option(..., "--collection"),
                endpoint: str = typer.Option(..., "--endpoint", "-e"),
                bbox: str | None = typer.Option(None, "--bbox", help="west,south,east,north"),
                datetime_: str | None = typer.Option(None, "--datetime", help="RFC 3339 instant or interval."),
                scope: str | None = typer.Option(None, "--scope", help="Default: the collection id."),
                limit: int = typer.Option(100, "--limit", min=1, max=10_000),
                token: str | None = typer.Option(None, "--token", envvar="TWIN_STAC_TOKEN",
                                                 help="The source's bearer token (used, never stored).")) -> None:
    """Register a STAC collection's items and fetch their assets (checksummed while streaming); idempotent."""
    out = state_of(ctx)
    box = None
    if bbox:
        try:
            west, south, east, north = (float(v) for v in bbox.split(","))
        except ValueError:
            raise ValidationFailed.one("--bbox", "expects west,south,east,north") from None
        box = (west, south, east, north)
    with out.client() as client, console.status(f"importing {collection} from {url}", spinner="dots"):
        result = client.lake.import_stac(url, collection, endpoint=endpoint, scope=scope, bbox=box,
                                         datetime=datetime_, limit=limit, token=token)
    out.emit(result, lambda: console.print(
        f"imported {result.items} items into {result.collection}: {result.files_registered} files fetched "
        f"({result.bytes} bytes), {result.files_present} already present", highlight=False))


@app.command("daemon")
def daemon(which: str = typer.Argument("all", help="judge, conveyor, reaper or all"),
           data_dir: Any = DataDirOption, interval: float = typer.Option(2.0, "--interval", min=0.1)) -> None:
    """Run the lake's background loops in this process (``twin serve`` runs them too unless told not to)."""
    from twinengine.daemons.lake import LAKE_LOOPS, lake_loops
    from twinengine.runtime import Runtime
    from twinengine.stopping import until_stopped

    if which not in (*LAKE_LOOPS, "all"):
        raise ValidationFailed.one("WHICH", "expects judge, conveyor, reaper or all")
    chosen = LAKE_LOOPS if which == "all" else (which,)
    runtime = Runtime.from_settings(local_settings(data_dir))
    runtime.start()
    for loop in lake_loops(runtime, interval=interval, which=chosen):
        runtime.loops.add(loop)  # this process runs them: it has no election
    err_console.print(f"lake {', '.join(chosen)} running on {runtime.settings.db_url.split('://')[0]}; Ctrl-C stops")
    until_stopped(poll=0.5)
    runtime.close()
