"""``returnbridge exceptions list|show|retry|resolve|ignore``: the exception queue."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from returnbridge.cli.common import (
    ByOpt,
    ConfigOpt,
    JsonOpt,
    default_actor,
    err,
    out,
    runtime,
)

if TYPE_CHECKING:
    from returnbridge.flows.exceptions.actions import ActionResult

app = typer.Typer(no_args_is_help=True,
                  help="The exception queue: problems a person has to look at.")


def _fail(message: str, code: int = 1) -> typer.Exit:
    err.print(escape(message), style="red", soft_wrap=True, highlight=False)
    return typer.Exit(code)


def _guard(fn: Callable[[], Any]) -> Any:
    from returnbridge.flows.exceptions import actions

    try:
        return fn()
    except actions.ExceptionNotFound as exc:
        raise _fail(str(exc)) from None
    except (actions.ActionRefused, actions.MissingReason, actions.BadFilter) as exc:
        raise _fail(str(exc)) from None


@app.command("list")
def list_cmd(
    config: ConfigOpt = None,
    status: Annotated[str, typer.Option(help="open, resolved, ignored or all.")] = "open",
    owner: Annotated[str | None, typer.Option(help="cx, warehouse, finance or ops.")] = None,
    type: Annotated[str | None, typer.Option("--type", help="Exception type.")] = None,
    ref: Annotated[str | None, typer.Option(help="AssociatedRef, e.g. LR-12345.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 100,
    offset: Annotated[int, typer.Option(min=0)] = 0,
    as_json: JsonOpt = False,
) -> None:
    """List exceptions, most recently seen first, with their age."""
    from returnbridge.flows.exceptions.actions import list_exceptions

    with runtime(config) as rt, rt.unit_of_work() as uow:
        page = _guard(lambda: list_exceptions(uow, status=status, owner=owner, type=type,
                                              ref=ref, limit=limit, offset=offset))
    if as_json:
        out.print_json(json.dumps({"status": status, "total": page.total, "limit": page.limit,
                                   "offset": page.offset, "exceptions": page.items}))
        return
    if not page.items:
        what = "" if status == "all" else f"{status} "
        out.print(f"No {what}exceptions{' matching the filters' if owner or type or ref else ''}.")
        return
    table = Table(title=f"{page.total} {'' if status == 'all' else status + ' '}exception(s)"
                  + (f", showing {len(page.items)}" if page.total > len(page.items) else ""))
    headers = ["id", "type", "owner", "sev", "return", "count", "age", "last seen"]
    rows = [[str(e["id"]), e["type"], e["owner"],
             "BLOCK" if e["severity"] == "blocking" else "warn",
             e["associated_ref"] or "-", str(e["count"]), e["age"],
             e["last_seen_at"][5:16].replace("T", " ")] for e in page.items]
    if out.width < 100:  # narrow terminal: keep what identifies and ranks the rows
        headers.pop()
        for row in rows:
            row.pop()
    if status == "all":
        headers.insert(4, "status")
        for row, e in zip(rows, page.items, strict=True):
            row.insert(4, e["status"])
    widths = [max(len(column), *(len(r[i]) for r in rows)) for i, column in enumerate(headers)]
    for column in headers:
        table.add_column(column, no_wrap=True,
                         justify="right" if column in ("id", "count", "age") else "left")
    # Every other column keeps its full width; only the message is cut ('show' has it all),
    # and left out on a narrow terminal.
    room = out.width - sum(w + 3 for w in widths) - 4
    if room >= 20:
        table.add_column("message", no_wrap=True, overflow="ellipsis", max_width=room)
    for row, e in zip(rows, page.items, strict=True):
        table.add_row(*row, *([escape(e["message"])] if room >= 20 else []))
    out.print(table)
    out.print("Details and what to do: returnbridge exceptions show ID", highlight=False)


def _print_detail(view: dict[str, Any]) -> None:
    out.print(f"[bold]#{view['id']} {view['type']}[/bold]  {view['severity']}, owner "
              f"{view['owner']}, {view['status']}, seen {view['count']}x, age {view['age']}",
              highlight=False)
    out.print(f"Means: {escape(view['meaning'])}", soft_wrap=True, highlight=False)
    out.print(f"Problem: {escape(view['message'])}", soft_wrap=True, highlight=False)
    out.print(f"[bold]Next:[/bold] {escape(view['next_action'])}", soft_wrap=True,
              highlight=False)
    out.print(f"Runbook: {view['runbook']}", highlight=False)
    if view["status"] != "open":
        out.print(f"{view['status'].capitalize()} by {escape(view['resolved_by'])} at "
                  f"{(view['resolved_at'] or '')[:19]}: {escape(view['resolution'])}",
                  soft_wrap=True, highlight=False)
    for key, value in view["details"].items():
        if key != "candidates":
            out.print(f"  {escape(str(key))}: {escape(str(value))}", highlight=False,
                      soft_wrap=True)
    if view["candidates"]:
        out.print("Nearest catalogue candidates (never applied automatically):")
        for cand in view["candidates"]:
            text = (", ".join(f"{k}={v}" for k, v in cand.items())
                    if isinstance(cand, dict) else str(cand))
            out.print(f"  - {escape(text)}", highlight=False, soft_wrap=True)
    ret = view["return"]
    if ret:
        out.print(f"Return {ret['associated_ref']} ({ret['source']} {ret['source_return_id']}, "
                  f"order {ret['order_ref']}): state {ret['state']}, Khaos "
                  f"[bold]{ret['khaos_status']}[/bold]", highlight=False)
        for line in ret["lines"]:
            out.print(f"  {line['quantity']} x {escape(line['sku'])}  reason "
                      f"{escape(repr(line['reason']))} {line['disposition']} -> Khaos reason "
                      f"{line['khaos_reason_id'] or '(unmapped)'}", highlight=False)
    for h in view["history"]:
        out.print(f"  {h['at'][:19]}  {escape(h['actor'])} {h['action']}: "
                  f"{escape(str(h['details'].get('why', '')))}", highlight=False,
                  soft_wrap=True)


@app.command("show")
def show_cmd(
    exception_id: Annotated[int, typer.Argument(help="Exception id (from 'list').")],
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """One exception: what it means, its return, candidates, history and what to do."""
    from returnbridge.flows.exceptions.actions import show_exception

    with runtime(config) as rt, rt.unit_of_work() as uow:
        view = _guard(lambda: show_exception(uow, exception_id))
    if as_json:
        out.print_json(json.dumps(view))
    else:
        _print_detail(view)


def _report(result: ActionResult, as_json: bool) -> None:
    if as_json:
        out.print_json(json.dumps(result.as_dict()))
    else:
        colour = "green" if result.outcome in ("resolved", "ignored") else "yellow"
        out.print(f"[{colour}]{result.outcome}[/{colour}]: {escape(result.message)}",
                  soft_wrap=True, highlight=False)
    if result.outcome in ("still_open", "reopened"):
        raise typer.Exit(1)


@app.command("retry")
def retry_cmd(
    exception_id: Annotated[int, typer.Argument(help="Exception id.")],
    config: ConfigOpt = None,
    by: ByOpt = None,
    why: Annotated[str, typer.Option("--why", help="What you fixed (optional).")] = "",
    as_json: JsonOpt = False,
) -> None:
    """Re-evaluate the return this exception blocks; it resolves if the cause is gone.

    Exits 1 when the cause is still present.
    """
    from returnbridge.flows.exceptions.actions import retry

    with runtime(config) as rt:
        result = _guard(lambda: retry(rt, exception_id, default_actor(by), why))
    _report(result, as_json)


@app.command("resolve")
def resolve_cmd(
    exception_id: Annotated[int, typer.Argument(help="Exception id.")],
    why: Annotated[str, typer.Option("--why", help="What was done (required).")],
    config: ConfigOpt = None,
    by: ByOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Close an exception by hand. A blocking one re-opens at once if its cause remains.

    Exits 1 when it re-opened.
    """
    from returnbridge.flows.exceptions.actions import resolve

    with runtime(config) as rt:
        result = _guard(lambda: resolve(rt, exception_id, default_actor(by), why))
    _report(result, as_json)


@app.command("ignore")
def ignore_cmd(
    exception_id: Annotated[int, typer.Argument(help="Exception id.")],
    why: Annotated[str, typer.Option("--why", help="Why it needs no action (required).")],
    config: ConfigOpt = None,
    by: ByOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Take an exception out of the queue; the same problem found again stays ignored."""
    from returnbridge.flows.exceptions.actions import ignore

    with runtime(config) as rt:
        result = _guard(lambda: ignore(rt, exception_id, default_actor(by), why))
    _report(result, as_json)
