"""What the SDK returns where a notebook wants more than JSON: the API's own read models, extended with
rich display (``_repr_html_``, escaped) and one way to the field's data structures: ``to_pandas()`` for
tables (state, history with its quality flags; stream records: ``streams.sdk.Records``), ``to_xarray()`` for fields
(EDR answers, netCDF run results). pandas and xarray are imported inside those methods, so
``import twinengine`` stays light. A run's and an EDR answer's types live beside their namespaces
(``workflows.run_types``, ``access.sdk``) and are named here too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from twinengine._html import table
from twinengine.access.sdk import Coverage
from twinengine.twins.schemas import HistoryRead, TwinPage, TwinRead, TwinState
from twinengine.workflows.run_types import Run, RunList, RunResult

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Coverage", "History", "Run", "RunList", "RunResult", "State", "Twin", "TwinList"]

class Twin(TwinRead):
    """A twin, shown as a table of its app, owner, revision and parameters."""

    def _repr_html_(self) -> str:
        rows = [("app", self.app), ("owner", self.owner), ("revision", self.head_revision),
                ("description", self.description), ("created", self.created_at), ("updated", self.updated_at),
                *((f"parameter {k}", v) for k, v in sorted(self.parameters.items()))]
        if self.origin is not None:
            rows.append(("forked from", self.origin.model_dump(mode="json")))
        return table(f"twin {self.name}", ("", "value"), rows, caption=self.id)


class TwinList(TwinPage):
    items: list[Twin]  # type: ignore[assignment]

    def _repr_html_(self) -> str:
        return table(f"{self.total} twins", ("name", "app", "owner", "revision", "updated"),
                     ((t.name, t.app, t.owner, t.head_revision, t.updated_at) for t in self.items))


class State(TwinState):
    """A twin's state at a revision or a time: ``to_pandas()`` gives one row per property."""

    def to_pandas(self) -> pd.DataFrame:
        """Columns reported, unit, timestamp, revision, desired, flag (of the reported value: good, suspect
        or bad) and stale (True/False for a property with a gap check, else None); indexed by property name."""
        import pandas as pd

        names = sorted(set(self.reported) | set(self.desired))
        rows = []
        for name in names:
            rep, des = self.reported.get(name), self.desired.get(name)
            either = rep or des
            flag = None if rep is None else rep.quality.flag if rep.quality else "good"
            rows.append({"property": name, "reported": rep.value if rep else None,
                         "unit": either.unit if either else None,
                         "timestamp": pd.Timestamp(rep.timestamp) if rep else pd.NaT,
                         "revision": rep.revision if rep else None, "desired": des.value if des else None,
                         "flag": flag, "stale": rep.stale if rep else None})
        frame = pd.DataFrame(rows, columns=["property", "reported", "unit", "timestamp", "revision", "desired",
                                            "flag", "stale"])
        return frame.set_index("property")

    def _repr_html_(self) -> str:
        where = f"revision {self.revision}" if self.revision is not None else f"at {self.at}"
        names = sorted(set(self.reported) | set(self.desired))
        rows = []
        for name in names:
            rep, des = self.reported.get(name), self.desired.get(name)
            either = rep or des
            rows.append((name, rep.value if rep else None, either.unit if either else None,
                         rep.timestamp if rep else None, des.value if des else None,
                         "≠" if name in self.delta else ""))
        return table(f"state {where}", ("property", "reported", "unit", "timestamp", "desired", "delta"), rows,
                     caption=self.twin_id)


class History(HistoryRead):
    """One property's values over time: ``to_pandas()`` gives them with their quality flags, by timestamp."""

    def to_pandas(self) -> pd.DataFrame:
        """A frame indexed by timestamp (UTC): the values in a column named after the property (``value``
        for a property named like another column), then ``flag`` (good, suspect or bad), ``checks`` (the
        state checks a value failed, comma-separated) and ``revision``; ``attrs`` holds the unit and kind."""
        import pandas as pd

        index = pd.DatetimeIndex([v.timestamp for v in self.items], name="timestamp")
        if index.tz is None and len(index):
            index = index.tz_localize("UTC")
        values = [v.value for v in self.items]
        numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
        column = "value" if self.property in ("flag", "checks", "revision") else self.property
        frame = pd.DataFrame({
            column: pd.Series(values, index=index, dtype="float64" if numeric else None),
            "flag": pd.Series([v.quality.flag if v.quality else "good" for v in self.items], index=index,
                              dtype="object"),
            "checks": pd.Series([", ".join(v.quality.checks) if v.quality and v.quality.checks else None
                                 for v in self.items], index=index, dtype="object"),
            "revision": pd.Series([v.revision for v in self.items], index=index, dtype="int64"),
        }, index=index)
        frame.attrs.update(units=self.unit, kind=str(self.kind), twin=self.twin_id)
        return frame

    def _repr_html_(self) -> str:
        rows = ((v.timestamp, v.value, v.unit, v.revision) for v in self.items)
        return table(f"{self.property} ({self.kind}), {len(self.items)} values", ("timestamp", "value", "unit",
                                                                                   "revision"), rows)
