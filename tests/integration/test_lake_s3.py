"""The lake on S3: a standalone S3-compatible server on loopback, reached over real HTTP by real s3fs.

The server is moto's server mode (``moto_server``, pip-installed with the dev extras): it speaks the S3 REST
API (buckets, objects, multipart uploads) and runs as its own process, so the engine talks to it exactly as it
would to any S3 service. Each test gets fresh buckets."""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from helpers import Engine
from lake_fixtures import converge
from s3_fixtures import bucket, keys, s3_server
from twinengine.errors import ValidationFailed
from twinengine.lake.endpoints import get_endpoint
from twinengine.lake.storage import S3Storage


@pytest.fixture(scope="module")
def s3_url() -> Iterator[str]:
    with s3_server() as url:
        yield url


_bucket, _keys = bucket, keys


def test_upload_replicate_verify_and_repair_on_s3(engine: Engine, s3_url: str, tmp_path: Path) -> None:
    provider, user = engine.as_role("pat", "provider"), engine.as_role("uma", "user")
    east, west = _bucket(s3_url, _keys("east")), _bucket(s3_url, _keys("west"))
    provider.lake.add_endpoint("disk", "file", str(tmp_path / "disk"), attributes={"site": "home", "type": "disk"})
    provider.lake.add_endpoint("s3-east", "s3", f"{east}/lake", options={"endpoint_url": s3_url},
                               attributes={"site": "east", "type": "object"}, credential=_keys("east"))
    provider.lake.add_endpoint("s3-west", "s3", west, options={"endpoint_url": s3_url},
                               attributes={"site": "west", "type": "object"}, credential=_keys("west"))
    shown = provider.lake.endpoint("s3-east")
    assert shown.credential == "s3" and "secret" not in shown.model_dump_json()
    with engine.runtime.db.session(readonly=True) as session:  # each endpoint signs with its own keys
        keys = {name: engine.runtime.lake.backend(get_endpoint(session, name)).fs.key
                for name in ("s3-east", "s3-west")}
    assert keys == {"s3-east": "AKEAST", "s3-west": "AKWEST"}

    data = secrets.token_bytes(7 * 1024 * 1024 + 123)  # more than one multipart part
    source = tmp_path / "big.bin"
    source.write_bytes(data)
    up = user.lake.upload(source, "obs:big.bin", endpoint="s3-east", sha256=hashlib.sha256(data).hexdigest())
    assert up.created and up.file.replicas[0].state == "AVAILABLE"
    fs = S3Storage(east, {"endpoint_url": s3_url}, _keys("east")).fs
    assert fs.cat_file(f"{east}/lake/{up.file.replicas[0].path}") == data  # really in the bucket

    rule = user.lake.add_rule("obs:big.bin", copies=3, endpoints="site=home|type=object")
    converge(engine.runtime)
    assert user.lake.rule(rule.id).state == "OK"
    assert {r.endpoint for r in user.lake.get("obs:big.bin").replicas} == {"disk", "s3-east", "s3-west"}
    for endpoint in ("s3-west", "disk"):
        out = user.lake.download("obs:big.bin", tmp_path / f"from-{endpoint}", endpoint=endpoint, verify=True)
        assert out.read_bytes() == data
    assert user.lake.read_range("obs:big.bin", 5_000_000, 5_000_009) == data[5_000_000:5_000_010]

    west_path = f"{west}/{up.file.replicas[0].path}"
    S3Storage(west, {"endpoint_url": s3_url}, _keys("west")).fs.pipe_file(west_path, b"bit rot")
    checked = provider.lake.verify(endpoint="s3-west")
    assert [b.endpoint for b in checked.bad] == ["s3-west"] and checked.repairs_queued == 1
    converge(engine.runtime)
    assert S3Storage(west, {"endpoint_url": s3_url}, _keys("west")).fs.cat_file(west_path) == data
    assert provider.lake.verify(did="obs:big.bin").ok == 3


def test_interrupted_multipart_uploads_are_cleaned_up(engine: Engine, s3_url: str) -> None:
    bucket = _bucket(s3_url, _keys("c"))
    backend = S3Storage(bucket, {"endpoint_url": s3_url}, _keys("c"))
    writer = backend.writer("scope/aa/bb/half.bin")
    writer.write(secrets.token_bytes(9 * 1024 * 1024))  # one part sent, upload open
    uploads = backend.fs.call_s3("list_multipart_uploads", Bucket=bucket).get("Uploads", [])
    assert len(uploads) == 1
    del writer  # the writer "dies" here: it never completes the upload
    assert backend.size("scope/aa/bb/half.bin") is None  # nothing visible
    assert backend.cleanup(older_than=timedelta(0)) == 1
    assert backend.fs.call_s3("list_multipart_uploads", Bucket=bucket).get("Uploads", []) == []


def test_a_long_upload_still_sending_parts_is_not_cleaned_up(engine: Engine, s3_url: str) -> None:
    """Started longer ago than the reaper's bound, but its last part is newer: alive, so kept (a 20 GB upload
    takes longer than ``lake_stale_after``); once silent for that long it is abandoned and aborted."""
    bucket = _bucket(s3_url, _keys("l"))
    backend = S3Storage(bucket, {"endpoint_url": s3_url}, _keys("l"))
    writer = backend.writer("scope/aa/bb/long.bin")
    writer.write(secrets.token_bytes(9 * 1024 * 1024))  # the first part
    time.sleep(2.5)
    writer.write(secrets.token_bytes(8 * 1024 * 1024))  # the next one, 2.5 s after the upload began
    upload_id = backend.fs.call_s3("list_multipart_uploads", Bucket=bucket)["Uploads"][0]["UploadId"]
    while len(backend.fs.call_s3("list_parts", Bucket=bucket, Key="scope/aa/bb/long.bin",
                                 UploadId=upload_id).get("Parts", [])) < 2:  # parts go up in the background
        time.sleep(0.05)
    assert backend.cleanup(older_than=timedelta(seconds=2)) == 0
    assert len(backend.fs.call_s3("list_multipart_uploads", Bucket=bucket).get("Uploads", [])) == 1
    time.sleep(2.5)  # now silent for longer than the bound
    assert backend.cleanup(older_than=timedelta(seconds=2)) == 1
    del writer


def test_a_missing_bucket_is_a_clear_error(engine: Engine, s3_url: str) -> None:
    provider = engine.as_role("pat", "provider")
    with pytest.raises(ValidationFailed, match=r"location.*does not answer"):
        provider.lake.add_endpoint("ghost", "s3", "no-such-bucket", options={"endpoint_url": s3_url},
                                   credential=_keys("g"))


def test_parts_go_up_in_parallel_and_an_abort_leaves_nothing(engine: Engine, s3_url: str) -> None:
    bucket = _bucket(s3_url, _keys("p"))
    backend = S3Storage(bucket, {"endpoint_url": s3_url}, _keys("p"))
    data = secrets.token_bytes(5 * 8 * 1024 * 1024 + 3)  # five parts (four in flight at once) and a tail
    with backend.writer("scope/aa/bb/many.bin") as writer:
        for start in range(0, len(data), 1024 * 1024):
            writer.write(data[start:start + 1024 * 1024])
        assert backend.size("scope/aa/bb/many.bin") is None  # parts are up, the object is not there yet
        writer.commit()
    assert hashlib.sha256(backend.fs.cat_file(f"{bucket}/scope/aa/bb/many.bin")).digest() == \
        hashlib.sha256(data).digest()

    writer = backend.writer("scope/aa/bb/gone.bin")
    writer.write(data[:17 * 1024 * 1024])
    writer.abort()
    assert backend.size("scope/aa/bb/gone.bin") is None
    assert backend.fs.call_s3("list_multipart_uploads", Bucket=bucket).get("Uploads", []) == []
    with backend.writer("scope/aa/bb/small.bin") as writer:  # below one part: a single PUT
        writer.write(b"tiny")
        writer.commit()
    assert b"".join(backend.read("scope/aa/bb/small.bin")) == b"tiny"
