"""Cross-references of a manifest's ``assimilation:`` section: its state entries are declared numeric
properties, its observations and forcing name declared numeric stream fields, its entrypoints sit in the
app package. Each problem names its place (``assimilation.observations.level.field``)."""

from __future__ import annotations

from twinengine.catalog import state_keys
from twinengine.catalog.assimilation_spec import AssimilationSpec
from twinengine.catalog.manifest import FieldType, Manifest, Stream
from twinengine.errors import Problem

__all__ = ["assimilation_entrypoints", "check_assimilation", "observation_stream"]

_NUMERIC = (FieldType.FLOAT, FieldType.INTEGER)


def observation_stream(manifest: Manifest, stream: str | None) -> str | None:
    """The stream an observation (or the forcing) reads: the one named, else the app's only stream."""
    if stream is not None:
        return stream
    return next(iter(manifest.streams)) if len(manifest.streams) == 1 else None


def _field(manifest: Manifest, loc: str, stream: str | None, field: str, problems: list[Problem],
           *, std: bool = False, field_loc: str | None = None) -> None:
    where = field_loc or f"{loc}.field"
    name = observation_stream(manifest, stream)
    if name is None:
        problems.append(Problem(f"{loc}.stream", "name the stream: the app declares "
                                                 f"{len(manifest.streams)} streams"))
        return
    declared: Stream | None = manifest.streams.get(name)
    if declared is None:
        problems.append(Problem(f"{loc}.stream", f"stream {name!r} is not declared under streams"))
        return
    got = declared.fields.get(field)
    if got is None:
        known = ", ".join(declared.fields)
        problems.append(Problem(where, f"stream {name!r} has no field {field!r} (fields: {known})"))
    elif got.type not in _NUMERIC:
        problems.append(Problem(where, f"field {field!r} of stream {name!r} is a {got.type.value}; an "
                                       "observation is a number"))
    elif std and "std" not in got.uncertainty:
        problems.append(Problem(f"{loc}.error", f"field {field!r} of stream {name!r} declares no std "
                                                "uncertainty (uncertainty: [std]) for error: record to read"))


def check_assimilation(manifest: Manifest) -> list[Problem]:
    """Every problem of the section's references, or none when it is absent."""
    spec: AssimilationSpec | None = manifest.assimilation
    if spec is None:
        return []
    problems: list[Problem] = []
    for i, entry in enumerate(spec.state):
        try:
            _base, declared, _key = state_keys.resolve(manifest, entry)
        except state_keys.KeyProblem as exc:
            problems.append(Problem(f"assimilation.state[{i}]", str(exc)))
            continue
        if declared.type.value not in ("number", "integer"):
            problems.append(Problem(f"assimilation.state[{i}]", f"state property {entry!r} is a "
                                    f"{declared.type.value}; the state vector holds numbers"))
    for entry, props in spec.first_guess.items():
        loc = f"assimilation.first_guess.{entry}"
        if entry not in spec.state:
            # Here, not in the section's model: a misspelt state entry is then said once, at its own place.
            problems.append(Problem(loc, f"{entry!r} is not in the state vector (assimilation.state)"))
            continue
        for prop in props:
            estimate = manifest.state.get(prop)
            if estimate is None:
                problems.append(Problem(loc, f"state property {prop!r} is not declared under state"))
            elif estimate.type.value not in ("number", "integer") or estimate.key is not None:
                problems.append(Problem(loc, f"state property {prop!r} is not one number: a first guess is"))
    for name, obs in spec.observations.items():
        loc = f"assimilation.observations.{name}"
        _field(manifest, loc, obs.stream, obs.field or name, problems, std=obs.error.record)
        if obs.observes is not None and obs.observes not in spec.state:
            problems.append(Problem(f"{loc}.observes", f"{obs.observes!r} is not in the state vector "
                                                       f"(assimilation.state)"))
    first = next(iter(spec.observations.values()))
    stream = spec.step.stream or first.stream
    one = observation_stream(manifest, stream)
    for name, obs in spec.observations.items():
        other = observation_stream(manifest, obs.stream)
        if other is not None and one is not None and other != one:
            problems.append(Problem(f"assimilation.observations.{name}.stream",
                                    f"reads {other!r}, the others (and the forcing) {one!r}: the observations and "
                                    "forcing of one app come from one stream"))
    for name, field in spec.step.forcing.items():
        _field(manifest, "assimilation.step", stream, field, problems,
               field_loc=f"assimilation.step.forcing.{name}")
    if spec.method == "letkf" and spec.tuning.radius is None:
        problems.append(Problem("assimilation.tuning.radius", "the letkf needs a localisation radius"))
    return problems


def assimilation_entrypoints(manifest: Manifest) -> list[tuple[str, str, str]]:
    """(manifest path, kind, ``module:attr``) of the section's entrypoints, checked like the others."""
    spec = manifest.assimilation
    if spec is None:
        return []
    found = [("assimilation.step.entrypoint", "assimilation_step", spec.step.entrypoint)]
    for name, obs in spec.observations.items():
        if obs.operator is not None:
            found.append((f"assimilation.observations.{name}.operator", "observation_operator", obs.operator))
        if obs.error.entrypoint is not None:
            found.append((f"assimilation.observations.{name}.error", "observation_error", obs.error.entrypoint))
    return found
