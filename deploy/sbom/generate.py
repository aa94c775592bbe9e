"""Write the wheel's software bill of materials and the licence of every dependency.

    .venv/bin/python deploy/sbom/generate.py            # after a change to the dependencies or constraints.txt

It builds the wheel, installs it with its pinned dependencies (constraints.txt, no extras: what `pip install
twinengine` brings) into a scratch virtualenv, and has CycloneDX's own tool (`cyclonedx-py environment`, from
PyPI's cyclonedx-bom) describe that environment. Out come ``deploy/sbom/twinengine-wheel.cdx.json`` (CycloneDX
1.6, reproducible) and ``deploy/licences.md`` (every package, its version and licence, with the copyleft ones
named and why they may be there). tests/e2e/test_wheel.py checks that both are in step with the dependencies
and that no GPL code is in the engine's own distribution.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
SBOM = REPO / "deploy" / "sbom" / "twinengine-wheel.cdx.json"
LICENCES = REPO / "deploy" / "licences.md"
# Strong copyleft: not allowed in the wheel's dependencies (LGPL, MPL and the like are: used unmodified, as
# separate libraries the engine imports).
FORBIDDEN = ("GPL-2.0", "GPL-3.0", "AGPL", "GNU General Public License", "GNU Affero", "GPLv2", "GPLv3")
# Found in the wheel's dependencies, each with where it comes from; the check fails on any other.
KNOWN_GPL = {
    "yprov4wfs": "GPL-3.0, a required dependency of openeo-pg-parser-networkx (the openEO graph parser), whose "
                 "graph.py imports it. The engine loads only the parser's schema, without graph.py, so yprov4wfs is "
                 "installed beside the wheel but never imported (tests/unit/test_openeo_schema.py), and the image "
                 "leaves it out (docs/deploy.md).",
}
WEAK = ("LGPL", "GNU Lesser", "GNU Library", "MPL", "Mozilla Public", "EPL", "Eclipse Public")


def licence_of(component: dict[str, Any]) -> str:
    """A component's licence as the SBOM has it: SPDX ids or expressions, else the declared names."""
    found = []
    for entry in component.get("licenses", []):
        if "expression" in entry:
            found.append(entry["expression"])
        else:
            licence = entry.get("license", {})
            found.append(licence.get("id") or licence.get("name") or "")
    return " AND ".join(sorted({f for f in found if f})) or "unknown"


def strong_copyleft(licence: str) -> bool:
    """GPL or AGPL with no other licence to choose (``LGPL`` and ``GPL-2.0 OR MIT``-like choices pass)."""
    if " OR " in licence or "LGPL" in licence or "Lesser" in licence or "Library" in licence:
        return False
    return any(word in licence for word in FORBIDDEN)


def components(sbom: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"].lower(): c for c in sbom.get("components", [])}


def build_environment(folder: Path) -> Path:
    """The wheel and its pinned dependencies in a new virtualenv under ``folder``; returns its Python."""
    dist = folder / "dist"
    subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--wheel", "--outdir", str(dist), str(REPO)],
                   check=True, capture_output=True)
    uv = shutil.which("uv", path=str(Path(sys.executable).parent)) or "uv"
    venv = folder / "venv"
    subprocess.run([uv, "venv", "--quiet", "--python", sys.executable, str(venv)], check=True)
    links = [f"--find-links={p}" for p in find_links()]
    wheel = next(dist.glob("twinengine-*.whl"))
    subprocess.run([uv, "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"), "-c",
                    str(REPO / "constraints.txt"), *links, str(wheel)], check=True)
    return venv / "bin" / "python"


def declared(python: Path) -> dict[str, str]:
    """What each installed package's metadata says of its licence where the SBOM found no SPDX form (a free
    text ``License`` field, or the licence classifiers)."""
    script = ("import json, importlib.metadata as m\n"
              "out = {}\n"
              "for d in m.distributions():\n"
              "    meta = d.metadata\n"
              "    text = (meta.get('License-Expression') or meta.get('License') or '').strip().splitlines()\n"
              "    classes = [c.split(' :: ')[-1] for c in meta.get_all('Classifier') or []\n"
              "               if c.startswith('License')]\n"
              "    out[meta['Name'].lower()] = (text[0][:80] if text else '') or ' AND '.join(classes)\n"
              "print(json.dumps(out))\n")
    done = subprocess.run([str(python), "-c", script], check=True, capture_output=True, text=True)
    return dict(json.loads(done.stdout))


def write_licences(sbom: dict[str, Any], metadata: dict[str, str]) -> None:
    for component in components(sbom).values():
        if licence_of(component) == "unknown" and metadata.get(component["name"].lower()):
            component["licenses"] = [{"license": {"name": metadata[component["name"].lower()]}}]
    rows = sorted(components(sbom).values(), key=lambda c: c["name"].lower())
    weak = [c for c in rows if any(w in licence_of(c) for w in WEAK) and not strong_copyleft(licence_of(c))]
    lines = [
        "# Licences of the wheel's dependencies",
        "",
        "Written by `deploy/sbom/generate.py` from the CycloneDX SBOM of the wheel installed with its pinned",
        "dependencies (constraints.txt, no extras): [sbom/twinengine-wheel.cdx.json](sbom/twinengine-wheel.cdx.json).",
        "twinengine itself is Apache-2.0, and its own files hold no GPL code (tests/e2e/test_wheel.py checks the",
        "wheel). Its dependencies are under permissive or weak-copyleft licences but for those named here, which",
        "the same test knows by name (a new one fails it):",
        "",
        *[f"- **{name}**: {why}" for name, why in sorted(KNOWN_GPL.items())],
        "",
        "The optional extras (ml, formats, slurm, calibration) and apps' own environments are not in this list: an",
        "app's environment holds what its manifest declares, under the app's own licence terms. Where a package's",
        "metadata gives no SPDX identifier, its declared licence text or classifier is shown.",
        "",
        f"Packages: {len(rows)}. Weak copyleft among them ({len(weak)}), used unmodified as separate libraries the",
        "engine imports, which their licences allow without extending to the engine: "
        + (", ".join(f"{c['name']} ({licence_of(c)})" for c in weak) or "none") + ".",
        "",
        "| package | version | licence |",
        "| --- | --- | --- |",
    ]
    lines += [f"| {c['name']} | {c.get('version', '')} | {licence_of(c).replace('|', '/')} |" for c in rows]
    LICENCES.write_text("\n".join(lines) + "\n")


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="twin-sbom-", dir=Path.home()) as scratch:
        python = build_environment(Path(scratch))
        tool = shutil.which("cyclonedx-py", path=str(Path(sys.executable).parent)) or "cyclonedx-py"
        SBOM.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([tool, "environment", "--pyproject", str(REPO / "pyproject.toml"), "--output-reproducible",
                        "--of", "JSON", "-o", str(SBOM), str(python)], check=True,
                       env={**os.environ, "SOURCE_DATE_EPOCH": "0"})
        sbom = json.loads(SBOM.read_text())
        write_licences(sbom, declared(python))
    forbidden = [c["name"] for c in components(sbom).values()
                 if strong_copyleft(licence_of(c)) and c["name"].lower() not in KNOWN_GPL]
    print(f"{SBOM.relative_to(REPO)}: {len(components(sbom))} components; {LICENCES.relative_to(REPO)} written")
    if forbidden:
        sys.exit(f"GPL/AGPL-only dependencies of the wheel: {', '.join(forbidden)}")


if __name__ == "__main__":
    main()


def find_links() -> list[str]:
    """Where pip finds local wheels (PyTorch's CPU build on these machines), as the Makefile passes them to uv."""
    configured = subprocess.run([sys.executable, "-m", "pip", "config", "get", "global.find-links"],
                                capture_output=True, text=True, check=False).stdout
    return (configured or os.environ.get("PIP_FIND_LINKS", "")).split()
