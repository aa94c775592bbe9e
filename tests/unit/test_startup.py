"""What makes ``twin`` and ``twin serve`` start fast, checked without timing anything: which modules an entry
point imports, the help's stand-ins for lazily imported commands, ``--json`` in both places, and admin
commands that open only the store."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from twinengine.cli.main import SUBCOMMANDS
from twinengine.cli.main import app as cli_app

SRC = Path(__file__).resolve().parents[2] / "src"
HEAVY = ["torch", "mlflow", "dask", "optuna", "xarray", "pandas", "pyarrow", "numpy", "sqlalchemy", "fastapi",
         "pydantic", "twinengine.client"]


def imported_after(code: str, tmp_path: Path) -> set[str]:
    """The modules of ``HEAVY`` in ``sys.modules`` after running ``code`` in a fresh interpreter."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=tmp_path,
                            env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path),
                                 "TWIN_DATA_DIR": str(tmp_path / "data")}, timeout=300, check=False)
    assert result.returncode == 0, result.stderr
    return set(json.loads(result.stdout.strip().splitlines()[-1]))


def test_the_command_line_imports_no_engine_library(tmp_path: Path) -> None:
    assert imported_after("import twinengine.cli.main", tmp_path) == set()
    shown = "from twinengine.cli.main import main\nimport sys\nsys.argv = ['twin', '--help']\ntry:\n    main()\n" \
            "except SystemExit:\n    pass"
    assert imported_after(shown, tmp_path) == set()


def test_serving_listens_before_the_api_is_imported(tmp_path: Path) -> None:
    """What ``twin serve`` imports before it listens: the starting shell, its edge, uvicorn, the settings."""
    assert imported_after("import uvicorn\nimport twinengine.api.edge\nimport twinengine.api.starting",
                          tmp_path) <= {"pydantic"}


def test_the_api_imports_torch_and_mlflow_when_first_needed(tmp_path: Path) -> None:
    built = ("from twinengine.api import create_app\nfrom twinengine.config import Settings\n"
             "app = create_app(Settings())")
    assert imported_after("import twinengine.api.app", tmp_path).isdisjoint({"torch", "mlflow", "dask", "optuna"})
    assert imported_after(built, tmp_path).isdisjoint({"torch", "mlflow", "optuna"})


def test_the_api_answers_before_it_imports_jsonschema_xarray_pandas_or_nats(tmp_path: Path) -> None:
    """The engine validates with jsonschema where it validates; a served engine imports it in a warm-up.
    Where jsonschema's optional format checkers are installed, importing it builds their grammars: up to a
    second before the first answer of every start. xarray with pandas (0.4-0.5 s) come with EDR, workflows
    and ensembles when they are first used, not with the runtime; an engine on the local stream log never
    imports the NATS client (0.2 s). Each was on the way to the first answer once."""
    code = ("from twinengine.config import Settings\nfrom twinengine.runtime import Runtime\n"
            "from twinengine.store import migrate\n"
            "runtime = Runtime.from_settings(Settings())\nmigrate.upgrade(runtime.db)  # an empty store\n"
            "_ = runtime.streams  # the functions' loop opens the log in its first pass\n"
            "import twinengine.api.app\nfrom twinengine.api.route_groups import group_routes\n"
            "group_routes(3)  # the group that answers GET /api/v1/twins, a client's first request\n"
            "# what Runtime.start imports on its way to the first answer (the data-space loop's connector once\n"
            "# imported jsonschema with its schemas: 2 s of every start)\n"
            "import twinengine.daemons.calibrations, twinengine.daemons.dataspace, twinengine.ml.models\n"
            "import twinengine.compute.sites, twinengine.lake.endpoints, twinengine.daemons.elected\n"
            "import json, sys\n"
            "print(json.dumps(sorted(m for m in ('jsonschema', 'xarray', 'pandas', 'nats') if m in sys.modules)))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                            env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path),
                                 "TWIN_DATA_DIR": str(tmp_path / "data")}, timeout=300, check=False)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []


def test_the_help_lists_what_the_commands_say() -> None:
    """``twin --help`` shows stand-ins for the commands it has not imported: their lines match the real ones."""
    root = typer.main.get_command(cli_app)
    ctx = typer.Context(root)
    for name, lazy in SUBCOMMANDS.items():
        real = lazy.load(name)
        assert (real.help or "").split("\n\n")[0].strip() == lazy.summary, name
        assert root.get_command(ctx, name) is not None
    assert set(SUBCOMMANDS) <= set(root.list_commands(ctx))


@pytest.mark.parametrize("args", [["--json", "app", "validate", "FOLDER"], ["app", "validate", "FOLDER", "--json"]])
def test_json_before_or_after_the_command(args: list[str]) -> None:
    folder = str(Path(__file__).resolve().parents[2] / "examples" / "apps" / "river-reach")
    result = CliRunner().invoke(cli_app, [folder if a == "FOLDER" else a for a in args])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["valid"] is True


def test_every_command_takes_json_after_its_arguments() -> None:
    root = typer.main.get_command(cli_app)
    ctx = typer.Context(root)
    missing = []

    def walk(command: typer.core.TyperCommand | typer.core.TyperGroup, path: str) -> None:
        if isinstance(command, typer.core.TyperGroup):
            for name in command.list_commands(ctx):
                walk(command.get_command(ctx, name), f"{path} {name}")  # type: ignore[arg-type]
        elif not any("--json" in getattr(p, "opts", ()) for p in command.params):
            missing.append(path)

    walk(root, "twin")  # type: ignore[arg-type]
    assert not missing


def test_a_local_token_starts_none_of_the_engines_loops(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``twin token create --data-dir`` beside a running engine opens the store and nothing else."""
    from twinengine.runtime import Runtime

    def refuse(*_: object, **__: object) -> None:
        raise AssertionError("an admin command built the engine")

    monkeypatch.setattr(Runtime, "from_settings", classmethod(refuse))
    monkeypatch.setattr(Runtime, "start", refuse)
    before = {t.name for t in threading.enumerate()}
    result = CliRunner().invoke(cli_app, ["token", "create", "--name", "ops", "--role", "provider", "--data-dir",
                                          str(tmp_path / "data"), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["name"] == "ops"
    assert {t.name for t in threading.enumerate()} <= before  # no stream log writer, runner or daemon left
    assert not (tmp_path / "data" / "streams").exists()  # the stream log was never opened
