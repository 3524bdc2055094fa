"""``returnbridge audit``: reason mapping coverage and catalogue gaps (ARCHITECTURE 6.2)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from returnbridge.cli.common import ConfigOpt, err, out, runtime

if TYPE_CHECKING:
    from returnbridge.flows.exceptions.coverage import CoverageReport

_STATUS_STYLE = {"unmapped": "red", "unsafe": "red", "mapped": "green"}


def audit(
    config: ConfigOpt = None,
    days: Annotated[int, typer.Option(min=1, max=3650,
                                      help="Look at returns seen in the last N days.")] = 90,
    stale_hours: Annotated[float | None, typer.Option(
        "--stale-hours", min=0,
        help="Stock levels older than this are stale (default: the policy's limit).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    csv_file: Annotated[Path | None, typer.Option(
        "--csv", help="Also write every row of the report to this CSV file.")] = None,
    strict: Annotated[bool, typer.Option(
        help="Exit 1 when anything is unmapped, unknown or stale (for cron/CI).")] = False,
) -> None:
    """Which return reasons map to Khaos, and which SKUs Khaos would refuse.

    Every source reason, condition and disposition seen in the last 90 days with the number
    of returns it affected and the Khaos reason it maps to (or 'unmapped'); exchange SKUs not
    published to web; SKUs the Khaos catalogue does not know under the configured
    sku_mapping; stale stock levels.
    """
    from returnbridge.flows.exceptions.coverage import audit_report

    with runtime(config) as rt:
        report = audit_report(rt, days=days, stale_hours=stale_hours)
    if csv_file is not None:
        try:
            csv_file.write_text(report.to_csv(), encoding="utf-8")
        except OSError as exc:
            err.print(f"cannot write {escape(str(csv_file))}: {escape(str(exc))}", style="red")
            raise typer.Exit(2) from None
    if as_json:
        out.print_json(json.dumps(report.to_dict()))
    else:
        _print(report)
        if csv_file is not None:
            out.print(f"CSV written to {escape(str(csv_file))}.", highlight=False)
    if strict and report.has_gaps:
        raise typer.Exit(1)


def _print(report: CoverageReport) -> None:
    out.print(f"[bold]Reason mapping coverage[/bold]: {report.returns_seen} return(s) seen in "
              f"the last {report.days} days", highlight=False)
    if report.reasons:
        table = Table(show_lines=False)
        for column in ("status", "source", "reason", "condition", "disposition", "returns",
                       "units", "Khaos reason", "via"):
            table.add_column(column, overflow="fold",
                             justify="right" if column in ("returns", "units") else "left")
        for r in report.reasons:
            style = _STATUS_STYLE[r.status]
            reason_id = (f"{r.khaos_reason_id} ({r.processing})" if r.khaos_reason_id
                         else "-")
            table.add_row(f"[{style}]{r.status}[/{style}]", r.source,
                          escape(r.reason or "(none)"), escape(r.condition or "(none)"),
                          r.disposition + (" (kept)" if r.keep_item else ""),
                          str(r.returns), str(r.units), reason_id, r.mapped_by or "-")
        out.print(table)
    else:
        out.print("  no return lines in that period.")
    if report.exchange_skus:
        out.print("[bold]Exchange SKUs Khaos would refuse[/bold]")
        for x in report.exchange_skus:
            out.print(f"  {escape(x.sku)} (Khaos {escape(x.stock_code)}): "
                      f"{x.problem.replace('_', ' ')}, {x.returns} return(s)", highlight=False)
    if report.unknown_skus:
        out.print("[bold]SKUs the Khaos catalogue does not know[/bold] "
                  + escape("(under the configured [khaos].sku_mapping)"))
        for u in report.unknown_skus:
            out.print(f"  {escape(u.sku)}: {u.returns} return(s), on {u.seen_on} lines, "
                      f"e.g. {escape(u.example_ref)}"
                      + (f" ({escape(u.hint)})" if u.hint else ""), highlight=False)
    if report.stale_levels:
        oldest = report.stale_levels[0]
        out.print(f"[bold]Stale stock levels[/bold]: {len(report.stale_levels)} older than "
                  f"{report.stale_after_hours:g}h; oldest {escape(oldest.stock_code)} at site "
                  f"{escape(oldest.site_id)}, {oldest.age_hours:g}h old", highlight=False)
        for s in report.stale_levels[:10]:
            out.print(f"  {escape(s.stock_code)} site {escape(s.site_id)}: available "
                      f"{s.available}, {s.age_hours:g}h old", highlight=False)
        if len(report.stale_levels) > 10:
            out.print(f"  ... and {len(report.stale_levels) - 10} more (--json or --csv for "
                      "all)")
    for note in report.notes:
        out.print(f"[yellow]note[/yellow]: {escape(note)}", soft_wrap=True, highlight=False)
    colour = "yellow" if report.has_gaps else "green"
    out.print(f"[{colour}]{escape(report.summary())}[/{colour}]", soft_wrap=True,
              highlight=False)
