"""``returnbridge events list|show|replay``: the stored inbound events."""

from __future__ import annotations

import base64
import json
import sys
import unicodedata
from collections.abc import Callable
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from returnbridge.cli.common import ByOpt, ConfigOpt, JsonOpt, default_actor, err, out, runtime

app = typer.Typer(no_args_is_help=True,
                  help="Stored inbound events: list them, show one (raw bytes and what "
                  "returnbridge reads in it), replay one.")

_KEEP = {"\n", "\t"}


def terminal_safe(text: str) -> str:
    """``text`` with control and format characters (escape sequences, bidi overrides,
    NULs, ...) shown as ``\\xNN`` / ``\\uNNNN`` so a payload can never drive the terminal.
    Rich markup is escaped by the caller (or printed with ``markup=False``)."""
    shown: list[str] = []
    for char in text:
        if char in _KEEP or unicodedata.category(char) not in ("Cc", "Cf", "Cs", "Co"):
            shown.append(char)
        elif ord(char) < 0x100:
            shown.append(f"\\x{ord(char):02x}")
        else:
            shown.append(f"\\u{ord(char):04x}")
    return "".join(shown)


def safe_body(body: bytes) -> str:
    """The body as text for a terminal: UTF-8 where it is, ``\\xNN`` for other bytes."""
    return terminal_safe(body.decode("utf-8", errors="backslashreplace"))


def _safe(value: Any) -> str:
    return escape(terminal_safe(str(value)))


def _fail(message: str, code: int = 1) -> typer.Exit:
    err.print(_safe(message), style="red", soft_wrap=True, highlight=False)
    return typer.Exit(code)


def _guard(fn: Callable[[], Any]) -> Any:
    from returnbridge.flows.ingest import events as events_admin

    try:
        return fn()
    except (events_admin.EventNotFound, events_admin.BadEventFilter) as exc:
        raise _fail(str(exc)) from None


@app.command("list")
def list_cmd(
    config: ConfigOpt = None,
    source: Annotated[list[str] | None, typer.Option(
        help="loop, zigzag or khaos (repeat or comma-separate for several).")] = None,
    status: Annotated[list[str] | None, typer.Option(
        help="received, processed, unhandled, deferred, invalid, failed or all "
        "(repeat or comma-separate).")] = None,
    older_than: Annotated[str | None, typer.Option(
        "--older-than", help="Received at least this long ago: 30m, 2h, 3d, 1w.")] = None,
    since: Annotated[str | None, typer.Option(
        help="Received since a date/time (2026-11-30, 2026-11-30T08:00, UTC) or a duration "
        "back from now (24h).")] = None,
    ref: Annotated[str | None, typer.Option(
        help="The return: AssociatedRef (LR-12345) or the platform's own return id.")] = None,
    topic: Annotated[str | None, typer.Option(
        help="Topic or event name, e.g. return or ReturnGraded.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
    offset: Annotated[int, typer.Option(min=0)] = 0,
    as_json: JsonOpt = False,
) -> None:
    """List stored events, newest first, with status, return, attempts and age."""
    from returnbridge.flows.ingest.events import list_events

    with runtime(config) as rt:
        page = _guard(lambda: list_events(rt, source=source, status=status,
                                          older_than=older_than, since=since, ref=ref,
                                          topic=topic, limit=limit, offset=offset))
    if as_json:
        out.print_json(json.dumps({"total": page.total, "limit": page.limit,
                                   "offset": page.offset, "events": page.items}))
        return
    if not page.items:
        out.print("No stored events match." if page.total == 0 else
                  f"No events on this page ({page.total} match; lower --offset).")
        return
    table = Table(title=f"{page.total} event(s)" + (
        f", showing {page.offset + 1}-{page.offset + len(page.items)}"
        if page.total > len(page.items) else ""))
    headers = ["id", "source", "topic", "status", "return", "tries", "age", "received"]
    rows = [[str(e["id"]), e["source"],
             terminal_safe(" / ".join(t for t in (e["topic"], e["trigger"]) if t) or "-"),
             e["status"], terminal_safe(e["associated_ref"] or e["source_ref"] or "-"),
             str(e["attempts"]), e["age"], e["received_at"][5:16].replace("T", " ")]
            for e in page.items]
    widths = [max(len(column), *(len(r[i]) for r in rows)) for i, column in enumerate(headers)]
    for column in headers:
        table.add_column(column, no_wrap=True,
                         justify="right" if column in ("id", "tries", "age") else "left")
    # Every other column keeps its full width; only the error is cut ('show' has it all).
    room = out.width - sum(w + 3 for w in widths) - 4
    if room >= 20:
        table.add_column("last error / note", no_wrap=True, overflow="ellipsis",
                         max_width=room)
    colours = {"failed": "red", "invalid": "red", "deferred": "yellow", "received": "yellow"}
    for row, e in zip(rows, page.items, strict=True):
        colour = colours.get(e["status"], "")
        cells = [escape(cell) for cell in row]
        if colour:
            cells[3] = f"[{colour}]{cells[3]}[/{colour}]"
        if room >= 20:
            cells.append(_safe(e["error"].splitlines()[0] if e["error"] else ""))
        table.add_row(*cells)
    out.print(table)
    if page.total > page.offset + len(page.items):
        out.print(f"More: --offset {page.offset + len(page.items)}", highlight=False)
    out.print("One event in full: returnbridge events show ID", highlight=False)


def _print_interpretation(found: dict[str, Any]) -> None:
    if not found.get("readable", False):
        out.print(f"[red]Cannot be read now:[/red] {_safe(found.get('error', ''))}",
                  soft_wrap=True, highlight=False)
        return
    if not found.get("handled", False):
        out.print(f"Not used by this version: {_safe(found.get('note', ''))}",
                  soft_wrap=True, highlight=False)
        return
    ref = found.get("associated_ref") or found.get("source_return_id") or "-"
    out.print(f"Reads as: trigger [bold]{_safe(found.get('trigger') or '-')}[/bold] for "
              f"return {_safe(ref)}", highlight=False)
    if found.get("note"):
        out.print(f"  {_safe(found['note'])}", soft_wrap=True, highlight=False)
    snap = found.get("snapshot")
    if snap:
        out.print(f"  snapshot: state {snap['state']} (source: {_safe(snap['source_state'])}),"
                  f" order {_safe(snap['order_ref'] or '-')}, {snap['units']} unit(s)"
                  f" {_safe(snap['currency'])}", highlight=False, soft_wrap=True)
        for line in snap["lines"]:
            out.print(f"    {line['quantity']} x {_safe(line['sku'])} @ "
                      f"{line['unit_gross']}  reason {_safe(repr(line['reason']))} "
                      f"{line['disposition']}", highlight=False, soft_wrap=True)
    ev = found.get("evidence")
    if ev:
        out.print(f"  evidence: {_safe(ev['summary'] or '-')}"
                  + (f" (state {ev['state']})" if ev["state"] else ""), highlight=False,
                  soft_wrap=True)
    for name, label in (("external_refund", "refund made outside returnbridge"),
                        ("refund_request", "refund requested")):
        refund = found.get(name)
        if refund:
            out.print(f"  {label}: {refund['amount'] or 'the credited amount'} "
                      f"{_safe(refund['currency'])}", highlight=False)
    for problem in found.get("problems", []):
        out.print(f"  [yellow]problem[/yellow] {problem['type']}: "
                  f"{_safe(problem['message'])}", soft_wrap=True, highlight=False)


def _print_event(view: dict[str, Any]) -> None:
    colour = "red" if view["status"] in ("failed", "invalid") else "bold"
    out.print(f"[bold]event {view['id']}[/bold]  {view['source']} {view['channel']}, topic "
              f"{_safe(view['topic'] or '-')}"
              + (f" / {_safe(view['trigger'])}" if view["trigger"] else "")
              + f", status [{colour}]{view['status']}[/{colour}]", highlight=False)
    out.print(f"received {view['received_at'][:19]} ({view['age']} ago)"
              + (f", processed {view['processed_at'][:19]}" if view["processed_at"] else "")
              + f", attempts {view['attempts']}, duplicates {view['duplicates']}",
              highlight=False)
    out.print(f"dedupe key {_safe(view['dedupe_key'])}; {view['size']} bytes, sha256 "
              f"{view['body_sha256']}", highlight=False, soft_wrap=True)
    ref = view["associated_ref"] or view["source_ref"]
    if ref:
        out.print(f"return {_safe(ref)}" + (
            f": state {view['return']['state']} (source: "
            f"{_safe(view['return']['source_state'])}), Khaos "
            f"{view['return']['khaos_status']}" if view["return"] else " (not received yet)"),
            highlight=False)
    if view["error"]:
        out.print(f"[red]Last error:[/red] {_safe(view['error'])}", soft_wrap=True,
                  highlight=False)
    _print_interpretation(view["interpretation"])
    for exc in view["exceptions"]:
        out.print(f"exception {exc['id']} {exc['type']} ({exc['status']}): "
                  f"{_safe(exc['message'])}", soft_wrap=True, highlight=False)
    for h in view["history"]:
        d = h["details"]
        out.print(f"  {h['at'][:19]}  {_safe(h['actor'])} {h['action']}: "
                  f"{_safe(d.get('outcome', ''))} ({_safe(d.get('why', ''))})",
                  highlight=False, soft_wrap=True)
    out.print("Headers (signatures and secrets redacted):")
    for key, value in view["headers"].items():
        out.print(f"  {_safe(key)}: {_safe(value)}", highlight=False, soft_wrap=True)
    out.print("Body:")
    out.print(safe_body(view["body"]), markup=False, highlight=False, soft_wrap=True,
              emoji=False)
    if view["replayable"]:
        out.print(f"Apply it again: returnbridge events replay {view['id']} --why \"...\"",
                  highlight=False)


@app.command("show")
def show_cmd(
    event_id: Annotated[int, typer.Argument(help="Event id (from 'events list').")],
    config: ConfigOpt = None,
    raw: Annotated[bool, typer.Option(
        "--raw", help="Print only the stored body bytes (exact when piped; control "
        "characters shown escaped on a terminal).")] = False,
    as_json: JsonOpt = False,
) -> None:
    """One event: raw bytes, headers (redacted), dedupe key, status, attempts, last error and
    what returnbridge reads in it now."""
    from returnbridge.flows.ingest.events import raw_body, show_event

    with runtime(config) as rt:
        if raw:
            body: bytes = _guard(lambda: raw_body(rt, event_id))
        else:
            view: dict[str, Any] = _guard(lambda: show_event(rt, event_id))
    if raw:
        if sys.stdout.isatty():
            sys.stdout.write(safe_body(body))
        else:
            sys.stdout.buffer.write(body)
        sys.stdout.flush()
        return
    if as_json:
        out.print_json(json.dumps(view))
        return
    _print_event({**view, "body": base64.b64decode(view["body_base64"])})


@app.command("replay")
def replay_cmd(
    event_id: Annotated[int, typer.Argument(help="Event id.")],
    config: ConfigOpt = None,
    by: ByOpt = None,
    why: Annotated[str, typer.Option("--why", help="What you fixed (recommended).")] = "",
    as_json: JsonOpt = False,
) -> None:
    """Apply a stored event again through the normal path; written to the audit log.

    Idempotent: a processed event is not re-applied. Exits 1 when the replay failed or the
    event still cannot be read.
    """
    from returnbridge.flows.ingest.events import replay_event

    with runtime(config) as rt:
        result = _guard(lambda: replay_event(rt, event_id, default_actor(by), why))
    if as_json:
        out.print_json(json.dumps(result.as_dict()))
    else:
        colour = "green" if result.ok else "red"
        out.print(f"[{colour}]{result.outcome}[/{colour}]: {_safe(result.message)}",
                  soft_wrap=True, highlight=False)
    if not result.ok:
        raise typer.Exit(1)
