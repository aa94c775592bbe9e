"""The addresses of AmazonS3-PUSH (``dataspace.bucket_push``): the one a consumer's request names (its bucket, a
prefix of the transfer's, the S3 service, the keys of an endpoint whose admins let providers write there), and the
one a provider keeps while the transfer runs (its keys sealed by the engine's keyring)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from twinengine.dataspace.connector import Connector
from twinengine.dataspace.protocol import S3_ENDPOINT_TYPE, S3_PUSH, address_property
from twinengine.errors import ValidationFailed

__all__ = ["INCOMING", "LISTING", "address_for", "check_endpoint", "incoming", "sealed", "unsealed"]

INCOMING = "dataspace-incoming"  # below the endpoint's prefix: where providers write
LISTING = "manifest.json"
_SECRET = ("accessKeyId", "secretAccessKey")


def check_endpoint(session: Session, endpoint: str | None) -> None:
    """422 naming ``land.endpoint`` unless it is an S3 endpoint of this lake that accepts pushes."""
    from twinengine.lake.models import Endpoint

    row = session.scalar(select(Endpoint).where(Endpoint.name == endpoint)) if endpoint else None
    if row is None or row.protocol != "s3":
        raise ValidationFailed.one("land.endpoint", f"an {S3_PUSH} transfer lands on one of this lake's S3 "
                                                    "endpoints: name it")
    if str((row.options or {}).get("accept_pushes", "")).lower() not in ("true", "yes", "1") \
            or not row.credential_cipher:
        raise ValidationFailed.one("land.endpoint", f"endpoint {row.name} does not accept pushes: its keys would "
                                                    "go to the provider (an admin sets options.accept_pushes=true "
                                                    "on an endpoint whose bucket and keys are meant for incoming "
                                                    "data)")


def incoming(consumer_pid: str) -> str:
    """Where, below the endpoint's prefix, the provider of transfer ``consumer_pid`` writes."""
    return f"{INCOMING}/{consumer_pid.rsplit(':', 1)[-1]}"


def address_for(session: Session, connector: Connector, endpoint: str, consumer_pid: str) -> dict[str, Any]:
    """The DataAddress a consumer's request names: its bucket, a prefix of this transfer's, and the keys."""
    from twinengine.lake.endpoints import get_endpoint

    row = get_endpoint(session, endpoint)
    backend: Any = connector.lake.backend(row)
    keys = connector.lake.keyring.open(row.credential_cipher) if row.credential_cipher else {}
    options = row.options or {}
    region = options.get("region") or "us-east-1"
    url = options.get("endpoint_url") or f"https://s3.{region}.amazonaws.com"
    prefix = "/".join(p for p in (backend.prefix, incoming(consumer_pid)) if p)
    properties = {"bucketName": backend.bucket, "objectPrefix": prefix + "/", "region": region,
                  "accessKeyId": keys.get("access_key"), "secretAccessKey": keys.get("secret_key")}
    return {"@type": "DataAddress", "endpointType": S3_ENDPOINT_TYPE, "endpoint": url,
            "endpointProperties": [{"@type": "EndpointProperty", "name": k, "value": v}
                                   for k, v in properties.items()]}


def sealed(connector: Connector, address: Any) -> dict[str, Any]:
    """A consumer's S3 address as the provider keeps it: its form checked, its keys sealed by the engine's
    keyring (its host is checked before anything is written: ``push``). ``ValueError`` says what is wrong."""
    if not isinstance(address, dict) or address.get("endpointType") != S3_ENDPOINT_TYPE:
        raise ValueError(f"an {S3_PUSH} transfer's dataAddress has endpointType {S3_ENDPOINT_TYPE}")
    url = address.get("endpoint")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise ValueError("the dataAddress names no S3 service (endpoint, an http(s) URL)")
    found = {name: address_property(address, name) for name in ("bucketName", "objectPrefix", "region", *_SECRET)}
    missing = [name for name in ("bucketName", "objectPrefix", *_SECRET) if not found[name]]
    if missing:
        raise ValueError(f"the dataAddress lacks {', '.join(missing)}")
    prefix = str(found["objectPrefix"]).strip("/")
    if ".." in prefix.split("/"):
        raise ValueError("the dataAddress's objectPrefix leaves its bucket")
    keys = {"access_key": found["accessKeyId"], "secret_key": found["secretAccessKey"]}
    return {"@type": "DataAddress", "endpointType": S3_ENDPOINT_TYPE, "endpoint": url,
            "bucket": found["bucketName"], "prefix": prefix, "region": found["region"] or "us-east-1",
            "sealed": connector.lake.keyring.seal(keys)}


def unsealed(connector: Connector, kept: dict[str, Any]) -> Any:
    """The S3 storage the provider writes to, from what ``sealed`` kept."""
    from twinengine.lake.storage import S3Storage

    keys = connector.lake.keyring.open(str(kept["sealed"]))
    return S3Storage(f"{kept['bucket']}/{kept['prefix']}", {"endpoint_url": kept["endpoint"],
                                                             "region": kept.get("region")}, keys)
