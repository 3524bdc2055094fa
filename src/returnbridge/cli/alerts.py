"""``returnbridge alerts test|run|status``: alerts to the owning teams (docs/alerts.md)."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from returnbridge.cli.common import ConfigOpt, err, load, out

alerts_app = typer.Typer(no_args_is_help=True,
                         help="Alerts to the owning teams: test a route, send what is due.")

OWNERS = ("cx", "warehouse", "finance", "ops")


@alerts_app.command("test")
def test(
    owner: Annotated[str | None, typer.Option("--owner", help="Only routes for this team "
                                              "(cx, warehouse, finance, ops).")] = None,
    config: ConfigOpt = None,
) -> None:
    """Send a test message on every configured route (or a team's routes)."""
    from returnbridge.flows.exceptions.alerts import send_test

    if owner is not None and owner not in OWNERS:
        err.print(f"unknown owner {escape(owner)!r}; use one of {', '.join(OWNERS)}",
                  style="red")
        raise typer.Exit(2)
    settings = load(config)
    results = send_test(settings, owner)
    if not results:
        err.print("no [[alerts.routes]] configured" + (f" for {owner}" if owner else "")
                  + "; see docs/alerts.md", style="red")
        raise typer.Exit(1)
    for route, error in results:
        if error is None:
            out.print(f"{escape(route)}: sent", highlight=False)
        else:
            err.print(f"{escape(route)}: FAILED: {escape(error)}", style="red", highlight=False)
    if any(error for _, error in results):
        raise typer.Exit(1)


@alerts_app.command("run")
def run(config: ConfigOpt = None) -> None:
    """Run one alert cycle now (the worker does this every [alerts].interval_seconds)."""
    from returnbridge.flows.engine.runtime import Runtime
    from returnbridge.flows.exceptions.alerts import run_alerts

    rt = Runtime.from_settings(load(config))
    try:
        out.print(str(run_alerts(rt)), highlight=False)
    finally:
        rt.close()


@alerts_app.command("status")
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    config: ConfigOpt = None,
) -> None:
    """What was sent, queued and is failing, per route."""
    from returnbridge.flows.engine.runtime import Runtime
    from returnbridge.flows.exceptions.alerts import outbox_summary

    rt = Runtime.from_settings(load(config))
    try:
        with rt.unit_of_work() as uow:
            rows = outbox_summary(uow)
    finally:
        rt.close()
    if as_json:
        out.print_json(json.dumps(rows))
        return
    table = Table("route", "sent", "pending", "queued", "failures in a row", "last error")
    for r in rows:
        table.add_row(str(r["route"]), str(r.get("sent", 0) + r.get("digested", 0)),
                      str(r.get("pending", 0)), str(r.get("queued", 0)),
                      str(r.get("consecutive_failures", 0)), escape(str(r.get("last_error", ""))))
    out.print(table)


def doctor(
    output: Annotated[str | None, typer.Option(
        "--output", "-o", help="File to write (default: returnbridge-doctor-<time>.json; "
        "'-' prints it).")] = None,
    connections: Annotated[bool, typer.Option(
        "--connections/--no-connections",
        help="Also try each configured system (Loop, ZigZag, Khaos SOAP, Shopify).")] = True,
    config: ConfigOpt = None,
) -> None:
    """Write a support bundle: configuration (secrets redacted), versions, schema, counts,
    recent errors, schedules and connection checks, as one JSON file."""
    from pathlib import Path

    from returnbridge.flows.engine.runtime import Runtime
    from returnbridge.flows.exceptions.doctor import bundle
    from returnbridge.store.models import utcnow

    rt = Runtime.from_settings(load(config))
    try:
        text = bundle(rt, check_connections=connections)
    finally:
        rt.close()
    if output == "-":
        out.print(text, markup=False, highlight=False, soft_wrap=True)
        return
    path = Path(output or f"returnbridge-doctor-{utcnow():%Y%m%d-%H%M%S}.json")
    path.write_text(text + "\n", encoding="utf-8")
    out.print(f"Support bundle written to {escape(str(path))} (secrets redacted; check it "
              "before sending).", highlight=False)
