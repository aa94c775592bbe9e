"""Answers the Workflow Run RO-Crate competency questions (the SPARQL queries of the specification's
``docs/sparql``, kept as data in ``tests/data/rocrate/wrroc-sparql``, Apache-2.0) for crates, with rdflib, and
prints how many rows each query found, and the rows themselves, as JSON.

Run with the validator's interpreter (``TWIN_ROCRATE_VALIDATOR_PYTHON``, which has rdflib). The crate's metadata
names the RO-Crate 1.1 context by its URL: it is parsed with that URL replaced by the context's own content (the
copy kept as data), the same terms, so nothing is fetched.

    python rocrate_questions.py [--skip CQ11] CRATE.zip...   ->  {"CRATE": {"CQ1": [[row], ...], ...}, ...}

``--skip`` leaves a question out for these crates (rdflib evaluates CQ11's joins in their written order: on an
ensemble's crate, 190 formal parameters and 110 connections, it takes minutes).
"""

from __future__ import annotations

import json
import sys
import zipfile
from pathlib import Path

import rdflib

DATA = Path(__file__).resolve().parent / "data" / "rocrate"
CONTEXT_URL = "https://w3id.org/ro/crate/1.1/context"


def answers(crate: str, skip: frozenset[str] = frozenset()) -> dict[str, list[list[str]]]:
    with zipfile.ZipFile(crate) as archive:
        document = json.loads(archive.read("ro-crate-metadata.json"))
    context = json.loads((DATA / "ro-crate-1.1-context.jsonld").read_text())["@context"]
    given = document["@context"]
    document["@context"] = [context if c == CONTEXT_URL else c for c in (given if isinstance(given, list) else [given])]
    graph = rdflib.Graph()
    graph.parse(data=json.dumps(document), format="json-ld", base="https://example.org/crate/")
    questions = json.loads((DATA / "wrroc-sparql" / "competency-questions.json").read_text())["questions"]
    out: dict[str, list[list[str]]] = {}
    for name, entry in questions.items():
        if name in skip:
            continue
        rows: list[list[str]] = []
        for query in entry["queries"]:
            rows += [[("" if v is None else str(v)) for v in row]
                     for row in graph.query(query, initNs={"dct": rdflib.DCTERMS})]  # cq4 uses dct: undeclared
        out[name] = rows
    return out


if __name__ == "__main__":
    args = sys.argv[1:]
    skipped = frozenset(args[i + 1] for i, a in enumerate(args) if a == "--skip")
    crates = [a for i, a in enumerate(args) if a != "--skip" and (i == 0 or args[i - 1] != "--skip")]
    print(json.dumps({crate: answers(crate, skipped) for crate in crates}, indent=1))
