"""Lint, render and validate the chart offline, with each documented values file.

    python deploy/helm/check.py [--out DIR] [--checkov] [--versions 6]

Needs a Python with helm-python-sdk (Helm's own library: lint and template without a helm binary or a cluster)
and kubernetes-validate (the Kubernetes OpenAPI schemas of each minor version); --checkov also runs checkov
over the rendered manifests. Writes DIR/<values file>.yaml (what `helm template` prints) and exits non-zero on
the first finding, naming it.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

CHART = Path(__file__).resolve().parent / "twinengine"
VALUES_FILES = ("values.yaml", "values-small.yaml")
RELEASE, NAMESPACE = "twin", "twinengine"


def render(values_file: str) -> str:
    """The chart rendered as `helm template twin deploy/helm/twinengine -f FILE` would print it, after
    `helm lint --strict` with the same values (warnings are findings; the one "icon is recommended" note is
    information)."""
    from helm_python import chart

    values = chart.values_from_yaml((CHART / values_file).read_text())
    report = chart.lint(str(CHART), values, strict=True, namespace=NAMESPACE)
    findings = [m for m in report["messages"] if m["severity"] >= 2] + report["errors"]
    if findings:
        raise SystemExit(f"helm lint ({values_file}): {findings}")
    loaded = chart.Chart.load(str(CHART))
    loaded.validate_schema(values)
    manifests = loaded.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    return "".join(f"---\n# Source: {path}\n{text.strip()}\n" for path, text in sorted(manifests.items())
                   if not path.endswith("NOTES.txt") and text.strip())


def kubernetes_versions(count: int) -> list[str]:
    """The newest ``count`` Kubernetes minor versions kubernetes-validate has schemas of."""
    from kubernetes_validate import utils

    return sorted(set(utils.all_versions()), key=lambda v: tuple(int(x) for x in v.split(".")))[-count:]


def validate(text: str, name: str, versions: list[str]) -> int:
    """Each rendered object against each version's schema, strictly (no property a version does not know);
    returns how many objects were checked."""
    import yaml
    from kubernetes_validate import utils

    objects = [o for o in yaml.safe_load_all(text) if o]
    for version in versions:
        for obj in objects:
            try:
                utils.validate(obj, version, strict=True)
            except utils.ValidationError as exc:
                where = ".".join(str(p) for p in exc.path)
                raise SystemExit(f"kubernetes-validate {version} {name} {obj['kind']}/{obj['metadata']['name']}: "
                                 f"{where}: {exc.message}") from None
    return len(objects)


def checkov(folder: Path) -> dict[str, int]:
    # as a module: checkov's own script starts with a #! line, which no kernel reads when the virtualenv's path
    # holds a space
    done = subprocess.run([sys.executable, "-m", "checkov.main", "--quiet", "--compact", "--skip-download",
                           "--framework", "kubernetes", "--output", "json", "--directory", str(folder)],
                          capture_output=True, text=True, check=False)
    reports = json.loads(done.stdout)
    summary = {"passed": 0, "failed": 0, "skipped": 0}
    for report in reports if isinstance(reports, list) else [reports]:
        for key in summary:
            summary[key] += report.get("summary", {}).get(key, 0)
        failed = report.get("results", {}).get("failed_checks", [])
        if failed:
            lines = [f"{c['check_id']} {c['check_name']} ({c['resource']})" for c in failed]
            raise SystemExit("checkov:\n" + "\n".join(lines))
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=None, help="where the rendered manifests go (default: temp)")
    parser.add_argument("--versions", type=int, default=6, help="Kubernetes minor versions to validate against")
    parser.add_argument("--checkov", action="store_true", help="scan the rendered manifests with checkov")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="twinengine-chart-"))
    out.mkdir(parents=True, exist_ok=True)
    versions = kubernetes_versions(args.versions)
    for values_file in VALUES_FILES:
        text = render(values_file)
        (out / values_file).write_text(text)
        count = validate(text, values_file, versions)
        print(f"{values_file}: helm lint --strict, helm template ({count} objects), kubernetes-validate --strict "
              f"{', '.join(versions)}: ok")
    if args.checkov:
        print(f"checkov: {checkov(out)}")


if __name__ == "__main__":
    main()
