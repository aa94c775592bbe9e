"""The import structure may only get simpler: no new circle of files, no larger loop of top-level packages, no
new arrow pointing up the layers.

Every import counts, lazy and type-only ones included; a package's ``__init__`` re-exporting its own members
does not. The circles known today are listed below: a cut that breaks one shrinks the list (a circle may
lose members and stay allowed), a change that adds a file to a circle or makes a new one fails here.

The layers of the top-level packages, low to high (a top-level module counts as a package; docs/architecture.md
says what each holds). A package imports its own layer and those below; the few arrows up are listed with why:

1. leaves: ``errors``, ``config``, ``timeutil``, ``units``, ``types``, ``outbound``, ``transport``, ``store``,
   ``formats``, ``telemetry`` (request ids, JSON logs, traces) and the small modules beside them
2. ``quality`` (input quality, uncertainty, verification numerics) and ``assimilation`` (filter numerics)
3. ``auth``, 4. ``catalog``, 5. ``twins``, 6. ``app`` (what app code imports), 7. ``streams``,
8. ``collections``, 9. ``lake``, 10. ``access``, 11. ``compute``, 12. ``workers``, 13. ``ml``, 14. ``workflows``
15. services over them: ``ensembles``, ``twin_assimilation``, ``calibration``, ``subscriptions``, ``delegation``,
    ``cwl`` (application packages), ``processes`` (OGC API - Processes), ``crates`` (runs as crates, reruns),
    ``dataspace`` (the Dataspace Protocol: offers of lake data, negotiations, transfers, ODRL policies)
16. ``daemons`` (the loops), 17. ``runtime`` (the one composition root), ``bootstrap`` and ``backup`` (backups of
    the store and data dir, and their restore)
18. ``ui`` (the portal's pages), 19. ``api`` (HTTP: kernel, ``api.routes``, app assembly)
20. the SDK: ``client``, ``client_types``, ``sdk_login``, ``credentials``
21. ``appdev`` (scaffold, test harness, local runs of an app), 22. ``cli``, ``demo``; 23. ``twinengine`` itself
"""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx

SRC = Path(__file__).resolve().parents[2] / "src"

# The circles of files left to cut, each a set of modules importing each other (directly or round about): none
# today. A circle may only be listed here with the reason it cannot be cut yet.
KNOWN_CIRCLES: list[frozenset[str]] = []
# Top-level packages in one loop today: compute, lake and workflows (``lake.grants`` asks ``workflows.service``
# whether a run's data may be read, while workflows stage through compute onto the lake). It was 21 while every
# router lived in its domain package and imported ``api.deps`` (so the runtime), the loops imported the runtime
# that started them, and app code's types shared a package with the test harness that drives a whole engine.
LARGEST_PACKAGE_LOOP = 3

LAYERS: list[set[str]] = [set(layer.split()) for layer in (
    "_version _defaults _html lazy_imports errors types timeutil units outbound config settings_reference stopping "
    "warmup figures csv_cells transport store formats telemetry",
    "quality assimilation", "auth", "catalog", "twins", "app", "streams", "collections", "lake", "access", "compute",
    "workers", "ml", "workflows",
    "ensembles twin_assimilation calibration subscriptions delegation cwl processes crates dataspace", "daemons",
    "runtime bootstrap sync_child backup", "ui", "api", "client client_types sdk_login credentials", "appdev",
    "cli demo",
    "twinengine",
)]
# Arrows up the layers, each with its reason; the aim is none.
KNOWN_ARROWS_UP = {
    ("lake", "workflows"),  # lake.grants asks workflows.service whether data a run wrote may be read
    ("workers", "ml"),  # the worker process hosts training tasks and served models (workers._child)
    ("workers", "twinengine"),  # the sandbox mounts the folder the engine was imported from
}


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


def _package_arrows() -> set[tuple[str, str]]:
    arrows = set()
    for source, target in _graph().edges:
        top_source, top_target = source.split(".")[:2][-1], target.split(".")[:2][-1]
        if top_source != top_target:
            arrows.add((top_source, top_target))
    return arrows


def test_every_package_has_a_layer() -> None:
    tops = {name.split(".")[:2][-1] for name in _modules()}
    placed = [name for layer in LAYERS for name in layer]
    assert len(placed) == len(set(placed)), "a package in two layers"
    assert tops == set(placed), f"place in LAYERS: {sorted(tops - set(placed))}; gone: {sorted(set(placed) - tops)}"


def test_no_new_arrow_up_the_layers() -> None:
    rank = {name: i for i, layer in enumerate(LAYERS) for name in layer}
    up = {(a, b) for a, b in _package_arrows() if rank[b] > rank[a]}
    assert up <= KNOWN_ARROWS_UP, f"imports up the layers (invert or move them): {sorted(up - KNOWN_ARROWS_UP)}"


def test_the_check_sees_a_lazy_import() -> None:
    """The import reader finds an import inside a function, so a circle made that way cannot hide."""
    modules = _modules()
    assert "twinengine.twins.schemas" in _imports("twinengine.app._context", modules["twinengine.app._context"],
                                                  modules)
