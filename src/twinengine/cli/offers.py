"""``twin offer``: the data space. Offer lake data under a policy, know participants (admins), read another
engine's catalog, negotiate, transfer and follow agreements (docs/dataspaces.md)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from pydantic import TypeAdapter, ValidationError

from twinengine.cli._common import console, state_of, table
from twinengine.quality.spec import Flag

if TYPE_CHECKING:
    from twinengine.dataspace.schemas import ParticipantRead

app = typer.Typer(help="The data space: offer lake data under ODRL policies; find, negotiate and transfer "
                       "another engine's.", no_args_is_help=True)
participant_app = typer.Typer(help="Participants this engine knows as a provider (admins).", no_args_is_help=True)
app.add_typer(participant_app, name="participant")

_FINAL = {"FINALIZED", "TERMINATED", "COMPLETED"}


class NegotiationStep(StrEnum):
    """A person's step in a negotiation: the provider's on a manual offer, the consumer's on its own."""

    agree = "agree"
    finalize = "finalize"
    offer = "offer"
    request = "request"
    accept = "accept"
    verify = "verify"
    terminate = "terminate"


class TransferStep(StrEnum):
    """A person's step on a transfer process (``start`` also resumes a suspended one)."""

    start = "start"
    suspend = "suspend"
    complete = "complete"
    terminate = "terminate"


@app.command("create")
def create(ctx: typer.Context,
           did: str | None = typer.Argument(None, help="The lake file or dataset (scope:name)."),
           stream: str | None = typer.Option(None, "--stream", metavar="TWIN/STREAM",
                                             help="Offer the history of a twin's stream instead of DID."),
           run: str | None = typer.Option(None, "--run", metavar="RUN",
                                          help="Offer a finished workflow run's results instead of DID."),
           collection: str | None = typer.Option(None, "--collection", metavar="ID",
                                                 help="Offer EDR queries of a collection (scope.name) instead of "
                                                      "DID: no files, each query an access."),
           live: bool = typer.Option(False, "--live", help="With --stream: a pushed transfer goes on pushing what "
                                                           "the stream receives, until suspended or ended."),
           since: datetime | None = typer.Option(None, "--from", help="With --stream: only readings from this "
                                                                       "time (UTC)."),
           before: datetime | None = typer.Option(None, "--to", help="With --stream: only readings before this "
                                                                      "time (UTC)."),
           last: str | None = typer.Option(None, "--last", metavar="DURATION",
                                           help="With --stream: only readings of this long before each transfer "
                                                "(P7D, PT6H or seconds)."),
           key: list[str] = typer.Option([], "--key", metavar="VALUE",
                                         help="With --stream: only the readings whose key field (the stream's "
                                              "key, a station id) has this value (repeat for several sources)."),
           quality: list[Flag] = typer.Option([], "--quality", help="With --stream: only readings its quality "
                                                                    "checks flagged so (repeat: good, suspect)."),
           field: list[str] = typer.Option([], "--field", help="With --stream: only these of its fields (repeat; "
                                                               "the time field always)."),
           title: str = typer.Option(..., "--title"),
           description: str | None = typer.Option(None, "--description"),
           keyword: list[str] = typer.Option([], "--keyword"),
           until: datetime | None = typer.Option(None, "--until", help="dateTime: nothing after this time (UTC)."),
           days: int | None = typer.Option(None, "--days", help="elapsedTime: days after the agreement."),
           count: int | None = typer.Option(None, "--count", help="count: transfers under one agreement, and uses "
                                                                  "of the consumer's copies of them."),
           purpose: list[str] = typer.Option([], "--purpose", help="purpose: one the consumer must declare."),
           participant: list[str] = typer.Option([], "--participant", help="recipient: a participant's did:web."),
           organisation: list[str] = typer.Option([], "--organisation", help="The consumer's organisation."),
           group: list[str] = typer.Option([], "--group", help="A group the consumer is in."),
           spatial: list[str] = typer.Option([], "--spatial", help="A region the consumer is in (EU, ...)."),
           attribution: bool = typer.Option(False, "--attribution", help="An obligation to attribute."),
           delete_after: int | None = typer.Option(None, "--delete-after", metavar="DAYS", min=1,
                                                   help="An obligation to delete the consumer's copy this many "
                                                        "days after the agreement (its engine does)."),
           policy: Path | None = typer.Option(None, "--policy", help="An ODRL policy (JSON) instead of the terms.",
                                              exists=True, dir_okay=False),
           manual: bool = typer.Option(False, "--manual", help="Agree, finalize and start by hand.")) -> None:
    """Offer a lake file or dataset of yours (a twin's: its owner's), with --stream the history of a twin's
    stream (each transfer serves it as it stood when the transfer was accepted), with --run a finished workflow
    run's results, or with --collection EDR queries of a collection, under a policy. A rule the engine cannot
    enforce is refused, naming it."""
    out = state_of(ctx)
    if sum(x is not None for x in (did, stream, run, collection)) != 1:
        raise typer.BadParameter("give the DID of a lake file or dataset, --stream TWIN/STREAM, --run RUN or "
                                 "--collection ID (one)", param_hint="DID")
    if live and stream is None:
        raise typer.BadParameter("only a stream (--stream) is offered live", param_hint="--live")
    if (since or before or last) and stream is None:
        raise typer.BadParameter("only a stream's history (--stream) is offered in a window", param_hint="--from")
    if (key or quality or field) and stream is None:
        raise typer.BadParameter("only a stream's readings (--stream) are chosen by source, quality or field",
                                 param_hint="--key" if key else "--quality" if quality else "--field")
    window: tuple[datetime | None, datetime | None] | timedelta | None = None
    if last is not None:
        if since or before:
            raise typer.BadParameter("a rolling window (--last) or a fixed one (--from, --to), not both",
                                     param_hint="--last")
        try:
            window = TypeAdapter(timedelta).validate_python(float(last) if last.replace(".", "", 1).isdigit()
                                                            else last)
        except ValidationError:
            raise typer.BadParameter(f"{last!r} is not a duration (P7D, PT6H or seconds)", param_hint="--last") \
                from None
    elif since or before:
        window = (_utc(since), _utc(before))
    twin_name, _, stream_name = (stream or "").partition("/")
    if stream is not None and (not twin_name or not stream_name or "/" in stream_name):
        raise typer.BadParameter(f"{stream!r} is not TWIN/STREAM", param_hint="--stream")
    rules = json.loads(policy.read_text()) if policy else None
    terms: dict[str, Any] = dict(description=description, keywords=keyword, policy=rules, until=until, days=days,
                                 count=count, purposes=purpose or None, participants=participant or None,
                                 organisations=organisation or None, groups=group or None,
                                 spatial=spatial or None, attribution=attribution, manual=manual,
                                 delete_after=delete_after)
    with out.client() as client:
        made = (client.dataspace.offer(did, title, **terms) if did is not None
                else client.dataspace.offer_run(run, title, **terms) if run is not None
                else client.dataspace.offer_collection(collection, title, **terms) if collection is not None
                else client.dataspace.offer_stream(twin_name, stream_name, title, live=live, window=window,
                                                   key=key or None,  # a list of one is a key (the engine)
                                                   quality=[f.value for f in quality] or None,
                                                   fields=field or None, **terms))
    what = f"queries of collection {made.collection}" if made.collection else made.did
    out.emit(made, lambda: console.print(f"offered {what} as dataset {made.dataset_id} (offer {made.id})",
                                         highlight=False))


@app.command("list")
def list_offers(ctx: typer.Context, withdrawn: bool = typer.Option(False, "--withdrawn")) -> None:
    """Offers of yours (every offer, for admins)."""
    out = state_of(ctx)
    with out.client() as client:
        rows = client.dataspace.offers(withdrawn=withdrawn)
    out.emit(rows, lambda: console.print(table(None, ["dataset", "did", "title", "owner", "withdrawn"],
                                               [[r.dataset_id, r.did, r.title, r.owner,
                                                 str(r.withdrawn_at or "")] for r in rows])))


@app.command("withdraw")
def withdraw(ctx: typer.Context, offer_id: str = typer.Argument(...)) -> None:
    """Take an offer out of the catalog; agreements made under it stand until revoked."""
    out = state_of(ctx)
    with out.client() as client:
        row = client.dataspace.withdraw(offer_id)
    out.emit(row, lambda: console.print(f"withdrew {row.id}", highlight=False))


@app.command("identity")
def identity(ctx: typer.Context) -> None:
    """This engine's participant id (did:web) and protocol addresses."""
    out = state_of(ctx)
    with out.client() as client:
        found = client.dataspace.identity()
    out.emit(found, lambda: console.print(f"{found.did}  {found.base}", highlight=False))


@app.command("catalog")
def catalog(ctx: typer.Context, url: str = typer.Argument(..., help="The provider engine's URL.")) -> None:
    """The datasets another engine offers this one."""
    out = state_of(ctx)
    with out.client() as client:
        found = client.dataspace.catalog(url)
    rows = [[d["@id"], d.get("dct:title", ""), ", ".join(p["@id"] for p in d.get("hasPolicy", []))]
            for d in found.get("dataset", [])]
    out.emit(found, lambda: console.print(table(None, ["dataset", "title", "offers"], rows)))


def _wait(client: object, kind: str, item: int, timeout: float, *, delivered: bool = False,
          started: bool = False) -> Any:
    """The negotiation or transfer once final (``delivered``: once nothing it owes the other side is pending;
    ``started``: once it started, or ended)."""
    deadline = time.monotonic() + timeout
    dataspace = client.dataspace  # type: ignore[attr-defined]
    read = dataspace.negotiation if kind == "negotiation" else dataspace.transfer_state
    final = _FINAL | {"STARTED"} if started else _FINAL
    row = read(item)
    while ((row.state not in final and not delivered) or row.pending) and time.monotonic() < deadline:
        time.sleep(0.2)
        row = read(item)
    return row


def _steer(ctx: typer.Context, kind: str, item: int, step: StrEnum | None, wait: bool) -> None:
    """Show a negotiation or transfer process, or take a step on it first (and wait until it was delivered)."""
    out = state_of(ctx)
    with out.client() as client:
        dataspace = client.dataspace
        if kind == "negotiation":
            row: Any = dataspace.step(item, step.value) if step else dataspace.negotiation(item)
        else:
            row = dataspace.transfer_step(item, step.value) if step else dataspace.transfer_state(item)
        if wait:
            row = _wait(client, kind, row.id, 120, delivered=True)
    pending = f" (sending {row.pending})" if row.pending else ""
    agreement = f" agreement {row.agreement_id}" if row.agreement_id else ""
    moved = f" {row.bytes} bytes" if getattr(row, "bytes", 0) else ""
    offered = f"; the {row.offered_by}'s offer: {rules_words(row.offer)}" if getattr(row, "offer", None) and \
        row.state in ("REQUESTED", "OFFERED") else ""
    said = f"{kind} {row.id} {row.role} {row.state}{pending}{agreement}{moved} {row.error or ''}".rstrip() + offered
    out.emit(row, lambda: console.print(said, highlight=False))


@app.command("negotiate")
def negotiate(ctx: typer.Context, url: str = typer.Argument(..., help="The provider engine's URL."),
              dataset: str = typer.Argument(..., help="The dataset's id in its catalog."),
              offer: str | None = typer.Option(None, "--offer"), purpose: str | None = typer.Option(None, "--purpose"),
              land: str | None = typer.Option(None, "--land", help="Transfer once finalized, landing as this "
                                                                  "dataset (scope:name)."),
              twin: str | None = typer.Option(None, "--twin", help="The twin whose data it lands as."),
              endpoint: str | None = typer.Option(None, "--endpoint"),
              push: bool = typer.Option(False, "--push", help="With --land: the provider pushes the data to this "
                                                             "engine (HttpData-PUSH) instead of it pulling."),
              wait: bool = typer.Option(False, "--wait", help="Wait until it is FINALIZED or TERMINATED (and the "
                                                              "transfer, with --land, COMPLETED).")) -> None:
    """Negotiate for a dataset of another engine, under its offer as its catalog has it."""
    out = state_of(ctx)
    with out.client() as client:
        row = client.dataspace.negotiate(url, dataset, offer=offer, purpose=purpose, land=land, twin=twin,
                                         endpoint=endpoint, push=push)
        if wait:
            row = _wait(client, "negotiation", row.id, 120)
            if land and row.state == "FINALIZED" and row.agreement_id:
                moves = [t for t in client.dataspace.transfers(role="consumer", agreement=row.agreement_id)]
                if moves:
                    done = _wait(client, "transfer", moves[0].id, 600)
                    out.emit(done, lambda: console.print(f"transfer {done.state}: {done.landed or ''} "
                                                         f"{done.error or ''}", highlight=False))
                    return
    out.emit(row, lambda: console.print(f"negotiation {row.id} {row.state} {row.agreement_id or ''} "
                                        f"{row.error or ''}", highlight=False))
    if wait and row.state == "TERMINATED":
        raise typer.Exit(2)


@app.command("propose")
def propose(ctx: typer.Context, offer_id: str = typer.Argument(..., help="An offer of yours."),
            url: str | None = typer.Argument(None, help="The other engine's URL (may be left out with --participant "
                                                        "when its callback address is known here)."),
            participant: str | None = typer.Option(None, "--participant", help="Its participant id (did:web), "
                                                                               "checked."),
            to: str | None = typer.Option(None, "--to", help="Whom there it is for: a user, or group:NAME "
                                                             "(default: that engine's admins)."),
            purpose: str | None = typer.Option(None, "--purpose"),
            wait: bool = typer.Option(False, "--wait", help="Wait until the other engine has it (OFFERED).")) -> None:
    """Propose an offer of yours to a participant on another engine: the provider starts the negotiation; a
    person there accepts it, counters or declines."""
    out = state_of(ctx)
    with out.client() as client:
        row = client.dataspace.propose(offer_id, url, participant=participant, to=to, purpose=purpose)
        if wait:
            row = _wait(client, "negotiation", row.id, 120, delivered=True)
    sent = f" (sent to {row.callback}, {row.callback_source})" if row.callback else ""
    out.emit(row, lambda: console.print(f"negotiation {row.id} {row.state}: proposed to {row.peer}"
                                        f"{' for ' + row.addressee if row.addressee else ''}{sent} "
                                        f"{row.agreement_id or ''} {row.error or ''}", highlight=False))
    if wait and row.state == "TERMINATED":
        raise typer.Exit(2)


@app.command("negotiations")
def negotiations(ctx: typer.Context, role: str | None = typer.Option(None, "--role")) -> None:
    """Negotiations of yours, or of your offers, and providers' proposals for you nobody has taken up yet (take
    one up with `twin offer negotiation ID accept`, `request` with terms, or `terminate`)."""
    out = state_of(ctx)
    with out.client() as client:
        rows = client.dataspace.negotiations(role=role)
    out.emit(rows, lambda: console.print(table(None, ["id", "role", "state", "peer", "owner", "agreement", "error"], [
        [str(r.id), r.role, r.state, r.peer, r.owner or f"(for {r.addressee or 'the admins'})", r.agreement_id or "",
         (r.error or "")[:60]] for r in rows])))


@app.command("negotiation")
def negotiation(ctx: typer.Context, negotiation_id: int = typer.Argument(..., min=1),
                step: NegotiationStep | None = typer.Argument(None, help="Take this step: agree, finalize or offer "
                                                                         "(the provider's, on a manual offer); "
                                                                         "request, accept or verify (the "
                                                                         "consumer's); terminate (either)."),
                wait: bool = typer.Option(False, "--wait", help="Wait until the other side has the step."),
                count: int | None = typer.Option(None, "--count", min=1, help="With offer or request: a counter-offer "
                                                                           "of this many transfers."),
                days: int | None = typer.Option(None, "--days", min=1, help="With offer or request: a counter-offer "
                                                                         "of this many days after the agreement."),
                until: datetime | None = typer.Option(None, "--until", help="With offer or request: a counter-offer "
                                                                            "until this time (UTC)."),
                purpose: list[str] = typer.Option([], "--purpose", help="With offer or request: a counter-offer for "
                                                                        "this purpose (repeat)."),
                policy: Path | None = typer.Option(None, "--policy", exists=True, dir_okay=False,
                                                   help="With offer or request: a counter-offer of this ODRL policy "
                                                        "(JSON) instead of terms.")) -> None:
    """One negotiation; with a STEP, take that step (a manual offer's steward agrees, then finalizes). An offer
    (the steward's) or a request (the consumer's) with terms or --policy is a counter-offer: the other side
    accepts it, answers with one of its own, or terminates."""
    rules = json.loads(policy.read_text()) if policy else None
    countered = rules is not None or count is not None or days is not None or until is not None or bool(purpose)
    if countered and (step is None or step.value not in ("offer", "request")):
        raise typer.BadParameter("a counter-offer goes with the step offer (the provider's) or request (the "
                                 "consumer's)", param_hint="--policy" if rules is not None else "STEP")
    if countered and step is not None:
        out = state_of(ctx)
        with out.client() as client:
            row = client.dataspace.step(negotiation_id, step.value, policy=rules, count=count, days=days,
                                        until=_utc(until), purposes=purpose or None)
            if wait:
                row = _wait(client, "negotiation", row.id, 120, delivered=True)
        out.emit(row, lambda: console.print(f"negotiation {row.id} {row.role} {row.state}: offered "
                                            f"{rules_words(row.offer)}", highlight=False))
        return
    _steer(ctx, "negotiation", negotiation_id, step, wait)


def rules_words(policy: dict[str, Any] | None) -> str:
    """An offer's rules in a line: ``use (count lteq 3; elapsedTime lteq P7D)``, duties after a semicolon."""
    if not policy:
        return "nothing"
    said = []
    for key in ("permission", "prohibition", "obligation"):
        for rule in policy.get(key) or []:
            constraints = "; ".join(f"{c.get('leftOperand')} {c.get('operator')} {c.get('rightOperand')}"
                                    for c in rule.get("constraint") or [])
            prefix = "" if key == "permission" else "no " if key == "prohibition" else "duty "
            said.append(f"{prefix}{rule.get('action')}" + (f" ({constraints})" if constraints else ""))
    return ", ".join(said)


@app.command("agreements")
def agreements(ctx: typer.Context, role: str | None = typer.Option(None, "--role")) -> None:
    """Agreements of yours, or under your offers."""
    out = state_of(ctx)
    with out.client() as client:
        rows = client.dataspace.agreements(role=role)
    out.emit(rows, lambda: console.print(table(None, ["agreement", "role", "provider", "consumer", "transfers",
                                                "revoked"], [
        [r.id, r.role, r.provider, r.consumer, str(r.transfers), str(r.revoked_at or "")] for r in rows])))


@app.command("revoke")
def revoke(ctx: typer.Context, agreement: str = typer.Argument(...)) -> None:
    """Revoke an agreement this engine provides: its data addresses refuse at once."""
    out = state_of(ctx)
    with out.client() as client:
        row = client.dataspace.revoke(agreement)
    out.emit(row, lambda: console.print(f"revoked {row.id}", highlight=False))


@app.command("transfer")
def transfer(ctx: typer.Context, agreement: str = typer.Argument(...),
             land: str | None = typer.Argument(None, help="The dataset it lands as (scope:name); none for an EDR "
                                                          "collection's queries (twin offer query)."),
             twin: str | None = typer.Option(None, "--twin"), endpoint: str | None = typer.Option(None, "--endpoint"),
             push: bool = typer.Option(False, "--push", help="The provider pushes it (HttpData-PUSH)."),
             bucket: bool = typer.Option(False, "--bucket", help="The provider writes it into the S3 bucket of "
                                                                  "--endpoint (AmazonS3-PUSH; an endpoint that "
                                                                  "accepts pushes)."),
             wait: bool = typer.Option(False, "--wait")) -> None:
    """Transfer under an agreement of yours, landing the data in this engine's lake (pulled, or pushed); without
    LAND, keep the data address: an EDR collection's transfer stays STARTED for ``twin offer query``."""
    out = state_of(ctx)
    with out.client() as client:
        row = client.dataspace.transfer(agreement, land, twin=twin, endpoint=endpoint,
                                        push="bucket" if bucket else push)
        if wait:
            row = _wait(client, "transfer", row.id, 600, started=land is None)
    out.emit(row, lambda: console.print(f"transfer {row.id} {row.state} {row.landed or ''} {row.error or ''}",
                                        highlight=False))
    if wait and row.state != ("STARTED" if land is None else "COMPLETED"):
        raise typer.Exit(2)


@app.command("query")
def query(ctx: typer.Context, transfer_id: int = typer.Argument(..., min=1),
          query_type: str = typer.Argument(..., metavar="TYPE",
                                           help="position, radius, area, cube, trajectory or corridor."),
          coords: str | None = typer.Option(None, "--coords", help="WKT, x = longitude: POINT(8 45), ..."),
          bbox: str | None = typer.Option(None, "--bbox", help="cube: west,south,east,north."),
          at: str | None = typer.Option(None, "--datetime", help="An instant or start/end."),
          parameter: list[str] = typer.Option([], "--parameter", help="A parameter to read (default: all)."),
          within: float | None = typer.Option(None, "--within", help="radius: the distance, in km."),
          out_file: Path | None = typer.Option(None, "--out", help="Write the CoverageJSON answer here.",
                                               dir_okay=False)) -> None:
    """Query the EDR collection a started transfer of yours may query (an EDR collection offer): the request
    goes through this engine to the provider, which counts it as an access under the agreement."""
    out = state_of(ctx)
    with out.client() as client:
        edr = client.dataspace.edr(transfer_id)
        collection = edr.collections()[0]["id"]
        found = edr.query(collection, query_type, coords=coords, bbox=bbox, datetime=at,
                          parameter_name=",".join(parameter) or None, within=within,
                          within_units="km" if within is not None else None)
    if out_file is not None:
        out_file.write_text(json.dumps(found))
    ranges = found.get("ranges") or {}
    if not ranges:
        ranges = {name: rng for cov in found.get("coverages", []) for name, rng in (cov.get("ranges") or {}).items()}
    rows = [[name, str(len(rng.get("values") or [])), _value(rng, 0), _value(rng, -1)] for name, rng in
            ranges.items()]
    out.emit(found, lambda: console.print(table(f"{query_type} of {collection} (transfer {transfer_id})",
                                                ["parameter", "values", "first", "last"], rows)))


def _utc(when: datetime | None) -> datetime | None:
    """A time given on the command line, read as UTC when it names no offset."""
    return when.replace(tzinfo=UTC) if when is not None and when.tzinfo is None else when


def _value(rng: dict[str, Any], index: int) -> str:
    values = rng.get("values") or []
    return "" if not values or values[index] is None else f"{values[index]:.4g}" \
        if isinstance(values[index], float) else str(values[index])


@app.command("transfers")
def transfers(ctx: typer.Context, role: str | None = typer.Option(None, "--role"),
              agreement: str | None = typer.Option(None, "--agreement")) -> None:
    """Transfers of yours, or under your offers."""
    out = state_of(ctx)
    with out.client() as client:
        rows = client.dataspace.transfers(role=role, agreement=agreement)
    out.emit(rows, lambda: console.print(table(None, ["id", "role", "state", "agreement", "bytes", "landed"], [
        [str(r.id), r.role, r.state, r.agreement_id, str(r.bytes), r.landed or ""] for r in rows])))


@app.command("transfer-process")
def transfer_process(ctx: typer.Context, transfer_id: int = typer.Argument(..., min=1),
                     step: TransferStep | None = typer.Argument(None, help="Take this step: start (also resumes a "
                                                                            "suspended transfer), suspend, complete "
                                                                            "or terminate."),
                     wait: bool = typer.Option(False, "--wait",
                                               help="Wait until the other side has the step.")) -> None:
    """One transfer process; with a STEP, take it (a manual offer's steward starts a requested transfer)."""
    _steer(ctx, "transfer", transfer_id, step, wait)


@app.command("usage")
def usage(ctx: typer.Context,
          agreement: str = typer.Argument(..., help="An agreement under an offer of yours.")) -> None:
    """The usage record of an agreement this engine provides: every data access, refused ones with the reason."""
    out = state_of(ctx)
    with out.client() as client:
        rows = client.dataspace.accesses(agreement)
    out.emit(rows, lambda: console.print(table(None, ["at", "participant", "transfer", "file", "bytes", "outcome",
                                                "reason"], [
        [str(r.at), r.participant or "", str(r.transfer_id or ""), r.file or "", str(r.bytes), r.outcome,
         r.reason or ""] for r in rows])))


@participant_app.command("add")
def participant_add(ctx: typer.Context, did: str = typer.Argument(..., help="Its did:web."),
                    title: str | None = typer.Option(None, "--title"),
                    organisation: str | None = typer.Option(None, "--organisation"),
                    group: list[str] = typer.Option([], "--group"),
                    spatial: list[str] = typer.Option([], "--spatial"),
                    callback: str | None = typer.Option(None, "--callback", help="Its protocol callback address, "
                                                                               "where proposals to it go (on its "
                                                                               "did:web's host).")) -> None:
    """Record a participant's organisation, groups and regions (what policies may ask of it), and where its
    protocol callbacks go."""
    out = state_of(ctx)
    with out.client() as client:
        row = client.dataspace.participant(did, title=title, organisation=organisation, groups=group,
                                           spatial=spatial, callback=callback)
    out.emit(row, lambda: console.print(f"{row.did}: {row.organisation or '-'} {', '.join(row.groups)}",
                                        highlight=False))


@participant_app.command("list")
def participant_list(ctx: typer.Context) -> None:
    out = state_of(ctx)
    with out.client() as client:
        rows = client.dataspace.participants()
    out.emit(rows, lambda: console.print(table(None, ["did", "organisation", "groups", "spatial", "vouched for"], [
        [r.did if r.registered else f"{r.did} (not in the register)", r.organisation or "", ", ".join(r.groups),
         ", ".join(r.spatial), _vouched_words(r)] for r in rows])))


def _vouched_words(row: ParticipantRead) -> str:
    """What the shared identity provider said of a participant, and until when it counts."""
    said = row.vouched
    if said is None:
        return ""
    what = "; ".join(part for part in (said.organisation, ", ".join(said.groups)) if part) or "nothing"
    return f"{what} ({'until' if said.current else 'expired'} {said.good_until:%Y-%m-%d %H:%M} UTC)"


@participant_app.command("remove")
def participant_remove(ctx: typer.Context, did: str = typer.Argument(..., help="Its did:web.")) -> None:
    """Forget a participant's organisation, groups and regions: policies asking for them no longer hold for it."""
    out = state_of(ctx)
    with out.client() as client:
        client.dataspace.remove_participant(did)
    out.emit({"removed": did}, lambda: console.print(f"removed {did}", highlight=False))
