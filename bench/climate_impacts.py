"""climate-impacts at full size: the science figures with more members and seeds than the suite's check, and
the comparison of fire-weather libraries that picked the app's.

    python bench/climate_impacts.py                      # 4 scenarios x 16 members, seeds 1 and 2, 12 x 12 cells
    python bench/climate_impacts.py --members 8 --seeds 1
    python bench/climate_impacts.py --libraries          # FWI of climate-indices, xclim, cffdrs-fire vs cffdrs

The app's code runs in the app's own environment (its ``requires``, resolved and installed from the package
index as the engine does when it is published; kept in the demo's cache, ``TWIN_ENVS_DIR``), in a child
Python, members one after another. Each scenario prints the members' SPI-1 drought frequency with its 99 %
interval against the closed form for their calibrations (what must agree) and for the true distribution (the
issue's 0.159, 0.187, 0.222, 0.269, before the planted droughts' share), SPI-3, SPEI-3, fire danger,
compound days, the planted droughts' largest errors and how many stayed within the tolerances, and the seconds
per member. ``--libraries`` builds a second environment with xclim and cffdrs-fire beside climate-indices.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

APP = Path(__file__).resolve().parents[1] / "examples" / "apps" / "climate-impacts"
SCENARIOS = (("reference", 1.0, 0.0), ("low", 0.9, 1.0), ("medium", 0.8, 2.0), ("high", 0.7, 3.0))
LIBRARIES = ["climate-indices==3.1.0", "xclim==0.62.0", "cffdrs-fire==0.3.0", "numpy==2.4.6", "pandas==2.3.3",
             "scipy==1.17.1", "xarray==2026.9.0"]

_MEMBERS = """
import json, sys, time
from climate_impacts.ensemble import BOUNDS, scenario_checks
from climate_impacts.generator import Config, generate
from climate_impacts.impacts import analyse, closed_form_frequency
args = json.loads(sys.argv[1])
out = []
for seed in args["seeds"]:
    for name, s, dt in args["scenarios"]:
        params = dict(args["size"], scenario=name, rain_factor=s, warming_k=dt, seed=seed)
        states, began = [], time.perf_counter()
        for m in range(args["members"]):
            w = generate(params, m)
            states.append(analyse(w.data, 2031, planted=w.droughts, config=Config.from_parameters(params)).state)
        per = (time.perf_counter() - began) / args["members"]
        row = dict(scenario_checks(states), seed=seed, scenario=name, rain_factor=s, warming_k=dt, seconds=per,
                   natural=closed_form_frequency(Config.from_parameters(params)))
        row["members_within"] = sum(1 for st in states if st["planted_found"] == st["planted_droughts"] and all(
            st[f"planted_{k}_error"] is not None and st[f"planted_{k}_error"] <= b + 1e-9 for k, b in BOUNDS.items()))
        out.append(row)
        print(json.dumps(row), flush=True)
"""

_LIBRARIES = """
import json, os, warnings
warnings.filterwarnings("ignore")
os.environ.setdefault("CLIMATE_INDICES_LOG_LEVEL", "WARNING")
import numpy as np, pandas as pd, xarray as xr
from climate_impacts.readers import read_cffdrs_table
from climate_impacts.fire import fwi_station
ref = read_cffdrs_table(open(%r).read())
cols = ["ffmc", "dmc", "dc", "isi", "bui", "fwi", "dsr"]
def diffs(got):
    return {c: float(np.max(np.abs(np.asarray(got[c]) - ref.columns[c.upper()]))) for c in cols}
rows = {"climate-indices 3.1.0": diffs(fwi_station(ref))}
import xclim.indices as xi
t = pd.to_datetime(ref.dates)
da = lambda v, u: xr.DataArray(v, dims=("time",), coords={"time": t}, attrs={"units": u})
dc, dmc, ffmc, isi, bui, fwi = xi.cffwis_indices(da(ref.temp, "degC"), da(ref.prec, "mm/d"), da(ref.wind_kmh, "km/h"),
    da(ref.rh, "%%"), lat=xr.DataArray(ref.latitude, attrs={"units": "degrees_north"}), season_method=None,
    overwintering=False, initial_start_up=True)
x = {"ffmc": ffmc, "dmc": dmc, "dc": dc, "isi": isi, "bui": bui, "fwi": fwi}
x = {k: v.values for k, v in x.items()}
x["dsr"] = 0.0272 * x["fwi"] ** 1.77
rows["xclim 0.62.0"] = diffs(x)
from cffdrs import cffwis as cf
f, d, c = 85.0, 6.0, 15.0
y = {k: [] for k in cols}
for i in range(len(ref.dates)):
    T, H, W, P, M = ref.temp[i], ref.rh[i], ref.wind_kmh[i], ref.prec[i], int(ref.month[i])
    f = cf.dailyFFMC(f, T, H, W, P); d = cf.dailyDMC(d, T, H, P, M, ref.latitude, True)
    c = cf.dailyDC(c, T, P, M, ref.latitude, True)
    isi_ = cf.dailyISI(W, f); bui_ = cf.dailyBUI(d, c); fwi_ = cf.dailyFWI(isi_, bui_)
    for k, v in zip(cols, (f, d, c, isi_, bui_, fwi_, cf.dailyDSR(fwi_))):
        y[k].append(v)
rows["cffdrs-fire 0.3.0"] = diffs(y)
print(json.dumps(rows))
"""


def _env(requires: list[str]) -> Path:
    """The environment of ``requires``, as the engine builds an app's (found when built before)."""
    from twinengine.config import Settings
    from twinengine.demo.runner import _shared_envs
    from twinengine.workers.envs import Environments

    envs = Environments.from_settings(Settings(data_dir=Path(os.environ.get("TMPDIR", "/tmp")) / "twin-bench",
                                               envs_dir=_shared_envs()))
    return envs.for_requires(requires)


def _child(site: Path, code: str, *args: str) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(APP), str(site)]), PYTHONDONTWRITEBYTECODE="1")
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *args], env=env, text=True,
                            stdout=subprocess.PIPE)


def _load() -> str:
    return " ".join(f"{v:.1f}" for v in os.getloadavg())


def members(args: argparse.Namespace) -> None:
    import yaml

    requires = yaml.safe_load((APP / "twinapp.yaml").read_text())["requires"]
    site = _env(requires)
    size = {"grid_cells": args.cells, "baseline_years": args.baseline, "years": args.years, "droughts": 2}
    print(f"climate-impacts: {args.members} members x 4 scenarios x seeds {args.seeds}, {args.cells}x{args.cells} "
          f"cells, {args.baseline} baseline + {args.years} scenario years; load {_load()}")
    began = time.perf_counter()
    child = _child(site, _MEMBERS, json.dumps({"seeds": args.seeds, "scenarios": SCENARIOS, "members": args.members,
                                               "size": size}))
    assert child.stdout is not None
    print("seed scenario   SPI-1 drought [99 % interval of the closed form for the calibrations] | true "
          "distribution | SPI-3  SPEI-3 FWI>20 d/yr compound d/yr | planted found, within bounds; largest "
          "errors: months, extent, SPI | s/member")
    for line in child.stdout:
        r = json.loads(line)
        low, high = r["expected_interval"]
        print(f"{r['seed']:>4} {r['scenario']:<9} {r['frequency']:.4f} [{low:.4f}, {high:.4f}] "
              f"{'inside ' if r['inside'] else 'OUTSIDE'} | {r['natural']:.4f} ({r['closed_form']:.4f} with "
              f"the planted) | {r['spi3_drought_frequency']:.3f} {r['spei3_drought_frequency']:.3f} "
              f"{r['fwi_high_days']:6.1f} {r['compound_days']:6.1f} | {r['planted_found']}/{r['planted']}, "
              f"{r['members_within']}/{r['members']} members; {r['planted_duration_error']}, "
              f"{r['planted_extent_error']:.3f}, {r['planted_intensity_error']:.3f} | {r['seconds']:.1f}", flush=True)
    if child.wait() != 0:
        raise SystemExit(f"the members' Python ended with {child.returncode}")
    print(f"{time.perf_counter() - began:.0f} s in all; load {_load()}")


def libraries() -> None:
    site = _env(LIBRARIES)
    child = _child(site, _LIBRARIES % str(APP / "data" / "fwi_01.csv"))
    out, _ = child.communicate()
    rows = json.loads(out.strip().splitlines()[-1])
    print("largest |difference| from the cffdrs reference table fwi_01 (48 days, light rain of 0.2 and 0.4 mm):")
    print(f"{'library':<22}" + "".join(f"{c.upper():>9}" for c in ("ffmc", "dmc", "dc", "isi", "bui", "fwi", "dsr")))
    for name, diffs in rows.items():
        print(f"{name:<22}" + "".join(f"{v:9.4f}" for v in diffs.values()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", type=int, default=16)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--cells", type=int, default=12)
    parser.add_argument("--baseline", type=int, default=30)
    parser.add_argument("--years", type=int, default=30)
    parser.add_argument("--libraries", action="store_true", help="compare the FWI libraries instead")
    args = parser.parse_args()
    libraries() if args.libraries else members(args)


if __name__ == "__main__":
    main()
