"""Small parts of CWL out and the job list, without an engine: openEO parameter schemas as CWL types, the
container stand-in's bubblewrap command, the job list's filter and keyset."""

from __future__ import annotations

import pytest

from twinengine.cwl.export import _cwl_type
from twinengine.cwl.stand_in import bwrap_command
from twinengine.errors import ValidationFailed
from twinengine.processes.jobs import decode_after, parse_filter


@pytest.mark.parametrize(("schema", "expected"), [
    ({"type": "string"}, ("string", "text")), ({"type": "number"}, ("double", "json")),
    ({"type": "integer"}, ("long", "json")), ([{"type": "boolean"}, {"type": "null"}], ("boolean", "json")),
    ({"type": "object", "subtype": "bounding-box"}, ("Any", "json")), ({"type": ["number", "string"]}, ("Any", "json")),
    ({}, ("Any", "json")),
])
def test_openeo_schemas_become_cwl_types(schema: object, expected: tuple[str, str]) -> None:
    assert _cwl_type(schema) == expected


def test_the_stand_in_binds_what_cwltool_asks_and_nothing_of_the_machine_but_its_system() -> None:
    command = bwrap_command(["run", "--volume=/host/out:/abc", "--volume=/host/tmp:/tmp", "--workdir=/abc",
                             "--env=HOME=/abc", "--rm", "python:3.11-slim", "python3", "run.py", "--x"], "bwrap")
    assert command[-4:] == ["--", "python3", "run.py", "--x"]
    pairs = [tuple(command[i + 1:i + 3]) for i, part in enumerate(command) if part in ("--bind", "--ro-bind")]
    assert ("/host/out", "/abc") in pairs and ("/host/tmp", "/tmp") in pairs
    assert not [p for p in pairs if p[0] == "/" or p[0].startswith(("/work", "/root", "/home"))]
    assert command[command.index("--chdir") + 1] == "/abc"
    assert command[command.index("--setenv") + 1:command.index("--setenv") + 3] == ["HOME", "/abc"]
    with pytest.raises(SystemExit):
        bwrap_command(["pull", "python:3.11-slim"])


@pytest.mark.parametrize(("kwargs", "named"), [
    ({"statuses": ["finished"]}, "status"), ({"when": "soon"}, "datetime"), ({"when": ".."}, "datetime"),
    ({"min_duration": -1.0}, "minDuration"), ({"min_duration": 3.0, "max_duration": 1.0}, "maxDuration"),
])
def test_a_bad_job_filter_names_its_parameter(kwargs: dict[str, object], named: str) -> None:
    with pytest.raises(ValidationFailed) as refused:
        parse_filter(**kwargs)  # type: ignore[arg-type]
    assert named in refused.value.message


def test_job_filters_read_as_part_1_writes_them() -> None:
    found = parse_filter(types=["process"], process_ids=["echo,other"], statuses=["successful", "failed"],
                         when="2026-01-01T00:00:00Z/..")
    assert found.process_ids == ("echo", "other") and found.statuses == ("successful", "failed")
    assert found.created_from is not None and found.created_to is None and not found.none
    assert parse_filter(types=["other"]).none
    with pytest.raises(ValidationFailed):
        decode_after("!!")
