"""The deployment artefacts of deploy/: the image's Containerfile and build script, the compose file and the Helm
chart say what a provider relies on (a non-root user, probes on /health and /health/ready, the data dir as a
volume, secrets from files, two engines sharing one store). The checks by the tools themselves (hadolint,
check-jsonschema, helm lint and template, kubernetes-validate) run where a Python with them is named by
TWIN_DEPLOY_TOOLS (a virtualenv folder) or is this one, and skip with the reason otherwise; building the image
and asking it for /health runs only with TWIN_TEST_IMAGE=1 where podman works (minutes)."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from helpers import REPO, free_port
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
        pytest.skip(f"TWIN_DEPLOY_TOOLS={folder} does not import {', '.join(modules)}")
    if all(importlib.util.find_spec(m) is not None for m in modules):
        return sys.executable
    pytest.skip(f"{', '.join(modules)} not installed: set TWIN_DEPLOY_TOOLS to a virtualenv with them "
                "(docs/deploy.md, Kubernetes)")


def tool(name: str) -> str:
    """An executable of TWIN_DEPLOY_TOOLS's virtualenv or of the PATH; skips with the reason if neither."""
    folder = os.environ.get("TWIN_DEPLOY_TOOLS")
    found = shutil.which(name, path=str(Path(folder) / "bin")) if folder else None
    found = found or shutil.which(name)
    if found is None:
        pytest.skip(f"{name} not found: set TWIN_DEPLOY_TOOLS to a virtualenv with it (docs/deploy.md)")
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
    assert "--no-index" in install and "-c /tmp/constraints.txt" in install  # offline, the release's pins
    script = (DEPLOY / "build-image.sh").read_text()
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


# --- the image, built and run (opt-in: minutes) --------------------------------------------------------------


def podman_works() -> str | None:
    """Why the image cannot be built here, or None."""
    if os.environ.get("TWIN_TEST_IMAGE", "") in ("", "0"):
        return "building the image takes minutes: set TWIN_TEST_IMAGE=1 to build it and ask it for /health"
    for needed in ("podman", "mmdebstrap"):
        if shutil.which(needed) is None:
            return f"{needed} is not installed"
    info = subprocess.run(["podman", "info"], capture_output=True, text=True, timeout=60, check=False)
    return None if info.returncode == 0 else f"podman does not work here: {info.stderr.strip()[-300:]}"


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_the_image_builds_and_answers_health(tmp_path: Path) -> None:
    reason = podman_works()
    if reason is not None:
        pytest.skip(reason)
    tag = f"localhost/twinengine-test:{__version__}"
    env = {**os.environ, "TAG": tag, "WORKDIR": str(tmp_path / "context")}
    build = subprocess.run(["bash", str(DEPLOY / "build-image.sh")], env=env, capture_output=True, text=True,
                           timeout=3000, check=False)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    port = free_port()
    run = ["podman", "run", "--rm", "--detach", "--runtime", os.environ.get("TWIN_TEST_RUNTIME", "runc"),
           "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024", "--publish", f"127.0.0.1:{port}:8000", tag]
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
        logs = subprocess.run(["podman", "logs", container], capture_output=True, text=True, timeout=30,
                              check=False)
        assert answer is not None, f"no /health answer: {shlex.join(run)}\n{logs.stdout[-2000:]}{logs.stderr[-2000:]}"
        assert answer["status"] == "ok" and answer["version"] == __version__, answer
        assert "first start, created the identity 'admin'" in logs.stderr + logs.stdout
    finally:
        subprocess.run(["podman", "rm", "--force", container], capture_output=True, timeout=60, check=False)
