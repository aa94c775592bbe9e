"""The deployment artefacts of deploy/: the image's Containerfile and build script, the compose file and the Helm
chart say what a provider relies on (a non-root user, probes on /health and /health/ready, the data dir as a
volume, secrets from files, two engines sharing one store). The checks by the tools themselves (hadolint,
check-jsonschema, helm lint and template, kubernetes-validate) run where a Python with them is named by
TWIN_DEPLOY_TOOLS (a virtualenv folder) or is this one, and skip with the reason otherwise; building the image
and asking it for /health runs only with TWIN_TEST_IMAGE=1 where podman works (minutes)."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from helpers import REPO, free_port, unavailable
from streams_fixtures import eventually
from twinengine._version import __version__

DEPLOY = REPO / "deploy"
CHART = DEPLOY / "helm" / "twinengine"
VALUES_FILES = ("values.yaml", "values-small.yaml")


def instructions(text: str) -> list[tuple[str, str]]:
    """A Containerfile's instructions as (keyword, arguments), continuation lines joined, comments dropped."""
    lines, current = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        lines.append(current + line)
        current = ""
    return [(keyword.upper(), rest.strip()) for keyword, _, rest in (line.partition(" ") for line in lines)]


def final_stage() -> list[tuple[str, str]]:
    steps = instructions((DEPLOY / "Containerfile").read_text())
    last = max(i for i, (keyword, _) in enumerate(steps) if keyword == "FROM")
    return steps[last:]


def tool_python(*modules: str) -> str:
    """A Python that imports ``modules``: TWIN_DEPLOY_TOOLS's, else this one; skips with the reason if none."""
    folder = os.environ.get("TWIN_DEPLOY_TOOLS")
    if folder:
        python = str(Path(folder) / "bin" / "python")
        probe = subprocess.run([python, "-c", f"import {', '.join(modules)}"], capture_output=True, check=False)
        if probe.returncode == 0:
            return python
        unavailable("deploy-tools", f"TWIN_DEPLOY_TOOLS={folder} does not import {', '.join(modules)}")
    if all(importlib.util.find_spec(m) is not None for m in modules):
        return sys.executable
    unavailable("deploy-tools", f"{', '.join(modules)} not installed: set TWIN_DEPLOY_TOOLS to a virtualenv with "
                                "them (docs/deploy.md, Kubernetes)")


def tool(name: str) -> str:
    """An executable of TWIN_DEPLOY_TOOLS's virtualenv or of the PATH; skips with the reason if neither."""
    folder = os.environ.get("TWIN_DEPLOY_TOOLS")
    found = shutil.which(name, path=str(Path(folder) / "bin")) if folder else None
    found = found or shutil.which(name)
    if found is None:
        unavailable("deploy-tools", f"{name} not found: set TWIN_DEPLOY_TOOLS to a virtualenv with it (docs/deploy.md)")
    assert found is not None
    return found


# --- the image ---------------------------------------------------------------------------------------------


def test_the_image_runs_twin_serve_as_a_user_of_its_own_with_a_health_check_and_a_data_volume() -> None:
    steps = final_stage()
    keywords = [k for k, _ in steps]
    assert "RUN" not in keywords, "the final stage runs nothing: the root file system comes ready"
    users = [args for k, args in steps if k == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0"), users
    (check,) = [args for k, args in steps if k == "HEALTHCHECK"]
    assert "CMD" in check and "/health" in check and "--start-period" in check
    (volume,) = [args for k, args in steps if k == "VOLUME"]
    assert "/var/lib/twinengine" in json.loads(volume)
    (entry,) = [json.loads(args) for k, args in steps if k == "ENTRYPOINT"]
    assert entry[-2:] == ["/opt/twinengine/bin/twin", "serve"] and "/usr/bin/tini" in entry, entry
    env = " ".join(args for k, args in steps if k == "ENV")
    assert {"TWIN_DATA_DIR=/var/lib/twinengine", "TWIN_HOST=0.0.0.0", "TWIN_PORT=8000"} <= set(env.split())


def test_the_image_is_built_from_debian_packages_with_no_compiler_and_reproducibly() -> None:
    steps = instructions((DEPLOY / "Containerfile").read_text())
    assert steps[0] == ("FROM", "scratch AS base") and steps[1] == ("ADD", "rootfs.tar /")
    install = " ".join(args for k, args in steps if k == "RUN")
    assert "--no-index" in install and "--no-deps" in install and "pip', 'check'" in install  # offline, as resolved
    script = (DEPLOY / "build-image.sh").read_text()
    assert '-c "$REPO/constraints.txt" "$WHEEL' in script  # the set resolved at the release's pins
    assert 'rm -f "$WORKDIR"/context/wheels/yprov4wfs-*.whl' in script  # GPL-3.0, never imported: left out
    (include,) = re.findall(r"--include=(\S+)", script)
    packages = set(include.split(","))
    assert {"python3", "bubblewrap", "ca-certificates"} <= packages
    assert not packages & {"gcc", "g++", "build-essential", "python3-dev", "cpp", "clang"}, packages
    assert "mmdebstrap" in script and "bookworm" in script and "--only-binary=:all:" in script
    for needed in ("--isolation chroot", "--timestamp", "SOURCE_DATE_EPOCH", "var/cache/ldconfig/aux-cache",
                   "var/log/dpkg.log", "var/cache/apt"):
        assert needed in script, needed
    # no ML extra unless asked for; torch, when it is, only at its pin
    assert re.search(r'TWIN_EXTRAS=\$\{TWIN_EXTRAS:-\}', script)
    assert "torch==2.13.0" in (REPO / "constraints.txt").read_text()


def test_hadolint_finds_nothing_in_the_containerfile() -> None:
    hadolint = tool("hadolint")
    done = subprocess.run([hadolint, str(DEPLOY / "Containerfile")], capture_output=True, text=True,
                          timeout=30, check=False)
    assert done.returncode == 0 and not done.stdout.strip(), done.stdout + done.stderr


def test_twin_env_reads_settings_from_files(tmp_path: Path) -> None:
    secret = tmp_path / "database-url"
    secret.write_text("postgresql+psycopg://twin:s3cret@db:5432/twin\n")
    env = {"PATH": os.environ["PATH"], "TWIN_DATABASE_URL_FILE": str(secret), "TWIN_PORT": "8000"}
    done = subprocess.run(["sh", str(DEPLOY / "twin-env"), "env"], env=env, capture_output=True, text=True,
                          timeout=10, check=True)
    seen = dict(line.split("=", 1) for line in done.stdout.splitlines() if line.startswith("TWIN_"))
    assert seen == {"TWIN_DATABASE_URL": "postgresql+psycopg://twin:s3cret@db:5432/twin", "TWIN_PORT": "8000"}
    env["TWIN_DATABASE_URL_FILE"] = str(tmp_path / "missing")
    refused = subprocess.run(["sh", str(DEPLOY / "twin-env"), "env"], env=env, capture_output=True, text=True,
                             timeout=10, check=False)
    assert refused.returncode == 1 and "cannot be read" in refused.stderr and "TWIN_" not in refused.stdout


# --- compose -----------------------------------------------------------------------------------------------


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return loaded


def test_compose_runs_two_engines_on_postgresql_nats_and_s3_each_with_a_health_check() -> None:
    spec = compose()
    services = spec["services"]
    assert {"postgres", "nats", "s3"} <= set(services)
    engines = {name: s for name, s in services.items() if "twinengine" in s["image"]}
    assert len(engines) >= 2, sorted(services)
    for name, service in services.items():
        assert service.get("healthcheck", {}).get("test"), f"{name} has no health check"
    for engine in engines.values():
        env = engine["environment"]
        assert env["TWIN_ENGINES_SHARE_STORE"] == "true" and env["TWIN_STREAM_BACKEND"] == "nats"
        assert "TWIN_DATABASE_URL" not in env and env["TWIN_DATABASE_URL_FILE"].startswith("/run/secrets/")
        assert "/health/ready" in " ".join(engine["healthcheck"]["test"])
        assert set(engine["depends_on"]) == {"postgres", "nats", "s3"}
        assert all(c["condition"] == "service_healthy" for c in engine["depends_on"].values())
        assert all(p.startswith("127.0.0.1:") for p in engine["ports"]), "published on loopback only"
    keys = [[v for v in e["volumes"] if v.endswith(":/var/lib/twinengine/keys")] for e in engines.values()]
    assert all(k == keys[0] for k in keys) and keys[0], "the engines share the issuer's keys"
    data = [next(v for v in e["volumes"] if v.endswith(":/var/lib/twinengine")) for e in engines.values()]
    assert len(set(data)) == len(data), "each engine has a data dir of its own"


def test_compose_volumes_are_named_and_secrets_are_files() -> None:
    spec = compose()
    declared = set(spec["volumes"])
    used = set()
    for name, service in spec["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            assert not source.startswith(("/", ".", "~", "$")), f"{name}: a host path ({volume})"
            used.add(source)
        for secret in service.get("secrets", []):
            assert (secret["source"] if isinstance(secret, dict) else secret) in spec["secrets"]
        env = service.get("environment", {})
        assert not [k for k in env if re.search("PASSWORD|SECRET|TOKEN", k) and not k.endswith("_FILE")], name
    assert used == declared
    assert spec["secrets"] and all(set(s) == {"file"} for s in spec["secrets"].values())
    ignored = (DEPLOY / "secrets" / ".gitignore").read_text().split()
    assert "*" in ignored, "the secrets compose-secrets.sh writes are never committed"


def test_compose_secrets_script_writes_private_files_once(tmp_path: Path) -> None:
    folder = tmp_path / "secrets"
    env = {"PATH": os.environ["PATH"], "TWIN_SECRETS_DIR": str(folder)}
    subprocess.run(["bash", str(DEPLOY / "compose-secrets.sh")], env=env, capture_output=True, timeout=10, check=True)
    names = {s["file"].rsplit("/", 1)[1] for s in compose()["secrets"].values()}
    assert {p.name for p in folder.iterdir()} == names
    assert folder.stat().st_mode & 0o077 == 0
    password = (folder / "postgres-password").read_text()
    assert len(password) >= 32 and f":{password}@postgres:5432/" in (folder / "database-url").read_text()
    json.loads((folder / "s3.json").read_text())
    subprocess.run(["bash", str(DEPLOY / "compose-secrets.sh")], env=env, capture_output=True, timeout=10, check=True)
    assert (folder / "postgres-password").read_text() == password, "kept, not replaced"


def test_compose_file_meets_the_compose_specification() -> None:
    check = tool("check-jsonschema")
    done = subprocess.run([check, "--builtin-schema", "vendor.compose-spec", str(DEPLOY / "compose.yaml")],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


# --- the chart ---------------------------------------------------------------------------------------------


def merged_values(values_file: str) -> dict[str, Any]:
    """values.yaml with ``values_file`` over it, as Helm merges them (maps merged, null removes a key)."""
    def merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
        out = dict(base)
        for key, value in top.items():
            if value is None:
                out.pop(key, None)
            elif isinstance(value, dict) and isinstance(out.get(key), dict):
                out[key] = merge(out[key], value)
            else:
                out[key] = value
        return out

    base = yaml.safe_load((CHART / "values.yaml").read_text())
    return base if values_file == "values.yaml" else merge(base, yaml.safe_load((CHART / values_file).read_text()))


@pytest.mark.parametrize("values_file", VALUES_FILES)
def test_each_values_file_meets_the_charts_schema(values_file: str) -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    values = merged_values(values_file)
    jsonschema.validate(values, schema)
    if values["replicas"] > 1:
        assert values["store"]["enginesShareStore"] and values["streams"]["backend"] == "nats"
    secrets = [k for k in values.get("settings", {}) if re.search("PASSWORD|SECRET|DATABASE_URL|TOKEN", k)]
    assert not secrets, "secrets are referenced (store.databaseUrlSecret, secretSettings), never values"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**values, "settings": {"TWIN_DATABASE_URL": "postgresql://u:p@h/d"}}, schema)


def test_the_default_values_run_two_engines_with_a_disruption_budget() -> None:
    values = merged_values("values.yaml")
    assert values["replicas"] >= 2 and values["podDisruptionBudget"]["enabled"]
    assert values["networkPolicy"]["enabled"] and values["store"]["databaseUrlSecret"]["name"]
    assert values["keys"]["accessMode"] == "ReadWriteMany"


def test_the_chart_renders_and_validates_for_the_last_six_kubernetes_versions(tmp_path: Path) -> None:
    python = tool_python("helm_python", "kubernetes_validate")
    done = subprocess.run([python, str(DEPLOY / "helm" / "check.py"), "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count(": ok") == len(VALUES_FILES), done.stdout
    default = list(yaml.safe_load_all((tmp_path / "values.yaml").read_text()))
    kinds = {o["kind"] for o in default if o}
    assert {"Deployment", "Service", "PodDisruptionBudget", "NetworkPolicy", "ServiceAccount"} <= kinds
    (deployment,) = [o for o in default if o and o["kind"] == "Deployment"]
    spec = deployment["spec"]["template"]["spec"]
    (engine,) = spec["containers"]
    assert deployment["spec"]["replicas"] >= 2
    assert engine["livenessProbe"]["httpGet"]["path"] == "/health"
    assert engine["readinessProbe"]["httpGet"]["path"] == "/health/ready"
    assert engine["startupProbe"]["httpGet"]["path"] == "/health"
    assert engine["resources"]["requests"] and engine["resources"]["limits"]
    assert engine["securityContext"]["readOnlyRootFilesystem"] and spec["securityContext"]["runAsNonRoot"]
    env = {e["name"]: e.get("value") for e in engine["env"]}
    assert env["TWIN_ENGINES_SHARE_STORE"] == "true" and "TWIN_DATABASE_URL" not in env
    assert not spec["automountServiceAccountToken"]


def test_checkov_finds_no_failed_check_in_the_chart(tmp_path: Path) -> None:
    """Every render of the chart scanned by checkov: 0 failed checks, each skip a waiver written in the chart."""
    python = tool_python("helm_python", "kubernetes_validate", "checkov")
    done = subprocess.run([python, str(DEPLOY / "helm" / "check.py"), "--checkov", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    found = re.search(r"checkov: \{'passed': (\d+), 'failed': (\d+), 'skipped': (\d+)\}", done.stdout)
    assert found, done.stdout
    passed, failed, skipped = map(int, found.groups())
    assert passed > 100 and failed == 0, done.stdout
    waivers = sum(text.count("checkov.io/skip") for text in (p.read_text() for p in CHART.rglob("*.yaml")))
    assert skipped <= waivers * len(VALUES_FILES), (skipped, waivers)


# --- the image, built and run (opt-in: minutes) --------------------------------------------------------------


def podman_works() -> str | None:
    """Why the image cannot be built here, or None."""
    for needed in ("podman", "mmdebstrap"):
        if shutil.which(needed) is None:
            return f"{needed} is not installed"
    info = subprocess.run(["podman", "info"], capture_output=True, text=True, timeout=60, check=False)
    return None if info.returncode == 0 else f"podman does not work here: {info.stderr.strip()[-300:]}"


@pytest.fixture(scope="module")
def engine_image(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The engine's image, built once for this file's tests by deploy/build-image.sh (minutes), or the one
    TWIN_TEST_IMAGE_TAG names, built by an earlier step (``.ci/run`` builds it while the tools install) whose
    WORKDIR TWIN_TEST_IMAGE_WORKDIR names (its SBOM and wheels are checked as this fixture's own would be)."""
    if os.environ.get("TWIN_TEST_IMAGE", "") in ("", "0"):
        pytest.skip("building the image takes minutes: set TWIN_TEST_IMAGE=1 to build it and run it")
    reason = podman_works()
    if reason is not None:
        unavailable("image", reason)
    if os.environ.get("TWIN_TEST_IMAGE_TAG"):
        built_earlier()
        earlier = os.environ.get("TWIN_TEST_IMAGE_WORKDIR")
        if earlier:
            _built_in(Path(earlier))
        return os.environ["TWIN_TEST_IMAGE_TAG"]
    tag = f"localhost/twinengine-test:{__version__}"
    workdir = tmp_path_factory.mktemp("image") / "context"
    env = {**os.environ, "TAG": tag, "WORKDIR": str(workdir)}
    build = subprocess.run(["bash", str(DEPLOY / "build-image.sh")], env=env, capture_output=True, text=True,
                           timeout=3000, check=False)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    _built_in(workdir)
    return tag


BUILT: dict[str, Path] = {}  # what the build of engine_image wrote beside the image: its SBOM, its wheels


def _built_in(workdir: Path) -> None:
    """What deploy/build-image.sh wrote in its WORKDIR beside the image: the SBOM, the wheels it installed."""
    BUILT.update(sbom=workdir / "twinengine-image.cdx.json", wheels=workdir / "context" / "wheels")


def built_earlier() -> None:
    """Wait for the images an earlier step builds in the background (``.ci/run``): it writes its exit status to
    the file TWIN_TEST_IMAGE_STATUS names when it ends, and its log beside it."""
    status = os.environ.get("TWIN_TEST_IMAGE_STATUS")
    if not status:
        return
    path = Path(status)
    wait_for(lambda: path.exists() and path.read_text().strip() != "", timeout=3000,
             what=f"the images built in the background ({path})")
    if path.read_text().strip() != "0":
        log = path.with_name("images.log")
        pytest.fail(f"building the images failed:\n{log.read_text()[-4000:] if log.exists() else '(no log)'}",
                    pytrace=False)


def run_limits() -> list[str]:
    """``--ulimit`` options within this host's hard limits (some hosts refuse a container podman's defaults)."""
    import resource

    files = min(resource.getrlimit(resource.RLIMIT_NOFILE)[1], 65536)
    processes = min(resource.getrlimit(resource.RLIMIT_NPROC)[1], 4096)
    return [f"nofile={files}:{files}", f"nproc={processes}:{processes}"]


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_the_image_builds_and_answers_health(engine_image: str) -> None:
    port = free_port()
    limits = [option for limit in run_limits() for option in ("--ulimit", limit)]
    run = ["podman", "run", "--rm", "--detach", "--runtime", os.environ.get("TWIN_TEST_RUNTIME", "runc"), *limits,
           "--publish", f"127.0.0.1:{port}:8000", engine_image]
    container = subprocess.run(run, capture_output=True, text=True, timeout=120, check=True).stdout.strip()
    try:
        deadline, answer = time.monotonic() + 180, None
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as response:
                    answer = json.loads(response.read())
                break
            except (urllib.error.URLError, ConnectionError):
                time.sleep(2)
        def logs() -> str:
            done = subprocess.run(["podman", "logs", container], capture_output=True, text=True, timeout=30,
                                  check=False)
            return done.stdout + done.stderr

        assert answer is not None, f"no /health answer: {shlex.join(run)}\n{logs()[-4000:]}"
        assert answer["status"] == "ok" and answer["version"] == __version__, answer
        # the first start's lines may reach the container's log a moment after /health answers (a loaded host)
        first = "first start, created the identity 'admin'"
        assert eventually(lambda: first in logs(), timeout=60, interval=1.0), logs()[-4000:]
    finally:
        subprocess.run(["podman", "rm", "--force", container], capture_output=True, timeout=60, check=False)


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def in_image(image: str, *command: str) -> str:
    """What ``command`` prints inside a container of ``image`` with no network."""
    limits = [option for limit in run_limits() for option in ("--ulimit", limit)]
    done = subprocess.run(["podman", "run", "--rm", "--network", "none", "--runtime",
                           os.environ.get("TWIN_TEST_RUNTIME", "runc"), *limits, "--entrypoint", command[0], image,
                           *command[1:]], capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return done.stdout


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_the_image_s_bill_of_materials_lists_what_it_holds_with_no_gpl_in_the_engine_s_layer(
        engine_image: str, tmp_path: Path) -> None:
    """The CycloneDX SBOM build-image.sh writes beside the image, against what the image's own pip and dpkg say it
    holds; made again from the image podman saves, it is the same document (it is read from the image alone)."""
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    archive, again = tmp_path / "image.tar", tmp_path / "again.cdx.json"
    subprocess.run(["podman", "save", "--format", "docker-archive", "-o", str(archive), engine_image],
                   check=True, capture_output=True, timeout=600)
    wheels = BUILT.get("wheels") or tmp_path  # an image built by an earlier step: no wheels to hash
    made = subprocess.run([sys.executable, str(DEPLOY / "sbom" / "image.py"), str(archive), str(wheels), str(again)],
                          capture_output=True, text=True, timeout=600, check=False)
    assert made.returncode == 0, made.stdout + made.stderr
    archive.unlink()
    if "sbom" in BUILT:
        assert json.loads(BUILT["sbom"].read_text())["components"] == json.loads(again.read_text())["components"]
    text = BUILT["sbom"].read_text() if "sbom" in BUILT else again.read_text()
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(text) is None
    sbom = json.loads(text)
    python = {_normal(c["name"]): c for c in sbom["components"] if c["bom-ref"].startswith("pypi:")}
    debian = {c["name"]: c for c in sbom["components"] if c["bom-ref"].startswith("deb:")}

    # what the image's own tools say it holds
    pip = json.loads(in_image(engine_image, "/opt/twinengine/bin/python", "-m", "pip", "list", "--format", "json"))
    assert {_normal(p["name"]): p["version"] for p in pip} == {n: c["version"] for n, c in python.items()}
    dpkg = in_image(engine_image, "dpkg-query", "-W", "-f", "${db:Status-Abbrev} ${Package} ${Version}\n")
    installed = {line.split()[1]: line.split()[2] for line in dpkg.splitlines() if line.startswith("ii")}
    assert installed == {n: c["version"] for n, c in debian.items()}

    image = sbom["metadata"]["component"]
    assert (image["type"], image["name"], image["version"]) == ("container", "twinengine", __version__)
    image_id = subprocess.run(["podman", "image", "inspect", "--format", "{{.Id}}", engine_image], check=True,
                              capture_output=True, text=True, timeout=60).stdout.strip()
    assert {"name": "oci:image:id", "value": f"sha256:{image_id}"} in image["properties"]
    assert python["twinengine"]["version"] == __version__ and "openeo-pg-parser-networkx" in python
    assert "yprov4wfs" not in python  # GPL-3.0, left out: the engine never imports it (workflows/openeo_schema.py)
    if "wheels" in BUILT:
        (wheel,) = BUILT["wheels"].glob("twinengine-*.whl")
        assert python["twinengine"]["hashes"] == [{"alg": "SHA-256",
                                                   "content": hashlib.sha256(wheel.read_bytes()).hexdigest()}]
    generate = importlib.util.spec_from_file_location("sbom_generate", DEPLOY / "sbom" / "generate.py")
    module = importlib.util.module_from_spec(generate)  # type: ignore[arg-type]
    generate.loader.exec_module(module)  # type: ignore[union-attr]
    words = {n: module.licence_of(c) for n, c in python.items()}
    assert not [n for n, w in words.items() if module.strong_copyleft(w)], words
    assert sum(1 for w in words.values() if w != "unknown") >= 0.9 * len(words), "most name their licence"
    assert {"python3.11", "bubblewrap", "tini", "ca-certificates"} <= debian.keys()
    assert debian["bubblewrap"]["licenses"] and debian["bubblewrap"]["purl"].startswith("pkg:deb/debian/bubblewrap@")


# --- compose, brought up (opt-in with the image: minutes) ------------------------------------------------------

READINGS, BATCH = 200, 5
RUN_GRAPH = {"process_graph": {"sum": {"process_id": "add", "arguments": {"x": 40, "y": 2}, "result": True}}}


def podman_compose() -> str:
    """podman-compose: TWIN_PODMAN_COMPOSE's, TWIN_DEPLOY_TOOLS's or the PATH's; skips if none."""
    folder = os.environ.get("TWIN_DEPLOY_TOOLS")
    found = os.environ.get("TWIN_PODMAN_COMPOSE") or (shutil.which("podman-compose", path=str(Path(folder) / "bin"))
                                                      if folder else None) or shutil.which("podman-compose")
    if found is None:
        unavailable("deploy-tools", "podman-compose is not installed (pip install podman-compose, or "
                                    "TWIN_PODMAN_COMPOSE)")
    assert found is not None
    return str(Path(found).absolute())


class Stack:
    """deploy/compose.yaml with the Debian stand-ins, as one project of podman-compose on this host."""

    def __init__(self, compose: str, project: str, files: list[Path], env: dict[str, str]) -> None:
        self.command = [compose, "--project-name", project, *(a for f in files for a in ("-f", str(f)))]
        self.project, self.env = project, env
        self.healthy: dict[str, bool] = {}

    def __call__(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*self.command, *args], env=self.env, capture_output=True, text=True, timeout=timeout,
                              cwd=DEPLOY, check=False)

    def container(self, service: str) -> str:
        return f"{self.project}_{service}_1"

    def podman(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["podman", *args], env=self.env, capture_output=True, text=True, timeout=timeout,
                              check=False)

    def check_health(self, services: list[str]) -> None:
        """Run each service's health check once (podman runs them from systemd timers; a host without systemd
        has none, so the test runs them) and note which passed."""
        for service in services:
            checked = self.podman("healthcheck", "run", self.container(service), timeout=30)
            self.healthy[service] = checked.returncode == 0

    def logs(self, service: str) -> str:
        done = self.podman("logs", self.container(service), timeout=60)
        return done.stdout + done.stderr


def ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/ready", timeout=5) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def primary(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as response:
            return bool(json.loads(response.read()).get("primary"))
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def wait_for(check: Any, timeout: float, what: str) -> Any:
    """``eventually``, a look a second, failing with what was waited for."""
    try:
        return eventually(check, timeout=timeout, interval=1.0)
    except AssertionError as exc:
        raise AssertionError(f"{what}: {exc}") from None


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_compose_serves_the_river_reach_story_and_a_killed_container_loses_nothing(engine_image: str,
                                                                                  tmp_path: Path) -> None:
    """podman-compose brings up deploy/compose.yaml (the registry images swapped for deploy/compose.debian.yaml's
    Debian stand-ins): two engines on PostgreSQL, NATS and SeaweedFS, each health check passing. The river-reach
    story runs through both engines' API, with a file in the lake on the S3 store; mid-story the leading
    engine's container is killed and started again, then PostgreSQL's, while readings keep coming: every
    acknowledged reading is kept once, every run ends, the file reads back whole."""
    from helpers import RIVER_REACH
    from streams_fixtures import gauge
    from twinengine.client import Client
    from twinengine.errors import EngineUnavailable, TwinEngineError

    compose = podman_compose()
    services = os.environ.get("TWIN_TEST_SERVICES_TAG", "")  # built by an earlier step (.ci/run)
    if services:
        built_earlier()
    else:
        services = f"localhost/twinengine-services-test:{__version__}"
        built = subprocess.run(["bash", str(DEPLOY / "build-service-images.sh")], capture_output=True, text=True,
                               env={**os.environ, "TAG": services, "WORKDIR": str(tmp_path / "services")},
                               timeout=1800, check=False)
        assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    secrets = tmp_path / "secrets"
    subprocess.run(["bash", str(DEPLOY / "compose-secrets.sh")], env={**os.environ, "TWIN_SECRETS_DIR": str(secrets)},
                   capture_output=True, timeout=60, check=True)
    # This host's part: free ports for the engines, and limits within its own (podman's defaults exceed some
    # hosts' hard limits, which runc then refuses to set)
    ports = [free_port(), free_port()]
    limits = dict(limit.split("=") for limit in run_limits())
    host = {"services": {f"engine-{i + 1}": {
        "ports": [f"127.0.0.1:{port}:8000"],
        "ulimits": {name: {"soft": int(value.split(":")[0]), "hard": int(value.split(":")[1])}
                    for name, value in limits.items()}} for i, port in enumerate(ports)}}
    override = tmp_path / "compose.host.yaml"
    override.write_text(yaml.safe_dump(host).replace("ports:", "ports: !override"))
    conf = tmp_path / "containers.conf"
    conf.write_text(f"[containers]\ndefault_ulimits = {json.dumps(run_limits())}\n")
    env = {**os.environ, "TWIN_IMAGE": engine_image, "TWIN_SERVICES_IMAGE": services,
           "TWIN_SECRETS_DIR": str(secrets), "CONTAINERS_CONF": str(conf)}
    stack = Stack(compose, f"twintest{os.getpid()}", [DEPLOY / "compose.yaml", DEPLOY / "compose.debian.yaml",
                                                      override], env)
    backing = ["postgres", "nats", "s3"]
    urls = [f"http://127.0.0.1:{port}" for port in ports]
    try:
        up = stack("up", "--detach")
        assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
        wait_for(lambda: stack.check_health(backing) or all(stack.healthy.values()), 180,
                 f"the health checks of {backing}: {stack.healthy}")
        wait_for(lambda: all(ready(port) for port in ports), 300, "both engines' /health/ready")
        stack.check_health(["engine-1", "engine-2"])
        assert all(stack.healthy.values()), stack.healthy

        # the first admin's token, printed once by the engine that made the store (docs/deploy.md)
        printed = "\n".join(stack.logs(f"engine-{i}") for i in (1, 2))
        found = re.search(r"issues another:\s+(\S+)", printed)
        assert found and printed.count("first start, created the identity 'admin'") == 1, printed[-3000:]
        # the lake on the stack's S3 store: its bucket made from inside an engine's container (SeaweedFS
        # publishes no port), then registered as an endpoint with the identity compose-secrets.sh wrote
        keys = json.loads((secrets / "s3.json").read_text())["identities"][0]["credentials"][0]
        made = stack.podman("exec", stack.container("engine-1"), "/opt/twinengine/bin/python", "-c",
                            "import s3fs, sys; s3fs.S3FileSystem(key=sys.argv[1], secret=sys.argv[2], client_kwargs="
                            "{'endpoint_url': 'http://s3:8333'}).mkdir('twin')", keys["accessKey"], keys["secretKey"])
        assert made.returncode == 0, made.stdout + made.stderr
        with Client(urls[0], found.group(1)) as admin:
            dev, user = admin.create_token("ada", "developer").token, admin.create_token("uma", "user").token
            admin.lake.add_endpoint("s3", "s3", "twin", options={"endpoint_url": "http://s3:8333"},
                                    credential={"kind": "s3", "access_key": keys["accessKey"],
                                                "secret_key": keys["secretKey"]})
        Client(urls[0], dev).publish_app(RIVER_REACH)  # published through one engine ...
        archive = tmp_path / "gauge-archive.bin"
        archive.write_bytes(os.urandom(3 * 1024 * 1024 + 17))
        with Client(urls[1], user) as uma:  # ... a twin of it made through the other
            uma.create_twin("river-reach@0.1.0", "gauged", {"station": "RR-01"})
            first_run = uma.workflows.submit(RUN_GRAPH)
            stored = uma.lake.upload(archive, "obs:gauge-archive.bin", endpoint="s3",
                                     sha256=hashlib.sha256(archive.read_bytes()).hexdigest())
            assert stored.file.replicas[0].state == "AVAILABLE", stored
        refused: list[int] = []

        def send(batch: int, url: str) -> None:
            """One batch of readings, repeated until acknowledged (the producer's sequence number makes a
            repeat of a batch the engine kept a no-op)."""
            while True:
                try:
                    with Client(url, user) as once:
                        once.streams.append("gauged", "gauges", [gauge(i) for i in range(batch * BATCH,
                                                                                         (batch + 1) * BATCH)],
                                            producer="gauge-RR-01", seq=batch * BATCH)
                    return
                except EngineUnavailable:
                    refused.append(503)
                except TwinEngineError as exc:
                    if exc.status < 500 and exc.status != 429:
                        raise
                    refused.append(exc.status)
                time.sleep(0.5)

        batches = READINGS // BATCH
        for batch in range(0, 8):  # the first readings, to both engines in turn
            send(batch, urls[batch % 2])

        # the leader's container killed mid-story and started again; readings keep coming to the other
        leader = wait_for(lambda: [i for i in (0, 1) if primary(ports[i])], 120, "a leading engine")[0]
        follower = 1 - leader
        def keep_sending(batches: range, url: Any) -> None:
            for batch in batches:  # a batch every quarter second, so that the outage falls among them
                send(batch, url(batch))
                time.sleep(0.25)

        sender = threading.Thread(target=keep_sending, args=(range(8, 20), lambda _: urls[follower]))
        sender.start()
        time.sleep(0.5)
        assert stack.podman("kill", stack.container(f"engine-{leader + 1}")).returncode == 0
        sender.join(timeout=300)
        assert not sender.is_alive()
        wait_for(lambda: primary(ports[follower]), 120, "the other engine taking the loops over")
        assert stack.podman("start", stack.container(f"engine-{leader + 1}")).returncode == 0
        wait_for(lambda: ready(ports[leader]), 300, "the restarted engine's /health/ready")

        # PostgreSQL's container killed and started again while readings come to both engines
        sender = threading.Thread(target=keep_sending, args=(range(20, batches), lambda b: urls[b % 2]))
        sender.start()
        time.sleep(1.0)
        assert stack.podman("kill", stack.container("postgres")).returncode == 0
        time.sleep(4)
        assert stack.podman("start", stack.container("postgres")).returncode == 0
        sender.join(timeout=600)
        assert not sender.is_alive()
        wait_for(lambda: all(ready(port) for port in ports), 300, "both engines ready again")

        with Client(urls[leader], user) as uma:
            second_run = uma.workflows.submit(RUN_GRAPH)
            ended = [uma.workflows.wait(run.id, timeout=300) for run in (first_run, second_run)]
            assert [run.status for run in ended] == ["finished", "finished"], ended

            def kept() -> list[dict[str, Any]]:
                return list(uma.streams.read("gauged", "gauges", start=0, limit=1000).items)

            sent = {gauge(i)["time"] for i in range(READINGS)}
            times = [r["time"] for r in kept()]
            missing = sorted(sent - set(times))
            assert not missing, f"{len(missing)} acknowledged readings lost of {READINGS}: {missing[:10]}"
            assert len(times) == READINGS, f"{len(times) - len(set(times))} readings kept twice"
            def levels() -> list[str]:
                return [str(v.timestamp) for v in uma.history("gauged", "level", limit=1000).items]

            try:
                wait_for(lambda: len(levels()) >= READINGS, 180, "every reading applied as the twin's level")
            except AssertionError as exc:
                raise AssertionError(f"{exc}: {len(levels())} revisions of the level, from {sorted(levels())[:3]} "
                                     f"to {sorted(levels())[-3:]}; functions {uma.streams.functions('gauged')}") \
                    from None
            time.sleep(3)  # a reading applied twice would show by now
            assert len(levels()) == READINGS
            back = uma.lake.download("obs:gauge-archive.bin", tmp_path / "back.bin", endpoint="s3", verify=True)
            assert back.read_bytes() == archive.read_bytes()
        print(f"refused while a container was down (repeated): {sorted(refused)}")
        assert refused, "no request met an outage: the kills fell between the readings and proved nothing"
        assert set(refused) <= {503}, "while a container was down an engine answered other than 503"
    except BaseException:
        for service in [*backing, "engine-1", "engine-2"]:
            print(f"--- {service} ---\n{stack.logs(service)[-3000:]}")
        raise
    finally:
        stack("down", "--volumes", timeout=300)
        stack.podman("rmi", services, timeout=300)
