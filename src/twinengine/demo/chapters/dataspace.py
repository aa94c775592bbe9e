"""The data space chapter: uma offers the reach's gauge history from this engine's lake under an ODRL policy
(flood forecasting only, three transfers per agreement, for 30 days from signing, attribution); a forecaster on a
second engine (another organisation: its own data dir, store and lake) finds it in the catalog, negotiates to
FINALIZED on both sides and pulls it into their lake, where its SHA-256 is the provider's and the copy is held
under the agreement's terms (its bytes refused once the 30 days are past); a negotiation for another purpose is
refused and ends TERMINATED with no byte sent. Then the live twin's gauge stream (the streams chapter's) is offered
as such and pushed to the partner, who sends its history into a river-reach twin of its own, whose level then reads
as uma's twin's. Last, the twin's rainfall field is offered for EDR queries, not files: the partner asks for the
rain at the gauge through its own engine and gets uma's own EDR answer. Both engines speak the Dataspace Protocol
over loopback HTTP."""

from __future__ import annotations

import hashlib
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

from twinengine.client import Client
from twinengine.dataspace.catalog import window_words
from twinengine.dataspace.schemas import NegotiationRead, TransferRead
from twinengine.demo.context import DemoContext
from twinengine.demo.server import InProcessServer, free_port

__all__ = ["offer_across_engines"]

PURPOSE = "flood-forecasting"
REFUSED_PURPOSE = "insurance-pricing"
FORECASTER = "forecaster"  # the person on the second engine
PARTNER = "partner-engine"  # its data dir, under the demo's
LANDED = "partner:reach-gauge-history"
NEVER = "partner:refused-gauge-history"
STREAM = "gauges"  # the twin's stream whose history is offered as such
STREAM_LANDED = "partner:reach-gauge-stream"
PARTNER_TWIN = "partner-reach"  # the partner's own river-reach twin, fed with what it pulled
FORECAST_LANDED = "partner:rain-forecast"  # uma's rain forecast on the partner's engine: a collection there
TIMEOUT_S = 60.0
DAYS = 30  # the offer's elapsedTime: the partner's copy may be used this long after the agreement is signed

_T = TypeVar("_T")
_P = TypeVar("_P", NegotiationRead, TransferRead)


def offer_across_engines(ctx: DemoContext) -> None:
    """Offer, find, negotiate, pull and check, then one refusal; a failure is told and kept in the facts, and
    the second engine is closed whatever happens."""
    started = time.perf_counter()
    uma, name = ctx.client("uma"), ctx.facts["twin_name"]
    dataset = f"river-reach:{name}-levels"
    file = f"{dataset}/{name}-levels.csv"
    provider_sha = uma.lake.get(file).sha256
    out: dict[str, Any] = {"dataset": dataset, "file": file, "provider_sha256": provider_sha}
    try:
        offer = uma.dataspace.offer(dataset, "River-reach gauge history", purposes=[PURPOSE], count=3,
                                    days=DAYS, attribution=True, delete_after=DAYS,
                                    keywords=["river", "gauge", "level"],
                                    description=f"Water levels and rainfall at gauge RR-01 ({name})")
        out |= {"offer": offer.id, "dataset_id": offer.dataset_id, "policy": offer.policy}
        ctx.say(f"uma offered {dataset} in the data space as {offer.dataset_id} (offer {offer.id}): for "
                f"{PURPOSE} only, 3 transfers per agreement and 3 uses of the partner's copy, for {DAYS} days from "
                f"signing, with attribution, the copy to be deleted {DAYS} days after signing")
        with _partner(ctx) as (forecaster, folder):
            out |= _consume(ctx, uma, forecaster, folder, offer.dataset_id, file)
            out["refusal"] = _refuse(ctx, uma, forecaster, offer.dataset_id)
            out["bargain"] = _bargain(ctx, uma, forecaster, dataset)
            out["proposal"] = _proposal(ctx, uma, forecaster, dataset)
            live = ctx.facts.get("streams", {}).get("twin")  # the twin whose gauges stream (streams chapter)
            if live:
                out["stream"] = _stream_across(ctx, uma, forecaster, folder, live)
                out["forecast"] = _forecast_across(ctx, uma, forecaster, folder)
            out["collection"] = _collection_across(ctx, uma, forecaster, name)
    except Exception as exc:  # told, and the test of the chapter's facts fails on it
        out["error"] = f"{type(exc).__name__}: {exc}"
        ctx.fail("data space", out["error"])
    out["seconds"] = round(time.perf_counter() - started, 2)
    ctx.facts["dataspace"] = out
    sha = "-" if "consumer_sha256" not in out else "equal" if out["consumer_sha256"] == provider_sha else "DIFFERENT"
    streamed = out.get("stream", {})
    ctx.summary.append(("data space", f"{dataset} offered for {PURPOSE}, negotiated and pulled by a second engine: "
                                      f"{out.get('negotiation', {}).get('consumer', '-')}, transfer "
                                      f"{out.get('transfer', {}).get('consumer', '-')}, sha256 "
                                      f"{sha}; another purpose "
                                      f"{out.get('refusal', {}).get('consumer', '-')}; by hand, 10 transfers "
                                      f"offered, {', '.join(out.get('bargain', {}).get('counts', [])) or '-'} "
                                      f"agreed after counter-offers; the gauge stream's history "
                                      f"pushed {streamed.get('transfer', '-')}, {streamed.get('records', '-')} "
                                      f"readings replayed into the partner's twin, which forecast on the rain "
                                      f"forecast pulled too (peak "
                                      f"{out.get('forecast', {}).get('peak_level_m', float('nan')):.2f} m); the rain "
                                      f"field queried across, {out.get('collection', {}).get('queries_served', '-')} "
                                      f"query in the usage record ({out['seconds']:.1f} s)"))


@contextmanager
def _partner(ctx: DemoContext) -> Iterator[tuple[Client, Path]]:
    """A second engine, another organisation's: a data dir, store and lake of its own (made afresh on each run),
    served on loopback with its did:web known before it starts; a forecaster there. Closed whatever happens."""
    from twinengine.api import create_app
    from twinengine.auth.principal import SYSTEM, Role
    from twinengine.auth.service import issue_token
    from twinengine.config import Settings
    from twinengine.lake.endpoints import add_endpoint
    from twinengine.lake.schemas import EndpointCreate
    from twinengine.runtime import Runtime

    folder, port = ctx.runtime.data_dir / PARTNER, free_port()
    shutil.rmtree(folder, ignore_errors=True)
    other = Runtime.from_settings(Settings(data_dir=folder, warm_routes=False,
                                           dataspace_url=f"http://127.0.0.1:{port}",
                                           dataspace_peer_hosts=["127.0.0.1"]))
    try:
        other.start()
        with other.db.session() as session:
            token = issue_token(session, other.issuer, principal=SYSTEM, name=FORECASTER, role=Role.USER,
                                ttl=timedelta(hours=1), note="a flood forecaster of a partner organisation").token
            publisher = issue_token(session, other.issuer, principal=SYSTEM, name="partner-developer",
                                    role=Role.DEVELOPER, ttl=timedelta(hours=1),
                                    note="publishes the reference app on the partner's engine").token
            add_endpoint(session, other.lake, principal=SYSTEM, spec=EndpointCreate(
                name="partner-site", protocol="file", location=str(folder / "lake" / "partner-site")))
        with InProcessServer(create_app(runtime=other), port=port) as server, Client(server.url, token) as client:
            with Client(server.url, publisher) as developer:
                developer.publish_app(ctx.app_folder)  # the partner runs river-reach twins of its own
            ctx.say(f"a second engine, a partner's, is up at {server.url} ({client.dataspace.identity().did}) "
                    f"with a store and lake of its own; {FORECASTER} works there")
            yield client, folder
    finally:
        other.close()


def _consume(ctx: DemoContext, uma: Client, forecaster: Client, folder: Path, dataset_id: str,
             file: str) -> dict[str, Any]:
    """Catalog, negotiation to FINALIZED on both sides, the pull into the partner's lake, and its checksum."""
    catalog = forecaster.dataspace.catalog(ctx.url)
    listed = [d["@id"] for d in catalog.get("dataset", [])]
    if dataset_id not in listed:
        raise LookupError(f"{dataset_id} is not in the catalog {ctx.url} shows the partner: {listed}")
    ctx.say(f"{FORECASTER} found {dataset_id} among {len(listed)} datasets in the catalog of "
            f"{catalog.get('participantId', ctx.url)}")
    began = time.perf_counter()
    asked = forecaster.dataspace.negotiate(ctx.url, dataset_id, purpose=PURPOSE, land=LANDED)
    mine = _until(lambda: forecaster.dataspace.negotiation(asked.id), "FINALIZED")
    theirs = _until(lambda: _provider_side(uma, mine), "FINALIZED")
    agreement = str(mine.agreement_id)
    ctx.say(f"negotiated for {PURPOSE}: FINALIZED on both sides in {time.perf_counter() - began:.1f} s, "
            f"agreement {agreement}")
    pulls = forecaster.dataspace.transfers(role="consumer", agreement=agreement)
    if len(pulls) != 1:
        raise LookupError(f"{len(pulls)} transfers under {agreement} on the partner's engine, expected one")
    pulled = _until(lambda: forecaster.dataspace.transfer_state(pulls[0].id), "COMPLETED")
    served = _until(lambda: _one(uma.dataspace.transfers(role="provider", agreement=agreement)), "COMPLETED")
    (folder / "arrived").mkdir(exist_ok=True)
    arrived = forecaster.lake.download(f"{LANDED}/{Path(file).name}", folder / "arrived" / Path(file).name)
    digest = hashlib.sha256(arrived.read_bytes()).hexdigest()
    landed = forecaster.lake.get(LANDED).meta.get("dataspace", {})
    ctx.say(f"pulled into the partner's lake as {pulled.landed} ({pulled.bytes} bytes, HttpData-PULL): COMPLETED "
            f"on both sides, sha256 {digest[:12]}... "
            f"{'equal to' if digest == uma.lake.get(file).sha256 else 'DIFFERENT from'} the provider's; "
            f"attribution travels with it: {landed.get('attribution', '-')}")
    held = _held(ctx, landed, forecaster)
    ctx.say(f"the partner's engine deletes its copy by {pulled.delete_by:%Y-%m-%d %H:%M} UTC, as the offer's "
            "delete duty asks" if pulled.delete_by else "the partner's engine keeps no deletion date: DIFFERENT "
            "from the offer's delete duty")
    return {"catalog_datasets": len(listed), "agreement": agreement, "provider": mine.peer, "copy_terms": held,
            "consumer": forecaster.dataspace.identity().did,
            "negotiation": {"consumer": mine.state, "provider": theirs.state},
            "transfer": {"consumer": pulled.state, "provider": served.state, "bytes": pulled.bytes,
                         "landed": pulled.landed,
                         "delete_by": pulled.delete_by.isoformat() if pulled.delete_by else None},
            "signed_at": forecaster.dataspace.agreement(agreement).signed_at.isoformat(),
            "files": {f["name"]: f["sha256"] for f in pulled.files or []},
            "consumer_sha256": digest, "arrived": str(arrived.relative_to(ctx.runtime.data_dir)),
            "provenance": {k: landed.get(k) for k in ("provider", "agreement", "attribution")},
            "transfers_under_agreement": uma.dataspace.agreement(agreement).transfers,
            "negotiate_to_landed_seconds": round(time.perf_counter() - began, 2)}


def _held(ctx: DemoContext, landed: dict[str, Any], forecaster: Client) -> dict[str, Any]:
    """The terms the partner's copy is held under, judged now and a day after they end (``lake.terms``, the
    check every read of its bytes makes on the partner's engine, asked with that later clock), and its uses
    there so far against the policy's count, as the forecaster reads them with the copy."""
    from datetime import datetime

    from twinengine.lake.models import Did
    from twinengine.lake.terms import refusal

    scope, _, name = LANDED.partition(":")
    copy = Did(scope=scope, name=name, meta={"dataspace": landed})
    signed = datetime.fromisoformat(str(landed.get("signed_at")).replace("Z", "+00:00"))
    later = signed + timedelta(days=DAYS + 1)
    now, then = refusal(copy), refusal(copy, now=later)
    kept = forecaster.lake.get(LANDED).terms  # what the forecaster reads with the copy
    used = kept.uses if kept is not None else -1
    ctx.say(f"the partner's copy is held under the agreement's terms: its bytes may be read now "
            f"({'yes' if now is None else 'NO: ' + now}); on {later:%Y-%m-%d} every read of them would be refused "
            f"({'refused' if then else 'NOT refused'}: elapsedTime lteq P{DAYS}D); the count of 3 holds there "
            f"too: the partner's engine has counted {used} use of it (the download), a fourth would be refused")
    return {"days": DAYS, "readable_now": now is None, "refused_after": later.isoformat(), "refusal": then,
            "uses": used}


def _refuse(ctx: DemoContext, uma: Client, forecaster: Client, dataset_id: str) -> dict[str, Any]:
    """A negotiation for a purpose the policy does not permit: TERMINATED on both sides, nothing transferred."""
    served_before = len(uma.dataspace.transfers(role="provider"))
    pulled_before = {t.id for t in forecaster.dataspace.transfers(role="consumer")}
    asked = forecaster.dataspace.negotiate(ctx.url, dataset_id, purpose=REFUSED_PURPOSE, land=NEVER)
    mine = _until(lambda: forecaster.dataspace.negotiation(asked.id), "TERMINATED")
    theirs = _until(lambda: _provider_side(uma, mine), "TERMINATED")
    transfers = [t for t in forecaster.dataspace.transfers(role="consumer") if t.id not in pulled_before]
    landed = any(d.did == NEVER for d in forecaster.lake.dids(scope="partner").items)
    ctx.say(f"a negotiation for {REFUSED_PURPOSE} was refused: TERMINATED on both sides ({theirs.error}); "
            f"{len(transfers)} transfers, {'something' if landed else 'nothing'} landed")
    return {"purpose": REFUSED_PURPOSE, "consumer": mine.state, "provider": theirs.state, "reason": theirs.error,
            "agreement": mine.agreement_id, "transfers": len(transfers),
            "provider_transfers": len(uma.dataspace.transfers(role="provider")) - served_before,
            "bytes": sum(t.bytes for t in transfers), "landed": landed}


def _bargain(ctx: DemoContext, uma: Client, forecaster: Client, dataset: str) -> dict[str, Any]:
    """An offer uma agrees to by hand: the partner asks for the 10 transfers it offers, uma counters with 3,
    the partner counters back with 5, uma agrees to that: the agreement holds 5."""
    offer = uma.dataspace.offer(dataset, "River-reach gauge history, by arrangement", purposes=[PURPOSE], count=10,
                                manual=True)
    asked = forecaster.dataspace.negotiate(ctx.url, offer.dataset_id, purpose=PURPOSE)
    mine = _until(lambda: forecaster.dataspace.negotiation(asked.id), "REQUESTED")
    theirs = _until(lambda: _provider_side(uma, mine), "REQUESTED")
    uma.dataspace.step(theirs.id, "offer", count=3, purposes=[PURPOSE])
    _until(lambda: forecaster.dataspace.negotiation(asked.id), "OFFERED")
    forecaster.dataspace.step(asked.id, "request", count=5, purposes=[PURPOSE])
    countered = _until(lambda: uma.dataspace.negotiation(theirs.id), "REQUESTED")
    uma.dataspace.step(theirs.id, "agree")
    _until(lambda: uma.dataspace.negotiation(theirs.id), "VERIFIED")
    uma.dataspace.step(theirs.id, "finalize")
    agreed = _until(lambda: forecaster.dataspace.negotiation(asked.id), "FINALIZED")
    policy = forecaster.dataspace.agreement(str(agreed.agreement_id)).policy
    counts = [c["rightOperand"] for rule in policy.get("permission", []) for c in rule.get("constraint", [])
              if c["leftOperand"] == "count"]
    ctx.say(f"an offer uma agrees to by hand ({offer.dataset_id}, 10 transfers): the partner asked, uma countered "
            f"with 3, the partner with 5, uma agreed to that: FINALIZED, the agreement holding {', '.join(counts)} "
            "transfers")
    uma.dataspace.withdraw(offer.id)
    return {"offered": 10, "countered_by": countered.offered_by, "agreement": agreed.agreement_id,
            "state": agreed.state, "counts": counts}


def _proposal(ctx: DemoContext, uma: Client, forecaster: Client, dataset: str) -> dict[str, Any]:
    """The provider starts: uma proposes an offer to the partner's forecaster by name (no catalog search on the
    partner's side); it waits among the forecaster's negotiations, seen by nobody else there, and once accepted
    uma's engine agrees and the agreement is finalized on both sides."""
    offer = uma.dataspace.offer(dataset, "River-reach gauge history, proposed to the partner", purposes=[PURPOSE],
                                count=1, days=DAYS)
    proposed = uma.dataspace.propose(offer.id, forecaster.url, to=FORECASTER, purpose=PURPOSE)
    ours = _until(lambda: uma.dataspace.negotiation(proposed.id), "OFFERED")
    waiting = _until(lambda: _one([n for n in forecaster.dataspace.negotiations(role="consumer")
                                   if n.provider_pid == ours.provider_pid]), "OFFERED")
    forecaster.dataspace.step(waiting.id, "accept")
    agreed = _until(lambda: forecaster.dataspace.negotiation(waiting.id), "FINALIZED")
    ctx.say(f"uma proposed an offer to the partner's {FORECASTER} directly (the provider starts the negotiation): "
            f"it waited among {FORECASTER}'s negotiations as {waiting.state} for {waiting.addressee}, "
            f"{FORECASTER} accepted it, and the agreement {agreed.agreement_id} is {agreed.state} on both sides")
    uma.dataspace.withdraw(offer.id)
    return {"addressee": waiting.addressee, "offered": waiting.state, "owner": agreed.owner,
            "agreement": agreed.agreement_id, "state": agreed.state,
            "provider_state": uma.dataspace.negotiation(proposed.id).state}


def _stream_across(ctx: DemoContext, uma: Client, forecaster: Client, folder: Path, name: str) -> dict[str, Any]:
    """The live twin's gauge stream offered live: uma's engine pushes its history to the partner's (HttpData-PUSH),
    then each reading that arrives, part by part, until the partner ends the transfer. The partner sends the parts
    into the gauge stream of a river-reach twin of its own, whose level then is uma's twin's, the newest reading
    included."""
    import pyarrow as pa

    offer = uma.dataspace.offer_stream(name, STREAM, f"Gauge RR-01 as it streams ({name})", purposes=[PURPOSE],
                                       count=3, days=DAYS, attribution=True, keywords=["river", "gauge", "stream"],
                                       live=True)
    ctx.say(f"uma offered {name}'s {STREAM} stream live ({offer.dataset_id}): pushed as it grows, until ended")
    chosen = uma.dataspace.offer_stream(name, STREAM, f"Gauge RR-01, good levels ({name})", purposes=[PURPOSE],
                                        keywords=["river", "gauge"], key="RR-01", quality=["good"],
                                        fields=["level"])
    described = next((str(d.get("dct:description", "")) for d in forecaster.dataspace.catalog(ctx.url)["dataset"]
                      if d.get("@id") == chosen.dataset_id), "")
    which = f"stream {STREAM}{window_words(chosen.window)}"
    ctx.say(f"uma offered station RR-01's levels flagged good only, too ({chosen.dataset_id}); the partner's "
            + (f"catalog says it serves the {which}" if which in described else
               f"catalog does NOT say which readings it serves: {described!r}"))
    asked = forecaster.dataspace.negotiate(ctx.url, offer.dataset_id, purpose=PURPOSE, land=STREAM_LANDED, push=True)
    mine = _until(lambda: forecaster.dataspace.negotiation(asked.id), "FINALIZED")
    agreement = str(mine.agreement_id)
    pull_id = _one(forecaster.dataspace.transfers(role="consumer", agreement=agreement)).id
    first = _parts(forecaster, pull_id, 1)
    newest = uma.streams.read(name, STREAM, last=1).items[0]
    reading = {"time": _later(str(newest["time"])), "station": newest["station"], "rain": newest["rain"],
               "level": round(float(newest["level"]) + 0.01, 3)}
    uma.streams.append(name, STREAM, [reading])
    ctx.say(f"the history arrived as {first[0]['name']}; gauge RR-01 then read {reading['level']} m at "
            f"{reading['time']}, and uma's engine pushed that reading too")
    parts = _parts(forecaster, pull_id, 2)
    forecaster.dataspace.transfer_step(pull_id, "complete")  # the partner has what it wanted: it ends the transfer
    pulled = _until(lambda: forecaster.dataspace.transfer_state(pull_id), "COMPLETED")
    served = _until(lambda: _one(uma.dataspace.transfers(role="provider", agreement=agreement)), "COMPLETED")
    kept = {f["name"]: f for f in served.files or []}
    tables, equal = [], True
    for part in parts:
        arrived = forecaster.lake.download(f"{STREAM_LANDED}/{part['name']}", folder / "arrived" / part["name"])
        equal &= hashlib.sha256(arrived.read_bytes()).hexdigest() == kept.get(part["name"], {}).get("sha256")
        tables.append(pa.ipc.open_file(pa.memory_map(str(arrived))).read_all())
    table = pa.concat_tables(tables)
    twin = forecaster.create_twin("river-reach", PARTNER_TWIN, {"station": "RR-01"})
    forecaster.streams.append(PARTNER_TWIN, STREAM, table)
    level = _level_once_taken(forecaster, PARTNER_TWIN, table.num_rows)
    theirs = _level_once_taken(uma, name, int(kept[parts[-1]["name"]]["offsets"][1]))
    ctx.say(f"{len(parts)} parts pushed ({pulled.bytes} bytes, each sha256 "
            f"{'equal to' if equal else 'DIFFERENT from'} the part the provider keeps), {table.num_rows} readings "
            f"with no gap or repeat; the partner ended the transfer ({pulled.state}) and sent them into its own "
            f"twin {twin.name}: its level reads {level:.2f} m, uma's twin reports {theirs:.2f} m")
    return {"offer": offer.id, "did": offer.did, "live": offer.live, "agreement": agreement,
            "negotiation": mine.state, "format": pulled.format, "provider_format": served.format,
            "transfer": pulled.state, "provider_transfer": served.state, "records": table.num_rows,
            "columns": table.column_names, "parts": [{"name": p["name"], "sha256": p["sha256"],
                                                      "offsets": kept.get(p["name"], {}).get("offsets")}
                                                     for p in parts],
            "parts_equal": equal, "newest": reading, "twin": twin.name, "partner_level": level,
            "provider_level": theirs, "chosen": {"window": chosen.window, "described": described}}


def _forecast_across(ctx: DemoContext, uma: Client, forecaster: Client, folder: Path) -> dict[str, Any]:
    """The partner's own twin, fed with uma's gauge history, runs its forecast on uma's rain forecast: uma keeps
    the forecast in its lake (netCDF) and offers it; the partner pulls it, where it is the collection
    ``partner.rain-forecast``, and runs the twin's forecast workflow with it."""
    from twinengine.demo.chapters.workflows import rain_forecast

    dataset = f"river-reach:{ctx.facts['twin_name']}-rain-forecast"  # each demo's own (a second one in the dir)
    path = folder / "rain-forecast.nc"
    rain_forecast(ctx).to_netcdf(path, engine="h5netcdf")
    uma.lake.add_dataset(dataset, meta={"title": "Rain forecast over the river-reach catchment"})
    uma.lake.upload(path, f"{dataset}/rain-forecast.nc", endpoint="site-a", dataset=dataset,
                    media_type="application/x-netcdf")
    offer = uma.dataspace.offer(dataset, "Rain forecast, river-reach catchment", purposes=[PURPOSE], days=DAYS,
                                attribution=True, keywords=["rain", "forecast"])
    asked = forecaster.dataspace.negotiate(ctx.url, offer.dataset_id, purpose=PURPOSE, land=FORECAST_LANDED)
    agreement = str(_until(lambda: forecaster.dataspace.negotiation(asked.id), "FINALIZED").agreement_id)
    pulled = _until(lambda: _one(forecaster.dataspace.transfers(role="consumer", agreement=agreement)), "COMPLETED")
    collection = FORECAST_LANDED.replace(":", ".", 1)
    began = time.perf_counter()
    run = forecaster.workflows.run(PARTNER_TWIN, "forecast", {"collection": collection})
    final = forecaster.workflows.wait(run.id, poll=0.1, timeout=300)
    seconds = time.perf_counter() - began
    if final.status != "finished":
        raise RuntimeError(f"the partner's forecast run ended as {final.status}: {final.error}")
    levels = [float(v) for v in final.value or []]
    state = forecaster.get_state(PARTNER_TWIN).reported
    peak = float(state["forecast_peak_level"].value)
    start = final.start.parameters.get("storage_mm") if final.start is not None else None
    ctx.say(f"uma offered its rain forecast too; the partner pulled it ({pulled.bytes} bytes) and ran its own "
            f"twin {PARTNER_TWIN}'s forecast on it as collection {collection}: run {final.id} {final.status} in "
            f"{seconds:.1f} s, {len(levels)} hours, peak {peak:.2f} m in the partner's twin's state; no "
            f"assimilation runs there, and the run {final.start.text if final.start else 'recorded no start'} "
            f"(its gauge last read {float(state['level'].value):.2f} m): its first hour {levels[0]:.2f} m")
    return {"agreement": agreement, "landed": pulled.landed, "collection": collection, "run": final.id,
            "status": final.status.value, "hours": len(levels), "peak_level_m": peak,
            "storage_mm": final.parameters.get("storage_mm"), "seconds": round(seconds, 2),
            "start_property": start.property if start is not None else None,
            "first_level_m": levels[0] if levels else None, "observed_level_m": float(state["level"].value)}


def _collection_across(ctx: DemoContext, uma: Client, forecaster: Client, name: str) -> dict[str, Any]:
    """The twin's rainfall field (the lake chapter's collection) offered for queries, not files: the partner asks
    for the rain over gauge RR-01 through its own engine, which sends the query on with the transfer's token; the
    answer is the one uma's own EDR API gives, and uma's usage record holds the query."""
    from twinengine.demo.chapters.lake import SCOPE
    from twinengine.lake.collections import collection_id

    rain = collection_id(SCOPE, f"{name}-rain")
    offer = uma.dataspace.offer_collection(rain, f"Rainfall over the {name} catchment, by query",
                                           purposes=[PURPOSE], days=DAYS, keywords=["rain", "EDR"])
    ctx.say(f"uma offered the EDR collection {rain} for queries ({offer.dataset_id}): the partner asks for what "
            "it needs, and no file leaves")
    asked = forecaster.dataspace.negotiate(ctx.url, offer.dataset_id, purpose=PURPOSE)
    agreement = str(_until(lambda: forecaster.dataspace.negotiation(asked.id), "FINALIZED").agreement_id)
    started = forecaster.dataspace.transfer(agreement, None)
    query = _until(lambda: forecaster.dataspace.transfer_state(started.id), "STARTED")
    gauge = f"POINT({ctx.app_package.GAUGE[0]} {ctx.app_package.GAUGE[1]})"
    theirs = forecaster.dataspace.edr(query.id).position(rain, gauge, parameter_name="rain")
    own = uma.edr.position(rain, gauge, parameter_name="rain")
    values = theirs["ranges"]["rain"]["values"]
    equal = values == own["ranges"]["rain"]["values"]
    served = [a for a in uma.dataspace.accesses(agreement)
              if a.outcome == "served" and (a.file or "").startswith("edr ")]
    total = float(sum(v for v in values if v is not None))
    ctx.say(f"the partner queried the rain at gauge RR-01 through its engine (transfer {query.id}, {query.state}): "
            f"{len(values)} values, {total:.1f} mm in total, {'equal to' if equal else 'DIFFERENT from'} uma's own "
            f"EDR answer; uma's usage record holds {len(served)} query "
            f"({sum(a.bytes for a in served)} bytes answered)")
    return {"collection": rain, "offer": offer.id, "agreement": agreement, "transfer": query.state,
            "format": query.format, "values": len(values), "equal": equal, "queries_served": len(served),
            "query": served[0].file if served else None, "answered_bytes": sum(a.bytes for a in served)}


def _later(when: str) -> str:
    """Fifteen minutes after ``when`` (the gauges' interval), as the stream's times are written."""
    from datetime import datetime

    moment = datetime.fromisoformat(when.replace("Z", "+00:00")) + timedelta(minutes=15)
    return moment.isoformat().replace("+00:00", "Z")


def _parts(client: Client, transfer_id: int, count: int) -> list[dict[str, Any]]:
    """The parts a live transfer has landed, once there are ``count`` (``TIMEOUT_S`` at most)."""
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        found = client.dataspace.transfer_state(transfer_id).files or []
        if len(found) >= count and all(f.get("landed") for f in found):
            return found
        if time.monotonic() > deadline:
            raise TimeoutError(f"transfer {transfer_id} landed {len(found)} parts, not {count}, after "
                               f"{TIMEOUT_S:.0f} s")
        time.sleep(0.1)


def _level_once_taken(client: Client, twin: str, records: int) -> float:
    """The twin's reported level once its gauge function has handled all ``records`` (``TIMEOUT_S`` at most)."""
    deadline = time.monotonic() + TIMEOUT_S
    while min((f.offset for f in client.streams.functions(twin) if f.stream == STREAM), default=0) < records:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{twin}'s gauge function has not handled the {records} readings after "
                               f"{TIMEOUT_S:.0f} s")
        time.sleep(0.2)
    return float(client.get_state(twin).reported["level"].value)


def _provider_side(uma: Client, mine: NegotiationRead) -> NegotiationRead:
    return _one([n for n in uma.dataspace.negotiations(role="provider") if n.consumer_pid == mine.consumer_pid])


def _one(found: list[_T]) -> _T:
    if len(found) != 1:
        raise LookupError(f"{len(found)} processes found where one was expected")
    return found[0]


def _until(read: Callable[[], _P], state: str) -> _P:
    """The process once it is in ``state`` with nothing left to send; a process that ends elsewhere or takes
    longer than ``TIMEOUT_S`` is an error naming where it stands."""
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        try:
            found = read()
        except LookupError:  # the provider's side of a negotiation appears once its request arrived
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
            continue
        if found.state == state and not found.pending:
            return found
        if found.state in ("TERMINATED", "COMPLETED", "FINALIZED") and found.state != state:
            raise RuntimeError(f"{found.role} {type(found).__name__} {found.id} ended {found.state}, not {state}: "
                               f"{found.error}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{found.role} {type(found).__name__} {found.id} is {found.state} after "
                               f"{TIMEOUT_S:.0f} s, not {state}")
        time.sleep(0.1)


