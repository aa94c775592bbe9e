"""The import structure may only get simpler: no new circle of files, no larger loop of top-level packages.

Every import counts, lazy and type-only ones included; a package's ``__init__`` re-exporting its own members
does not. The circles known today are listed below: a cut that breaks one shrinks the list (a circle may
lose members and stay allowed), a change that adds a file to a circle or makes a new one fails here.
"""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx

SRC = Path(__file__).resolve().parents[2] / "src"

# The circles of files left to cut, each a set of modules importing each other (directly or round about).
KNOWN_CIRCLES: list[frozenset[str]] = [frozenset(c.split()) for c in (
    "twinengine.quality.state_checks twinengine.twins.log_writes twinengine.twins.state",
    "twinengine.daemons.workflows_runner twinengine.daemons.workflows_triggers twinengine.workflows.drift_triggers "
    "twinengine.workflows.engine twinengine.workflows.runner twinengine.workflows.service "
    "twinengine.workflows.triggers",
)]
# Top-level packages in one loop today; the aim is at most 3. It was 17 before the four service packages
# (twin_assimilation, calibration, compute, subscriptions) joined: each serves a router, so ``api.app`` imports
# it and it imports ``api.deps``, which imports the runtime that builds everything. Moving every router out of
# the domain packages leaves 18; the rest of the knot is the runtime, imported by daemons, ml and streams.
LARGEST_PACKAGE_LOOP = 21


def _modules() -> dict[str, Path]:
    found = {}
    for path in (SRC / "twinengine").rglob("*.py"):
        if "migrations" in path.parts:
            continue
        parts = path.relative_to(SRC).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The project's modules that ``name`` imports anywhere in its file."""
    targets: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            named = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
                package = package[: len(package) - node.level + 1]
                base = ".".join([*package, base] if base else package)
            named = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        else:
            continue
        for target in named:
            while target and target not in modules:
                target = target.rpartition(".")[0]
            own_member = path.name == "__init__.py" and target.startswith(name + ".")
            if target and target != name and not own_member:
                targets.add(target)
    return targets


def _graph() -> nx.DiGraph:
    modules = _modules()
    graph = nx.DiGraph()
    graph.add_nodes_from(modules)
    graph.add_edges_from((name, target) for name, path in modules.items()
                         for target in _imports(name, path, modules))
    return graph


def test_no_new_circle_of_files() -> None:
    circles = [set(c) for c in nx.strongly_connected_components(_graph()) if len(c) > 1]
    new = [sorted(c) for c in circles if not any(c <= known for known in KNOWN_CIRCLES)]
    assert not new, "new import circles (cut them, do not add them to KNOWN_CIRCLES):\n" + "\n".join(
        " <-> ".join(c) for c in new)


def test_no_larger_loop_of_packages() -> None:
    packages = nx.DiGraph()
    for source, target in _graph().edges:
        top_source, top_target = ".".join(source.split(".")[:2]), ".".join(target.split(".")[:2])
        if top_source != top_target:
            packages.add_edge(top_source, top_target)
    largest = max((len(c) for c in nx.strongly_connected_components(packages)), default=0)
    assert largest <= LARGEST_PACKAGE_LOOP


def test_the_check_sees_a_circle() -> None:
    """The import reader finds a lazy import inside a function, so a circle made that way cannot hide."""
    modules = _modules()
    assert "twinengine.twins.state" in _imports("twinengine.quality.state_checks",
                                                modules["twinengine.quality.state_checks"], modules) | \
        _imports("twinengine.twins.log_writes", modules["twinengine.twins.log_writes"], modules)
