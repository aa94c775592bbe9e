"""The Fire Weather Index system against the cffdrs reference table of Van Wagner and Pickett (1985)'s 48 days
of test weather: within 0.01 on every component, the light-rain days of 0.2 and 0.4 mm included. The table is
read as cffdrs writes it (comma or semicolon separated)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from climate_impacts.readers import read_cffdrs_table

TABLE = Path(__file__).resolve().parents[1] / "data" / "fwi_01.csv"


@pytest.fixture(scope="module")
def check() -> dict:
    pytest.importorskip("climate_indices")
    from climate_impacts.fire import compare_with_reference

    return compare_with_reference(read_cffdrs_table(TABLE.read_text()))


def test_every_component_is_within_a_hundredth_of_the_reference(check: dict) -> None:
    assert check["days"] == 48
    for name in ("ffmc", "dmc", "dc", "isi", "bui", "fwi", "dsr"):
        assert check["components"][name]["max_abs_difference"] < 0.01, (name, check["components"][name])


def test_the_light_rain_days_are_in_the_table(check: dict) -> None:
    assert check["light_rain_days"] == ["1985-04-18", "1985-05-13"]  # 0.4 mm and 0.2 mm


def test_the_semicolon_table_of_the_weather_alone_reads_the_same() -> None:
    pytest.importorskip("climate_indices")
    from climate_impacts.fire import fwi_station

    rows = TABLE.read_text().splitlines()
    semicolons = "\n".join(";".join(r.split(",")[:9]).lower() for r in rows)
    got = fwi_station(read_cffdrs_table(semicolons))
    ref = read_cffdrs_table(TABLE.read_text()).columns["FWI"]
    assert np.max(np.abs(got["fwi"] - ref)) < 0.01


def test_a_table_without_its_weather_columns_is_refused() -> None:
    with pytest.raises(ValueError, match="lacks the column"):
        read_cffdrs_table("LAT,YR,MON,DAY,TEMP\n40,1985,4,13,17\n")
