"""``returnbridge reconcile``: the month-end pack (and the continuous check on demand)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from returnbridge.cli.common import ConfigOpt, err, load, out


def reconcile(
    period: Annotated[str | None, typer.Option(
        help="The month to reconcile, YYYY-MM (without it, only --continuous runs)."
    )] = None,
    source: Annotated[str, typer.Option(help="loop, zigzag or all.")] = "all",
    out_dir: Annotated[Path | None, typer.Option(
        "--out", help="Where to write the pack (default: the reconciliation out_dir "
        "setting).")] = None,
    fmt: Annotated[str, typer.Option(
        "--format", help="Comma-separated: xlsx,csv,html,json.")] = "xlsx,csv,html,json",
    refresh: Annotated[bool, typer.Option(
        help="Re-read the legs (returns, credit notes, Shopify orders) first.")] = True,
    continuous: Annotated[bool, typer.Option(
        help="Run the continuous check now: raise / resolve the gaps as exceptions.")] = False,
    config: ConfigOpt = None,
) -> None:
    """Three-way reconciliation: platform outcome, Khaos credit note, payments."""
    from returnbridge.flows.engine.runtime import Runtime
    from returnbridge.flows.reconcile import legs, scoping, service
    from returnbridge.store.migrate import require_current

    settings = load(config)
    rt = Runtime.from_settings(settings)
    require_current(rt.engine)
    if continuous:
        outcome = service.run_continuous(rt)
        out.print(f"Continuous reconciliation: {outcome}.")
    if period is None:
        if not continuous:
            err.print("Give --period YYYY-MM (or --continuous).")
            raise typer.Exit(2)
        return
    formats = [f.strip() for f in fmt.split(",") if f.strip()]
    try:
        sc = scoping.scope(rt, period, source)
    except ValueError as exc:
        err.print(escape(str(exc)))
        raise typer.Exit(2) from None
    if refresh:
        with out.status("Reading the legs (returns, credit notes, payments)..."):
            counts = service.refresh_legs(rt, legs.default_since(sc.bounds[0]))
        out.print(f"Legs read: {counts}")
    total = service.count(rt, period, source)
    columns = (TextColumn("[bold]reconciling {task.description}"), BarColumn(),
               MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=out, transient=False) as bar:
        task = bar.add_task(period, total=total or 1)
        try:
            result = service.month_end(rt, period, source=source, out_dir=out_dir,
                                       formats=formats, refresh=False,
                                       progress=lambda n: bar.advance(task, n))
        except ValueError as exc:
            err.print(escape(str(exc)))
            raise typer.Exit(2) from None
        bar.update(task, completed=total or 1)
    s = result.summary
    table = Table(title=f"Reconciliation {period} ({source})")
    table.add_column("category")
    table.add_column("count", justify="right")
    table.add_column("amount", justify="right")
    for cat, e in s["categories"].items():
        table.add_row(cat, str(e["count"]), e["amount"])
    out.print(table)
    out.print(f"{s['returns']} returns, {s['matched']} matched without difference; "
              f"unexplained residual {s['residual_unexplained']}.")
    for f in result.files:
        out.print(f"  wrote {escape(str(f))}")
