"""``twin lake dataset add --twin``: a dataset of a twin from the CLI, against a live engine. Its files are read
by the twin's readers (here a user granted ``read``), nobody else, and only the twin's operators add to it."""

from __future__ import annotations

from pathlib import Path

from helpers import LiveEngine, make_app


def test_a_dataset_of_a_twin_follows_the_twins_grants(live: LiveEngine, tmp_path: Path) -> None:
    tokens = {name: live.twin("token", "create", "--name", name, "--role", role).strip().splitlines()[-1]
              for name, role in (("cli-dev", "developer"), ("cli-uma", "user"), ("cli-rex", "user"),
                                 ("cli-eve", "user"))}
    live.twin("lake", "endpoint", "add", "cli-disk", "--protocol", "file", "--location", str(tmp_path / "disk"))
    live.twin("app", "publish", str(make_app(tmp_path, name="cli-gauges")), token=tokens["cli-dev"])
    live.twin("create", "cli-gauges", "--name", "cli-reach", "--param", "station=RR-01", token=tokens["cli-uma"])
    live.twin("grant", "cli-reach", "cli-rex", token=tokens["cli-uma"])  # read
    refused = live.twin("lake", "dataset", "add", "rex:readings", "--twin", "cli-reach", token=tokens["cli-rex"],
                        expect=1)
    assert "may not twin.operate" in refused, refused  # reading a twin is not adding to its data
    made = live.twin_json("lake", "dataset", "add", "reach:readings", "--twin", "cli-reach", token=tokens["cli-uma"])
    data = tmp_path / "readings.csv"
    data.write_text("station,lon,lat,time,level [m]\nRR-01,8.2,46.1,2026-03-01T00:00:00Z,1.5\n")
    up = live.twin_json("lake", "upload", str(data), "reach:readings/readings.csv", "-e", "cli-disk", "--dataset",
                        "reach:readings", token=tokens["cli-uma"])
    assert made["owner_twin"] == up["file"]["owner_twin"] is not None
    assert live.twin_json("lake", "show", "reach:readings", token=tokens["cli-rex"])["children"] == [
        "reach:readings/readings.csv"]
    assert "no file, dataset or container" in live.twin("lake", "show", "reach:readings", token=tokens["cli-eve"],
                                                        expect=1)
    more = live.twin("lake", "upload", str(data), "reach:readings/more.csv", "-e", "cli-disk", "--dataset",
                     "reach:readings", token=tokens["cli-rex"], expect=1)
    assert "may not change reach:readings" in more, more
