"""The ``twinapp.yaml`` manifest of a DT application, as a pydantic model with a published JSON Schema.

Sections later capabilities use (models, workflows, triggers, outputs) accept extra keys, which are
stored unchanged; the top level and the stream/state declarations are strict so typos are caught.
"""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal

import semver
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from twinengine.catalog.assimilation_spec import AssimilationSpec
from twinengine.catalog.calibration_spec import CalibrationSpec
from twinengine.catalog.images import IMAGE_PATTERN, check_image
from twinengine.catalog.views import View
from twinengine.quality.spec import Check, Duration, FlatlineCheck, QualityPolicy, StateCheck, StateGapCheck
from twinengine.quality.uncertainty import UncertaintyForm
from twinengine.units import MAX_DATUM_LENGTH, UnitError, check_unit, split_datum

__all__ = [
    "APP_NAME_PATTERN",
    "MAX_ARRAY_LENGTH",
    "MAX_JOINED_STREAMS",
    "UNCERTAINTY_FIELD",
    "Author",
    "Cardinality",
    "FieldType",
    "FunctionJoin",
    "FunctionSpec",
    "FunctionTrigger",
    "Manifest",
    "ModelSpec",
    "OutputSpec",
    "RelationshipSpec",
    "StateProperty",
    "StateType",
    "Stream",
    "StreamField",
    "TriggerSpec",
    "View",
    "WorkflowSpec",
    "parse_app_ref",
]

APP_NAME_PATTERN = r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$"
IDENT_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"


def _unit(value: str) -> str:
    try:
        return check_unit(value)
    except UnitError as exc:
        raise ValueError(str(exc)) from None


def _semver(value: str) -> str:
    try:
        semver.Version.parse(value)
    except (ValueError, TypeError):
        raise ValueError(f"{value!r} is not a semantic version (MAJOR.MINOR.PATCH, e.g. 1.0.0)") from None
    return value


Unit = Annotated[str, AfterValidator(_unit)]
UNIT_DESCRIPTION = ("Unit of the values in CF/UDUNITS syntax; a height written 'm asl' (or 'm a.s.l.', 'm AOD') "
                    "is read as unit 'm' with that datum.")
DATUM_DESCRIPTION = ("Vertical datum or reference the values are measured from (e.g. EGM2008, NAVD88, asl), free "
                     "text shown beside the unit; needs a unit.")
Datum = Annotated[str, Field(min_length=1, max_length=MAX_DATUM_LENGTH)]


def _datum_from_unit(data: Any) -> Any:
    """Read ``unit: m asl`` as ``unit: m`` with ``datum: asl``; a datum given twice is refused."""
    if not isinstance(data, dict) or not isinstance(data.get("unit"), str):
        return data
    unit, datum = split_datum(data["unit"])
    if datum is None:
        return data
    if data.get("datum") is not None:
        raise ValueError(f"unit {data['unit']!r} names the datum {datum!r} and datum names {data['datum']!r}: "
                         "give the datum once, under datum")
    return {**data, "unit": unit, "datum": datum}
Ident = Annotated[str, Field(pattern=IDENT_PATTERN, max_length=64)]
StartSources = Annotated[list[Ident], Field(min_length=1, max_length=8)]  # state properties a parameter may start from
SemVer = Annotated[str, Field(max_length=64), AfterValidator(_semver)]
RelPath = Annotated[str, Field(min_length=1, max_length=255, pattern=r"^[^/\\\x00][^\\\x00]*$")]


MAX_STATE_FLATLINE = 1000  # a state check reads at most this many earlier values of its property

# Forms of uncertainty a stream field or state property declares: one name or a list of them.
UncertaintyForms = Annotated[list[UncertaintyForm], BeforeValidator(lambda v: [v] if isinstance(v, str) else v)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class Author(_Strict):
    name: str = Field(min_length=1, max_length=200)
    email: str | None = Field(default=None, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    affiliation: str | None = None
    orcid: str | None = Field(default=None, pattern=r"^\d{4}-\d{4}-\d{4}-\d{3}[\dX]$")


class FieldType(StrEnum):
    TIMESTAMP = "timestamp"
    FLOAT = "float"
    INTEGER = "integer"
    STRING = "string"
    BOOLEAN = "boolean"
    ARRAY = "array"


UNCERTAINTY_FIELD = "_uncertainty"  # the column a stream's records keep their fields' uncertainty in
MAX_ARRAY_LENGTH = 1 << 20  # samples in one array value (8 MiB of float64): a record stays one log entry


class StreamField(_Strict):
    """One field of a stream's records. ``type: array`` holds a run of numbers in one record (a window of
    samples of a fast channel) with ``items`` float or integer and, optionally, a fixed ``length``. A float or
    integer field may declare the ``uncertainty`` forms its values can carry (std, quantiles, members)."""

    type: FieldType
    unit: Unit | None = Field(default=None, description=UNIT_DESCRIPTION, examples=["m3 s-1"])
    datum: Datum | None = Field(default=None, description=DATUM_DESCRIPTION, examples=["EGM2008"])
    description: str | None = None
    nullable: bool = False
    items: Literal["float", "integer"] | None = Field(
        default=None, description="array fields: the type of each sample (float or integer).")
    length: int | None = Field(default=None, ge=1, le=MAX_ARRAY_LENGTH,
                               description=f"array fields: the number of samples of every value (default: any, "
                                           f"up to {MAX_ARRAY_LENGTH}).")
    uncertainty: UncertaintyForms = Field(
        default_factory=list, max_length=3,
        description="Forms of uncertainty a value may carry: std, quantiles, members (one, or a list).")

    _datum_from_unit = model_validator(mode="before")(_datum_from_unit)

    @model_validator(mode="after")
    def _unit_only_on_numbers(self) -> StreamField:
        numbers = (FieldType.FLOAT, FieldType.INTEGER, FieldType.ARRAY)
        if self.unit is not None and self.type not in numbers:
            raise ValueError(f"a {self.type.value} field cannot have a unit")
        if self.datum is not None and self.unit is None:
            raise ValueError("a datum qualifies a unit: give the unit too")
        if self.type is FieldType.ARRAY:
            if self.items is None:
                raise ValueError("an array field needs items: float or integer")
            if self.nullable:
                raise ValueError("an array field cannot be nullable (mark missing float samples NaN)")
        elif self.items is not None or self.length is not None:
            raise ValueError(f"items and length apply to array fields, not to a {self.type.value} field")
        if self.uncertainty and self.type not in (FieldType.FLOAT, FieldType.INTEGER):
            raise ValueError(f"uncertainty applies to float and integer fields, not to a {self.type.value} field")
        if len(set(self.uncertainty)) != len(self.uncertainty):
            raise ValueError("uncertainty names a form twice")
        return self


class Stream(_Strict):
    """Records the physical twin sends: typed fields, one of them the event time."""

    description: str | None = None
    time_field: Ident = Field(default="time", description="The field holding each record's event time.")
    key: Ident | None = Field(default=None, description="Field telling sources apart, e.g. a station id.")
    fields: dict[Ident, StreamField] = Field(min_length=1, description="The fields of each record, by name.")
    quality: list[Check] = Field(default_factory=list, max_length=64,
                                 description="Input quality checks; every record is flagged good, suspect or bad "
                                             "(see docs/quality.md).")

    @model_validator(mode="after")
    def _fields_exist(self) -> Stream:
        time = self.fields.get(self.time_field)
        if time is None:
            raise ValueError(f"time_field {self.time_field!r} is not one of the fields")
        if time.type is not FieldType.TIMESTAMP:
            raise ValueError(f"time_field {self.time_field!r} must have type timestamp")
        if self.key is not None and self.key not in self.fields:
            raise ValueError(f"key {self.key!r} is not one of the fields")
        if self.key is not None and self.fields[self.key].type is FieldType.ARRAY:
            raise ValueError(f"key {self.key!r} is an array field; a key tells sources apart by one value")
        if UNCERTAINTY_FIELD in self.fields and any(f.uncertainty for f in self.fields.values()):
            raise ValueError(f"{UNCERTAINTY_FIELD!r} is where records keep their fields' uncertainty; rename that "
                             "field")
        return self


class StateType(StrEnum):
    NUMBER = "number"
    INTEGER = "integer"
    STRING = "string"
    BOOLEAN = "boolean"
    OBJECT = "object"
    ARRAY = "array"


class StateProperty(_Strict):
    """One property of a twin's state: reported by the physical twin and/or desired by users."""

    type: StateType = Field(description="The JSON type of the property's values.")
    unit: Unit | None = Field(default=None, description=UNIT_DESCRIPTION, examples=["m"])
    datum: Datum | None = Field(default=None, description=DATUM_DESCRIPTION, examples=["EGM2008"])
    title: str | None = Field(
        default=None, min_length=1, max_length=80, examples=["the storage the gauge's level implies"],
        description="What people call it, in a few words: said where a sentence names the property (where a "
                    "run started from), in place of its name.")
    description: str | None = None
    key: Ident | None = Field(
        default=None, examples=["well"],
        description="What the property is keyed by (a well, a sensor, a pump): it then holds one value per key, "
                    "written and read as name[key] (e.g. head[ow3]); keys are letters, digits and _ . : -.")
    desired_only: bool = Field(
        default=False,
        description="Only users set it, as desired state (a setting, such as an alert threshold): the twin never "
                    "reports it, so a reported write of it is refused and no subscription watches it (a condition "
                    "on it could never fire).")
    internal: bool = Field(
        default=False,
        description="The app's own bookkeeping (a filter's memory, a counter its functions carry from call to "
                    "call): kept, versioned and served by the API like any property, but left out of the portal's "
                    "state table, plots, comparisons and subscription form, which name it once as not shown.")
    minimum: float | None = Field(default=None, description="Smallest value a write may have (numbers).")
    maximum: float | None = Field(default=None, description="Largest value a write may have (numbers).")
    enum: list[Any] | None = Field(default=None, min_length=1, description="The only values a write may have.")
    uncertainty: UncertaintyForms = Field(
        default_factory=list, max_length=3,
        description="Forms of uncertainty a value may carry: std, quantiles, members (one, or a list).")
    quality: list[StateCheck] = Field(
        default_factory=list, max_length=16,
        description="Checks a reported value is judged by against the property's own history (range, spike, "
                    "flatline, gap): a value that fails one is kept, flagged suspect or bad with the check's "
                    "name; with a gap check, reads also say when the property is stale.")

    @property
    def gap(self) -> StateGapCheck | None:
        """The property's gap check, if it declares one."""
        return next((c for c in self.quality if isinstance(c, StateGapCheck)), None)

    _datum_from_unit = model_validator(mode="before")(_datum_from_unit)

    @model_validator(mode="after")
    def _consistent(self) -> StateProperty:
        numeric = self.type in (StateType.NUMBER, StateType.INTEGER)
        if not numeric and any(not isinstance(c, StateGapCheck) for c in self.quality):
            raise ValueError("range, spike and flatline checks apply to number and integer properties only "
                             "(a gap check applies to any property)")
        if sum(isinstance(c, StateGapCheck) for c in self.quality) > 1:
            raise ValueError("a state property has at most one gap check")
        if any(isinstance(c, FlatlineCheck) and (c.records or 0) > MAX_STATE_FLATLINE for c in self.quality):
            raise ValueError(f"a state property's flatline check counts at most {MAX_STATE_FLATLINE} records")
        if self.uncertainty and not numeric:
            raise ValueError("uncertainty applies to number and integer properties only")
        if len(set(self.uncertainty)) != len(self.uncertainty):
            raise ValueError("uncertainty names a form twice")
        if self.unit is not None and not numeric:
            raise ValueError(f"a {self.type.value} property cannot have a unit")
        if self.datum is not None and self.unit is None:
            raise ValueError("a datum qualifies a unit: give the unit too")
        if (self.minimum is not None or self.maximum is not None) and not numeric:
            raise ValueError("minimum/maximum apply to number and integer properties only")
        if self.minimum is not None and self.maximum is not None and self.minimum > self.maximum:
            raise ValueError(f"minimum {self.minimum} is greater than maximum {self.maximum}")
        if self.desired_only and self.internal:
            raise ValueError("an internal property is the app's own bookkeeping, and a desired_only one is set by "
                             "users: it cannot be both")
        if self.desired_only and self.quality:
            raise ValueError("quality checks judge reported values, and a desired_only property is never reported")
        return self


class ModelSpec(_Open):
    """A model the app trains and serves; the AI lifecycle reads the extra keys."""

    description: str | None = None
    framework: str = Field(default="pytorch", max_length=32)
    entrypoint: str = Field(pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$",
                            description="'module:function' inside the app package that builds the model.")
    stream: str | None = Field(default=None, max_length=64,
                               description="The stream its training records come from when a run names none "
                                           "(default: the app's first stream).")


class WorkflowSpec(_Open):
    """A named openEO process graph shipped in the app folder."""

    description: str | None = None
    process_graph: RelPath = Field(description="Path of the process-graph JSON file, relative to the app.")
    initial_state: dict[Ident, Ident | StartSources] = Field(
        default_factory=dict, max_length=64,
        examples=[{"storage_mm": "storage"}, {"storage_mm": ["storage", "storage_from_level"]}],
        description="Where a run of the twin's workflow starts: graph parameter -> state property, or a list of "
                    "them (an analysis, then a direct estimate). Each run (and each member of an ensemble) takes "
                    "the twin's current reported value of the property (its newest value not flagged bad); of a "
                    "list, the newest value among them, the one listed first at the same time. A parameter the "
                    "run's request gives wins, and `start: {state: false}` takes none; `start: {revision}` or "
                    "`{at}` starts from the state as it was (a hindcast). The run records which revision and "
                    "property it started from.")

    def start_sources(self) -> dict[str, tuple[str, ...]]:
        """``initial_state`` with each parameter's properties as a tuple (one, or the list given)."""
        return {parameter: (props,) if isinstance(props, str) else tuple(props)
                for parameter, props in self.initial_state.items()}


class TriggerSpec(_Open):
    """What starts a workflow: a schedule, a webhook, data arriving, a stream window, drift."""

    name: Ident
    kind: Literal["cron", "webhook", "dataset", "stream_window", "drift", "manual"]
    workflow: Ident


class FunctionTrigger(_Strict):
    """When a function on arrival runs: every record, every ``count`` records, every ``seconds`` of
    arrivals, or for records whose ``field`` compares (``op``) true with ``value``."""

    kind: Literal["record", "count", "time", "condition"] = "record"
    count: int | None = Field(default=None, ge=1, le=1_000_000)
    seconds: float | None = Field(default=None, gt=0, le=86_400)
    field: Ident | None = None
    op: Literal["gt", "ge", "lt", "le", "eq", "ne"] | None = None
    value: float | int | str | bool | None = None

    @model_validator(mode="after")
    def _parameters_of_kind(self) -> FunctionTrigger:
        needs = {"record": set(), "count": {"count"}, "time": {"seconds"}, "condition": {"field", "op", "value"}}
        wanted = needs[self.kind]
        for name in ("count", "seconds", "field", "op", "value"):
            given = getattr(self, name) is not None
            if name in wanted and not given:
                raise ValueError(f"a {self.kind} trigger needs {name!r}")
            if given and name not in wanted:
                raise ValueError(f"{name!r} does not apply to a {self.kind} trigger")
        return self


MAX_JOINED_STREAMS = 15  # streams joined to the one a function runs on (16 inputs in all)


class FunctionJoin(_Strict):
    """Other streams of the twin whose records join each record of the function's ``stream`` on event time:
    the partner within ``tolerance`` of the record's time, waited for at most ``wait`` after the record
    arrived; a record whose partners did not come by then is called with what arrived (``incomplete: call``,
    the absent streams listed in ``_missing``) or left out (``skip``). See docs/streams.md#joined-streams."""

    streams: list[Ident] = Field(min_length=1, max_length=MAX_JOINED_STREAMS,
                                 description="Streams joined to the function's stream, each record's partner a "
                                             "key of the joined record.")
    tolerance: Duration = Field(default=timedelta(0),
                                description="Largest difference of event times for two records to join.")
    wait: Duration = Field(default=timedelta(seconds=10),
                           description="How long after a record arrived its late partners are waited for.")
    incomplete: Literal["call", "skip"] = Field(
        default="call", description="A record whose partners never came: call with what arrived, or leave out.")

    @field_validator("tolerance", "wait")
    @classmethod
    def _bounded(cls, value: timedelta) -> timedelta:
        if value < timedelta(0) or value > timedelta(hours=1):
            raise ValueError("must be between 0 and 1h")
        return value


class FunctionSpec(_Open):
    """A Python function run on arrival of a stream's records (kept warm by the engine's workers); with
    ``join``, on each record of ``stream`` joined with its partners from other streams."""

    description: str | None = None
    entrypoint: str = Field(pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$",
                            description="'module:function' inside the app package, called as fn(ctx, records).")
    stream: Ident
    trigger: FunctionTrigger = Field(default_factory=FunctionTrigger)
    model: Ident | None = Field(default=None, description="A model under models, loaded once per worker.")
    retries: int | None = Field(default=None, ge=0, le=100, description="Default: the engine's setting.")
    quality: QualityPolicy = Field(default_factory=QualityPolicy,
                                   description="Records to leave out by their quality flag, e.g. {exclude: [bad]}.")
    publishes: list[Ident] = Field(default_factory=list, max_length=64,
                                   description="Streams of the twin the function may append records to with "
                                               "ctx.publish (never its own stream, and no cycle among functions).")
    join: FunctionJoin | None = Field(default=None, description="Streams joined to ``stream`` on event time.")

    @property
    def inputs(self) -> list[str]:
        """Every stream the function reads: its own, then the joined ones."""
        return [self.stream, *(self.join.streams if self.join else [])]


class OutputSpec(_Open):
    description: str | None = None
    kind: Literal["dataset", "timeseries", "state", "report", "model"] = "dataset"
    unit: Unit | None = None


class Cardinality(StrEnum):
    """How many links of a type a twin may have: ``many_to_one`` lets a source link to one target at most
    (a reach flows into one reach), ``one_to_many`` lets a target have one source at most (a channel
    belongs to one detector)."""

    ONE_TO_ONE = "one_to_one"
    ONE_TO_MANY = "one_to_many"
    MANY_TO_ONE = "many_to_one"
    MANY_TO_MANY = "many_to_many"


class RelationshipSpec(_Strict):
    """A type of link from this app's twins to twins of the ``targets`` apps (a reach ``flows_into`` a
    reach, a detector ``has_channel`` a channel). Links are checked against it when they are made."""

    description: str | None = Field(default=None, max_length=2000)
    targets: list[Annotated[str, Field(pattern=APP_NAME_PATTERN, max_length=64)]] = Field(
        min_length=1, max_length=32, description="Names of the apps whose twins a link of this type may reach.")
    cardinality: Cardinality = Cardinality.MANY_TO_MANY
    acyclic: bool = Field(default=False, description="Refuse a link that would close a cycle of this type.")


class Manifest(_Strict):
    """A DT application: what it needs, what it keeps, what it runs and what it produces."""

    manifest_version: Literal[1] = Field(default=1, description="The manifest format's version.")
    name: str = Field(pattern=APP_NAME_PATTERN, max_length=64, description="kebab-case, unique in the catalogue")
    version: SemVer = Field(description="Semantic version; name@version is immutable once published, unless it "
                                        "ends in -dev.", examples=["0.1.0"])
    title: str = Field(min_length=1, max_length=200, description="What the catalogue shows and searches.")
    description: str = Field(default="", max_length=20_000, description="What the catalogue shows and searches.")
    domain: str = Field(min_length=1, max_length=64, description="e.g. hydrology, climate, physics")
    keywords: list[str] = Field(default_factory=list, max_length=32, description="Words the catalogue searches.")
    authors: list[Author] = Field(min_length=1, description="Who wrote the app: at least one.")
    license: str = Field(pattern=r"^[A-Za-z0-9.+()-]+( (AND|OR|WITH) [A-Za-z0-9.+()-]+)*$", max_length=100,
                         description="SPDX licence expression")
    homepage: str | None = Field(default=None, pattern=r"^https?://", description="An http(s) address about the app.")
    package: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
                                description="Python package folder; default: the name with '-' as '_'.")
    requires: list[str] = Field(default_factory=list, examples=[["scipy==1.14.1"]],
                                description="pip requirement strings the package needs (pin them), installed into "
                                            "the app's own environment.")
    image: Annotated[str, AfterValidator(check_image)] | None = Field(
        default=None, max_length=512, json_schema_extra={"pattern": IMAGE_PATTERN},
        description="An OCI image the app's workers run in where the engine has a container runtime (HPC sites: "
                    "apptainer or podman); it must hold python and twinengine of the engine's version. Pin it by "
                    "digest (@sha256:...). Elsewhere the app runs with its requires.")
    parameters: dict[str, Any] = Field(
        default_factory=lambda: {"type": "object", "properties": {}},
        description="JSON Schema (2020-12) of the parameters a twin of this app is created with.",
    )
    streams: dict[Ident, Stream] = Field(default_factory=dict, description="Records the physical twin sends.")
    state: dict[Ident, StateProperty] = Field(default_factory=dict, description="The twin's properties.")
    models: dict[Ident, ModelSpec] = Field(default_factory=dict, description="Models the app trains and serves.")
    workflows: dict[Ident, WorkflowSpec] = Field(default_factory=dict, description="openEO process graphs.")
    triggers: list[TriggerSpec] = Field(default_factory=list, description="What starts the workflows.")
    functions: dict[Ident, FunctionSpec] = Field(default_factory=dict,
                                                 description="Functions run on arrival of stream records.")
    outputs: dict[Ident, OutputSpec] = Field(default_factory=dict, description="What the app produces.")
    views: dict[Ident, View] = Field(default_factory=dict, max_length=16,
                                     description="Dashboards of panels the portal shows as the twin's own pages.")
    relationships: dict[Ident, RelationshipSpec] = Field(
        default_factory=dict, max_length=64,
        description="Types of links from this app's twins to other twins (see docs/twins.md#relationships).")
    assimilation: AssimilationSpec | None = Field(
        default=None, description="What the twin's state is corrected from: state vector, model step, "
                                  "observations, filter (see docs/assimilation.md).")
    calibration: CalibrationSpec | None = Field(
        default=None, description="Which parameters may be fitted to the twin's observations, through which "
                                  "model, against which stream field (see docs/calibration.md).")

    @property
    def package_name(self) -> str:
        return self.package or self.name.replace("-", "_")

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    @field_validator("parameters")
    @classmethod
    def _json_schema(cls, value: dict[str, Any]) -> dict[str, Any]:
        from jsonschema import Draft202012Validator  # here: the API answers before it imports jsonschema
        from jsonschema.exceptions import SchemaError

        try:
            Draft202012Validator.check_schema(value)
        except SchemaError as exc:
            where = "/".join(str(p) for p in exc.absolute_path)
            raise ValueError(f"not a valid JSON Schema{' at ' + where if where else ''}: {exc.message}") from None
        if value.get("type", "object") != "object":
            raise ValueError("the parameters schema must describe an object (type: object)")
        return value


def parse_app_ref(ref: str) -> tuple[str, str | None]:
    """``river-reach@0.1.0`` → (name, version); ``river-reach`` → (name, None) meaning latest."""
    name, _, version = ref.partition("@")
    return name, version or None
