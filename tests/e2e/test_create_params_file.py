"""``twin create --params-file``: a twin's parameters from a YAML or JSON file (an app's own
``data/parameters.json``), with ``--param`` laid over them key by key; a file that is not one mapping is a
message naming the option, never a traceback."""

from __future__ import annotations

from pathlib import Path

from helpers import RIVER_REACH, LiveEngine


def test_parameters_come_from_a_yaml_or_json_file_and_param_overrides_them(live: LiveEngine, tmp_path: Path) -> None:
    dev = live.twin_json("token", "create", "--name", "ada", "--role", "developer", "--expires", "1d")["token"]
    user = live.twin_json("token", "create", "--name", "uma", "--role", "user")["token"]
    live.twin("app", "publish", str(RIVER_REACH), token=dev)
    shipped = RIVER_REACH / "data" / "parameters.json"
    twin = live.twin_json("create", "river-reach@0.1.0", "--name", "from-json", "--params-file", str(shipped),
                          token=user)
    assert twin["parameters"]["station"] == "RR-01" and twin["parameters"]["longitude"] == 8.262
    written = tmp_path / "reach.yaml"
    written.write_text("# the upper reach\nstation: RR-02\narea_km2: 95.5\nrunoff_coefficient: 0.5\n")
    twin = live.twin_json("create", "river-reach@0.1.0", "--name", "from-yaml", "--params-file", str(written),
                          "--param", "runoff_coefficient=0.7", token=user)
    assert (twin["parameters"]["station"], twin["parameters"]["area_km2"]) == ("RR-02", 95.5)
    assert twin["parameters"]["runoff_coefficient"] == 0.7  # --param wins over the file
    refused = live.twin("create", "river-reach@0.1.0", "--name", "bad", "--params-file", str(written),
                        "--param", "area_km2=-1", token=user, expect=1)
    assert "area_km2" in refused and "Traceback" not in refused  # still checked against the app's schema
    for text, says in (("- station\n- RR-01\n", "one mapping"), ("station: [RR-01\n", "line 2")):
        written.write_text(text)
        out = live.twin("create", "river-reach@0.1.0", "--name", "bad", "--params-file", str(written), token=user,
                        expect=1)
        assert "--params-file" in out and says in out and "Traceback" not in out
