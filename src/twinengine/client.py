"""The Python SDK: ``Client(url, token)`` with typed methods for the engine's REST API.

It raises the same error classes the server raises (``twinengine.errors``), so a notebook can
``except TwinNotFound``. The CLI is built on it.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import httpx2 as httpx
from pydantic import BaseModel, TypeAdapter

from twinengine._defaults import DEFAULT_URL
from twinengine.access.sdk import EDRClient
from twinengine.auth.schemas import AuditPage, IdentityDeleted, IdentityRead, Me, TokenIssued, TokenRead
from twinengine.catalog.archive import pack, unpack
from twinengine.catalog.schemas import AppPage, AppRead, AppVersionRead, PublishResult, WorkflowDefinition
from twinengine.client_types import History, State, Twin, TwinList
from twinengine.errors import TwinEngineError
from twinengine.timeutil import TimeLike, as_instant, iso_instant
from twinengine.transport import Transport, segment
from twinengine.twins.batch_schemas import StateBatchItem, StateBatchResult
from twinengine.twins.fleet_schemas import FleetAggregate, FleetPage
from twinengine.twins.relationship_schemas import LinkPage, LinkRead, RelatedPage
from twinengine.twins.schemas import (
    GrantRead,
    PropertyRead,
    PropertyWrite,
    RevisionPage,
    RevisionRead,
    StateDiff,
)
from twinengine.ui.schemas import ViewRead

if TYPE_CHECKING:
    from twinengine.auth.client import AccessClient
    from twinengine.calibration.client import CalibrationClient
    from twinengine.compute.client import ComputeClient
    from twinengine.crates.client import CratesClient
    from twinengine.dataspace.client import DataspaceClient
    from twinengine.ensembles.client import EnsemblesClient
    from twinengine.lake.client import LakeClient
    from twinengine.ml.client import MLClient
    from twinengine.streams.sdk import StreamsClient
    from twinengine.subscriptions.client import SubscriptionsClient
    from twinengine.twin_assimilation.client import AssimilationClient
    from twinengine.twins.forecasts_sdk import VerificationClient
    from twinengine.workflows.client import WorkflowsClient

__all__ = ["Client"]

M = TypeVar("M", bound=BaseModel)


def _writes(values: Mapping[str, Any] | None, timestamp: TimeLike | None) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    timestamp = as_instant(timestamp, "timestamp") if timestamp is not None else None
    for name, value in (values or {}).items():
        write = value if isinstance(value, PropertyWrite) else PropertyWrite(value=value, timestamp=timestamp)
        out[name] = write.model_dump(mode="json", exclude_none=True)
    return out


# Publishing resolves and installs an app's requirements before it answers (each step may take up to ten
# minutes, twinengine.workers.envs), so its answer is awaited longer than any other.
PUBLISH_TIMEOUT = 1260.0


class Client:
    """A connection to a running engine. Use as a context manager, or call ``close()``."""

    def __init__(self, url: str = DEFAULT_URL, token: str | Callable[[], str | None] | None = None, *,
                 timeout: float = 30.0, http: httpx.Client | None = None) -> None:
        self._transport = Transport(url, token, timeout=timeout, http=http)
        self.url = self._transport.url
        self._http = self._transport.http

    @property
    def _auth(self) -> dict[str, str]:
        """The Authorization header of the next request (a sign-in renews it), for raw calls beside the SDK."""
        return self._transport.auth

    @classmethod
    def login(cls, url: str = DEFAULT_URL, *, provider: str | None = None,
              show: Callable[[str, str, str | None], None] | None = None, browser: bool = False,
              timeout: float = 30.0, profile: str = "default") -> Client:
        """A client signed in as ``twin login`` signs in, sharing its kept sign-in for ``url`` in ``profile``
        (renewed with the refresh token when due); with none kept, the device flow: ``show(url, code,
        url_with_code)`` (default: print) tells the person what to approve."""
        from twinengine.sdk_login import login

        return cls(url, login(url, provider=provider, show=show, browser=browser, profile=profile), timeout=timeout)

    @classmethod
    def from_client_credentials(cls, url: str, client_id: str, client_secret: str, *, provider: str | None = None,
                                scopes: list[str] | None = None, timeout: float = 30.0) -> Client:
        """A client for a service, signed in with the client-credentials grant of ``provider`` (or the engine's
        only one), non-interactively; the access token is fetched again when due. The secret stays in memory."""
        from twinengine.credentials import ServiceGrant

        grant = ServiceGrant(url, client_id, client_secret, provider=provider, scopes=scopes)
        return cls(url, grant.bearer, timeout=timeout)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: tuple[type[BaseException], BaseException, TracebackType] | Any) -> None:
        self.close()

    @property
    def workflows(self) -> WorkflowsClient:
        """Runs of workflows, their logs, provenance and results, and triggers."""
        from twinengine.workflows.client import WorkflowsClient

        return WorkflowsClient(self._transport)

    def close(self) -> None:
        """Close the HTTP connections (only when this client opened them; a passed-in ``httpx.Client`` stays open)."""
        self._transport.close()

    @property
    def crates(self) -> CratesClient:
        """Runs' Provenance Run Crates, reruns of a run or of a crate, and a rerun's diff against its original."""
        from twinengine.crates.client import CratesClient

        return CratesClient(self._transport)

    @property
    def ensembles(self) -> EnsemblesClient:
        """Ensembles of workflows (members, statistics), scenarios of forks, and comparisons."""
        from twinengine.ensembles.client import EnsemblesClient

        return EnsemblesClient(self._transport)

    @property
    def edr(self) -> EDRClient:
        """OGC API EDR queries on the engine's gridded collections (``client.edr.position(...)``)."""
        return EDRClient(self._transport)

    @property
    def streams(self) -> StreamsClient:
        """Streams of twins: append, read, follow, MQTT bindings, functions, retraining buffers."""
        from twinengine.streams.sdk import StreamsClient

        return StreamsClient(self._transport)

    @property
    def ml(self) -> MLClient:
        """Models of twins: training runs, versions and gate decisions, trail, retraining policy, predict."""
        from twinengine.ml.client import MLClient

        return MLClient(self._transport)

    @property
    def dataspace(self) -> DataspaceClient:
        """The data space: offers of lake data under ODRL policies, other participants' catalogs, negotiations,
        agreements and transfers (docs/dataspaces.md)."""
        from twinengine.dataspace.client import DataspaceClient

        return DataspaceClient(self._transport)

    @property
    def calibration(self) -> CalibrationClient:
        """Calibration: fit a twin's parameters to its observations, follow it, accept or reject the result."""
        from twinengine.calibration.client import CalibrationClient

        return CalibrationClient(self._transport)

    @property
    def assimilation(self) -> AssimilationClient:
        """Data assimilation: run cycles that correct a twin's state from its observations, read them."""
        from twinengine.twin_assimilation.client import AssimilationClient

        return AssimilationClient(self._transport)

    @property
    def subscriptions(self) -> SubscriptionsClient:
        """Subscriptions to twins' conditions, told by e-mail or signed webhooks, and their deliveries."""
        from twinengine.subscriptions.client import SubscriptionsClient

        return SubscriptionsClient(self._transport)

    @property
    def verification(self) -> VerificationClient:
        """Forecasts twins issued and their skill scores per lead time against what was observed."""
        from twinengine.twins.forecasts_sdk import VerificationClient

        return VerificationClient(self._transport)

    # -- plumbing ---------------------------------------------------------------------------------

    def _request(self, method: str, path: str, *, headers: dict[str, str] | None = None,
                 **kwargs: Any) -> httpx.Response:
        return self._transport.request(method, path, headers=headers, **kwargs)

    @property
    def compute(self) -> ComputeClient:
        """Federated compute: sites, usage (with the APEL export) and quotas."""
        from twinengine.compute.client import ComputeClient

        return ComputeClient(self._transport)

    @property
    def access(self) -> AccessClient:
        """Groups, grants to groups, scoped tokens of one's own, and the signing keys."""
        from twinengine.auth.client import AccessClient

        return AccessClient(self._transport)

    @property
    def lake(self) -> LakeClient:
        """The data lake: endpoints, uploads and downloads, rules, verify, STAC import."""
        from twinengine.lake.client import LakeClient

        return LakeClient(self._transport)

    def _get(self, model: type[M], path: str, **params: Any) -> M:
        return self._transport.get(model, path, **params)

    def _send(self, model: type[M], method: str, path: str, body: Any) -> M:
        return self._transport.send(model, method, path, body)

    # -- engine and identity ----------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """``/health`` as a dict: whether the engine is up and its store reachable (no token needed)."""
        result: dict[str, Any] = self._request("GET", "/health").json()
        return result

    def me(self) -> Me:
        """Who the token belongs to: identity, role and what it may do."""
        return self._get(Me, "/api/v1/me")

    def create_token(self, name: str, role: str, *, expires_in: str | None = None,
                     note: str | None = None) -> TokenIssued:
        """Issue a token for identity ``name`` with ``role`` (admins; ``expires_in`` an ISO 8601 duration). The token
        text is in the answer only: it is never shown again."""
        body = {"name": name, "role": role, "expires_in": expires_in, "note": note}
        return self._send(TokenIssued, "POST", "/api/v1/tokens", {k: v for k, v in body.items() if v is not None})

    def list_tokens(self, identity: str | None = None) -> list[TokenRead]:
        """Tokens this engine issued, all or one ``identity``'s, without their secrets (admins)."""
        data = self._request("GET", "/api/v1/tokens", params={"identity": identity} if identity else None).json()
        return TypeAdapter(list[TokenRead]).validate_python(data)

    def identities(self) -> list[IdentityRead]:
        """Every identity with its valid tokens and their roles (admins)."""
        return TypeAdapter(list[IdentityRead]).validate_python(self._request("GET", "/api/v1/identities").json())

    def set_identity_disabled(self, name: str, disabled: bool = True) -> IdentityRead:
        """Disable an identity (admins): its tokens and portal sessions stop working at once; ``False``
        enables it again."""
        return IdentityRead.model_validate(self._request("PATCH", f"/api/v1/identities/{segment(name)}",
                                                         json={"disabled": disabled}).json())

    def delete_identity(self, name: str) -> IdentityDeleted:
        """Delete an identity with its tokens, sessions and grants (admins); 409 while it owns twins."""
        return IdentityDeleted.model_validate(self._request("DELETE", f"/api/v1/identities/{segment(name)}").json())

    def revoke_token(self, jti: str) -> TokenRead:
        """Revoke a token by its id (``jti``, admins); it stops working at once on this server."""
        return TokenRead.model_validate(self._request("DELETE", f"/api/v1/tokens/{segment(jti)}").json())

    def audit(self, *, actor: str | None = None, action: str | None = None, outcome: str | None = None,
              since: TimeLike | None = None, until: TimeLike | None = None, limit: int = 100,
              offset: int = 0) -> AuditPage:
        """The audit log (admins), newest first, filtered by actor, action (a prefix of the operation id),
        outcome and time."""
        return self._get(AuditPage, "/api/v1/audit", actor=actor, action=action, outcome=outcome,
                         since=iso_instant(since, "since"), until=iso_instant(until, "until"),
                         limit=limit, offset=offset)

    # -- catalogue --------------------------------------------------------------------------------

    def publish_app(self, source: Path | str | bytes, *, group: str | None = None) -> PublishResult:
        """Publish an app folder (packed canonically here) or ready ``.tar.gz`` bytes. The engine answers
        after it has resolved and installed the app's ``requires``, so the answer may take minutes: this call
        waits up to ``PUBLISH_TIMEOUT`` seconds for it, whatever the client's own timeout. With ``group``, the
        app is that group's (only its members publish its versions)."""
        archive = source if isinstance(source, bytes) else pack(Path(source))
        response = self._request("POST", "/api/v1/apps", content=archive,
                                 params={"group": group} if group else None,
                                 headers={"Content-Type": "application/gzip"},
                                 timeout=httpx.Timeout(self._http.timeout.connect, read=PUBLISH_TIMEOUT,
                                                       write=PUBLISH_TIMEOUT, pool=self._http.timeout.pool))
        return PublishResult.model_validate(response.json())

    def list_apps(self, q: str | None = None, *, domain: str | None = None, limit: int = 50,
                  offset: int = 0) -> AppPage:
        """A page of the catalogue's apps, optionally searched by text ``q`` or filtered by ``domain``."""
        return self._get(AppPage, "/api/v1/apps", q=q, domain=domain, limit=limit, offset=offset)

    def search_apps(self, text: str, *, limit: int = 50) -> AppPage:
        """Apps whose name, title, description, domain or keywords match ``text``."""
        return self.list_apps(text, limit=limit)

    def get_app(self, name: str) -> AppRead:
        """An app of the catalogue with its versions."""
        return self._get(AppRead, f"/api/v1/apps/{segment(name)}")

    def get_app_version(self, name: str, version: str = "latest") -> AppVersionRead:
        """One version of an app (``latest`` by default): its manifest, checksum and when it was published."""
        return self._get(AppVersionRead, f"/api/v1/apps/{segment(name)}/versions/{segment(version)}")

    def app_workflows(self, name: str, version: str = "latest") -> list[WorkflowDefinition]:
        """The version's workflows with their process graphs and parameters (what a run form asks for)."""
        data = self._request("GET", f"/api/v1/apps/{segment(name)}/versions/{segment(version)}/workflows").json()
        return TypeAdapter(list[WorkflowDefinition]).validate_python(data)

    def manifest_schema(self) -> dict[str, Any]:
        """The JSON Schema of ``twinapp.yaml`` (point an editor at it)."""
        result: dict[str, Any] = self._request("GET", "/api/v1/apps/manifest-schema").json()
        return result

    def pull_app(self, ref: str, dest: Path | str | None = None) -> bytes:
        """Download ``name@version`` (checking its sha-256); unpack it into ``dest`` if given."""
        name, _, version = ref.partition("@")
        response = self._request("GET", f"/api/v1/apps/{segment(name)}/versions/{segment(version or 'latest')}/archive")
        data = response.content
        expected = response.headers.get("Repr-Digest", "")
        actual = "sha-256=:" + base64.b64encode(hashlib.sha256(data).digest()).decode() + ":"
        if expected != actual:
            raise TwinEngineError(f"archive of {ref} arrived corrupted (digest {actual}, expected {expected})")
        if dest is not None:
            target = Path(dest)
            target.mkdir(parents=True, exist_ok=True)
            unpack(data, target, max_unpacked_bytes=1 << 31)
        return data

    # -- twins ------------------------------------------------------------------------------------

    def create_twin(self, app: str, name: str, parameters: Mapping[str, Any] | None = None, *,
                    description: str | None = None, tags: Sequence[str] | None = None,
                    location: Mapping[str, Any] | None = None, group: str | None = None) -> Twin:
        """Create a twin of ``app`` (``name@version`` or ``name`` for the latest) with ``parameters`` checked against
        the app's schema; optional tags and a GeoJSON location; ``group``: a group you are in owns it."""
        body: dict[str, Any] = {"app": app, "name": name, "parameters": dict(parameters or {}),
                                "description": description}
        if group is not None:
            body["group"] = group
        if tags:
            body["tags"] = list(tags)
        if location is not None:
            body["location"] = dict(location)
        return self._send(Twin, "POST", "/api/v1/twins", body)

    def list_twins(self, *, app: str | None = None, limit: int = 50, offset: int = 0, glance: bool = False
                   ) -> TwinList:
        """A page of the twins you may read, optionally of one ``app``; with ``glance``, each twin's status
        (alert, stale, ok) and why, place and last reading (``twin.glance``)."""
        return self._get(TwinList, "/api/v1/twins", app=app, limit=limit, offset=offset, glance=glance or None)

    def get_twin(self, twin: str) -> Twin:
        """A twin (by name or id): its app version, parameters, tags, location and head revision."""
        return self._get(Twin, f"/api/v1/twins/{segment(twin)}")

    def delete_twin(self, twin: str) -> None:
        """Delete a twin you may manage, with its whole state log; its forks keep their copies."""
        self._request("DELETE", f"/api/v1/twins/{segment(twin)}")

    def fork_twin(self, twin: str, name: str, *, at_revision: int | None = None,
                  parameters: Mapping[str, Any] | None = None, description: str | None = None) -> Twin:
        """A new twin ``name`` starting from ``twin``'s state at ``at_revision`` (default: the head), optionally with
        other parameters: a what-if branch."""
        body: dict[str, Any] = {"name": name, "at_revision": at_revision, "description": description,
                                "parameters": dict(parameters) if parameters is not None else None}
        return self._send(Twin, "POST", f"/api/v1/twins/{segment(twin)}/fork",
                          {k: v for k, v in body.items() if v is not None})

    def grants(self, twin: str) -> list[GrantRead]:
        """Who besides the owner may read or operate ``twin``."""
        data = self._request("GET", f"/api/v1/twins/{segment(twin)}/grants").json()
        return TypeAdapter(list[GrantRead]).validate_python(data)

    def grant(self, twin: str, identity: str, permission: Literal["read", "operate"]) -> GrantRead:
        """Let ``identity`` read or operate ``twin`` (the owner and admins may grant)."""
        return self._send(GrantRead, "PUT", f"/api/v1/twins/{segment(twin)}/grants/{segment(identity)}",
                          {"permission": permission})

    def revoke_grant(self, twin: str, identity: str) -> None:
        """Withdraw what ``identity`` was granted on ``twin``."""
        self._request("DELETE", f"/api/v1/twins/{segment(twin)}/grants/{segment(identity)}")

    # -- state ------------------------------------------------------------------------------------

    def write_state(self, twin: str, *, reported: Mapping[str, Any] | None = None,
                    desired: Mapping[str, Any] | None = None, timestamp: TimeLike | None = None,
                    message: str | None = None) -> RevisionRead:
        """Write one revision. Values are plain JSON values or ``PropertyWrite`` (value, unit, timestamp, and
        an ``Uncertainty`` in a form the property declares)."""
        body: dict[str, Any] = {"reported": _writes(reported, timestamp), "desired": _writes(desired, timestamp)}
        if message:
            body["message"] = message
        return self._send(RevisionRead, "PATCH", f"/api/v1/twins/{segment(twin)}/state", body)

    def report(self, twin: str, *, timestamp: TimeLike | None = None, message: str | None = None,
               **values: Any) -> RevisionRead:
        """Write reported values (``level=2.1``, or ``level={'value': 2.1, 'unit': 'm'}``) as one new revision,
        optionally at a past ``timestamp``."""
        return self.write_state(twin, reported=values, timestamp=timestamp, message=message)

    def desire(self, twin: str, *, message: str | None = None, **values: Any) -> RevisionRead:
        """Write desired values (``level=2.5``): what the twin should reach; returns the new revision."""
        return self.write_state(twin, desired=values, message=message)

    def write_state_batch(self, items: Iterable[StateBatchItem | Mapping[str, Any]]) -> StateBatchResult:
        """Write many revisions of many twins in one request and one transaction. An item is a
        ``StateBatchItem`` or a mapping ``{"twin", "reported", "desired", "message"}`` whose values are plain
        JSON values or ``PropertyWrite`` (as in ``write_state``). All or nothing: a refused item raises with
        its position (``items[3].reported.level.value``) and nothing is written."""
        body = []
        for item in items:
            if isinstance(item, StateBatchItem):
                body.append(item.model_dump(mode="json", exclude_none=True))
                continue
            row = {"twin": item["twin"], "reported": _writes(item.get("reported"), None),
                   "desired": _writes(item.get("desired"), None)}
            body.append({**row, "message": item["message"]} if item.get("message") else row)
        return self._send(StateBatchResult, "POST", "/api/v1/state/batch", {"items": body})

    def get_state(self, twin: str, *, revision: int | None = None, at: TimeLike | None = None,
                  quality: Sequence[str] | None = None) -> State:
        """The state at a revision or a valid time (default: now); ``.to_pandas()`` for a table.
        ``quality=["good"]``: each property's newest value with one of these flags. Properties with a gap
        check say whether they are ``stale`` (``State.stale`` lists them)."""
        return self._get(State, f"/api/v1/twins/{segment(twin)}/state", revision=revision,
                         at=iso_instant(at, "at"), quality=list(quality) if quality else None)

    def view(self, twin: str, name: str) -> ViewRead:
        """A view the twin's app declares, answered in words as the portal shows it: its summary, stale data,
        skill, the latest forecast (and the state its run started from), the exceedance by lead time
        (``.outlook``) and whether the twin is its place's official one."""
        return self._get(ViewRead, f"/api/v1/twins/{segment(twin)}/views/{segment(name)}")

    def get_property(self, twin: str, prop: str, *, kind: Literal["reported", "desired"] = "reported",
                     revision: int | None = None, at: TimeLike | None = None) -> PropertyRead:
        """One property's value now, at a revision or a valid time: ``"head[ow3]"`` gives one key's value
        (``.value``), ``"head"`` every key's (``.keys``, key → value)."""
        return self._get(PropertyRead, f"/api/v1/twins/{segment(twin)}/properties/{segment(prop)}", kind=kind,
                         revision=revision, at=iso_instant(at, "at"))

    def revisions(self, twin: str, *, limit: int = 50, offset: int = 0,
                  order: Literal["desc", "asc"] = "desc") -> RevisionPage:
        """A page of a twin's revisions, newest first unless ``order='asc'``."""
        return self._get(RevisionPage, f"/api/v1/twins/{segment(twin)}/revisions", limit=limit, offset=offset,
                         order=order)

    def get_revision(self, twin: str, revision: int) -> RevisionRead:
        """One revision of a twin's state: the values written, by whom, when and why."""
        return self._get(RevisionRead, f"/api/v1/twins/{segment(twin)}/revisions/{revision}")

    def history(self, twin: str, prop: str, *, kind: Literal["reported", "desired"] = "reported",
                since: TimeLike | None = None, until: TimeLike | None = None, limit: int = 1000,
                order: Literal["asc", "desc"] = "asc", quality: Sequence[str] | None = None) -> History:
        """One property's values over time (``quality=["good"]``: only values with these flags);
        ``.to_pandas()`` for a Series indexed by timestamp."""
        return self._get(History, f"/api/v1/twins/{segment(twin)}/properties/{segment(prop)}/history", kind=kind,
                         since=iso_instant(since, "since"), until=iso_instant(until, "until"),
                         limit=limit, order=order, quality=list(quality) if quality else None)

    def diff(self, twin: str, from_revision: int, to_revision: int | None = None) -> StateDiff:
        """What changed between two revisions (``to_revision`` defaults to the head): added, removed and changed
        properties."""
        params = {"from": from_revision, "to": to_revision}
        return self._get(StateDiff, f"/api/v1/twins/{segment(twin)}/diff", **params)

    # -- relationships ----------------------------------------------------------------------------

    def link(self, source: str, type: str, target: str, *, at: TimeLike | None = None) -> LinkRead:
        """Link ``source`` to ``target`` by a relationship type the source's app declares."""
        body: dict[str, Any] = {"type": type, "target": target}
        if at is not None:
            body["at"] = iso_instant(at, "at")
        return self._send(LinkRead, "POST", f"/api/v1/twins/{segment(source)}/links", body)

    def unlink(self, source: str, type: str, target: str, *, at: TimeLike | None = None) -> LinkRead:
        """Close the link (it stays readable as of earlier times)."""
        params = {"at": iso_instant(at, "at")} if at is not None else None
        path = f"/api/v1/twins/{segment(source)}/links/{segment(type)}/{segment(target)}"
        return LinkRead.model_validate(self._request("DELETE", path, params=params).json())

    def links(self, twin: str, *, type: str | None = None, direction: Literal["out", "in", "both"] = "out",
              at: TimeLike | None = None, history: bool = False, limit: int = 1000) -> LinkPage:
        """The twin's links now (or at ``at``), or every link it ever had with ``history``."""
        return self._get(LinkPage, f"/api/v1/twins/{segment(twin)}/links", type=type, direction=direction,
                         at=iso_instant(at, "at"), history=history or None, limit=limit)

    def related(self, twin: str, *, type: str | None = None, direction: Literal["out", "in", "both"] = "out",
                depth: int = 1, at: TimeLike | None = None, state: bool = False, limit: int = 1000) -> RelatedPage:
        """Twins within ``depth`` hops along links (e.g. downstream), as of ``at``, with their state if asked."""
        return self._get(RelatedPage, f"/api/v1/twins/{segment(twin)}/related", type=type, direction=direction,
                         depth=depth, at=iso_instant(at, "at"), state=state or None, limit=limit)

    # -- fleets -----------------------------------------------------------------------------------

    def update_twin(self, twin: str, *, tags: Sequence[str] | None = None,
                    location: Mapping[str, Any] | Literal["clear"] | None = None) -> Twin:
        """Replace a twin's tags and/or set its GeoJSON location (``"clear"`` removes it); owner or admin."""
        body: dict[str, Any] = {}
        if tags is not None:
            body["tags"] = list(tags)
        if location == "clear":
            body["location"] = None
        elif location is not None:
            body["location"] = dict(location)
        return self._send(Twin, "PATCH", f"/api/v1/twins/{segment(twin)}", body)

    def list_fleet(self, *, app: str | None = None, tags: Sequence[str] = (), bbox: Sequence[float] | None = None,
                   state: Sequence[str] = (), parameters: Sequence[str] = (), stale: Sequence[str] = (),
                   limit: int = 50, cursor: str | None = None) -> FleetPage:
        """One page of the twins matching every filter, by name; ``state`` conditions read like ``level>2.5``
        (``level>@desired.alert_threshold`` compares two properties); ``stale`` names properties whose value
        must be stale now (their app's gap check). Pass ``page.cursor`` for the next page."""
        return self._get(FleetPage, "/api/v1/fleet/twins", app=app, tag=list(tags) or None,
                         bbox=",".join(str(v) for v in bbox) if bbox is not None else None,
                         state=list(state) or None, parameter=list(parameters) or None, stale=list(stale) or None,
                         limit=limit, cursor=cursor)

    def iter_fleet(self, **filters: Any) -> Iterator[Any]:
        """Every matching twin, page after page (the same keyword arguments as ``list_fleet``)."""
        cursor = None
        while True:
            page = self.list_fleet(**filters, cursor=cursor)
            yield from page.items
            if page.cursor is None:
                return
            cursor = page.cursor

    def fleet_aggregate(self, prop: str, *, by: str | None = None, quantiles: Sequence[float] = (),
                        at: TimeLike | None = None, kind: Literal["reported", "desired"] = "reported",
                        app: str | None = None, tags: Sequence[str] = (), bbox: Sequence[float] | None = None,
                        state: Sequence[str] = (), parameters: Sequence[str] = ()) -> FleetAggregate:
        """Count, mean, min, max (and ``quantiles``) of a state property over the matching twins, grouped
        ``by`` app, tag or ``parameter:NAME``, now or as of ``at``: one request, one query."""
        return self._get(FleetAggregate, "/api/v1/fleet/aggregate", property=prop, kind=kind, by=by,
                         quantile=list(quantiles) or None, at=iso_instant(at, "at"), app=app,
                         tag=list(tags) or None, bbox=",".join(str(v) for v in bbox) if bbox is not None else None,
                         state=list(state) or None, parameter=list(parameters) or None)
