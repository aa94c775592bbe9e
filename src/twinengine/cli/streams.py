"""``twin stream``: send records, read history, tail live records, MQTT bindings, functions, and
``twin buffer`` for retraining buffers."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import pyarrow as pa
import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from twinengine.cli._common import console, err_console, state_of, table
from twinengine.cli.state import _instant
from twinengine.errors import Problem, TwinEngineError, ValidationFailed
from twinengine.streams.schemas import BufferRead

app = typer.Typer(help="A twin's streams: send, read, tail, bind to MQTT, functions on arrival.", no_args_is_help=True)
buffers = typer.Typer(help="Retraining buffers: policies that collect stream records for the AI lifecycle.",
                      no_args_is_help=True)

_META = ("_offset", "_arrival", "_quality", "_checks", "_uncertainty")


def _load(path: str) -> tuple[list[dict[str, Any]] | pa.Table, list[int] | None]:
    """Records from a JSON lines file (or '-' for stdin), with the line of each record, or an Arrow IPC
    file/stream (.arrow, .feather) with None (its records are numbered by row)."""
    if path != "-" and Path(path).suffix in (".arrow", ".feather", ".ipc"):
        data = Path(path).read_bytes()
        try:
            return pa.ipc.open_file(pa.BufferReader(data)).read_all(), None
        except pa.ArrowInvalid:
            return pa.ipc.open_stream(data).read_all(), None
    text = sys.stdin.read() if path == "-" else Path(path).read_text()
    records, lines = [], []
    for i, line in enumerate(text.splitlines()):
        if line.strip():
            try:
                records.append(json.loads(line))
            except ValueError as exc:
                raise ValidationFailed.one(f"line {i + 1}", f"not valid JSON ({exc})") from None
            lines.append(i + 1)
    return records, lines


_RECORD = re.compile(r"^records\[(\d+)\]\.?")


def _in_file(problem: Problem, first: int, lines: list[int] | None) -> Problem:
    """A problem the engine located in a batch (``records[399].well``) located in the file instead
    (``line 900, field well``), the batch starting at record ``first`` of the file."""
    found = _RECORD.match(problem.loc)
    if found is None:
        return problem
    index = first + int(found.group(1))
    place = f"line {lines[index]}" if lines is not None and index < len(lines) else f"row {index + 1}"
    rest = problem.loc[found.end():]
    return Problem(f"{place}, field {rest}" if rest else place, problem.msg)


def _stopped(exc: TwinEngineError, *, path: str, twin: str, stream: str, sent: int, skip: int, appended: int,
             lines: list[int] | None, producer: str | None, seq: int | None, filtered: bool = False
             ) -> TwinEngineError:
    """The engine refused a batch: say where in the file, what was appended before it, and how to resume
    (``filtered``: records already held were left out, so the file's positions no longer count: the same
    command again recognises what was appended)."""
    where = f"line {lines[sent]}" if lines is not None and sent < len(lines) else f"row {sent + 1}"
    note = f"the batch from {where} of {path} was refused and nothing of it was kept; "
    if sent == skip:
        note += "nothing was appended"
    else:
        resume = f"twin stream send {twin} {stream} {path} --skip {sent}"
        if producer is not None and seq is not None:
            resume += f" --producer {producer} --seq {seq + sent - skip}"
        if filtered and producer is not None:
            resume = f"twin stream send {twin} {stream} {path} --producer {producer} (what was appended is skipped)"
        repeats = sent - skip - appended
        note += (f"the {sent - skip} records before it were appended"
                 + (f" ({repeats} of them dropped as repeats)" if repeats else "")
                 + f"; after fixing the file, resume with: {resume}")
    if isinstance(exc, ValidationFailed):
        return ValidationFailed([_in_file(p, sent, lines) for p in exc.problems], message=note)
    exc.message = f"{exc.message} ({note})"
    return exc


@app.command("list")
def list_streams(ctx: typer.Context, twin: str = typer.Argument(...)) -> None:
    """The twin's streams: fields, end offset, function lag, MQTT topic."""
    out = state_of(ctx)
    with out.client() as client:
        rows = client.streams.list(twin)
    out.emit(rows, lambda: console.print(table(f"streams of {twin}", ["stream", "fields", "time", "key", "records",
                                                                       "lag", "MQTT topic"],
                                               [(s.name, ", ".join(s.fields), s.time_field, s.key, s.end_offset, s.lag,
                                                 s.mqtt_topic) for s in rows])))


@app.command("send")
def send(ctx: typer.Context, twin: str = typer.Argument(...), stream: str = typer.Argument(...),
         path: str = typer.Argument(..., metavar="FILE", help="JSON lines, Arrow IPC (.arrow), or - for stdin."),
         batch: int = typer.Option(5000, "--batch", min=1, max=1_000_000, help="Records per request."),
         producer: str | None = typer.Option(None, "--producer", help="Producer id (repeats are dropped)."),
         seq: int | None = typer.Option(None, "--seq", min=0, help="Sequence number of the first record sent "
                                                                   "(with --producer; default: the one after "
                                                                   "the producer's last on this stream)."),
         skip: int = typer.Option(0, "--skip", min=0, help="Records of the file to leave out at its start (to "
                                                           "resume after a refused batch).")) -> None:
    """Append records in batches; each batch is acknowledged once durable. A refused batch stops the command
    with the file's line, what was appended before it and how to resume. With --producer (and no --seq), a
    record the stream already holds (the same time and values: a file sent again, or one that grew) is
    recognised and skipped, and said."""
    out = state_of(ctx)
    records, lines = _load(path)
    total = records.num_rows if isinstance(records, pa.Table) else len(records)
    sent = min(skip, total)
    appended = duplicates = already = 0
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with out.client() as client, Progress(*columns, console=console, disable=out.as_json) as bars:
        start = seq
        if producer is not None and start is None:  # resume where the producer stopped, not at 0
            position = client.streams.producer(twin, stream, producer)
            start = position.next_seq
            if position.last_seq is not None and sent < total:  # it sent before: leave out what is held
                records, lines, already = _unheld(client, twin, stream, records, lines, sent)
                total -= already
            if not out.as_json:
                if already:
                    err_console.print(f"{already} records were already acknowledged, skipped", highlight=False)
                if start:
                    err_console.print(f"producer {escape(producer)} resumes at seq {start}", highlight=False)
        task = bars.add_task(f"sending to {twin}/{stream}", total=total - sent)
        while sent < total:
            part = records.slice(sent, batch) if isinstance(records, pa.Table) else records[sent: sent + batch]
            try:
                ack = client.streams.append(twin, stream, part, producer=producer,
                                            seq=start + sent - skip if start is not None and producer else None)
            except TwinEngineError as exc:
                raise _stopped(exc, path=path, twin=twin, stream=stream, sent=sent, skip=skip, appended=appended,
                               lines=lines, producer=producer, seq=start, filtered=already > 0) from None
            size = part.num_rows if isinstance(part, pa.Table) else len(part)
            sent, appended, duplicates = sent + size, appended + ack.count, duplicates + ack.duplicates
            bars.advance(task, size)
    result = {"twin": twin, "stream": stream, "sent": sent - min(skip, total), "appended": appended,
              "duplicates": duplicates}
    if producer is not None and start is not None:
        result.update(producer=producer, next_seq=start + sent - min(skip, total), already_acknowledged=already)
    out.emit(result, lambda: console.print(f"appended {appended} of {result['sent']} records to {twin}/{stream}"
                                           + (f" ({duplicates} duplicates dropped)" if duplicates else "")
                                           + (f"; {already} records were already acknowledged, skipped"
                                              if already else "")))


_HELD_PAGE = 100_000


def _unheld(client: Any, twin: str, stream: str, records: list[dict[str, Any]] | pa.Table,
            lines: list[int] | None, first: int) -> tuple[list[dict[str, Any]] | pa.Table, list[int] | None, int]:
    """The file's records from ``first`` on without those the stream already holds (read back over the
    file's time span and compared by value: ``streams.resend``), their lines, and how many were left out."""
    from twinengine.streams import resend

    declared = next((s for s in client.streams.list(twin) if s.name == stream), None)
    if declared is None:
        return records, lines, 0  # the append names the unknown stream
    rows = records.slice(first).to_pylist() if isinstance(records, pa.Table) else records[first:]
    bounds = resend.span(rows, declared.time_field)
    if bounds is None:
        return records, lines, 0
    stored: list[dict[str, Any]] = []
    start: int | None = None
    while True:  # pages of records over the span, each from the offset after the last one read
        page = client.streams.read_arrow(twin, stream, start=start, since=bounds[0], until=resend.until(bounds[1]),
                                         limit=_HELD_PAGE)
        if page.num_rows == 0:
            break
        stored += page.select([f for f in declared.fields if f in page.column_names]).to_pylist()
        start = int(page.column("_offset")[-1].as_py()) + 1
    gone = set(resend.held(rows, stored, declared.fields))
    if not gone:
        return records, lines, 0
    keep = list(range(first)) + [first + i for i in range(len(rows)) if i not in gone]
    kept_lines = None if lines is None else [lines[i] for i in keep]
    if isinstance(records, pa.Table):
        return records.take(pa.array(keep, type=pa.int64())), kept_lines, len(gone)
    return [records[i] for i in keep], kept_lines, len(gone)


def _show(title: str, items: list[dict[str, Any]]) -> None:
    if not items:
        console.print(f"{title}: no records")
        return
    fields = [k for k in items[0] if k not in _META]
    console.print(table(title, ["offset", *fields, "quality", "arrival (UTC)"],
                        [(r["_offset"], *(_cell(r.get(f), (r.get("_uncertainty") or {}).get(f)) for f in fields),
                          _flag(r), r["_arrival"]) for r in items]))


def _cell(value: Any, carried: dict[str, Any] | None = None) -> Any:
    """An array field's value as its length (``--json`` gives the samples); a value with its uncertainty."""
    if isinstance(value, list):
        return f"{len(value)} samples"
    if carried:
        from twinengine.quality.uncertainty import Uncertainty, describe

        return f"{value} {describe(Uncertainty.model_validate(carried))}"
    return value


def _flag(record: dict[str, Any]) -> str:
    flag = str(record.get("_quality") or "good")
    return f"{flag} ({record['_checks']})" if record.get("_checks") else flag


@app.command("read")
def read(ctx: typer.Context, twin: str = typer.Argument(...), stream: str = typer.Argument(...),
         start: int | None = typer.Option(None, "--start", min=0, help="First offset."),
         since: str | None = typer.Option(None, "--since", help="Event time from (ISO 8601)."),
         until: str | None = typer.Option(None, "--until", help="Event time before (ISO 8601)."),
         limit: int = typer.Option(100, "--limit", min=1, max=100_000),
         quality: list[str] | None = typer.Option(None, "--quality", help="Only these flags: good, suspect, bad "
                                                                            "(repeat for several).")) -> None:
    """History by offset and/or event-time range, in arrival order, with each record's quality flag."""
    out = state_of(ctx)
    with out.client() as client:
        page = client.streams.read(twin, stream, start=start, since=_instant(since, "--since"),
                                   until=_instant(until, "--until"), limit=limit, quality=quality)
    out.emit(page, lambda: _show(f"{twin}/{stream}: {page.count} records (next offset {page.next_offset}, end "
                                 f"{page.end_offset})", page.items))


@app.command("tail")
def tail(ctx: typer.Context, twin: str = typer.Argument(...), stream: str = typer.Argument(...),
         lines: int = typer.Option(10, "--lines", "-n", min=0, max=100_000, help="Newest records to show first."),
         follow: bool = typer.Option(False, "--follow", "-f", help="Then print new records as they arrive."),
         count: int | None = typer.Option(None, "--count", min=1, help="With -f: stop after this many new ones."),
         idle: float | None = typer.Option(None, "--idle", min=0.1, help="With -f: stop after this many quiet s.")
         ) -> None:
    """The newest records, then (with -f) live ones, one JSON object per line."""
    out = state_of(ctx)
    with out.client() as client:
        page = client.streams.read(twin, stream, last=lines) if lines else None
        for record in page.items if page else []:
            print(json.dumps(record), flush=True)
        if follow:
            start = page.end_offset if page else None
            for record in client.streams.follow(twin, stream, start=start, count=count, idle=idle):
                print(json.dumps(record), flush=True)


@app.command("bind")
def bind(ctx: typer.Context, twin: str = typer.Argument(...), stream: str = typer.Argument(...),
         topic: str = typer.Argument(..., help="MQTT topic whose messages feed the stream.")) -> None:
    """Feed a stream from an MQTT topic (the engine subscribes with QoS 1 when TWIN_MQTT_URL is set)."""
    out = state_of(ctx)
    with out.client() as client:
        row = client.streams.bind_mqtt(twin, stream, topic)
    out.emit(row, lambda: console.print(f"{twin}/{stream} ← mqtt {row.mqtt_topic}"))


@app.command("unbind")
def unbind(ctx: typer.Context, twin: str = typer.Argument(...), stream: str = typer.Argument(...)) -> None:
    """Stop feeding a stream from MQTT."""
    out = state_of(ctx)
    with out.client() as client:
        client.streams.unbind_mqtt(twin, stream)
    out.emit({"twin": twin, "stream": stream, "unbound": True}, lambda: console.print(f"{twin}/{stream} unbound"))


@app.command("functions")
def functions(ctx: typer.Context, twin: str = typer.Argument(...)) -> None:
    """Functions on arrival: trigger, checkpoint, lag, calls, dead letters, and why one is paused or waits."""
    out = state_of(ctx)
    with out.client() as client:
        rows = client.streams.functions(twin)
    out.emit(rows, lambda: console.print(table(f"functions of {twin}", ["function", "stream", "trigger", "offset",
                                                                         "lag", "calls", "dead letters", "status"],
                                               [(f.name, f.stream, f.trigger.kind, f.offset, f.lag, f.calls,
                                                 f.dead_letters, f"paused: {f.paused_reason}" if f.paused
                                                 else f"waiting: {f.held}" if f.held else "running")
                                                for f in rows])))


@app.command("resume")
def resume(ctx: typer.Context, twin: str = typer.Argument(...), function: str = typer.Argument(...)) -> None:
    """Resume a paused function; the dead letters of the run that paused it are handled again."""
    out = state_of(ctx)
    with out.client() as client:
        done = client.streams.resume_function(twin, function)
    out.emit(done, lambda: console.print(f"{twin}/{function} resumed at offset {done.offset}; "
                                         f"{done.replayed} dead letters replayed"))


@app.command("events")
def events(ctx: typer.Context, twin: str = typer.Argument(...),
           last: int = typer.Option(20, "--last", min=1, max=10_000)) -> None:
    """Events the twin's functions emitted, and the workflow runs they asked for."""
    out = state_of(ctx)
    with out.client() as client:
        rows = client.streams.events(twin, last=last)
    out.emit(rows, lambda: console.print(table(f"function events of {twin}", ["offset", "time (UTC)", "function",
                                                                              "kind", "data"],
                                               [(e.offset, e.time, e.function, e.kind, e.data) for e in rows])))


@app.command("dead-letters")
def dead_letters(ctx: typer.Context, twin: str = typer.Argument(...),
                 function: str | None = typer.Option(None, "--function"),
                 limit: int = typer.Option(20, "--limit", min=1, max=1000)) -> None:
    """Records functions gave up on, with the reason."""
    out = state_of(ctx)
    with out.client() as client:
        rows = client.streams.dead_letters(twin, function=function, limit=limit)
    out.emit(rows, lambda: console.print(table(f"dead letters of {twin}", ["id", "function", "offsets", "attempts",
                                                                            "error", "at (UTC)"],
                                               [(d.id, d.function, f"{d.first_offset}..{d.last_offset}", d.attempts,
                                                 d.error, d.created_at) for d in rows])))


def _buffer_table(rows: list[BufferRead]) -> None:
    console.print(table("retraining buffers", ["buffer", "stream", "policy", "filling", "fills ready", "discard"],
                        [(b.name, b.stream, b.policy + (f" {b.records}" if b.records else "")
                          + (f" {b.seconds:g}s" if b.seconds else ""), b.filled,
                          sum(f.status == "ready" for f in b.fills), b.discard_after) for b in rows]))


@buffers.command("create")
def buffer_create(ctx: typer.Context, twin: str = typer.Argument(...), name: str = typer.Argument(...),
                  stream: str = typer.Option(..., "--stream"),
                  policy: str = typer.Option(..., "--policy", help="count, time or external."),
                  records: int | None = typer.Option(None, "--records", min=1, help="count: seal every N records."),
                  seconds: float | None = typer.Option(None, "--seconds", min=0.001, help="time: seal every S s."),
                  keep: bool = typer.Option(False, "--keep", help="Keep fills after retraining (fills grow)."),
                  exclude: list[str] | None = typer.Option(None, "--exclude", help="Leave records with this quality "
                                                                                  "flag out of fills (suspect, bad; "
                                                                                  "repeat for both).")) -> None:
    """Create a buffer policy on a stream."""
    out = state_of(ctx)
    with out.client() as client:
        row = client.streams.create_buffer(twin, name, stream, policy=policy, records=records, seconds=seconds,
                                           discard_after=not keep, exclude=exclude)
    out.emit(row, lambda: _buffer_table([row]))


@buffers.command("list")
def buffer_list(ctx: typer.Context, twin: str = typer.Argument(...)) -> None:
    """The twin's buffers and their fills."""
    out = state_of(ctx)
    with out.client() as client:
        rows = client.streams.buffers(twin)
    out.emit(rows, lambda: _buffer_table(rows))


@buffers.command("seal")
def buffer_seal(ctx: typer.Context, twin: str = typer.Argument(...), name: str = typer.Argument(...)) -> None:
    """External trigger: seal what the buffer holds now into a fill."""
    out = state_of(ctx)
    with out.client() as client:
        fill = client.streams.seal_buffer(twin, name)
    out.emit(fill, lambda: console.print(f"fill {fill.id}: offsets {fill.start_offset}..{fill.end_offset - 1} "
                                         f"({fill.end_offset - fill.start_offset} records) ready for retraining"))
