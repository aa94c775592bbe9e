"""The catalog's RDF form against the DCAT-AP 3.0.1 SHACL shapes.

What the provider's DSP endpoints answer (``POST <base>/catalog/request``, ``GET <base>/catalog/datasets/{id}``,
asked by the tests' own participant as in the TCK mirror) is read as a JSON-LD processor reads it: expanded with
pyld and the DSP 2025-1 contexts kept under ``tests/data/dspace/context`` (the loader serves those two and refuses
any other URL, so nothing is fetched), with the URL of the answer as its base, then loaded into rdflib and
validated with pyshacl against each file under ``tests/data/dcat-ap`` (no background knowledge, no inference).

Two violations follow from the DSP 2025-1 context itself, whatever a connector emits, and they are the only ones
allowed, each matched to the exact value the context makes (DataspaceProtocol issues 278 and 279):

- ``endpointURL`` is a plain term, so a ``DataService``'s ``dcat:endpointURL`` is a literal where DCAT-AP wants
  an IRI (``sh:nodeKind``, and ``sh:class rdfs:Resource`` in ``dcat-ap-SHACL.ttl``). The JSON Schema wants a
  string there and the term is ``@protected``, so a connector cannot write an IRI.
- ``format`` is coerced to ``@vocab`` with no vocabulary, so ``HttpData-PULL`` (and ``-PUSH``) becomes an IRI
  next to the document's URL, of no known class, where DCAT-AP wants a ``dct:MediaTypeOrExtent`` (``sh:class``).
"""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import pytest
import rdflib
from pyld import jsonld
from pyshacl import validate
from rdflib import namespace as vocab  # as a module: pytest probes the attributes of a module's names
from rdflib.term import Node

from dataspace_fixtures import CONTEXT, Participant, served_engine, served_peer
from twinengine.dataspace.protocol import BASE_PATH, FORMATS

DATA = Path(__file__).parents[1] / "data"
CONTEXTS = {"https://w3id.org/dspace/2025/1/context.jsonld": DATA / "dspace" / "context" / "dspace.jsonld",
            "https://w3id.org/dspace/2025/1/odrl-profile.jsonld": DATA / "dspace" / "context" / "odrl.jsonld"}
SHAPES = ("html/shacl/shapes.ttl", "html/shacl/range.ttl", "shacl/dcat-ap-SHACL.ttl")  # under tests/data/dcat-ap


def load_context(url: str, options: dict[str, Any] | None = None) -> dict[str, Any]:
    """The kept DSP contexts; any other URL is refused, so reading a document never reaches the network."""
    path = CONTEXTS.get(url)
    if path is None:
        raise jsonld.JsonLdError(f"{url} is not a context kept under tests/data/dspace", "jsonld.LoadDocumentError",
                                 code="loading document failed")
    return {"contentType": "application/ld+json", "contextUrl": None, "documentUrl": url,
            "document": json.loads(path.read_text())}


def rdf_of(document: dict[str, Any], url: str) -> rdflib.Graph:
    """``document`` as RDF, read as when it was fetched from ``url`` (its base: relative IRIs resolve there). A DSP
    answer has no named graph, so its N-Quads are N-Triples (rdflib's N-Quads parser warns of its own internals)."""
    quads = jsonld.to_rdf(document, {"format": "application/n-quads", "documentLoader": load_context, "base": url})
    return rdflib.Graph().parse(data=quads, format="nt")


@dataclass(frozen=True)
class Violation:
    shapes: str  # the file under tests/data/dcat-ap
    focus: Node
    path: Node | None
    component: Node
    value: Node | None

    def __str__(self) -> str:
        return f"{self.shapes}: {self.focus} {self.path} {self.component} (value {self.value!r})"


@functools.cache
def _shapes(name: str) -> rdflib.Graph:
    return rdflib.Graph().parse(DATA / "dcat-ap" / name, format="turtle")


def violations(graph: rdflib.Graph) -> list[Violation]:
    """Every result of severity Violation, for each file of shapes (their warnings are not asked for)."""
    found = []
    for name in SHAPES:
        _conforms, report, _text = validate(graph, shacl_graph=_shapes(name), inference="none")
        for result in report.subjects(vocab.RDF.type, vocab.SH.ValidationResult):
            if report.value(result, vocab.SH.resultSeverity) == vocab.SH.Violation:
                found.append(Violation(name, *(report.value(result, term) for term in (
                    vocab.SH.focusNode, vocab.SH.resultPath, vocab.SH.sourceConstraintComponent, vocab.SH.value))))
    return found


def from_the_dsp_context(violation: Violation, url: str, engine: Participant) -> bool:
    """One of the two violations the DSP 2025-1 context makes of every catalog (module docstring), with the very
    value it makes."""
    if violation.path == vocab.DCAT.endpointURL and violation.component in (
            vocab.SH.NodeKindConstraintComponent, vocab.SH.ClassConstraintComponent):
        return violation.value == rdflib.Literal(engine.url + BASE_PATH)
    if violation.path == vocab.DCTERMS.format and violation.component == vocab.SH.ClassConstraintComponent:
        return violation.value in {rdflib.URIRef(urljoin(url, kind)) for kind in FORMATS}
    return False


def engine_violations(document: dict[str, Any], url: str, engine: Participant) -> list[str]:
    return [str(v) for v in violations(rdf_of(document, url)) if not from_the_dsp_context(v, url, engine)]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, migrated_sqlite: Path) -> Iterator[dict[str, Any]]:
    """A provider with offers of several kinds (a described dataset under terms, a file with no description, a
    manual offer for the peer alone, one under an ODRL policy of its own, one the peer may not see), and the
    tests' own participant asking for its catalog."""
    with served_engine(tmp_path_factory.mktemp("dcat-ap"), migrated_sqlite) as engine, served_peer() as peer:
        engine.ok("POST", "/api/v1/lake/dids", json={"did": "reach:gauges", "type": "dataset"}, expect=201)
        engine.upload("reach:gauges/levels.csv", b"time,level\n2026-03-01T00:00:00Z,1.2\n", "reach:gauges")
        engine.upload("reach:gauges/rain.csv", b"time,rain\n2026-03-01T00:00:00Z,0.4\n", "reach:gauges")
        made = {name: engine.ok("POST", "/api/v1/dataspace/offers", expect=201, json=body) for name, body in {
            "described": {"did": "reach:gauges", "title": "River-reach gauge history",
                          "description": "Hourly water levels and rainfall of the river reach", "keywords":
                          ["hydrology", "gauges"], "terms": {"purposes": ["flood-forecasting"], "count": 3,
                                                             "attribution": True}},
            "file": {"did": "reach:gauges/levels.csv", "title": "Gauge levels", "terms": {
                "until": "2099-01-01T00:00:00Z", "days": 7}},
            "manual": {"did": "reach:gauges/rain.csv", "title": "Rainfall", "manual": True,
                       "terms": {"participants": [peer.did]}},
            "policy": {"did": "reach:gauges", "title": "Gauges in Europe", "policy": {
                "permission": [{"action": "use", "constraint": [{"leftOperand": "spatial", "operator": "isAnyOf",
                                                                 "rightOperand": ["EU", "CH"]}]}],
                "obligation": [{"action": "attribute"}]}},
            "hidden": {"did": "reach:gauges", "title": "For someone else", "terms": {
                "participants": ["did:web:elsewhere.example"]}},
        }.items()}
        yield {"engine": engine, "peer": peer, "offers": made}
        assert not peer.problems, "answers off their DSP schema:\n" + "\n".join(peer.problems)


def _catalog(world: dict[str, Any]) -> tuple[dict[str, Any], str]:
    engine, peer = world["engine"], world["peer"]
    path = f"{BASE_PATH}/catalog/request"
    response = peer.send(engine, path, {"@context": CONTEXT, "@type": "CatalogRequestMessage"})
    assert response.status_code == 200, response.text
    return response.json(), engine.url + path


def _dataset(world: dict[str, Any], dataset_id: str) -> tuple[dict[str, Any], str]:
    engine, peer = world["engine"], world["peer"]
    path = f"{BASE_PATH}/catalog/datasets/{dataset_id}"
    response = peer.send(engine, path, method="GET")
    assert response.status_code == 200, response.text
    return response.json(), engine.url + path


def test_the_catalog_meets_dcat_ap(world: dict[str, Any]) -> None:
    catalog, url = _catalog(world)
    offers = world["offers"]
    assert sorted(d["@id"] for d in catalog["dataset"]) == sorted(
        offers[name]["dataset_id"] for name in ("described", "file", "manual", "policy"))
    assert engine_violations(catalog, url, world["engine"]) == []


@pytest.mark.parametrize("kind", ["described", "file", "manual", "policy"])
def test_each_dataset_meets_dcat_ap(world: dict[str, Any], kind: str) -> None:
    dataset, url = _dataset(world, world["offers"][kind]["dataset_id"])
    assert engine_violations(dataset, url, world["engine"]) == []


def test_what_the_rdf_says(world: dict[str, Any]) -> None:
    """The facts DCAT-AP asks for are there, as the engine knows them: titles and descriptions (the offer's own, or
    a sentence naming the provider), the provider as publisher, the access URL of each distribution."""
    engine, offers = world["engine"], world["offers"]
    catalog, url = _catalog(world)
    graph = rdf_of(catalog, url)
    provider = rdflib.URIRef(engine.did)
    (node,) = graph.subjects(vocab.RDF.type, vocab.DCAT.Catalog)
    assert graph.value(node, vocab.DCTERMS.publisher) == provider
    assert graph.value(provider, vocab.FOAF.name) == rdflib.Literal(engine.did)
    assert (provider, vocab.RDF.type, vocab.FOAF.Agent) in graph
    described = rdflib.URIRef(offers["described"]["dataset_id"])
    assert graph.value(described, vocab.DCTERMS.description) == rdflib.Literal(
        "Hourly water levels and rainfall of the river reach")
    file = rdflib.URIRef(offers["file"]["dataset_id"])
    assert graph.value(file, vocab.DCTERMS.title) == rdflib.Literal("Gauge levels")
    assert engine.did in str(graph.value(file, vocab.DCTERMS.description))
    for distribution in graph.subjects(vocab.RDF.type, vocab.DCAT.Distribution):
        assert graph.value(distribution, vocab.DCAT.accessURL) == rdflib.URIRef(engine.url + BASE_PATH)


def test_the_dsp_context_makes_the_two_known_violations(world: dict[str, Any]) -> None:
    """The allowance above is no wider than the context's own doing: both kinds occur, with the values it makes,
    and nothing else is let through."""
    engine = world["engine"]
    catalog, url = _catalog(world)
    found = violations(rdf_of(catalog, url))
    allowed = [v for v in found if from_the_dsp_context(v, url, engine)]
    assert {(v.path, v.component) for v in allowed} == {
        (vocab.DCAT.endpointURL, vocab.SH.NodeKindConstraintComponent),
        (vocab.DCAT.endpointURL, vocab.SH.ClassConstraintComponent),
        (vocab.DCTERMS.format, vocab.SH.ClassConstraintComponent)}
    assert len(allowed) == len(found)


def _without(document: dict[str, Any], *keys: str | int) -> dict[str, Any]:
    """``document`` with the value at ``keys`` taken out; ``"*"`` walks every item of a list (the distributions
    share one access service: a title taken from one is still the node's through the other)."""
    broken = copy.deepcopy(document)

    def drop(inner: Any, rest: tuple[str | int, ...]) -> None:
        if rest[0] == "*":
            for item in inner:
                drop(item, rest[1:])
        elif len(rest) == 1:
            del inner[rest[0]]
        else:
            drop(inner[rest[0]], rest[1:])

    drop(broken, keys)
    return broken


@pytest.mark.parametrize(("where", "path"), [
    (("dct:title",), vocab.DCTERMS.title),
    (("dct:description",), vocab.DCTERMS.description),
    (("distribution", 0, "dcat:accessURL"), vocab.DCAT.accessURL),
    (("distribution", "*", "accessService", "dct:title"), vocab.DCTERMS.title),
    (("dct:publisher", "http://xmlns.com/foaf/0.1/name"), vocab.FOAF.name),
])
def test_a_dataset_missing_a_mandatory_property_is_a_violation(world: dict[str, Any], where: tuple[str | int, ...],
                                                               path: rdflib.URIRef) -> None:
    """The check can fail: a dataset answer with a mandatory property taken out has a violation naming it, in
    the base shapes and in the release's SHACL template alike."""
    dataset, url = _dataset(world, world["offers"]["described"]["dataset_id"])
    found = [v for v in violations(rdf_of(_without(dataset, *where), url))
             if not from_the_dsp_context(v, url, world["engine"])]
    assert {(v.shapes, v.path, v.component) for v in found} == {
        (name, path, vocab.SH.MinCountConstraintComponent) for name in ("html/shacl/shapes.ttl",
                                                                        "shacl/dcat-ap-SHACL.ttl")}


def test_a_catalog_without_its_publisher_is_a_violation(world: dict[str, Any]) -> None:
    catalog, url = _catalog(world)
    found = [str(v) for v in violations(rdf_of(_without(catalog, "dct:publisher"), url))
             if not from_the_dsp_context(v, url, world["engine"])]
    assert found and all(str(vocab.DCTERMS.publisher) in v for v in found), found


def test_no_context_but_the_kept_ones_is_loaded() -> None:
    document = {"@context": ["https://example.org/context.jsonld"], "@id": "urn:uuid:1", "title": "x"}
    with pytest.raises(jsonld.JsonLdError):
        rdf_of(document, "http://127.0.0.1/catalog")
