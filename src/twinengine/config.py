"""Engine settings: one pydantic-settings object fed by init arguments, ``TWIN_*`` env vars and ``twin.toml``.

Precedence, highest first: explicit arguments, environment, ``<data_dir>/twin.toml``, defaults. The data dir
is resolved first (argument or ``TWIN_DATA_DIR``) because it is where ``twin.toml`` lives.
"""

from __future__ import annotations

import json
import os
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from twinengine.timeutil import parse_setting_duration

__all__ = ["OidcGroupRule", "OidcProvider", "OidcRoleRule", "Settings", "default_data_dir", "web_url"]

MiB = 1024 * 1024


def default_data_dir() -> Path:
    """``$XDG_DATA_HOME/twinengine`` (``~/.local/share/twinengine``): where an engine keeps its state."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "twinengine"


def web_url(value: str) -> str:
    """``value`` when it is an absolute http or https URL with a host; ValueError saying why otherwise."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(value)
        host = parts.hostname
    except ValueError:
        raise ValueError("not a URL") from None
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"must be an http or https URL, not {parts.scheme or 'a relative'}: {value[:200]!r}")
    if not host:
        raise ValueError(f"names no host: {value[:200]!r}")
    return value


class _OidcRule(BaseModel):
    """What a claim must assert: an AARC-G002 entitlement (it and its subgroups; `:*` at the end is allowed) or
    a value of the groups claim, exactly."""

    model_config = ConfigDict(extra="forbid")

    entitlement: str | None = Field(default=None, description="Required entitlement, e.g. "
                                    "`urn:mace:egi.eu:group:vo.example.org:role=member`.")
    claim_value: str | None = Field(default=None, description="A value the groups claim must list.")

    @field_validator("entitlement")
    @classmethod
    def _parses(cls, value: str | None) -> str | None:
        if value is None:
            return None
        from aarc_entitlement import G002, Error  # only where rules are configured

        try:
            G002(value.removesuffix(":*"))
        except Error as exc:
            raise ValueError(f"not an AARC-G002 entitlement: {exc}") from exc
        return value

    @model_validator(mode="after")
    def _one_condition(self) -> _OidcRule:
        if (self.entitlement is None) == (self.claim_value is None):
            raise ValueError("a rule needs exactly one of `entitlement` and `claim_value`")
        return self


class OidcGroupRule(_OidcRule):
    """Members matching the rule belong to the engine group ``group``."""

    group: str = Field(pattern=r"^[a-z0-9][a-z0-9._:-]{0,63}$", description="Engine group the match joins.")


class OidcRoleRule(_OidcRule):
    """Members matching the rule get ``role``."""

    role: Literal["user", "developer", "provider", "admin"] = Field(description="Role the match gives.")


class OidcProvider(BaseModel):
    """An OpenID Connect issuer the engine trusts: tokens it signs (checked with its JWKS) name a principal."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=r"^[\w-]+$", max_length=64, description="The provider id clients send in "
                                                                    "`oidc/<id>/<token>`.")
    issuer: str = Field(description="The `iss` of its tokens, also where its discovery document lives.")
    title: str = Field(default="", description="Shown to people: \"Sign in with <title>\"; default the id.")
    description: str = Field(default="", description="Shown to openEO clients beside the title.")
    jwks_uri: str | None = Field(default=None, description="Its signing keys; default: the `jwks_uri` of its "
                                 "discovery document (<issuer>/.well-known/openid-configuration).")
    audience: str | None = Field(default=None, description="Required `aud` claim, if any.")
    scopes: list[str] = Field(default_factory=lambda: ["openid"], description="Scopes the sign-in flows ask "
                              "for (default `openid`; add `offline_access` for refresh tokens).")
    name_claim: str = Field(default="sub", description="Claim holding the subject: with the issuer, the key of "
                            "the identity (never a display name).")
    role: Literal["user", "developer", "provider", "admin"] = Field(default="user", description="Role of principals "
                                                                                   "from this provider.")
    client_id: str | None = Field(default=None, description="The engine's client at the provider: the portal's "
                                  "\"Sign in with\" button, `twin login` and openEO clients use it; none: tokens only.")
    client_secret: str | None = Field(default=None, description="Secret of `client_id` for the portal's code flow, "
                                      "if the provider registered it as confidential (PKCE is used either way).")
    cli_client_id: str | None = Field(default=None, description="A public client (no secret) for `twin login` and "
                                      "openEO clients: device code with PKCE, refresh tokens; default: `client_id` "
                                      "when it has no secret.")
    groups_claim: str | None = Field(default=None, description="Claim listing the person's groups (e.g. `groups`).")
    entitlements_claim: str | None = Field(default=None, description="Claim listing AARC-G002 entitlements "
                                           "(e.g. `eduperson_entitlement`).")
    group_rules: list[OidcGroupRule] = Field(default_factory=list, description="Engine groups granted by "
                                             "entitlements or group claim values; nothing else maps to a group.")
    role_rules: list[OidcRoleRule] = Field(default_factory=list, description="Roles granted by entitlements or "
                                           "group claim values; the highest that matches wins, else `role`.")
    recheck_s: int | None = Field(default=60, ge=0, le=86400, description="How often (seconds) the engine asks "
                                  "the provider whether a token in use still stands (token introspection, RFC 7662, "
                                  "with `client_id` and `client_secret`); when not, the token is refused, what was "
                                  "made from it revoked, and the person held (tokens, sessions, standing work) "
                                  "until the provider vouches for them again (a new sign-in); the groups an answer "
                                  "tells replace the token's. 0: every use; null: never.")
    disabled_claim: str | None = Field(default=None, description="Claim by which the provider says a person is "
                                       "suspended (true, or \"true\"): the person is held until a token without "
                                       "it, their engine tokens revoked and asserted groups dropped.")
    participant_claim: str = Field(default="participant_id", description="Data space (`dataspace_claims_provider`): "
                                   "the claim of a service's token naming the participant id (did:web) the "
                                   "provider vouches the service speaks for.")
    organisation_claim: str | None = Field(default=None, description="Data space: the claim naming the organisation "
                                           "a participant speaks for (e.g. `organisation`, "
                                           "`schac_home_organization`); unset: the provider vouches for none.")

    @field_validator("issuer", "jwks_uri")
    @classmethod
    def _web_url(cls, value: str | None) -> str | None:
        """The engine reads these over HTTP: another scheme (``file:``, ``ftp:``) would read a local file or
        another service, so it is a configuration error at start, not a failure at a token's first use."""
        return None if value is None else web_url(value)



class Settings(BaseSettings):
    """Everything an engine process needs to know; the CLI, the API and the demo all build one of these."""

    model_config = SettingsConfigDict(env_prefix="TWIN_", extra="forbid", validate_default=True)

    data_dir: Path = Field(default_factory=default_data_dir, description="Folder for the embedded store "
                         "(keys, blobs, the SQLite store, unpacked app versions); default "
                         "$XDG_DATA_HOME/twinengine, that is ~/.local/share/twinengine.")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default SQLite (WAL) at <data_dir>/twin.db."
    )
    collections_dir: Path | None = Field(
        default=None, description="Folder of NAME.zarr / NAME.nc collections; default <data_dir>/collections."
    )
    host: str = Field(default="127.0.0.1", description="Address `twin serve` binds to (loopback by default).")
    port: int = Field(default=8000, ge=0, le=65535, description="Port `twin serve` listens on.")
    serve_processes: int = Field(
        default=1, ge=1, le=64,
        description="Engine processes `twin serve` runs on its socket. Each serves the API with its own "
                    "interpreter (Python runs one thread at a time per process); one of them, chosen by a lock "
                    "in the data dir, runs the elected loops (functions on arrival, MQTT, compaction, the "
                    "lake's daemons, training). Above 1 the stream log must be one every process can share "
                    "(`stream_backend = nats`).")
    engines_share_store: bool = Field(
        default=False,
        description="Engines on other hosts serve this same PostgreSQL store. The elected loops then run in "
                    "the one engine of all hosts that holds an advisory lock in the store (instead of a file lock "
                    "in the data dir); when it dies or loses the store another engine takes them over. Needs a "
                    "PostgreSQL `database_url` and `stream_backend = nats`.")
    token_issuer: str = Field(default="twinengine", description="`iss` claim of tokens this engine signs.")
    token_ttl: timedelta = Field(default=timedelta(days=30), description="Default lifetime of new tokens.")
    session_ttl: timedelta = Field(default=timedelta(hours=12), description="Absolute lifetime of a portal session "
                                   "(the token behind the httpOnly cookie a sign-in sets): never longer than the "
                                   "token it was opened with, so a session cannot extend itself by opening another.")
    admin_token_ttl: timedelta = Field(default=timedelta(days=365), description="Lifetime of the first token.")
    token_recheck: timedelta = Field(default=timedelta(seconds=2), description="How long a token found valid is "
                                     "trusted before its revocation is looked up again (0: every request). "
                                     "Revocations through this process apply at once; through another process "
                                     "sharing the store, within this time.")
    max_request_bytes: int = Field(default=2 * MiB, gt=0, description="Largest request body (413 above), "
                                   "except on the routes with an allowance of their own (app archives, lake "
                                   "uploads, state and stream batches), which only a verified caller gets.")
    request_line_max_bytes: int = Field(default=64 * 1024, ge=1024, description="Longest request target (path "
                                        "and query) of a request line: longer is refused with 414 before it is "
                                        "parsed.")
    request_header_max_bytes: int = Field(default=64 * 1024, ge=1024, description="Largest header section of "
                                          "a request (431 above; chunk extensions and trailers count too).")
    request_header_max_count: int = Field(default=100, ge=8, description="Most header lines in a request "
                                          "(431 above).")
    request_head_timeout: timedelta = Field(default=timedelta(seconds=10), gt=timedelta(0), description="Time "
                                            "a request head may take to arrive from its first byte (a new "
                                            "connection: from its opening): 408 and closed after it.")
    keep_alive_timeout: timedelta = Field(default=timedelta(seconds=75), gt=timedelta(0), description="How "
                                          "long an idle connection stays open for the client's next request. "
                                          "Keep it above the idle timeout of a load balancer or proxy in front "
                                          "(60 s for many): a server that closes first resets the requests they "
                                          "send on connections they still hold open.")
    request_body_min_rate: int = Field(default=1024, ge=0, description="Slowest a request body may arrive, in "
                                       "bytes a second over each request_body_rate_window of the engine "
                                       "reading it (408 and closed below; 0: no minimum).")
    request_body_rate_window: timedelta = Field(default=timedelta(seconds=10), gt=timedelta(0),
                                                description="The time over which a body's rate is judged.")
    state_batch_max_items: int = Field(default=10_000, ge=1, description="Most items one state batch write "
                                       "(POST /api/v1/state/batch) may carry (413 above).")
    state_batch_max_bytes: int = Field(default=32 * MiB, gt=0, description="Largest state batch request body.")
    max_app_archive_bytes: int = Field(default=50 * MiB, gt=0, description="Largest app archive upload.")
    max_app_unpacked_bytes: int = Field(default=200 * MiB, gt=0, description="Largest unpacked app.")
    max_manifest_bytes: int = Field(default=1 * MiB, gt=0, description="Largest twinapp.yaml, as written, as its "
                                    "YAML aliases expand it and as stored once parsed (an alias past it is "
                                    "refused with its line).")
    db_pool_size: int = Field(default=10, ge=1, description="Connection pool size (PostgreSQL).")
    store_guard: Literal["off", "log", "raise"] = Field(
        default="off", description="Watch for calls that wait on the world (a network call, a sleep, a second unit "
        "of work) while a write transaction is open on the same thread, which would hold the store's write lock "
        "for as long as they take: off, log (an error with the call's stack) or raise (refuse the call; the test "
        "suite runs so).")
    request_threads: int = Field(
        default=4, ge=1, le=1024,
        description="Threads that run requests' blocking work at once; more requests wait their turn in order "
                    "(on the event loop, holding no thread). 4 suits SQLite and PostgreSQL alike: the "
                    "work is mostly Python in this process (ORM, validation, serialisation), and every runnable "
                    "thread competes for the interpreter lock with the event loop that answers /health; raise "
                    "it where the database is far away and requests mostly wait on it.")
    long_request_threads: int = Field(
        default=4, ge=1, le=1024,
        description="Threads for requests that may take long (synchronous workflow runs and ensembles, openEO "
                    "/result, publishing an app, which may build its environment): they run on these instead of "
                    "the request threads, so short requests never wait behind them; more wait their turn.")
    warm_routes: bool = Field(default=True, description="Warm the engine in the background once it answers, one "
                              "part after another: every API route built (0.3-0.8 s), the JSON Schema validators, "
                              "the EDR listing, the verification scores library, MLflow's registry; `/health` names "
                              "the parts still warming (`\"warming\": [...]`) and `/health/ready` answers 503 until "
                              "all have run. Off, nothing is warmed and each group of routes is built on its first "
                              "request: for an in-process engine that serves a few requests (tests); `twin serve` "
                              "still imports its groups of routes in the background.")
    edr_max_values: int = Field(default=20_000_000, gt=0,
                                description="Most values one EDR answer may hold (413 above, checked before reading).")
    edr_chunk_cache_bytes: int = Field(default=512 * MiB, ge=0,
                                       description="Memory for decoded chunks kept between EDR queries (and up "
                                                   "to a quarter more of freed chunk memory, kept to decode into).")
    edr_read_workers: int = Field(default=4, ge=1, le=256,
                                  description="Threads that read chunks for EDR answers beside the request's own. "
                                              "Decoding local zarr chunks uses at most one fewer than the cores; "
                                              "reads through zarr stores or dask, which may wait on storage, use "
                                              "them all.")
    log_level: str = Field(default="info", description="Server log level (debug, info, warning, error).")
    log_format: Literal["text", "json"] = Field(
        default="text", description="Server log lines: text, or json (one object a line with time, level, logger, "
                                    "message, the request's id and trace; an access line per request).")
    otlp_endpoint: str | None = Field(
        default=None, description="OpenTelemetry collector (OTLP over HTTP, e.g. http://127.0.0.1:4318): traces of "
                                  "requests and runs are sent there; unset, none are made.")
    executor: str = Field(default="local", validation_alias=AliasChoices("executor", "TWIN_EXECUTOR", "TWIN_COMPUTE"),
                          description="Workflow executor (TWIN_EXECUTOR or TWIN_COMPUTE): local (Dask threads), "
                                      "distributed, slurm, or an installed plugin.")
    dask_address: str | None = Field(default=None, description="Dask scheduler (tcp://host:8786); set, runs "
                                                               "compute on that cluster.")
    dask_workers: int | None = Field(default=None, ge=1, description="Threads of the local Dask scheduler.")
    slurm_options: dict[str, Any] = Field(default_factory=dict, description="dask-jobqueue SLURMCluster options.")
    workflow_workers: int = Field(default=2, ge=1, le=64, description="Runs executed at once by one engine.")
    workflow_stale_after: timedelta = Field(default=timedelta(seconds=15), description="A running run without a "
                                            "heartbeat this long ends as error (its engine stopped).")
    sync_timeout: timedelta = Field(default=timedelta(seconds=120), description="Wall-time budget of synchronous "
                                    "processing (openEO /result, runs with mode sync): then the process evaluating "
                                    "it is killed (with sync_isolation thread: the run stops at its next node or "
                                    "Dask task) and the run ends as an error ProcessingTimeLimit (/result answers "
                                    "408); use a batch job for longer work.")
    sync_isolation: Literal["process", "thread"] = Field(
        default="process", description="Where synchronous processing runs: process (a child process of the engine, "
        "killed at its budget, under sync_memory_bytes; a request never takes the engine's own memory or CPU) or "
        "thread (a request thread of the engine itself: no process to start, for tests and single-user tools).")
    sync_processes: int = Field(default=2, ge=1, le=64, description="Child processes evaluating synchronous "
                                "processing at once (sync_isolation process); more requests wait for one, within "
                                "their sync_timeout.")
    sync_memory_bytes: int = Field(default=4 * 1024 * MiB, ge=0, description="Data-segment limit (heap and "
                                   "anonymous memory, RLIMIT_DATA) of a process evaluating synchronous processing; a "
                                   "graph that needs more ends as an error ProcessingMemoryLimit (0: none).")
    sync_max_result_bytes: int = Field(default=64 * MiB, gt=0, description="Largest result synchronous "
                                       "processing returns (openEO /result; 413 above): measured while it is "
                                       "written, and a run past it ends as an error ResultTooLarge keeping nothing "
                                       "of it; larger results are for batch jobs, downloaded as assets.")
    workflow_max_array_elements: int = Field(default=1_000_000, ge=1, description="Most elements an array that "
                                             "array_create or array_concat builds in the engine may hold (400 "
                                             "before anything is allocated above it).")
    what_if_ttl: timedelta = Field(default=timedelta(days=7), ge=timedelta(minutes=1), description="How long a "
                                   "what-if run's fork is kept (its forecast shown again beside the twin's own); "
                                   "then the engine deletes it. Forks made with `twin fork` are kept until deleted.")
    ensemble_max_members: int = Field(default=1000, ge=1, description="Most members one ensemble may have.")
    ensemble_parallel: int = Field(default=4, ge=1, le=256, description="Members of an ensemble executed at once.")
    udf_timeout: timedelta = Field(default=timedelta(seconds=60), description="Time limit of one run_udf call.")
    udf_memory_bytes: int = Field(default=2 * 1024 * MiB, ge=0, description="Memory of a UDF's sandbox: the "
                                  "address-space limit of each of its processes and what they hold together, "
                                  "forks and threads included (0: none).")
    lake_daemons: bool = Field(default=False, description="Run the lake's judge, conveyor and reaper loops "
                                                          "inside the server (`twin serve` turns them on).")
    lake_upload_threads: int = Field(default=8, ge=1, le=1024, description="Uploads streamed into the lake at "
                                     "once (threads of their own: they wait on their senders); more wait in turn.")
    lake_max_upload_bytes: int = Field(default=1024**4, gt=0, description="Largest single lake upload.")
    lake_transfer_attempts: int = Field(default=5, ge=1, description="Tries before a transfer fails for good.")
    lake_transfer_backoff: timedelta = Field(default=timedelta(seconds=10),
                                             description="Wait before the first retry; doubles per attempt.")
    lake_tombstone_grace: timedelta = Field(default=timedelta(minutes=10),
                                            description="How long an unneeded replica is kept before deletion.")
    lake_stale_after: timedelta = Field(default=timedelta(minutes=2),
                                        description="A writer silent this long is dead: its work is redone.")
    lake_stuck_retry: timedelta = Field(default=timedelta(minutes=5),
                                        description="How often the judge retries a STUCK rule.")
    lake_import_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Hosts STAC imports may read from (`stac.example.org`, `*.example.org`; "
        "comma-separated in the environment); empty: imports are refused. Loopback and private addresses only "
        "when listed as an address or network (`127.0.0.1`, `10.0.0.0/8`).")
    lake_meta_max_depth: int = Field(default=32, ge=1, le=200, description="Deepest nesting of a DID's `meta` "
                                     "and `geometry` (and of imported STAC item properties); deeper is a 422.")
    lake_meta_max_bytes: int = Field(default=64 * 1024, ge=1024, description="Largest `meta` or `geometry` of a "
                                     "DID as serialised JSON; larger is a 422.")
    lake_file_roots: Annotated[list[Path], NoDecode] = Field(
        default_factory=list, description="Folders `file` lake endpoints may live under besides <data_dir>/lake "
        "(comma-separated in the environment). The rest of the data dir is never allowed.")
    # -- workers: where code the engine did not write runs (UDFs, app functions, processes)
    sandbox: Literal["auto", "bwrap", "none"] = Field(
        default="auto", description="Sandbox of app and user code: bwrap (required), none (unsandboxed: only on a "
        "single-user machine), auto (bwrap when it works; otherwise `twin serve` refuses to run such code and an "
        "embedded engine runs it unsandboxed with a warning).")
    worker_timeout: timedelta = Field(default=timedelta(seconds=300), description="Time limit of one call into "
                                      "app code (an app process, a slice of function calls); then its worker is "
                                      "stopped and replaced.")
    worker_memory_bytes: int = Field(default=8 * 1024 * MiB, ge=0, description="Memory of an app worker's "
                                     "sandbox: the address-space limit of each of its processes (none where it is "
                                     "given GPUs) and what they hold together (0: none).")
    worker_processes: int = Field(default=128, ge=0, description="Processes and threads one bubblewrap sandbox "
                                  "may hold together (0: no limit), in a pids cgroup of its own where the host "
                                  "allows one (else RLIMIT_NPROC, which the kernel does not apply to root).")
    worker_file_bytes: int = Field(default=4 * 1024 * MiB, ge=0, description="Largest file a sandboxed worker may "
                                   "write in its scratch or cache folder, both on disk (0: no limit).")
    worker_shm_bytes: int = Field(default=64 * MiB, ge=0, description="Size of a sandbox's /dev/shm, the one "
                                  "writable place of it held in memory (0: half the machine's memory).")
    sandbox_gpus: Literal["auto", "none"] = Field(
        default="auto", description="auto: the machine's NVIDIA device nodes (/dev/nvidia*) are passed into app "
        "workers (training and serving; never UDFs), whose address-space limit is then lifted (CUDA needs it); "
        "none: app code sees no GPU.")
    container_runtime: Literal["none", "auto", "podman", "apptainer"] = Field(
        default="none", description="What runs the workers of an app that names a container image (`image` in "
        "its manifest): podman or apptainer, auto (the first of them on the PATH), or none (such apps run in "
        "bubblewrap with their requires environment, as every other app does).")
    warm_workers: int = Field(default=4, ge=0, le=64, description="Idle workers kept warm per app version (each "
                              "function of a twin finds the one that served it last, with its warm model).")
    warm_images: int = Field(default=8, ge=0, le=256, description="Warm images kept (fork servers, one per app "
                             "version and kind of work, and one for UDFs, each with its imports loaded once): a "
                             "new worker is forked from its image in its own sandbox rather than started fresh; "
                             "the least recently used image goes first (0: every worker starts fresh).")
    envs_dir: Path | None = Field(default=None, description="Folder of app environments (one per lock hash); "
                                                            "default <data_dir>/envs.")
    envs_index_url: str | None = Field(default=None, description="Package index for app requirements (default: "
                                                                 "the installer's, PyPI); `none`: no index.")
    envs_find_links: str | None = Field(default=None, description="Folder or URL of wheels searched for app "
                                                                  "requirements besides the index.")
    envs_installer: Literal["auto", "uv", "pip"] = Field(
        default="auto", description="What installs app environments: uv, pip, or auto (uv when it is on the PATH "
                                    "or beside the engine's Python, pip otherwise). pip resolves the lock either way.")
    # -- CWL application packages: run by cwltool in a sandboxed worker
    cwl_runner_requires: str = Field(
        default="cwltool==3.3.20260925135507", description="The CWL runner's requirement: resolved and installed "
        "once into an environment of its own (as an app's `requires`), seen by the sandboxed workers that run CWL "
        "application packages; never installed into the engine's environment.")
    cwl_runner_site: Path | None = Field(
        default=None, description="A folder of Python packages holding cwltool for this engine's Python (a "
        "virtual environment's site-packages) used instead of building the environment of `cwl_runner_requires`.")
    # -- streams: real-time data from the physical twin
    stream_backend: str = Field(default="local", description="Stream log backend: local (segments) or nats.")
    streams_dir: Path | None = Field(default=None, description="Folder of the local stream log; "
                                                               "default <data_dir>/streams.")
    nats_url: str = Field(default="nats://127.0.0.1:4222", description="NATS server of the nats stream backend.")
    mqtt_url: str | None = Field(default=None, description="MQTT broker the engine subscribes to "
                                                           "(mqtt://host:1883); unset: no MQTT ingestion.")
    stream_segment_bytes: int = Field(default=64 * MiB, ge=4096, description="Size at which a segment closes.")
    stream_segment_entries: int = Field(default=1000, ge=1, description="Entries (JetStream messages) per "
                                                                      "closed segment of the nats backend.")
    stream_max_request_bytes: int = Field(default=64 * MiB, gt=0, description="Largest record batch upload.")
    stream_max_lag: int = Field(default=1_000_000, ge=1, description="Records consumers may fall behind "
                                                                     "before ingestion answers 429.")
    run_functions: bool = Field(default=True, description="Run functions on arrival in this process (one "
                                                          "process per shared stream log should).")
    function_workers: int = Field(default=4, ge=1, le=256, description="Functions running at once.")
    function_retries: int = Field(default=3, ge=0, le=100, description="Retries before a dead letter.")
    function_backoff: float = Field(default=0.5, gt=0, description="First retry delay (s), doubled each time.")
    function_effect_max_bytes: int = Field(default=MiB, ge=0, description="The most one effect of a function "
                                           "call may take (a state update, an event, a workflow request or a "
                                           "published record, as its worker packs it); a call with a larger "
                                           "one fails, and is dead-lettered naming this limit (0: no limit).")
    function_pause_after: int = Field(default=10, ge=0, le=1_000_000, description=(
        "Batches of a function dead-lettered in a row after which it is paused until resumed (0: never); "
        "a deterministic bug then stops after a few records instead of dead-lettering the whole stream."))
    # -- workflows on Slurm (executor slurm: Dask workers as batch jobs through dask-jobqueue)
    slurm_queue: str | None = Field(default=None, description="Slurm partition of the worker jobs.")
    slurm_account: str | None = Field(default=None, description="Slurm account charged for the worker jobs.")
    slurm_cores: int = Field(default=1, ge=1, description="Cores per worker job.")
    slurm_memory: str = Field(default="4GiB", description="Memory per worker job (e.g. 16GiB).")
    slurm_walltime: str = Field(default="01:00:00", description="Time limit of a worker job (HH:MM:SS).")
    slurm_jobs: int = Field(default=1, ge=0, description="Worker jobs submitted when the engine starts.")
    # -- openEO OpenID Connect: external issuers whose tokens the engine accepts
    oidc_providers: list[OidcProvider] = Field(default_factory=list, description="OIDC providers whose tokens "
                                               "the engine accepts (listed at /credentials/oidc); empty: none.")
    openeo_public_collections: bool = Field(default=True, description="Serve the openEO collection listing and "
                                            "metadata without a token, as openEO allows; false: require one.")
    # -- where stream history and workflow results land in the lake
    lake_endpoint: str | None = Field(default=None, description="Lake endpoint that keeps compacted stream "
                                                                "history and workflow results; unset: kept locally.")

    # -- ml: training, registry, retraining
    mlflow_uri: str | None = Field(default=None, description="MLflow tracking server (http://host:5000); default "
                                                            "embedded: sqlite:///<data_dir>/mlflow.db.")
    ml_workers: int = Field(default=1, ge=1, le=64, description="Training runs at once in this process.")
    ml_warm_models: int = Field(default=8, ge=1, le=1024, description="Model versions whose files are kept in "
                                "memory for the workers that serve them, and that one serving worker keeps "
                                "built (least recently used out first).")
    training_timeout: timedelta = Field(default=timedelta(hours=6), description="Time limit of one training run "
                                        "(tuning included) in its app worker; then the worker is stopped and "
                                        "the run fails.")
    training_memory_bytes: int = Field(default=16 * 1024 * MiB, ge=0, description="Memory of a training run's "
                                       "worker: the address-space limit of each of its processes (none where it is "
                                       "given GPUs) and what its processes, its ranks included, hold together (0: "
                                       "none).")
    # Subscriptions: people told when a twin's condition changes (docs/subscriptions.md)
    portal_url: str | None = Field(default=None, description="Address people reach the portal at (e.g. "
                                   "https://twins.example.org), for the links messages carry; default: "
                                   "http://host:port of `twin serve`.")
    smtp_host: str | None = Field(default=None, description="SMTP server that sends subscription e-mail; unset: "
                                  "e-mail subscriptions are refused.")
    smtp_port: int = Field(default=587, ge=1, le=65535, description="Port of the SMTP server.")
    smtp_security: Literal["starttls", "tls", "none"] = Field(
        default="starttls", description="starttls (upgrade a plain connection), tls (implicit TLS, usually port "
                                        "465) or none (a relay on a trusted network, tests).")
    smtp_from: str = Field(default="twinengine@localhost", description="From address of subscription e-mail.")
    smtp_username: str | None = Field(default=None, description="SMTP login, if the server needs one.")
    smtp_password: str | None = Field(default=None, description="SMTP password of `smtp_username`.")
    smtp_timeout: timedelta = Field(default=timedelta(seconds=30), description="Time limit of one SMTP exchange.")
    subscriptions_max_per_user: int = Field(default=100, ge=0, description="Most subscriptions one identity may "
                                            "hold; one more is refused (409).")
    subscription_attempts: int = Field(default=6, ge=1, le=100, description="Tries to deliver a message before "
                                       "it is given up (failed).")
    subscription_backoff: timedelta = Field(default=timedelta(seconds=30), description="Wait before the second "
                                            "try of a delivery, doubled for each later one.")
    subscription_poll: timedelta = Field(default=timedelta(seconds=2), description="How often the subscription "
                                         "loop looks for state written by other processes, stale data and due "
                                         "deliveries.")
    subscription_senders: int = Field(default=32, ge=1, le=256, description="Messages the subscription loop sends "
                                      "at once (each a thread while it waits on its receiver).")
    subscription_sends_per_owner: int = Field(default=4, ge=1, le=256, description="Messages of one subscriber "
                                              "sent at once: slow receivers of one person hold at most these "
                                              "senders, never another person's messages.")
    subscription_sends_per_host: int = Field(default=4, ge=1, le=256, description="Messages sent at once to one "
                                             "host (a webhook's host; the SMTP server for e-mail); one subscriber's "
                                             "to one host at most half of these (rounded up).")
    subscription_webhook_timeout: timedelta = Field(
        default=timedelta(seconds=15), ge=timedelta(seconds=1), le=timedelta(seconds=60),
        description="Longest one webhook try may take from connecting to the answer's headers, however slowly "
        "the receiver answers; then the try fails and is retried.")
    subscription_webhook_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Hosts webhooks may reach (comma-separated in the environment); empty: "
        "any host with public addresses. Loopback and private addresses only when listed as an address or a "
        "network (127.0.0.1, 10.0.0.0/8), as in lake_import_hosts.")
    # -- the data space (docs/dataspaces.md): this engine as a Dataspace Protocol provider and consumer
    dataspace_url: str | None = Field(
        default=None, description="Public URL of this engine in the data space (scheme, host, port); its "
        "participant id is the did:web of it. Default http://<host>:<port> of `twin serve`.")
    dataspace_peer_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Hosts of other participants the engine may reach (their DID documents, "
        "catalogs, callbacks, data addresses; comma-separated in the environment); empty: any host with public "
        "addresses. Loopback and private addresses only when listed as an address or a network, as in "
        "subscription_webhook_hosts.")
    dataspace_token_ttl: timedelta = Field(
        default=timedelta(minutes=10), ge=timedelta(seconds=5), le=timedelta(days=1),
        description="Lifetime of the token a pull transfer's data address carries; a new one comes with each "
        "start message the provider sends (a transfer the provider resumes gets a fresh one).")
    dataspace_message_timeout: timedelta = Field(
        default=timedelta(seconds=15), ge=timedelta(seconds=1), le=timedelta(minutes=5),
        description="Longest one protocol message to another participant may take; then it is retried.")
    dataspace_attempts: int = Field(default=6, ge=1, le=100, description="Tries to deliver a protocol message "
                                    "(1 s apart, doubling) before the process is terminated on this side.")
    dataspace_claims_provider: str | None = Field(
        default=None, description="Id of an oidc_providers entry, the data space's shared identity provider (a "
        "federation's Keycloak, EGI Check-in): what its token for another participant says (organisation, groups "
        "by the entry's group_rules) joins what this engine's register records for it, when policies judge it. "
        "Unset: the register alone.")
    dataspace_claims_audience: str | None = Field(
        default=None, description="The audience (`aud`) a participant's credential from dataspace_claims_provider "
        "carries: one of its own, not the entry's `audience`, so that a credential a provider receives is no "
        "bearer for any engine's API (required with dataspace_claims_provider).")
    dataspace_claims_max_age: timedelta = Field(
        default=timedelta(days=1), ge=timedelta(seconds=1), le=timedelta(days=30),
        description="How long what the shared identity provider said about a participant counts after the last "
        "message that carried it (a steward's later step, a transfer days after the agreement).")
    dataspace_credential_issuer: str | None = Field(
        default=None, description="The shared identity provider this engine gets its own credential from (its "
        "issuer URL; OAuth client credentials with dataspace_credential_client_id and _secret): carried in every "
        "protocol message, so that providers trusting that issuer know what it says about this engine.")
    dataspace_credential_client_id: str | None = Field(
        default=None, description="This engine's client at dataspace_credential_issuer.")
    dataspace_credential_client_secret: str | None = Field(
        default=None, description="The secret of dataspace_credential_client_id.")
    dataspace_credential_resource: str | None = Field(
        default=None, description="The resource indicator (RFC 8707) this engine asks its credential for: the data "
        "space's audience at providers that take one (oidc-provider, Okta); unset where the identity provider sets "
        "the audience by the client's scopes (Keycloak's audience mapper).")
    dataspace_live_interval: timedelta = Field(
        default=timedelta(seconds=5), ge=timedelta(milliseconds=100), le=timedelta(hours=1),
        description="How often the provider pushes what a live stream offer's stream received since its last "
        "push, while the transfer runs (HttpData-PUSH).")

    @field_validator("subscription_webhook_hosts", "dataspace_peer_hosts", mode="before")
    @classmethod
    def _webhook_hosts(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            value = json.loads(text) if text.startswith("[") else [p.strip() for p in text.split(",") if p.strip()]
        return [str(host).lower().rstrip(".") for host in value] if isinstance(value, list) else value

    @field_validator("*", mode="before")
    @classmethod
    def _durations(cls, value: Any, info: ValidationInfo) -> Any:
        """Duration settings take seconds (``90``), ``30d``/``12h``/``15m``/``45s`` or ISO 8601 (``PT30S``)."""
        if info.field_name is None or cls.model_fields[info.field_name].annotation is not timedelta:
            return value
        return parse_setting_duration(value, info.field_name)

    @field_validator("lake_import_hosts", "lake_file_roots", mode="before")
    @classmethod
    def _comma_list(cls, value: Any) -> Any:
        """List settings read from the environment are comma-separated (a JSON list works too)."""
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    @field_validator("lake_import_hosts", mode="after")
    @classmethod
    def _hosts(cls, value: list[str]) -> list[str]:
        return [host.lower().rstrip(".") for host in value]

    @field_validator("data_dir", mode="after")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @field_validator("stream_backend", mode="after")
    @classmethod
    def _shared_stream_log(cls, value: str, info: ValidationInfo) -> str:
        processes = info.data.get("serve_processes", 1)
        if processes > 1 and value == "local":
            raise ValueError(f"the local stream log has one writer per data dir, and serve_processes is {processes}: "
                             "set stream_backend to nats (a log every process can share), or serve one process")
        return value

    @field_validator("dataspace_credential_issuer", mode="after")
    @classmethod
    def _credential_issuer(cls, value: str | None) -> str | None:
        return None if value is None else web_url(value)

    @model_validator(mode="after")
    def _dataspace_identity_provider(self) -> Settings:
        if self.dataspace_claims_provider is not None:
            entry = next((p for p in self.oidc_providers if p.id == self.dataspace_claims_provider), None)
            if entry is None:
                raise ValueError(f"dataspace_claims_provider {self.dataspace_claims_provider!r} names no entry of "
                                 "oidc_providers")
            if entry.audience is None or self.dataspace_claims_audience in (None, entry.audience):
                raise ValueError("dataspace_claims_provider needs dataspace_claims_audience, an audience of the "
                                 f"data space's own beside the audience of oidc_providers entry {entry.id!r} (set "
                                 "both): a credential carrying the API's audience would be a bearer for the API of "
                                 "every provider it is shown to")
        parts = (self.dataspace_credential_issuer, self.dataspace_credential_client_id,
                 self.dataspace_credential_client_secret)
        if any(parts) and not all(parts):
            raise ValueError("dataspace_credential_issuer, dataspace_credential_client_id and "
                             "dataspace_credential_client_secret go together: set all three or none")
        return self

    @model_validator(mode="after")
    def _store_shared_by_hosts(self) -> Settings:
        if self.engines_share_store:
            if not (self.database_url or "").startswith("postgresql"):
                raise ValueError("engines_share_store needs a PostgreSQL database_url: engines on several hosts "
                                 "elect their leader through the store they share")
            if self.stream_backend == "local":
                raise ValueError("engines_share_store needs stream_backend nats: the local stream log lives in "
                                 "one data dir, which engines on other hosts cannot reach")
        return self

    @property
    def db_url(self) -> str:
        """The effective database URL."""
        return self.database_url or f"sqlite:///{self.data_dir / 'twin.db'}"

    @property
    def lake_file_root_paths(self) -> list[Path]:
        """Where `file` endpoints may live, resolved: the configured roots and <data_dir>/lake."""
        roots = [p.expanduser().resolve() for p in self.lake_file_roots]
        return [*roots, *([] if self.data_dir / "lake" in roots else [self.data_dir / "lake"])]

    @property
    def envs_root(self) -> Path:
        return self.envs_dir or self.data_dir / "envs"

    @property
    def mlflow_tracking_uri(self) -> str:
        return self.mlflow_uri or f"sqlite:///{self.data_dir / 'mlflow.db'}"

    @property
    def is_sqlite(self) -> bool:
        return self.db_url.startswith("sqlite")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        init_values: dict[str, Any] = init_settings()
        data_dir = init_values.get("data_dir") or env_settings().get("data_dir") or default_data_dir()
        toml_file = Path(data_dir).expanduser() / "twin.toml"
        return (init_settings, env_settings, _DataDirToml(settings_cls, toml_file))


class _DataDirToml(TomlConfigSettingsSource):
    """``twin.toml`` may set anything but the data dir it lives in."""

    def __call__(self) -> dict[str, Any]:
        values = super().__call__()
        values.pop("data_dir", None)
        return values
