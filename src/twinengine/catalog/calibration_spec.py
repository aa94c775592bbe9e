"""The ``calibration:`` section of a manifest: which parameters may be fitted to a twin's observations, and how.

It names the parameters (bounds default to the parameters schema's minimum and maximum; a prior is
optional), the model that simulates the observed series from parameters and forcing (an app entrypoint), the
observed stream field, and the defaults of a calibration (objective, method, budget). Its references to the
rest of the manifest are checked in ``catalog.calibration_checks``.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["MAX_RUNS", "MAX_SECONDS", "CalibrationModel", "CalibrationSpec", "Method", "Objective", "ObservedSpec",
           "ParameterSpec", "PriorSpec"]

MAX_RUNS = 100_000  # model runs of one calibration
MAX_SECONDS = 7 * 24 * 3600.0

Ident = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=64)]
Entrypoint = Annotated[str, Field(pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$", max_length=200)]
Finite = Annotated[float, Field(allow_inf_nan=False)]


# The names a manifest may use; ``calibration.objectives`` and ``calibration.methods`` compute them.
class Objective(StrEnum):
    """What a calibration fits: NSE and KGE (1 is perfect), RMSE (0 is perfect, in the observation's unit) or
    the Gaussian log-likelihood with the error variance profiled out (larger is better)."""

    NSE = "nse"
    KGE = "kge"
    RMSE = "rmse"
    LIKELIHOOD = "likelihood"


class Method(StrEnum):
    DE = "de"
    SCEUA = "sceua"
    DREAM = "dream"
    EMCEE = "emcee"


# The OpenAPI description tells the two enums called Method apart by their module: this one is named by the
# module that runs the methods (``calibration.methods``, which exports it), so the description stays as it was.
Method.__module__ = "twinengine.calibration.methods"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PriorSpec(_Strict):
    """A prior within the bounds: uniform (default), normal (mean, sd) or lognormal (mean, sd of the log)."""

    distribution: Literal["uniform", "normal", "lognormal"] = "uniform"
    mean: Finite | None = None
    sd: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = None

    @model_validator(mode="after")
    def _complete(self) -> PriorSpec:
        if self.distribution != "uniform" and (self.mean is None or self.sd is None):
            raise ValueError(f"a {self.distribution} prior needs mean and sd")
        return self


class ParameterSpec(_Strict):
    """A calibrated parameter: bounds within the schema's (default: the schema's minimum and maximum)."""

    min: Finite | None = Field(default=None, description="Lower bound; default: the schema's minimum.")
    max: Finite | None = Field(default=None, description="Upper bound; default: the schema's maximum.")
    prior: PriorSpec = Field(default_factory=PriorSpec, description="Prior belief (default: uniform).")


class CalibrationModel(_Strict):
    """The app's model as calibration calls it: ``fn(parameters, forcing)`` returns the simulated observed
    series, one value per record of the observed stream (``forcing`` maps each name to its series, plus
    ``time``: ISO 8601 times of the records)."""

    entrypoint: Entrypoint = Field(description="'module:function' in the app package, called as "
                                               "fn(parameters, forcing) -> list of floats.")
    forcing: dict[Ident, Ident] = Field(default_factory=dict, max_length=32,
                                        description="Model input name → field of the observed stream.")


class ObservedSpec(_Strict):
    """The stream field the model's output is compared with."""

    stream: Ident
    field: Ident


class CalibrationSpec(_Strict):
    """What ``twin calibrate`` fits and its defaults (see docs/calibration.md)."""

    parameters: dict[Ident, ParameterSpec] = Field(min_length=1, max_length=32,
                                                   description="Numeric parameters that may be calibrated.")
    model: CalibrationModel
    observed: ObservedSpec
    objective: Objective = Objective.NSE
    method: Method = Method.SCEUA
    runs: int = Field(default=1000, ge=1, le=MAX_RUNS, description="Default budget of model runs.")
    seconds: float | None = Field(default=None, gt=0, le=MAX_SECONDS, description="Default budget of time.")
    warmup: int = Field(default=0, ge=0, le=1_000_000,
                        description="Records at the start left out of the score (the model spins up).")
