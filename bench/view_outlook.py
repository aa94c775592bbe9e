"""What the flood view's answer per lead time costs: ``GET .../views/flood`` of the demo's official twin read
in process (``ui.summaries.read_view``) with its outlook (the chance of crossing the threshold within 6, 12, 24
and 48 h, and the verification of past forecasts at those leads besides the skill sentence's), beside the same
read as it was before (the skill sentence's one lead verified, no outlook), the two taking turns round by round
in one process; medians in ms and their ratio.

    python bench/view_outlook.py --demo DIR      # DIR: the data folder `twin demo --data-dir DIR` left behind

The data folder is copied first: opening an engine on it writes to it.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--demo", type=Path, required=True, help="the data folder of a `twin demo` run")
    parser.add_argument("--twin", default="demo-reach")
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()

    from twinengine.auth.principal import SYSTEM
    from twinengine.catalog.views import View
    from twinengine.config import Settings
    from twinengine.runtime import Runtime
    from twinengine.twins import forecasts
    from twinengine.twins.forecast_schemas import VerificationRead
    from twinengine.ui import summaries

    copy = Path(tempfile.mkdtemp(prefix="view-outlook-")) / "data"
    shutil.copytree(args.demo, copy)
    runtime = Runtime.from_settings(Settings(data_dir=copy))  # no loops started: only the store is read
    patched = vars(summaries)  # the two steps the variants swap, in the module's own namespace
    with_outlook = (patched["_verified"], patched["outlook"])

    def one_lead(session: Any, principal: Any, twin_id: str, view: View, prop: str, end: datetime,
                 threshold: float | None) -> VerificationRead:
        return forecasts.verification(session, principal=principal, ref=twin_id, prop=prop, lead=view.skill.lead,
                                      since=end - view.skill.window, until=end)

    variants: dict[str, tuple[Callable[..., Any], Callable[..., Any]]] = {
        "with the outlook": with_outlook, "before (one lead, no outlook)": (one_lead, lambda *_a, **_k: None)}
    took: dict[str, list[float]] = {name: [] for name in variants}
    try:
        with runtime.db.session(readonly=True) as session:
            for round_ in range(args.rounds + 3):
                for name, (verified, ahead) in variants.items():
                    patched["_verified"], patched["outlook"] = verified, ahead
                    started = time.perf_counter()
                    read = summaries.read_view(session, principal=SYSTEM, ref=args.twin, name="flood")
                    if round_ >= 3:  # the first rounds warm the imports and caches
                        took[name].append((time.perf_counter() - started) * 1000)
                    assert (read.outlook is not None) == (name == "with the outlook")
    finally:
        patched["_verified"], patched["outlook"] = with_outlook
        runtime.close()
        shutil.rmtree(copy.parent, ignore_errors=True)
    medians = {name: statistics.median(values) for name, values in took.items()}
    for name, value in medians.items():
        print(f"{name:32} {value:8.1f} ms (median of {args.rounds})")
    first, second = medians.values()
    print(f"ratio: x{first / second:.2f}")


if __name__ == "__main__":
    main()
