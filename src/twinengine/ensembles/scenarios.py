"""Scenarios: what-if branches from a twin, described in a file (YAML or JSON, checked against the JSON
Schema shipped in ``quality/schemas/scenario.schema.json``). Running one forks the twin once per branch
(at a revision, with changed parameters) and runs the workflow on every fork (with replaced forcing data,
over the horizon, optionally as an ensemble), all in one transaction: a bad branch leaves nothing behind.
"""

from __future__ import annotations

import json
import re
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from twinengine.auth.principal import Principal
from twinengine.ensembles.schemas import EnsembleCreate
from twinengine.ensembles.service import submit_ensemble
from twinengine.errors import InvalidInput, Problem, ValidationFailed, join_loc
from twinengine.twins import service as twins
from twinengine.twins.models import Twin
from twinengine.workflows import service as runs

if TYPE_CHECKING:
    from twinengine.workflows.engine import WorkflowEngine

__all__ = ["BranchRun", "ScenarioRun", "check_scenario", "parse_scenario", "run_scenario", "scenario_schema"]

HORIZON_PARAMETER = "horizon_hours"
_ISO = re.compile(r"^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?)?$")


@cache
def scenario_schema() -> dict[str, Any]:
    text = resources.files("twinengine.quality").joinpath("schemas/scenario.schema.json").read_text()
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def parse_scenario(text: str) -> dict[str, Any]:
    """A scenario file's text (YAML, of which JSON is a part) as a checked document."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValidationFailed.one("scenario", f"not YAML or JSON: {exc}") from None
    return check_scenario(doc)


def check_scenario(doc: Any) -> dict[str, Any]:
    """Validate against the schema; every problem names its place (``branches[1].ensemble.members``)."""
    from jsonschema import Draft202012Validator  # here: the API answers before it imports jsonschema

    validator = Draft202012Validator(scenario_schema())
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        problems = []
        for error in errors:
            path: list[Any] = list(error.absolute_path)
            if error.validator == "required" and isinstance(error.instance, dict):
                path += [k for k in error.validator_value if k not in error.instance][:1]
            elif error.validator == "additionalProperties" and isinstance(error.instance, dict):
                allowed = set((error.schema or {}).get("properties", {}))
                path += [k for k in error.instance if k not in allowed][:1]
            problems.append(Problem(join_loc(path) or "scenario", error.message))
        raise ValidationFailed(problems)
    assert isinstance(doc, dict)
    return doc


def horizon_hours(value: Any) -> float | None:
    if value is None or isinstance(value, int | float):
        return None if value is None else float(value)
    match = _ISO.match(str(value))
    if not match:
        raise ValueError(f"not a duration: {value!r}")
    days, hours, minutes = (int(g or 0) for g in match.groups())
    return days * 24 + hours + minutes / 60


class BranchRun(BaseModel):
    name: str
    fork: str = Field(description="Name of the fork the branch runs on.")
    fork_id: str
    run_id: str = Field(description="The run (or ensemble) of the branch's workflow.")
    kind: str = Field(description="run or ensemble")
    workflow: str


class ScenarioRun(BaseModel):
    name: str | None
    twin: str
    twin_id: str
    branches: list[BranchRun]
    compare: list[str] = Field(default_factory=list)


def run_scenario(session: Session, engine: WorkflowEngine, *, principal: Principal, doc: dict[str, Any],
                 max_members: int, parallel: int = 4) -> ScenarioRun:
    """Fork and run every branch (queued); nothing is stored if any branch is refused."""
    doc = check_scenario(doc)
    origin = twins.get_twin(session, principal=principal, ref=doc["twin"], action="twin.read")
    collections = set(engine.collections.ids())
    out: list[BranchRun] = []
    for i, branch in enumerate(doc["branches"]):
        loc = f"branches[{i}]"
        try:
            out.append(_branch(session, engine, principal, doc, branch, origin, collections, loc, max_members,
                               parallel))
        except ValidationFailed as exc:
            raise ValidationFailed([Problem(p.loc if p.loc.startswith(loc) else f"{loc}.{p.loc}", p.msg)
                                    for p in exc.problems]) from None
        except InvalidInput as exc:  # a run parameter the workflow's schema refuses
            raise ValidationFailed.one(f"{loc}.run_parameters", exc.message) from None
    return ScenarioRun(name=doc.get("name"), twin=origin.name, twin_id=origin.id, branches=out,
                       compare=list(doc.get("compare") or []))


def _branch(session: Session, engine: WorkflowEngine, principal: Principal, doc: dict[str, Any],
            branch: dict[str, Any], origin: Twin, collections: set[str], loc: str, max_members: int,
            parallel: int) -> BranchRun:
    workflow = branch.get("workflow") or doc["workflow"]
    fork = twins.fork_twin(session, principal=principal, ref=origin.id,
                           name=twins.free_name(session, f"{origin.name}-{branch['name']}"),
                           at_revision=branch.get("fork_revision"), parameters=branch.get("parameters") or {},
                           description=branch.get("description") or f"scenario branch {branch['name']}")
    process = runs.twin_workflow_process(session, engine, fork, workflow)
    declared = {p["name"] for p in process.get("parameters") or []}
    parameters = dict(branch.get("run_parameters") or {})
    for name in parameters:
        if name not in declared:
            raise ValidationFailed.one(f"{loc}.run_parameters.{name}",
                                       f"workflow {workflow} declares no parameter {name!r}")
    for name, collection in (branch.get("forcing") or {}).items():
        if name not in declared:
            raise ValidationFailed.one(f"{loc}.forcing.{name}", f"workflow {workflow} declares no parameter "
                                                                f"{name!r} to take forcing data")
        if collection not in collections:
            raise ValidationFailed.one(f"{loc}.forcing.{name}", f"no collection {collection!r}")
        parameters[name] = collection
    horizon = branch.get("horizon", doc.get("horizon"))
    if horizon is not None:
        if HORIZON_PARAMETER not in declared:
            raise ValidationFailed.one(f"{loc}.horizon" if "horizon" in branch else "horizon",
                                       f"workflow {workflow} declares no {HORIZON_PARAMETER} parameter")
        parameters[HORIZON_PARAMETER] = horizon_hours(horizon)
    ensemble = branch.get("ensemble", doc.get("ensemble"))
    if ensemble:
        body = EnsembleCreate(workflow=workflow, members=ensemble["members"], parameters=parameters,
                              seed=ensemble.get("seed"), threshold=ensemble.get("threshold"))
        run = submit_ensemble(session, engine, principal=principal, twin_ref=fork.id, body=body,
                              max_members=max_members, parallel=parallel)
    else:
        run = runs.submit_twin_workflow(session, engine, principal=principal, twin_ref=fork.id, workflow=workflow,
                                        parameters=parameters)
    return BranchRun(name=branch["name"], fork=fork.name, fork_id=fork.id, run_id=run.id, kind=run.kind,
                     workflow=workflow)
