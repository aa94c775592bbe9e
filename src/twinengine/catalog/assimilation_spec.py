"""The ``assimilation:`` section of a manifest: what a twin's state can be corrected from, and how.

It names the state vector (numeric state properties), the model step that advances one member (an app
entrypoint), the observations (stream fields that observe the state, directly or through an operator, with
their error), the filter and its tuning, the ensemble size and the default seed. References to streams and
state properties are checked against the rest of the manifest in ``catalog.assimilation_checks``.
"""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from twinengine.quality.spec import Duration

__all__ = ["MAX_MEMBERS", "MAX_STATE_SIZE", "AssimilationSpec", "AutoRun", "Method", "ModelStep", "ObservationError",
           "ObservationSpec", "RunOn", "SpinUp", "Tuning"]

MAX_MEMBERS = 1000  # members of one ensemble: each is kept with every cycle record
MAX_STATE_SIZE = 4096  # variables of one state vector
MAX_OBSERVATIONS = 4096

ENTRYPOINT_PATTERN = r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$"
Entrypoint = Annotated[str, Field(pattern=ENTRYPOINT_PATTERN, max_length=200)]
Ident = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=64)]
# A state property, or one key of a keyed property: storage, x[12], head[ow3]
StateRef = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*(\[[A-Za-z0-9][A-Za-z0-9_.:-]{0,62}\])?$",
                                max_length=130)]
PositiveStd = Annotated[float, Field(gt=0, allow_inf_nan=False)]
NonNegativeStd = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Method(StrEnum):
    """The filters of ``twinengine.assimilation``, by the name a user picks."""

    ENKF = "enkf"  # stochastic EnKF with perturbed observations
    ETKF = "etkf"  # ensemble transform Kalman filter (square root)
    LETKF = "letkf"  # local ETKF: one analysis per variable with nearby observations
    PF = "pf"  # bootstrap particle filter
    THREE_DVAR = "3dvar"  # 3D-Var / optimal interpolation with a static background error


class ModelStep(_Strict):
    """The app's model advancing the members: ``fn(state, parameters, forcing, dt)`` returns the new state.

    ``state`` maps each state-vector entry to its value (or, with ``state_form: array``, is a 1-D numpy
    array in the state vector's order; with ``state_form: ensemble``, the whole ensemble as one (N, n) numpy
    array, a member per row, so a vectorised model steps every member in one call), ``parameters`` are the
    twin's, ``forcing`` the latest values of the named stream fields (rain), ``dt`` the step in seconds."""

    entrypoint: Entrypoint = Field(description="'module:function' in the app package, called as "
                                               "fn(state, parameters, forcing, dt) -> new state (a mapping; an "
                                               "array with state_form: array; an (N, n) array with state_form: "
                                               "ensemble).")
    state_form: Literal["mapping", "array", "ensemble"] = Field(
        default="mapping", description="How the step sees the members: one at a time as a mapping of state "
                                       "entry to value (mapping) or as a 1-D numpy array in the state "
                                       "vector's order (array), or all at once as an (N, n) numpy array, a "
                                       "member per row (ensemble: one call per step for the whole ensemble, "
                                       "for a model written with numpy along the last axis).")
    dt: Duration = Field(description="The model's time step (15min, PT1H or seconds); members are advanced in "
                                     "such steps from one observation time to the next.")
    stream: Ident | None = Field(default=None, description="The stream the forcing fields come from (default: "
                                                           "the first observation's stream).")
    forcing: dict[Ident, Ident] = Field(default_factory=dict, max_length=64,
                                        description="Name the step sees → field of the stream (rain: rain); the "
                                                    "latest value at or before each step is passed.")
    noise: NonNegativeStd | dict[StateRef, NonNegativeStd] = Field(
        default=0.0, description="Model error: std of Gaussian noise added to each member after each step, one "
                                 "for all variables or one per state-vector entry.")

    @field_validator("dt")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0) or value > timedelta(days=366):
            raise ValueError("must be positive and at most 366 days")
        return value


def _error_shorthand(value: Any) -> Any:
    """``error: 0.05`` (a constant std), ``error: record`` (each record's own std), ``error: pkg.mod:fn``."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return {"std": value}
    if value == "record":
        return {"record": True}
    if isinstance(value, str):
        return {"entrypoint": value}
    return value


class ObservationError(_Strict):
    """The observation's error standard deviation: a constant, each record's own (its declared ``std``
    uncertainty), or an app function ``fn(value, parameters) -> std``. Exactly one."""

    std: PositiveStd | None = Field(default=None, description="A constant standard deviation, in the field's unit.")
    record: bool = Field(default=False, description="The std each record carries for this field (the field "
                                                    "must declare uncertainty: std).")
    entrypoint: Entrypoint | None = Field(default=None, description="'module:function' called as "
                                                                    "fn(value, parameters) -> std.")

    @model_validator(mode="after")
    def _one(self) -> ObservationError:
        given = [name for name in ("std", "entrypoint") if getattr(self, name) is not None] + (
            ["record"] if self.record else [])
        if len(given) != 1:
            raise ValueError("give exactly one of: a std (error: 0.05), record (each record's own std), or an "
                             "entrypoint (error: pkg.module:function)" + (f"; got {', '.join(given)}" if given
                                                                          else ""))
        return self


class ObservationSpec(_Strict):
    """A stream field that observes the state: ``observes`` one state-vector entry directly (no code), or an
    ``operator`` ``fn(state, parameters) -> value`` (a rating curve from storage to level)."""

    stream: Ident | None = Field(default=None, description="The stream (default: the app's only stream).")
    field: Ident | None = Field(default=None, description="The field of its records (default: the "
                                                          "observation's name).")
    observes: StateRef | None = Field(default=None, description="The state-vector entry the field measures.")
    operator: Entrypoint | None = Field(default=None, description="'module:function' called as "
                                                                  "fn(state, parameters) -> the observed value.")
    error: Annotated[ObservationError, BeforeValidator(_error_shorthand)] = Field(
        description="The observation error: a std, 'record', or an entrypoint.")
    position: float | None = Field(default=None, allow_inf_nan=False,
                                   description="Coordinate of the observation for the LETKF's localisation "
                                               "(default: that of the entry it observes).")

    @model_validator(mode="after")
    def _how(self) -> ObservationSpec:
        if (self.observes is None) == (self.operator is None):
            raise ValueError("give either observes (a state-vector entry it measures) or operator (a function "
                             "of the state), not both or neither")
        return self


class SpinUp(_Strict):
    """A stronger inflation for a twin's first cycles: from a poor first guess the ensemble's spread collapses
    before its mean has found the truth (the filter then ignores its observations for good); a few cycles of
    more inflation let it converge, and the steady ``inflation`` takes over."""

    cycles: int = Field(ge=1, le=100_000, description="The twin's cycles 1 to this many use the spin-up inflation.")
    inflation: float = Field(ge=1.0, le=10.0, allow_inf_nan=False,
                             description="Multiplies the forecast anomalies during those cycles.")


class Tuning(_Strict):
    """Parameters of the filters; each applies to the methods named in its description."""

    inflation: float = Field(default=1.0, ge=1.0, le=10.0, allow_inf_nan=False,
                             description="enkf, etkf, letkf: multiplies the forecast anomalies (1.01-1.10 usual).")
    spin_up: SpinUp | None = Field(default=None, description="enkf, etkf, letkf: another inflation for the "
                                                             "twin's first cycles (cycles: 100, inflation: 1.1), "
                                                             "for a filter started from a poor first guess.")
    additive: NonNegativeStd = Field(default=0.0, description="enkf, etkf, letkf: std of noise added to the "
                                                              "forecast members before the analysis.")
    rotate: bool = Field(default=False, description="etkf: a random mean-preserving rotation of the members.")
    radius: float | None = Field(default=None, gt=0, allow_inf_nan=False,
                                 description="letkf: localisation half-width (Gaspari-Cohn c; weights vanish "
                                             "from 2c), in the units of coordinates.")
    period: float | None = Field(default=None, gt=0, allow_inf_nan=False,
                                 description="letkf: coordinates on a ring of this length (Lorenz-96: 40).")
    threshold: float = Field(default=0.5, ge=0.0, le=1.0,
                             description="pf: resample when the effective sample size is below threshold·N.")
    jitter: float = Field(default=1.0, ge=0.0, le=100.0, allow_inf_nan=False,
                          description="pf: scale of the Gaussian jitter after resampling (0: none).")
    background_std: PositiveStd | None = Field(
        default=None, description="3dvar: std of the static background error (B = std² I); default: the "
                                  "ensemble's spread.")


class RunOn(StrEnum):
    """When cycles run by themselves: on arrival of observations, or on a schedule."""

    ARRIVAL = "arrival"
    SCHEDULE = "schedule"


class AutoRun(_Strict):
    """Cycles the engine runs without a request: ``{on: arrival}`` runs the pending cycles once per batch of new
    records (``every``: at most once per that interval); ``{on: schedule, every: 1h}`` once per interval."""

    on: RunOn = Field(description="arrival (when new records reach the observed stream) or schedule.")
    every: Duration | None = Field(default=None, description="schedule: the interval; arrival: the least time "
                                                              "between two passes (default: none).")

    @model_validator(mode="after")
    def _every(self) -> AutoRun:
        if self.every is not None and not timedelta(seconds=1) <= self.every <= timedelta(days=366):
            raise ValueError("every must be between 1 s and 366 days")
        if self.on is RunOn.SCHEDULE and self.every is None:
            raise ValueError("a schedule needs every (e.g. every: 1h)")
        return self


class AssimilationSpec(_Strict):
    """What a twin's state can be corrected from: see docs/assimilation.md."""

    state: list[StateRef] = Field(min_length=1, max_length=MAX_STATE_SIZE,
                                  description="The state vector: numeric state properties (or keys of keyed "
                                              "ones, x[3]) the filter corrects.")
    coordinates: list[Annotated[float, Field(allow_inf_nan=False)]] | None = Field(
        default=None, description="letkf: one coordinate per state-vector entry (default: 0, 1, 2, ...).")
    spread: PositiveStd | dict[StateRef, PositiveStd] = Field(
        default=1.0, description="Std of the first ensemble around the twin's current state, one for all "
                                 "entries or one per entry (a value's own std, when it has one, wins).")
    first_guess: dict[StateRef, Annotated[list[Ident], Field(min_length=1, max_length=8)]] = Field(
        default_factory=dict, max_length=MAX_STATE_SIZE, examples=[{"storage": ["storage_from_level"]}],
        description="Properties an entry's first guess falls back on when the twin has no number of the "
                    "entry itself (a direct estimate the twin's functions write): the first listed that has "
                    "one, at its newest value. Without them, a twin whose entry was never reported cannot "
                    "start.")
    step: ModelStep = Field(description="The model step that advances the members.")
    observations: dict[Ident, ObservationSpec] = Field(min_length=1, max_length=MAX_OBSERVATIONS,
                                                       description="Stream fields that observe the state.")
    method: Method = Field(default=Method.ETKF, description="enkf, etkf, letkf, pf or 3dvar.")
    members: int = Field(default=20, ge=2, le=MAX_MEMBERS, description="Ensemble size (particles for pf).")
    seed: int | None = Field(default=None, ge=0, le=2**63 - 1,
                             description="Default seed of every twin of the app: the same seed gives the same "
                                         "analysis (default: each twin's own, derived from its name, so twins "
                                         "of one app draw different perturbations; kept with every cycle).")
    tuning: Tuning = Field(default_factory=Tuning, description="Inflation, localisation, resampling, jitter.")
    run: AutoRun | None = Field(default=None, description="Cycles that run by themselves: on arrival of "
                                                          "observations or on a schedule (default: on request only).")
    revisions: Literal["cycle", "batch"] = Field(
        default="cycle", description="Which analyses become state revisions: every cycle's (cycle), or the last "
                                     "of each batch of cycles the engine writes at once, about every 0.1 s of "
                                     "cycling (batch: for fast cycles of a large state, where writing every "
                                     "analysis to the state log costs more than computing it). Every cycle's "
                                     "analysis is kept in its cycle record either way (the bulk history).")

    @model_validator(mode="after")
    def _consistent(self) -> AssimilationSpec:
        if len(set(self.state)) != len(self.state):
            raise ValueError("state names an entry twice")
        if self.coordinates is not None and len(self.coordinates) != len(self.state):
            raise ValueError(f"coordinates has {len(self.coordinates)} entries; give one per state entry "
                             f"({len(self.state)})")
        for what, values in (("spread", self.spread), ("step.noise", self.step.noise)):
            if isinstance(values, dict):
                unknown = sorted(set(values) - set(self.state))
                if unknown:
                    raise ValueError(f"{what} names {', '.join(unknown)}, not in the state vector")
        return self

    def per_entry(self, values: float | dict[str, float], default: float = 0.0) -> list[float]:
        """One value per state-vector entry from a scalar or a mapping (missing entries: ``default``)."""
        if isinstance(values, dict):
            return [float(values.get(name, default)) for name in self.state]
        return [float(values)] * len(self.state)
