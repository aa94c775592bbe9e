"""Two ``twin serve`` processes on loopback, each with a data dir and store of its own, through the ``twin offer``
CLI: the provider offers a gauge history of its lake, the consumer finds it in the provider's catalog,
negotiates to FINALIZED and pulls it into its own lake, where the bytes are the provider's (same SHA-256); a
stream's history crosses, feeds the consumer's own twin and its forecast runs on it."""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from helpers import LiveEngine, admin_token, free_port, serve_engine
from twinengine.config import Settings


@pytest.fixture
def two(tmp_path: Path) -> Iterator[tuple[LiveEngine, LiveEngine]]:
    ports = free_port(), free_port()
    engines = []
    with serve_engine(tmp_path / "provider", ports[0], TWIN_DATASPACE_URL=f"http://127.0.0.1:{ports[0]}",
                      TWIN_DATASPACE_PEER_HOSTS="127.0.0.1", TWIN_WARM_ROUTES="false"), \
            serve_engine(tmp_path / "consumer", ports[1], TWIN_DATASPACE_URL=f"http://127.0.0.1:{ports[1]}",
                         TWIN_DATASPACE_PEER_HOSTS="127.0.0.1", TWIN_WARM_ROUTES="false"):
        for name, port in (("provider", ports[0]), ("consumer", ports[1])):
            settings = Settings(data_dir=tmp_path / name)
            engines.append(LiveEngine(url=f"http://127.0.0.1:{port}", admin_token=admin_token(settings),
                                      settings=settings))
        yield engines[0], engines[1]


def _in_the_lake(two: tuple[LiveEngine, LiveEngine], tmp_path: Path, dataset: str, name: str, size: int) -> Path:
    """A file endpoint ``site`` on both engines, and on the provider's a dataset holding one file of ``size``
    random bytes (as hex text): the file, as written here."""
    for engine in two:
        engine.twin("lake", "endpoint", "add", "site", "--protocol", "file", "--location",
                    str(engine.settings.data_dir / "lake" / "site"))
    path = tmp_path / name
    path.write_bytes(b"time,value\n" + os.urandom(size).hex().encode())
    two[0].twin("lake", "dataset", "add", dataset)
    two[0].twin("lake", "upload", str(path), f"{dataset}/{name}", "--endpoint", "site", "--dataset", dataset)
    return path


def test_a_gauge_history_crosses_from_one_engine_to_another(two: tuple[LiveEngine, LiveEngine],
                                                            tmp_path: Path) -> None:
    provider, consumer = two
    levels = _in_the_lake(two, tmp_path, "reach:gauge-history", "levels.csv", 64 * 1024)
    offered = provider.twin_json("offer", "create", "reach:gauge-history", "--title", "Gauge history",
                                 "--purpose", "flood-forecasting", "--count", "3", "--attribution")
    found = consumer.twin_json("offer", "catalog", provider.url)
    assert offered["dataset_id"] in [d["@id"] for d in found["dataset"]]
    done = json.loads(consumer.twin("--json", "offer", "negotiate", provider.url, offered["dataset_id"],
                                    "--purpose", "flood-forecasting", "--land", "remote:gauge-history", "--wait"))
    assert done["state"] == "COMPLETED", done
    assert {f["name"] for f in done["files"]} == {"levels.csv"}
    out = tmp_path / "pulled.csv"
    consumer.twin("lake", "download", "remote:gauge-history/levels.csv", str(out), "--verify")
    assert hashlib.sha256(out.read_bytes()).hexdigest() == hashlib.sha256(levels.read_bytes()).hexdigest()
    negotiated = provider.twin_json("offer", "negotiations", "--role", "provider")
    assert [n["state"] for n in negotiated] == ["FINALIZED"]
    agreement = provider.twin_json("offer", "agreements", "--role", "provider")[0]
    assert agreement["transfers"] == 1 and agreement["policy"]["obligation"] == [{"action": "attribute"}]
    audit = provider.twin_json("audit", "--action", "dataspace", "--limit", "500")["items"]
    events = {(e["action"], (e.get("detail") or {}).get("event")) for e in audit}
    assert ("dataspace.agreement", "finalized") in events and ("dataspace.data", None) in events


def _until(read: Callable[[], dict[str, Any]], state: str, timeout: float = 60) -> dict[str, Any]:
    """What ``read`` answers once it is in ``state`` with nothing pending (it may not exist at first: the other
    side's message is on its way)."""
    deadline = time.monotonic() + timeout
    row: dict[str, Any] = {}
    while time.monotonic() < deadline:
        try:
            row = read()
        except (IndexError, StopIteration):
            row = {}
        if row.get("state") == state and not row.get("pending"):
            return row
        time.sleep(0.2)
    raise AssertionError(f"not {state} within {timeout} s: {row}")


def test_a_manual_offer_is_steered_step_by_step_from_the_command_line(two: tuple[LiveEngine, LiveEngine],
                                                                      tmp_path: Path) -> None:
    """A steward agrees, finalizes and starts by hand (``--manual``): each step through ``twin offer negotiation
    ID STEP`` and ``twin offer transfer-process ID STEP``, a transfer refused by terminating it, the usage
    record read back, and a participant recorded then removed."""
    provider, consumer = two
    rain = _in_the_lake(two, tmp_path, "reach:rain", "rain.csv", 16 * 1024)
    offered = provider.twin_json("offer", "create", "reach:rain", "--title", "Rain", "--manual")
    who = consumer.twin_json("offer", "identity")["did"]
    provider.twin("offer", "participant", "add", who, "--organisation", "Downstream Authority")
    assert [p["did"] for p in provider.twin_json("offer", "participant", "list")] == [who]

    asked = consumer.twin_json("offer", "negotiate", provider.url, offered["dataset_id"])
    theirs = _until(lambda: provider.twin_json("offer", "negotiations", "--role", "provider")[0], "REQUESTED")
    shown = provider.twin("offer", "negotiation", str(theirs["id"]))
    assert f"negotiation {theirs['id']} provider REQUESTED" in shown  # waits for the steward
    provider.twin("offer", "negotiation", str(theirs["id"]), "agree", "--wait")
    _until(lambda: provider.twin_json("offer", "negotiation", str(theirs["id"])), "VERIFIED")  # the consumer's
    done = provider.twin_json("offer", "negotiation", str(theirs["id"]), "finalize", "--wait")
    assert done["state"] == "FINALIZED" and done["agreement_id"]
    agreement = _until(lambda: consumer.twin_json("offer", "negotiation", str(asked["id"])),
                       "FINALIZED")["agreement_id"]
    assert agreement == done["agreement_id"]

    pulled = consumer.twin_json("offer", "transfer", agreement, "remote:rain")
    requested = _until(lambda: provider.twin_json("offer", "transfers", "--role", "provider")[0], "REQUESTED")
    started = provider.twin_json("offer", "transfer-process", str(requested["id"]), "start", "--wait")
    assert started["state"] in ("STARTED", "COMPLETED")
    landed = _until(lambda: consumer.twin_json("offer", "transfer-process", str(pulled["id"])), "COMPLETED")
    assert landed["files"][0]["sha256"] == hashlib.sha256(rain.read_bytes()).hexdigest()

    refused = consumer.twin_json("offer", "transfer", agreement, "remote:rain-again")
    second = _until(lambda: next(t for t in provider.twin_json("offer", "transfers", "--role", "provider")
                             if t["consumer_pid"] == refused["consumer_pid"]), "REQUESTED")
    provider.twin("offer", "transfer-process", str(second["id"]), "terminate", "--wait")
    _until(lambda: consumer.twin_json("offer", "transfer-process", str(refused["id"])), "TERMINATED")

    usage = provider.twin_json("offer", "usage", agreement)
    served = [a for a in usage if a["outcome"] == "served" and a["file"] == "rain.csv"]
    assert len(served) == 1 and served[0]["participant"] == who and served[0]["bytes"] == rain.stat().st_size
    table = provider.twin("offer", "usage", agreement)
    assert "rain.csv" in table and "served" in table

    wrong = provider.twin("offer", "negotiation", str(theirs["id"]), "dance", expect=2)
    assert "dance" in wrong and "agree" in wrong  # the choices named
    provider.twin("offer", "participant", "remove", who)
    assert provider.twin_json("offer", "participant", "list") == []


def test_a_provider_proposes_from_the_command_line_and_the_consumer_accepts(two: tuple[LiveEngine, LiveEngine],
                                                                             tmp_path: Path) -> None:
    """``twin offer propose``: a manual offer's steward proposes it to the other engine, whose admin finds it
    among the negotiations (for the admins, nobody's yet) and accepts it; the steward agrees and finalizes, and a
    transfer under the agreement lands the file."""
    provider, consumer = two
    rain = _in_the_lake(two, tmp_path, "reach:proposed", "rain.csv", 8 * 1024)
    offered = provider.twin_json("offer", "create", "reach:proposed", "--title", "Rain", "--manual")
    who = consumer.twin_json("offer", "identity")["did"]
    proposed = provider.twin_json("offer", "propose", offered["id"], consumer.url, "--participant", who, "--wait")
    assert (proposed["state"], proposed["pending"], proposed["peer"]) == ("OFFERED", None, who)
    said = provider.twin("offer", "propose", offered["id"], consumer.url, "--participant", "did:web:x.example",
                         expect=1)
    assert "participant" in said
    assert proposed["callback_source"] == "assumed"  # the consumer never asked the provider for anything
    # the consumer's callback address registered: a proposal names the participant alone, and goes there
    provider.twin("offer", "participant", "add", who, "--callback", proposed["callback"])
    again = provider.twin("offer", "propose", offered["id"], "--participant", who, "--wait")
    assert f"sent to {proposed['callback']}, configured" in again and "OFFERED" in again
    provider.twin("offer", "participant", "remove", who)
    nowhere = provider.twin("offer", "propose", offered["id"], "--participant", "did:web:x.example", expect=1)
    # no URL and no address known for it: its did:web's own host is asked, and the error names the participant
    assert "participant: https://x.example" in nowhere

    listed = consumer.twin("offer", "negotiations", "--role", "consumer")
    assert "OFFERED" in listed and "(for the admins)" in listed
    [theirs] = [n for n in consumer.twin_json("offer", "negotiations", "--role", "consumer")
                if n["provider_pid"] == proposed["provider_pid"]]
    accepted = consumer.twin_json("offer", "negotiation", str(theirs["id"]), "accept", "--wait")
    assert accepted["state"] == "ACCEPTED" and accepted["owner"]
    provider.twin("offer", "negotiation", str(proposed["id"]), "agree", "--wait")
    _until(lambda: provider.twin_json("offer", "negotiation", str(proposed["id"])), "VERIFIED")
    done = provider.twin_json("offer", "negotiation", str(proposed["id"]), "finalize", "--wait")
    agreement = _until(lambda: consumer.twin_json("offer", "negotiation", str(theirs["id"])),
                       "FINALIZED")["agreement_id"]
    assert agreement == done["agreement_id"]

    pulled = consumer.twin_json("offer", "transfer", agreement, "remote:proposed")
    requested = _until(lambda: provider.twin_json("offer", "transfers", "--role", "provider")[0], "REQUESTED")
    provider.twin("offer", "transfer-process", str(requested["id"]), "start", "--wait")
    landed = _until(lambda: consumer.twin_json("offer", "transfer-process", str(pulled["id"])), "COMPLETED")
    assert landed["files"][0]["sha256"] == hashlib.sha256(rain.read_bytes()).hexdigest()


def test_a_stream_history_crosses_by_hand_and_feeds_the_consumers_twin(two: tuple[LiveEngine, LiveEngine],
                                                                        tmp_path: Path) -> None:
    """``twin offer create --stream``, a manual offer, pushed (``--push``): the steward's start takes the
    history's snapshot first (the transfer stays REQUESTED until it is written), then the provider pushes it,
    and the consumer sends what landed into its own twin's stream with ``twin stream send``, its usual
    command."""
    from helpers import RIVER_REACH

    provider, consumer = two
    for engine in two:
        engine.twin("lake", "endpoint", "add", "site", "--protocol", "file", "--location",
                    str(engine.settings.data_dir / "lake" / "site"))
        engine.twin("app", "publish", str(RIVER_REACH))
    provider.twin("create", "river-reach@0.1.0", "--name", "upstream", "--param", "station=RR-01")
    readings = tmp_path / "readings.jsonl"
    readings.write_text("".join(json.dumps({"time": f"2026-03-01T{h:02d}:00:00Z", "station": "RR-01",
                                            "rain": 0.5, "level": 1.0 + h / 100}) + "\n" for h in range(24)))
    provider.twin("stream", "send", "upstream", "gauges", str(readings))
    assert "is not TWIN/STREAM" in provider.twin("offer", "create", "--stream", "upstream", "--title", "x", expect=2)
    assert "one" in provider.twin("offer", "create", "reach:x", "--run", "r", "--title", "x", expect=2)
    assert "no run 'gone'" in provider.twin("offer", "create", "--run", "gone", "--title", "x", expect=1)
    offered = provider.twin_json("offer", "create", "--stream", "upstream/gauges", "--title", "Gauge RR-01",
                                 "--manual")
    assert offered["did"] == "stream:upstream/gauges"
    windowed = provider.twin_json("offer", "create", "--stream", "upstream/gauges", "--title", "Morning", "--from",
                                  "2026-03-01T06:00:00", "--to", "2026-03-01T12:00:00")  # UTC when no offset
    assert windowed["window"] == {"since": "2026-03-01T06:00:00Z", "until": "2026-03-01T12:00:00Z"}
    weekly = provider.twin_json("offer", "create", "--stream", "upstream/gauges", "--title", "Week", "--last", "P7D")
    assert weekly["window"] == {"last": 604800.0}
    assert "not a duration" in provider.twin("offer", "create", "--stream", "upstream/gauges", "--title", "x",
                                             "--last", "soon", expect=2)
    assert "not both" in provider.twin("offer", "create", "--stream", "upstream/gauges", "--title", "x",
                                       "--last", "3600", "--from", "2026-03-01", expect=2)
    assert "only a stream" in provider.twin("offer", "create", "reach:x", "--title", "x", "--last", "60", expect=2)
    good = provider.twin_json("offer", "create", "--stream", "upstream/gauges", "--title", "RR-01 good", "--key",
                              "RR-01", "--quality", "good", "--field", "level")
    assert good["window"] == {"key": "RR-01", "key_field": "station", "quality": ["good"], "fields": ["time", "level"]}
    network = provider.twin_json("offer", "create", "--stream", "upstream/gauges", "--title", "Two gauges", "--key",
                                 "RR-01", "--key", "RR-02")
    assert network["window"] == {"keys": ["RR-01", "RR-02"], "key_field": "station"}
    assert "declares no field 'depth'" in provider.twin("offer", "create", "--stream", "upstream/gauges", "--title",
                                                        "x", "--field", "depth", expect=1)
    assert "'excellent' is not one of" in provider.twin("offer", "create", "--stream", "upstream/gauges",
                                                        "--title", "x", "--quality", "excellent", expect=2)
    assert "only a stream's readings" in provider.twin("offer", "create", "reach:x", "--title", "x", "--key",
                                                       "RR-01", expect=2)

    asked = consumer.twin_json("offer", "negotiate", provider.url, offered["dataset_id"])
    theirs = _until(lambda: provider.twin_json("offer", "negotiations", "--role", "provider")[0], "REQUESTED")
    countered = provider.twin("offer", "negotiation", str(theirs["id"]), "offer", "--count", "3", "--wait")
    assert "OFFERED: offered use (count lteq 3)" in countered  # the steward's counter-offer
    _until(lambda: consumer.twin_json("offer", "negotiation", str(asked["id"])), "OFFERED")
    assert "the provider's offer: use (count lteq 3)" in consumer.twin("offer", "negotiation", str(asked["id"]))
    assert "goes with the step offer" in consumer.twin("offer", "negotiation", str(asked["id"]), "accept",
                                                       "--count", "2", expect=2)
    consumer.twin("offer", "negotiation", str(asked["id"]), "accept", "--wait")
    _until(lambda: provider.twin_json("offer", "negotiation", str(theirs["id"])), "ACCEPTED")
    provider.twin("offer", "negotiation", str(theirs["id"]), "agree", "--wait")
    _until(lambda: provider.twin_json("offer", "negotiation", str(theirs["id"])), "VERIFIED")
    provider.twin("offer", "negotiation", str(theirs["id"]), "finalize", "--wait")
    agreement = _until(lambda: consumer.twin_json("offer", "negotiation", str(asked["id"])),
                       "FINALIZED")["agreement_id"]
    assert "count" in json.dumps(consumer.twin_json("offer", "agreements")[0]["policy"])  # the counter's terms
    pulled = consumer.twin_json("offer", "transfer", agreement, "remote:upstream-gauges", "--push")
    requested = _until(lambda: provider.twin_json("offer", "transfers", "--role", "provider")[0], "REQUESTED")
    assert requested["snapshot"] is None  # nothing is written before the steward starts it
    started = provider.twin_json("offer", "transfer-process", str(requested["id"]), "start", "--wait")
    assert started["state"] in ("STARTED", "COMPLETED") and started["snapshot"]
    landed = _until(lambda: consumer.twin_json("offer", "transfer-process", str(pulled["id"])), "COMPLETED")
    assert [f["name"] for f in landed["files"]] == ["gauges.arrow"] and landed["format"] == "HttpData-PUSH"

    out = tmp_path / "gauges.arrow"
    consumer.twin("lake", "download", "remote:upstream-gauges/gauges.arrow", str(out), "--verify")
    consumer.twin("create", "river-reach@0.1.0", "--name", "downstream", "--param", "station=RR-01")
    consumer.twin("stream", "send", "downstream", "gauges", str(out))
    back = consumer.twin_json("stream", "read", "downstream", "gauges")["items"]
    assert [r["level"] for r in back] == [1.0 + h / 100 for h in range(24)]
    _forecast_on_what_arrived(consumer, tmp_path)


def _forecast_on_what_arrived(consumer: LiveEngine, tmp_path: Path) -> None:
    """The consumer's twin, fed with the provider's gauge history, runs its forecast workflow on the consumer's
    own rain forecast (a netCDF file in its lake, served as collection ``mine.rain``) and writes the forecast's
    peak to the twin's state beside the last level received."""
    from types import SimpleNamespace

    from twinengine.demo.chapters.workflows import rain_forecast

    deadline = time.monotonic() + 60  # the twin's function on arrival turns the records into state
    while "level" not in (reported := consumer.twin_json("state", "show", "downstream")["reported"]) \
            or not reported["level"]["timestamp"].startswith("2026-03-01T23:00"):
        assert time.monotonic() < deadline, reported
        time.sleep(0.2)
    assert reported["level"]["value"] == pytest.approx(1.23)  # the history's last reading
    rain = tmp_path / "rain.nc"
    options = SimpleNamespace(start=datetime(2026, 3, 1, 23, tzinfo=UTC), hours=1, seed=3)
    rain_forecast(SimpleNamespace(options=options)).to_netcdf(rain, engine="h5netcdf")  # type: ignore[arg-type]
    consumer.twin("lake", "dataset", "add", "mine:rain")
    consumer.twin("lake", "upload", str(rain), "mine:rain/rain.nc", "--endpoint", "site", "--dataset", "mine:rain",
                  "--type", "application/x-netcdf")
    run = consumer.twin_json("run", "downstream", "forecast", "--param", 'collection="mine.rain"', "--wait")
    assert run["status"] == "finished", run
    assert run["parameters"]["twin_name"] == "downstream" and len(run["value"]) == 48  # the rain's 48 hours
    state = consumer.twin_json("state", "show", "downstream")["reported"]
    assert state["forecast_peak_level"]["value"] == pytest.approx(max(run["value"]), abs=1e-4)
    assert state["level"]["value"] == pytest.approx(1.23)  # the history's last reading is still the twin's level


def test_an_edr_collection_is_queried_across_from_the_command_line(two: tuple[LiveEngine, LiveEngine],
                                                                   tmp_path: Path) -> None:
    """``twin offer create --collection``, a transfer without a dataset to land in, ``twin offer query``: the
    answer is the provider's own EDR answer, and the provider's usage record holds the query."""
    from lake_fixtures import rain_field

    provider, consumer = two
    for engine in two:
        engine.twin("lake", "endpoint", "add", "site", "--protocol", "file", "--location",
                    str(engine.settings.data_dir / "lake" / "site"))
    field = tmp_path / "rain.nc"
    rain_field().to_netcdf(field, engine="h5netcdf")
    provider.twin("lake", "dataset", "add", "grid:rain")
    provider.twin("lake", "upload", str(field), "grid:rain/rain.nc", "--endpoint", "site", "--dataset", "grid:rain")
    with provider.client() as sdk:
        deadline = time.monotonic() + 60
        while "grid.rain" not in [c["id"] for c in sdk.edr.collections()]:
            assert time.monotonic() < deadline, "the provider's EDR API does not list grid.rain"
            time.sleep(0.3)
        point = "POINT(7.5 46.5)"
        own = sdk.edr.position("grid.rain", point, parameter_name="rain")
    offered = provider.twin_json("offer", "create", "--collection", "grid.rain", "--title", "Rain, by query",
                                 "--purpose", "flood-forecasting")
    assert offered["collection"] == "grid.rain"
    agreed = consumer.twin_json("offer", "negotiate", provider.url, offered["dataset_id"], "--purpose",
                                "flood-forecasting", "--wait")
    assert agreed["state"] == "FINALIZED", agreed
    started = consumer.twin_json("offer", "transfer", agreed["agreement_id"], "--wait")
    assert started["state"] == "STARTED" and started["landed"] is None, started
    answer = tmp_path / "answer.json"
    shown = consumer.twin("offer", "query", str(started["id"]), "position", "--coords", point, "--parameter", "rain",
                          "--out", str(answer))
    assert "rain" in shown and str(len(own["ranges"]["rain"]["values"])) in shown
    assert json.loads(answer.read_text())["ranges"]["rain"]["values"] == own["ranges"]["rain"]["values"]
    usage = provider.twin_json("offer", "usage", agreed["agreement_id"])
    assert [u["file"].split("?")[0] for u in usage if u["outcome"] == "served"] == ["edr collections", "edr position"]
