"""``twin login`` through a real OpenID provider on loopback: the device flow shown in the terminal and approved
as a person would in a browser, the tokens kept 0600 per engine URL, used by the other commands, renewed with
the refresh token when expired, shown by ``twin whoami`` and dropped by ``twin logout``; and the loopback
browser flow for providers without the device grant."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest

from oidc_fixtures import LoopbackProvider, engine_url, oidc_provider
from twinengine import credentials

__all__ = ["engine_url", "oidc_provider"]



@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The user's config folder, for the subprocesses and for ``credentials`` in this process."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("TWIN_TOKEN", raising=False)
    return {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "config"), "COLUMNS": "200", "PYTHONUNBUFFERED": "1"}


def twin(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "twinengine.cli.main", *args], env=env, capture_output=True,
                          text=True, timeout=120)


def device_login(env: dict[str, str], engine_url: str, provider: LoopbackProvider, login: str, *extra: str) -> str:
    """Run ``twin login`` (with ``extra`` options), read the URL and code it prints, approve them, and return
    what it said."""
    process = subprocess.Popen([sys.executable, "-m", "twinengine.cli.main", "--url", engine_url, "login",
                                "--provider", "loop", *extra], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    assert process.stdout is not None
    shown = process.stdout.readline()
    found = re.search(r"open (\S+) and enter the code (\S+)", shown)
    assert found is not None, shown + process.stdout.read() + (process.stderr.read() if process.stderr else "")
    provider.approve_device(found.group(1), found.group(2), login)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, shown + out + err
    return shown + out


@pytest.mark.slow
def test_device_login_whoami_refresh_and_logout(engine_url: str, oidc_provider: LoopbackProvider,
                                                home: dict[str, str]) -> None:
    said = device_login(home, engine_url, oidc_provider, "alice")
    assert "Signed in to" in said and "loop.alice" in said
    path = credentials.credentials_path()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    saved = credentials.load(engine_url)
    assert saved is not None and saved.refresh_token and saved.provider == "loop"

    who = twin(home, "--url", engine_url, "--json", "whoami")
    assert who.returncode == 0, who.stderr
    facts: dict[str, Any] = json.loads(who.stdout)
    assert (facts["identity"], facts["role"], facts["provider"]) == ("loop.alice", "user", "loop")
    assert set(facts["groups"]) >= {"example-vo", "hydro"} and facts["refreshable"] is True

    listed = twin(home, "--url", engine_url, "--json", "list")  # any command: the kept sign-in is used
    assert listed.returncode == 0, listed.stderr

    saved.expires_at = 0  # as if an hour had passed: the next command renews it with the refresh token
    credentials.save(saved)
    again = twin(home, "--url", engine_url, "--json", "whoami")
    assert again.returncode == 0 and json.loads(again.stdout)["identity"] == "loop.alice", again.stderr
    renewed = credentials.load(engine_url)
    assert renewed is not None and renewed.access_token != saved.access_token and renewed.expires_at > 0

    out = twin(home, "--url", engine_url, "logout")
    assert out.returncode == 0 and "Signed out" in out.stdout
    assert credentials.load(engine_url) is None
    gone = twin(home, "--url", engine_url, "whoami")
    assert gone.returncode == 1 and "not signed in" in gone.stderr and "Traceback" not in gone.stderr
    revoked = httpx.post(f"{oidc_provider.issuer}/token", data={  # logout revoked the refresh token too
        "grant_type": "refresh_token", "refresh_token": renewed.refresh_token, "client_id": renewed.client_id})
    assert revoked.status_code == 400 and revoked.json()["error"] == "invalid_grant"


@pytest.mark.slow
def test_profiles_keep_sign_ins_side_by_side(engine_url: str, oidc_provider: LoopbackProvider,
                                             home: dict[str, str]) -> None:
    assert "kept as profile default" in device_login(home, engine_url, oidc_provider, "alice")
    said = device_login(home, engine_url, oidc_provider, "carol", "--profile", "carol-desk")
    assert "loop.carol" in said and "kept as profile carol-desk" in said
    assert credentials.profiles() == {"carol-desk": [engine_url], "default": [engine_url]}

    def who(*args: str, env: dict[str, str] = home) -> str:
        answer = twin(env, "--url", engine_url, *args, "--json", "whoami")
        assert answer.returncode == 0, answer.stderr
        return str(json.loads(answer.stdout)["identity"])

    assert who() == "loop.alice"
    mine = twin(home, "--url", engine_url, "--json", "whoami", "--profile", "carol-desk")  # the command's option
    assert json.loads(mine.stdout)["identity"] == "loop.carol" and json.loads(mine.stdout)["profile"] == "carol-desk"
    assert who("--profile", "carol-desk") == "loop.carol"  # the global option: every command uses it
    assert who(env={**home, "TWIN_PROFILE": "carol-desk"}) == "loop.carol"
    listed = twin(home, "--url", engine_url, "--profile", "carol-desk", "--json", "list")
    assert listed.returncode == 0, listed.stderr

    out = twin(home, "--url", engine_url, "logout", "--profile", "carol-desk")
    assert out.returncode == 0 and "profile carol-desk" in out.stdout
    assert credentials.load(engine_url, "carol-desk") is None and who() == "loop.alice"  # alice's stays
    gone = twin(home, "--url", engine_url, "--profile", "carol-desk", "whoami")
    assert gone.returncode == 1 and "twin login --profile carol-desk" in gone.stderr, gone.stderr
    bad = twin(home, "--url", engine_url, "whoami", "--profile", "../x")
    assert bad.returncode == 1 and "--profile:" in bad.stderr and "Traceback" not in bad.stderr


def test_a_file_an_older_twin_wrote_is_the_default_profile(home: dict[str, str]) -> None:
    path = credentials.credentials_path()
    path.parent.mkdir(parents=True)
    entry = {"url": "http://engine.example", "provider": "loop", "issuer": "http://idp.example", "client_id": "cli",
             "token_endpoint": "http://idp.example/token", "access_token": "at", "refresh_token": "rt",
             "expires_at": 4102444800.0}
    path.write_text(json.dumps({"http://engine.example": entry}))
    kept = credentials.load("http://engine.example/")
    assert kept is not None and kept.profile == "default" and kept.bearer() == "oidc/loop/at"
    assert credentials.load("http://engine.example", "other") is None
    credentials.save(credentials.Saved(**{**entry, "access_token": "at2", "profile": "other"}))
    assert json.loads(path.read_text())["profiles"]["default"]["http://engine.example"]["access_token"] == "at"
    assert credentials.bearer("http://engine.example", "other") == "oidc/loop/at2"


def test_login_errors_name_the_option(engine_url: str, home: dict[str, str]) -> None:
    wrong = twin(home, "--url", engine_url, "login", "--provider", "nope")
    assert wrong.returncode == 1 and "--provider: 'nope' is not among loop" in wrong.stderr, wrong.stderr
    nowhere = twin(home, "--url", "http://127.0.0.1:9", "login")
    assert nowhere.returncode == 1 and "--url:" in nowhere.stderr and "Traceback" not in nowhere.stderr


def test_the_loopback_browser_flow(engine_url: str, oidc_provider: LoopbackProvider, home: dict[str, str]) -> None:
    listed = credentials.provider_of(engine_url, "loop")
    discovery = httpx.get(f"{oidc_provider.issuer}/.well-known/openid-configuration").json()
    errors: list[BaseException] = []

    def browse(address: str) -> None:  # the person's browser: signs in at the provider, follows it back
        def run() -> None:
            try:
                with httpx.Client(follow_redirects=True, timeout=30) as browser:
                    page = browser.get(address)
                    action = re.search(r'action="(/interaction/[^"]+)"', page.text)
                    assert action is not None, page.text[:1000]
                    done = browser.post(oidc_provider.issuer + action.group(1), data={"login": "carol"})
                    assert "signed in" in done.text, done.text[:1000]
            except BaseException as exc:
                errors.append(exc)

        threading.Thread(target=run, daemon=True).start()

    saved = credentials.browser_sign_in(engine_url, listed, discovery, browse, timeout=60)
    assert errors == []
    me = httpx.get(f"{engine_url}/api/v1/me", headers={"Authorization": f"Bearer {saved.bearer()}"}).json()
    assert (me["name"], me["role"]) == ("loop.carol", "developer")
