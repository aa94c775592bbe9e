"""``twin state``: report and desire properties, read the state now or in the past, history, diff."""

from __future__ import annotations

from typing import Any

import typer
from pydantic import ValidationError as PydanticError
from rich.markup import escape

from twinengine.cli import state_import
from twinengine.cli._common import console, parse_assignments, state_of, table
from twinengine.errors import Problem, ValidationFailed
from twinengine.quality.spec import Flag
from twinengine.quality.uncertainty import describe
from twinengine.timeutil import parse_instant
from twinengine.twins.schemas import PropertyRead, PropertyValue, PropertyWrite, RevisionRead, TwinState

app = typer.Typer(help="A twin's state: write, read (now or as of a revision/time), history, diff.",
                  no_args_is_help=True)


def _flags(given: list[str] | None) -> list[str] | None:
    """``--quality`` values, checked before anything is asked of the engine."""
    if not given:
        return None
    names = [flag.value for flag in Flag]
    wrong = [g for g in given if g not in names]
    if wrong:
        raise ValidationFailed.one("--quality", f"{', '.join(map(repr, wrong))} is not a flag; use "
                                                f"{', '.join(names)}")
    return given


def _instant(text: str | None, option: str) -> Any:
    if text is None:
        return None
    try:
        return parse_instant(text)
    except ValueError as exc:
        raise ValidationFailed.one(option, f"{text!r} is not an ISO 8601 time ({exc})") from None


def _writes(assignments: list[str], units: list[str], at: str | None,
            uncertainties: list[str] | None = None) -> dict[str, PropertyWrite]:
    values = parse_assignments(assignments, option="PROPERTY=VALUE")
    unit_of = parse_assignments(units, option="--unit")
    spread_of = parse_assignments(uncertainties or [], option="--uncertainty")
    for option, given in (("--unit", unit_of), ("--uncertainty", spread_of)):
        unknown = sorted(set(given) - set(values))
        if unknown:
            raise ValidationFailed.one(option, f"given for properties not written: {', '.join(unknown)}")
    stamp = _instant(at, "--at")
    writes, problems = {}, []
    for k, v in values.items():
        try:
            writes[k] = PropertyWrite(value=v, unit=str(unit_of[k]) if k in unit_of else None, timestamp=stamp,
                                      uncertainty=spread_of.get(k))
        except PydanticError as exc:
            problems += [Problem(".".join(["--uncertainty", k, *map(str, e["loc"][1:])]), e["msg"])
                         for e in exc.errors()]
    if problems:
        raise ValidationFailed(problems)
    return writes


def _show_revision(row: RevisionRead) -> None:
    console.print(f"revision [bold]{row.revision}[/bold] of {row.twin_id} by {row.author} at "
                  f"{row.recorded_at.isoformat(timespec='seconds')}" + (f": {escape(row.message)}" if row.message
                                                                        else ""), highlight=False)
    console.print(table(None, *_spread_column(
        ["kind", "property", "value", "uncertainty", "unit", "timestamp (UTC)"],
        [(c.kind.value, escape(c.property), c.value, describe(c.uncertainty), c.unit, c.timestamp)
         for c in row.changes])))


_VALUES_HELP = "PROPERTY=VALUE pairs (JSON values)."
_UNIT_HELP = "PROPERTY=UNIT when a value is not in the declared unit (it is converted)."
_UNCERTAINTY_HELP = ("PROPERTY.FORM=JSON: the value's uncertainty in a form its property declares, e.g. level.std=0.3, "
                     "level.quantiles='{\"0.05\": 1.7, \"0.95\": 2.6}', level.members='[1.9, 2.2]'.")


@app.command("report")
def report(ctx: typer.Context, twin: str = typer.Argument(...),
           values: list[str] = typer.Argument(..., help=_VALUES_HELP),
           unit: list[str] = typer.Option([], "--unit", help=_UNIT_HELP),
           at: str | None = typer.Option(None, "--at", help="When the values were true (ISO 8601; default now)."),
           uncertainty: list[str] = typer.Option([], "--uncertainty", help=_UNCERTAINTY_HELP),
           message: str | None = typer.Option(None, "--message", "-m")) -> None:
    """Write reported values (what the physical twin says): one new revision."""
    out = state_of(ctx)
    with out.client() as client:
        row = client.write_state(twin, reported=_writes(values, unit, at, uncertainty), message=message)
    out.emit(row, lambda: _show_revision(row))


@app.command("desire")
def desire(ctx: typer.Context, twin: str = typer.Argument(...),
           values: list[str] = typer.Argument(..., help=_VALUES_HELP),
           unit: list[str] = typer.Option([], "--unit", help=_UNIT_HELP),
           message: str | None = typer.Option(None, "--message", "-m")) -> None:
    """Write desired values (what users want the physical twin to be): one new revision."""
    out = state_of(ctx)
    with out.client() as client:
        row = client.write_state(twin, desired=_writes(values, unit, None), message=message)
    out.emit(row, lambda: _show_revision(row))


def _show_state(twin: str, state: TwinState) -> None:
    when = f"revision {state.revision}" if state.revision is not None else f"time {state.at}"
    if state.quality:
        when += f", only {'/'.join(state.quality)} values"
    rows = [("reported", escape(p), v.value, describe(v.uncertainty), v.unit, v.timestamp, v.revision, _inputs(v),
             _staleness(v)) for p, v in state.reported.items()]
    rows += [("desired", escape(p), v.value, describe(v.uncertainty), v.unit, v.timestamp, v.revision, _inputs(v), "")
             for p, v in state.desired.items()]
    console.print(table(f"state of {twin} as of {when}", *_spread_column(
        ["kind", "property", "value", "uncertainty", "unit", "timestamp (UTC)", "revision", "quality", "stale"],
        rows)))
    if state.stale and state.stale_as_of is not None:
        console.print(f"stale at {state.stale_as_of:%Y-%m-%d %H:%M:%S} UTC (no report within the declared gap): "
                      f"{escape(', '.join(state.stale))}", highlight=False)
    if state.delta:
        console.print(f"pending (desired ≠ reported): {state.delta}", highlight=False)


def _staleness(value: PropertyValue) -> str:
    if value.stale is None:
        return ""
    if value.stale and value.stale_since is not None:
        return f"yes, since {value.stale_since:%Y-%m-%d %H:%M:%S}"
    return "no"


_QUALITY_HELP = ("Only values with this flag (good, suspect, bad; repeat for several): each property's newest "
                 "such value.")


# Help texts are rich markup: the backslash keeps "[ow3]" from being read as a style tag (and dropped).
_PROPERTY_HELP = ("Only this property: 'level', one key 'head\\[ow3]', or a keyed property whole ('head'), shown as "
                  "a table of its keys.")


@app.command("show")
def show(ctx: typer.Context, twin: str = typer.Argument(...),
         revision: int | None = typer.Option(None, "--revision", "-r", min=0, help="As of this revision."),
         at: str | None = typer.Option(None, "--at", help="As of this time (values' timestamps; ISO 8601)."),
         quality: list[str] | None = typer.Option(None, "--quality", help=_QUALITY_HELP),
         prop: str | None = typer.Option(None, "--property", "-p", help=_PROPERTY_HELP)) -> None:
    """The state now, as of a revision, or as of a time; stale properties (gap checks) are marked."""
    out = state_of(ctx)
    flags = _flags(quality)
    if prop is not None:
        if flags:
            raise ValidationFailed.one("--quality", "give either --quality or --property, not both")
        with out.client() as client:
            one = client.get_property(twin, prop, revision=revision, at=_instant(at, "--at"))
        out.emit(one, lambda: _show_property(twin, one))
        return
    with out.client() as client:
        result = client.get_state(twin, revision=revision, at=_instant(at, "--at"), quality=flags)
    out.emit(result, lambda: _show_state(twin, result))


def _show_property(twin: str, read: PropertyRead) -> None:
    when = f"revision {read.revision}" if read.revision is not None else f"time {read.at}"
    found = read.keys if read.keys is not None else ({} if read.value is None else {"": read.value})
    rows = [(escape(k), v.value, describe(v.uncertainty), v.unit, v.timestamp, v.revision, _inputs(v), _staleness(v))
            for k, v in found.items()]
    first = [read.key or "key"] if read.keys is not None else []
    columns = [*first, "value", "uncertainty", "unit", "timestamp (UTC)", "revision", "quality", "stale"]
    shown = rows if read.keys is not None else [row[1:] for row in rows]
    console.print(table(f"{read.kind.value} {escape(read.property)} of {twin} as of {when}"
                        + (f" ({len(rows)} keys)" if read.keys is not None else ""),
                        *_spread_column(columns, shown)))


@app.command("history")
def history(ctx: typer.Context, twin: str = typer.Argument(...), prop: str = typer.Argument(..., metavar="PROPERTY"),
            kind: str = typer.Option("reported", "--kind", help="reported or desired."),
            since: str | None = typer.Option(None, "--since"), until: str | None = typer.Option(None, "--until"),
            limit: int = typer.Option(100, "--limit", min=1, max=100_000),
            quality: list[str] | None = typer.Option(None, "--quality", help="Only values with this flag (good, "
                                                                             "suspect, bad; repeat for several).")
            ) -> None:
    """A property's values over a time range."""
    out = state_of(ctx)
    flags = _flags(quality)
    with out.client() as client:
        result = client.history(twin, prop, kind=kind,  # type: ignore[arg-type]
                                since=_instant(since, "--since"), until=_instant(until, "--until"), limit=limit,
                                quality=flags)
    out.emit(result, lambda: console.print(table(
        f"{kind} {escape(prop)} of {twin} ({len(result.items)} values, unit {result.unit or '-'})",
        *_spread_column(["timestamp (UTC)", "value", "uncertainty", "revision", "quality"],
                        [(v.timestamp, v.value, describe(v.uncertainty), v.revision, _inputs(v))
                         for v in result.items]))))


@app.command("revisions")
def revisions(ctx: typer.Context, twin: str = typer.Argument(...),
              limit: int = typer.Option(20, "--limit", min=1, max=1000),
              offset: int = typer.Option(0, "--offset", min=0)) -> None:
    """The state log, newest first."""
    out = state_of(ctx)
    with out.client() as client:
        page = client.revisions(twin, limit=limit, offset=offset)
    out.emit(page, lambda: console.print(table(
        f"revisions of {twin} ({len(page.items)} of {page.total})", ["revision", "recorded (UTC)", "author", "changes",
                                                                      "message"],
        [(r.revision, r.recorded_at, r.author, _changes(r), r.message) for r in page.items])))


def _changes(row: RevisionRead) -> str:
    return escape(", ".join(f"{c.kind.value[0]}:{c.property}={c.value}" for c in row.changes))


@app.command("diff")
def diff(ctx: typer.Context, twin: str = typer.Argument(...),
         from_revision: int = typer.Argument(..., metavar="FROM", min=0),
         to_revision: int | None = typer.Argument(None, metavar="[TO]", min=0, help="Default: head.")) -> None:
    """What changed between two revisions."""
    out = state_of(ctx)
    with out.client() as client:
        result = client.diff(twin, from_revision, to_revision)
    out.emit(result, lambda: console.print(table(
        f"{twin}: revision {result.from_revision} → {result.to_revision}", ["kind", "property", "change", "before",
                                                                            "after"],
        [(c.kind.value, escape(c.property), c.change, _shown(c.before), _shown(c.after)) for c in result.changes])))


def _spread_column(columns: list[str], rows: list[tuple[Any, ...]]) -> tuple[list[str], list[tuple[Any, ...]]]:
    """The columns and rows without the uncertainty (quality, stale) column when no value in them has one."""
    for name in ("stale", "quality", "uncertainty"):
        if name not in columns:
            continue
        at = columns.index(name)
        if not any(row[at] for row in rows):
            columns, rows = columns[:at] + columns[at + 1:], [row[:at] + row[at + 1:] for row in rows]
    return columns, rows


def _inputs(value: Any) -> str:
    """What a value says of its quality: the checks of its property it failed, or the inputs it was computed
    from when they were not all good (pedigree)."""
    quality = getattr(value, "quality", None)
    if quality is None:
        return ""
    why = [*(quality.checks or []), *([quality.function or quality.run or "inputs"] if quality.inputs else [])]
    return f"{quality.flag} ({', '.join(why) or 'inputs'})"


def _shown(value: PropertyValue | None) -> str | None:
    if value is None:
        return None
    spread = describe(value.uncertainty)
    return f"{value.value} ({spread})" if spread else str(value.value)


app.command("import")(state_import.import_file)
