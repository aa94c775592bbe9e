"""Checking a DT application folder: the manifest, its cross-references and the files it names.

Every problem is reported with its path (``streams.gauges.fields.level.unit: ...``), not just the first,
so a developer fixes them all in one go. The same check runs in ``twin app validate`` and on publish.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from twinengine.catalog.assimilation_checks import assimilation_entrypoints, check_assimilation
from twinengine.catalog.calibration_checks import calibration_entrypoints, check_calibration
from twinengine.catalog.manifest import FunctionSpec, Manifest
from twinengine.catalog.view_text import summary_properties
from twinengine.errors import Problem, join_loc
from twinengine.quality.spec import CHECK_KINDS
from twinengine.units import unusual_prefixes

__all__ = ["MANIFEST_FILE", "MAX_MANIFEST_BYTES", "AliasTooLarge", "check_app_dir", "check_manifest_data",
           "declared_entrypoints", "load_manifest", "manifest_warnings"]

MANIFEST_FILE = "twinapp.yaml"
MAX_MANIFEST_BYTES = 1024 * 1024  # the default of the max_manifest_bytes setting


def _pydantic_problems(exc: ValidationError) -> list[Problem]:
    problems = []
    for err in exc.errors(include_url=False):
        msg = str(err["msg"]).removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown field (check the spelling; `twin app schema` lists the fields)"
        problems.append(Problem(join_loc(_untag(err["loc"])), msg))
    return problems


def _untag(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """Drop the check kind pydantic puts in a quality check's location (``quality[1].range.max`` →
    ``quality[1].max``), so the location is the one in the developer's file."""
    out = list(loc)
    for i in range(len(out) - 1, 1, -1):
        if out[i] in CHECK_KINDS and isinstance(out[i - 1], int) and out[i - 2] == "quality":
            del out[i]
    return tuple(out)


def check_manifest_data(data: Any) -> tuple[Manifest | None, list[Problem]]:
    """Validate parsed YAML as a manifest, then check references between its sections."""
    if not isinstance(data, dict):
        return None, [Problem("", f"{MANIFEST_FILE} must be a mapping of fields, not {type(data).__name__}")]
    try:
        manifest = Manifest.model_validate(data)
    except ValidationError as exc:
        return None, _pydantic_problems(exc)
    problems: list[Problem] = []
    seen: set[str] = set()
    for i, trigger in enumerate(manifest.triggers):
        if trigger.name in seen:
            problems.append(Problem(f"triggers[{i}].name", f"duplicate trigger name {trigger.name!r}"))
        seen.add(trigger.name)
        if trigger.workflow not in manifest.workflows:
            problems.append(Problem(f"triggers[{i}].workflow",
                                    f"workflow {trigger.workflow!r} is not declared under workflows"))
    problems += _check_functions(manifest)
    problems += _check_quality(manifest)
    problems += _check_views(manifest)
    problems += _check_initial_state(manifest)
    problems += check_assimilation(manifest)
    problems += check_calibration(manifest)
    return manifest, problems


def _check_views(manifest: Manifest) -> list[Problem]:
    """Panels name declared state properties (numbers where they are plotted), workflows and models."""
    problems: list[Problem] = []

    def prop(loc: str, name: str, *, numeric: bool) -> None:
        declared = manifest.state.get(name)
        if declared is None:
            problems.append(Problem(loc, f"state property {name!r} is not declared under state"))
        elif numeric and declared.type.value not in ("number", "integer"):
            problems.append(Problem(loc, f"state property {name!r} is a {declared.type.value}; a time series "
                                         "plots numbers"))

    def workflow(loc: str, name: str) -> None:
        if name not in manifest.workflows:
            problems.append(Problem(loc, f"workflow {name!r} is not declared under workflows"))

    for view_name, view in manifest.views.items():
        for path in summary_properties(view.summary):
            prop(f"views.{view_name}.summary", path, numeric=False)
        if view.skill.property is not None:
            prop(f"views.{view_name}.skill.property", view.skill.property, numeric=True)
        for panel_name, panel in view.panels.items():
            loc = f"views.{view_name}.panels.{panel_name}"
            if panel.kind == "timeseries":
                for i, name in enumerate(panel.properties):
                    prop(f"{loc}.properties[{i}]", name, numeric=True)
                for i, threshold in enumerate(panel.thresholds):
                    if threshold.property is not None:
                        prop(f"{loc}.thresholds[{i}].property", threshold.property, numeric=True)
                if panel.band is not None:
                    prop(f"{loc}.band.lower", panel.band.lower, numeric=True)
                    prop(f"{loc}.band.upper", panel.band.upper, numeric=True)
                if panel.forecast is not None:
                    workflow(f"{loc}.forecast.workflow", panel.forecast.workflow)
            elif panel.kind == "table":
                for i, name in enumerate(panel.properties):
                    prop(f"{loc}.properties[{i}]", name, numeric=False)
            elif panel.kind == "form":
                workflow(f"{loc}.workflow", panel.workflow)
            elif panel.kind == "model" and panel.model not in manifest.models:
                problems.append(Problem(f"{loc}.model", f"model {panel.model!r} is not declared under models"))
    return problems


def _check_initial_state(manifest: Manifest) -> list[Problem]:
    """A workflow's initial state maps graph parameters to declared, unkeyed state properties."""
    problems: list[Problem] = []
    for name, workflow in manifest.workflows.items():
        for parameter, props in workflow.start_sources().items():
            loc = f"workflows.{name}.initial_state.{parameter}"
            if len(set(props)) < len(props):
                problems.append(Problem(loc, "a state property is listed twice"))
            for prop in props:
                declared = manifest.state.get(prop)
                if declared is None:
                    problems.append(Problem(loc, f"state property {prop!r} is not declared under state"))
                elif declared.key is not None:
                    problems.append(Problem(loc, f"state property {prop!r} is keyed by {declared.key}: a run "
                                                 "starts from one value"))
                elif declared.desired_only:
                    problems.append(Problem(loc, f"state property {prop!r} is desired only: the twin never "
                                                 "reports it, so no run could start from it"))
    return problems


_COMPARABLE = {"float": (int, float), "integer": (int,), "string": (str,), "boolean": (bool,)}


def _check_functions(manifest: Manifest) -> list[Problem]:
    """Functions name a declared stream and model; a condition names a field of that stream and a value of
    its type (booleans and strings compare with eq/ne only)."""
    problems: list[Problem] = []
    for name, model in manifest.models.items():
        if model.stream is not None and model.stream not in manifest.streams:
            problems.append(Problem(f"models.{name}.stream", f"stream {model.stream!r} is not declared under streams"))
    for name, fn in manifest.functions.items():
        loc = f"functions.{name}"
        stream = manifest.streams.get(fn.stream)
        if stream is None:
            problems.append(Problem(f"{loc}.stream", f"stream {fn.stream!r} is not declared under streams"))
        if fn.model is not None and fn.model not in manifest.models:
            problems.append(Problem(f"{loc}.model", f"model {fn.model!r} is not declared under models"))
        for i, target in enumerate(fn.publishes):
            if target not in manifest.streams:
                problems.append(Problem(f"{loc}.publishes[{i}]", f"stream {target!r} is not declared under streams"))
            elif target == fn.stream:
                problems.append(Problem(f"{loc}.publishes[{i}]", f"a function cannot publish to {target!r}, the "
                                                                 "stream it runs on (it would call itself forever)"))
            elif fn.join is not None and target in fn.join.streams:
                problems.append(Problem(f"{loc}.publishes[{i}]", f"a function cannot publish to {target!r}, a "
                                                                 "stream it joins (it would call itself forever)"))
        problems += _check_join(manifest, loc, fn)
        trigger = fn.trigger
        if stream is None or trigger.kind != "condition" or trigger.field is None:
            continue
        declared = stream.fields.get(trigger.field)
        if declared is None:
            problems.append(Problem(f"{loc}.trigger.field", f"{trigger.field!r} is not a field of {fn.stream!r}"))
            continue
        kinds = _COMPARABLE.get(declared.type.value)
        value = trigger.value
        if kinds is None or not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            problems.append(Problem(f"{loc}.trigger.value",
                                    f"{value!r} cannot be compared with the {declared.type.value} field "
                                    f"{trigger.field!r}"))
        elif declared.type.value in ("string", "boolean") and trigger.op not in ("eq", "ne"):
            problems.append(Problem(f"{loc}.trigger.op", f"{declared.type.value} fields compare with eq or ne"))
    return problems + _check_publish_cycles(manifest)


def _check_join(manifest: Manifest, loc: str, fn: FunctionSpec) -> list[Problem]:
    """Joined streams are declared, other than the function's own, named once, keyed only when the function's
    own stream is keyed with a key of the same type (a keyed stream joins record by record of the same key;
    an unkeyed one joins every key's records), and no field of the function's stream bears their name (the
    joined record holds each partner under its stream's name)."""
    if fn.join is None:
        return []
    problems: list[Problem] = []
    own = manifest.streams.get(fn.stream)
    for i, name in enumerate(fn.join.streams):
        where = f"{loc}.join.streams[{i}]"
        declared = manifest.streams.get(name)
        if declared is None:
            problems.append(Problem(where, f"stream {name!r} is not declared under streams"))
        elif name == fn.stream:
            problems.append(Problem(where, f"{name!r} is the stream the function runs on; join other streams"))
        elif name in fn.join.streams[:i]:
            problems.append(Problem(where, f"stream {name!r} is joined twice"))
        elif declared.key is not None and (own is None or own.key is None):
            problems.append(Problem(where, f"stream {name!r} tells sources apart by {declared.key!r} and "
                                           f"{fn.stream!r} has no key: a keyed stream joins per key, the "
                                           "records of each key with the same key's records"))
        elif declared.key is not None and own is not None and own.key is not None and \
                declared.fields[declared.key].type is not own.fields[own.key].type:
            problems.append(Problem(where, f"stream {name!r} is keyed by {declared.key!r} "
                                           f"({declared.fields[declared.key].type.value}) and {fn.stream!r} by "
                                           f"{own.key!r} ({own.fields[own.key].type.value}): joined per key, "
                                           "the keys must be of one type"))
        elif name.startswith("_") or (own is not None and name in own.fields):
            taken = "is reserved" if name.startswith("_") else f"is a field of {fn.stream!r}"
            problems.append(Problem(where, f"the joined record holds {name!r}'s record under that name, which "
                                           f"{taken}"))
    return problems


def _check_publish_cycles(manifest: Manifest) -> list[Problem]:
    """Records a function publishes wake the functions of the target stream: a cycle of streams through
    ``publishes`` would run forever, so none may exist."""
    edges: dict[str, set[str]] = {}
    for fn in manifest.functions.values():
        for source in fn.inputs:  # a joined stream's records wake the function as its own stream's do
            edges.setdefault(source, set()).update(t for t in fn.publishes if t not in fn.inputs)
    done: set[str] = set()

    def cycle_from(stream: str, path: list[str]) -> list[str] | None:
        if stream in path:
            return [*path[path.index(stream):], stream]
        if stream in done:
            return None
        for target in sorted(edges.get(stream, ())):
            found = cycle_from(target, [*path, stream])
            if found:
                return found
        done.add(stream)
        return None

    for stream in sorted(edges):
        found = cycle_from(stream, [])
        if found:
            name = next(n for n, fn in manifest.functions.items()
                        if found[-2] in fn.inputs and found[-1] in fn.publishes)
            return [Problem(f"functions.{name}.publishes", "functions publish in a cycle "
                                                             f"({' -> '.join(found)}); records would flow forever")]
    return []


_NUMERIC = {"float", "integer", "boolean"}


def _a(kind: str) -> str:
    return f"an {kind}" if kind[0] in "aeiou" else f"a {kind}"


def _check_quality(manifest: Manifest) -> list[Problem]:
    """Quality checks read declared number (or boolean) fields, never the time field; a stream has one gap
    check at most, and a completeness check has a cadence (its own or the gap check's)."""
    problems: list[Problem] = []
    for name, stream in manifest.streams.items():
        gaps = [c for c in stream.quality if c.check == "gap"]
        if len(gaps) > 1:
            problems.append(Problem(f"streams.{name}.quality", "declare one gap check per stream"))
        for i, check in enumerate(stream.quality):
            loc = f"streams.{name}.quality[{i}]"
            said: set[tuple[str, str]] = set()
            for part, field, position in check.reads():  # a field named, or read by an expression
                if (part, field) in said:  # an expression reading it again: said once, at its first position
                    continue
                said.add((part, field))
                where, at = f"{loc}.{part}", "" if position is None else f" (at position {position})"
                declared = stream.fields.get(field)
                if declared is None:
                    problems.append(Problem(where, f"{field!r}{at} is not a field of stream {name!r} "
                                                   f"(fields: {', '.join(stream.fields)})"))
                elif declared.type.value not in _NUMERIC or field == stream.time_field:
                    problems.append(Problem(where, f"{field!r}{at} is {_a(declared.type.value)} field; quality "
                                                   "checks judge numbers"))
            if check.check == "completeness" and check.every is None and not gaps:
                problems.append(Problem(f"{loc}.every", "give the expected cadence here or declare a gap check"))
    return problems


class AliasTooLarge(yaml.composer.ComposerError):
    """Raised while reading a manifest when its aliases repeat more than the manifest's size limit."""


class _ManifestLoader(yaml.SafeLoader):
    """A safe YAML loader that counts what aliases repeat: a few ``*defaults`` are fine, but an alias of
    an alias of an alias (a "billion laughs") would expand a few hundred bytes into gigabytes once the
    manifest is validated and stored, so the alias that takes the expansion past the limit is refused."""

    def __init__(self, stream: str, *, max_bytes: int) -> None:
        super().__init__(stream)
        self.max_bytes = max_bytes
        self.expanded = 0
        self.sizes: dict[int, int] = {}
        self.open_anchors: list[str | None] = []

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        event = self.peek_event()  # type: ignore[no-untyped-call]
        if not isinstance(event, yaml.AliasEvent):
            self.open_anchors.append(getattr(event, "anchor", None))
            try:
                return super().compose_node(parent, index)
            finally:
                self.open_anchors.pop()
        mark: Any = event.start_mark
        if event.anchor in self.open_anchors:
            raise AliasTooLarge(None, None, f"alias *{event.anchor} refers to the node that contains it", mark)
        node = super().compose_node(parent, index)
        self.expanded += self._size(node) if node is not None else 0
        if self.expanded > self.max_bytes:
            raise AliasTooLarge(None, None, f"alias *{event.anchor} repeats more than the {self.max_bytes} bytes "
                                            "a manifest may expand to (max_manifest_bytes); aliases of aliases "
                                            "are refused", mark)
        return node

    def _size(self, node: yaml.Node) -> int:
        """About the bytes ``node`` takes as JSON with its aliases expanded (computed once per node)."""
        known = self.sizes.get(id(node))
        if known is not None:
            return known
        if isinstance(node, yaml.ScalarNode):
            size = len(node.value) + 4
        elif isinstance(node, yaml.SequenceNode):
            size = 2 + sum(self._size(child) for child in node.value)
        else:
            size = 2 + sum(self._size(k) + self._size(v) for k, v in node.value)
        self.sizes[id(node)] = size
        return size


def load_manifest(text: str, *, max_bytes: int = MAX_MANIFEST_BYTES) -> tuple[Manifest | None, list[Problem]]:
    """Parse and check manifest text; refuse a manifest larger than ``max_bytes`` as written, as its aliases
    expand it, or as it is stored."""
    size = len(text.encode())
    if size > max_bytes:
        return None, [Problem(MANIFEST_FILE, f"{size} bytes; a manifest may have at most {max_bytes} "
                                             "(max_manifest_bytes)")]
    loader = _ManifestLoader(text, max_bytes=max_bytes)
    try:
        data = loader.get_single_data()
    except AliasTooLarge as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        return None, [Problem(MANIFEST_FILE, f"{where}{exc.problem}")]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        return None, [Problem(MANIFEST_FILE, f"{where}invalid YAML: {problem}")]
    except RecursionError:
        return None, [Problem(MANIFEST_FILE, "invalid YAML: nested too deeply")]
    finally:
        loader.dispose()
    manifest, problems = check_manifest_data(data)
    if manifest is not None:
        stored = len(json.dumps(manifest.model_dump(mode="json")))
        if stored > max_bytes:
            return None, [Problem(MANIFEST_FILE, f"{stored} bytes once parsed; a manifest may have at most "
                                                 f"{max_bytes} (max_manifest_bytes)")]
    return manifest, problems


def declared_entrypoints(manifest: Manifest) -> list[tuple[str, str, str]]:
    """(manifest path, kind, ``module:attr``) of every entrypoint the manifest names: what publishing and
    ``twin app validate`` import in the app's sandbox to check that the engine can call it."""
    found = [(f"models.{n}.entrypoint", "model", m.entrypoint) for n, m in manifest.models.items()]
    found += [(f"functions.{n}.entrypoint", "function", f.entrypoint) for n, f in manifest.functions.items()]
    return found + assimilation_entrypoints(manifest) + calibration_entrypoints(manifest)


def _inside(root: Path, relative: str) -> Path | None:
    target = (root / relative).resolve()
    return target if target.is_relative_to(root.resolve()) else None


def _check_files(root: Path, manifest: Manifest) -> list[Problem]:
    problems: list[Problem] = []
    package = root / manifest.package_name
    if not (package / "__init__.py").is_file():
        loc = "package" if manifest.package else "name"
        problems.append(Problem(loc, f"the app's Python package folder '{manifest.package_name}/' "
                                     "with an __init__.py is missing"))
    else:
        for source in sorted(package.rglob("*.py")):
            try:
                compile(source.read_bytes(), str(source), "exec", dont_inherit=True)
            except SyntaxError as exc:
                rel = source.relative_to(root).as_posix()
                problems.append(Problem(rel, f"line {exc.lineno}: {exc.msg}"))
        for loc, _kind, entrypoint in declared_entrypoints(manifest):
            module = entrypoint.split(":", 1)[0]
            parts = module.split(".")
            if parts[0] != manifest.package_name:
                problems.append(Problem(loc, f"module {module!r} is not inside the app package "
                                             f"{manifest.package_name!r}"))
                continue
            base = root.joinpath(*parts)
            if not (base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()):
                problems.append(Problem(loc, f"module {module!r} not found in the app"))
    for name, workflow in manifest.workflows.items():
        loc = f"workflows.{name}.process_graph"
        path = _inside(root, workflow.process_graph)
        if path is None:
            problems.append(Problem(loc, "path leaves the app folder"))
        elif not path.is_file():
            problems.append(Problem(loc, f"file {workflow.process_graph!r} not found in the app"))
        else:
            try:
                graph = json.loads(path.read_text())
            except (ValueError, UnicodeDecodeError, RecursionError) as exc:
                problems.append(Problem(loc, f"not valid JSON: {exc}"))
                continue
            nodes = graph.get("process_graph", graph) if isinstance(graph, dict) else None
            if not isinstance(nodes, dict) or not nodes or not all(
                isinstance(n, dict) and "process_id" in n for n in nodes.values()
            ):
                problems.append(Problem(loc, "not an openEO process graph (a map of nodes with process_id)"))
            else:
                problems += _check_form_parameters(manifest, name, graph)
                problems += _check_start_parameters(manifest, name, graph)
    return problems


def _check_form_parameters(manifest: Manifest, workflow: str, graph: dict[str, Any]) -> list[Problem]:
    """A form panel's parameters are parameters of its workflow's process graph."""
    declared = {p.get("name") for p in graph.get("parameters") or [] if isinstance(p, dict)}
    problems = []
    for view_name, view in manifest.views.items():
        for panel_name, panel in view.panels.items():
            if panel.kind != "form" or panel.workflow != workflow:
                continue
            for i, name in enumerate(panel.parameters or []):
                if name not in declared:
                    problems.append(Problem(f"views.{view_name}.panels.{panel_name}.parameters[{i}]",
                                            f"{name!r} is not a parameter of workflow {workflow!r}"))
    return problems


def _check_start_parameters(manifest: Manifest, workflow: str, graph: dict[str, Any]) -> list[Problem]:
    """The parameters a workflow's initial state fills are parameters of its process graph."""
    declared = {p.get("name") for p in graph.get("parameters") or [] if isinstance(p, dict)}
    return [Problem(f"workflows.{workflow}.initial_state.{name}",
                    f"{name!r} is not a parameter of workflow {workflow!r} (it declares "
                    f"{', '.join(sorted(str(d) for d in declared)) or 'none'})")
            for name in manifest.workflows[workflow].initial_state if name not in declared]


def check_app_dir(path: Path, *,
                  max_manifest_bytes: int = MAX_MANIFEST_BYTES) -> tuple[Manifest | None, list[Problem]]:
    """Validate an app folder; returns the manifest (if it parsed) and every problem found."""
    manifest_path = path / MANIFEST_FILE
    if not path.is_dir():
        return None, [Problem("", f"{path} is not a folder")]
    if not manifest_path.is_file():
        return None, [Problem(MANIFEST_FILE, f"no {MANIFEST_FILE} in {path}")]
    try:
        text = manifest_path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return None, [Problem(MANIFEST_FILE, "not UTF-8 text")]
    manifest, problems = load_manifest(text, max_bytes=max_manifest_bytes)
    if manifest is not None:
        problems += _check_files(path, manifest)
    return manifest, problems


def manifest_warnings(manifest: Manifest) -> list[Problem]:
    """What is valid but probably not meant, located like problems: units that parse only through an unusual
    prefix (``m3/hh`` is cubic metre per hectohour). Validation and publishing report them and go on."""
    units = [(f"streams.{s}.fields.{f}.unit", field.unit) for s, stream in manifest.streams.items()
             for f, field in stream.fields.items()]
    units += [(f"state.{name}.unit", prop.unit) for name, prop in manifest.state.items()]
    units += [(f"outputs.{name}.unit", output.unit) for name, output in manifest.outputs.items()]
    notes = [(loc, unusual_prefixes(unit)) for loc, unit in units if unit is not None]
    return [Problem(loc, note) for loc, note in notes if note is not None]
