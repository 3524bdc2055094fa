"""``returnbridge khaos …``: credit-note confirmation from the command line."""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from returnbridge.cli.common import ConfigOpt, err, load, out

khaos_app = typer.Typer(no_args_is_help=True,
                        help="Khaos Control: credit-note confirmation and the SOAP sweep.")


@khaos_app.command("import-credit-notes")
def import_credit_notes(
    file: Annotated[Path, typer.Argument(help="CSV export with AssociatedRef, "
                                         "CreditNoteCode, Value and Date columns.",
                                         exists=True, dir_okay=False, readable=True)],
    config: ConfigOpt = None,
    actor: Annotated[str | None, typer.Option(help="Who is importing (default: your "
                                              "login name).")] = None,
) -> None:
    """Confirm credit notes from finance's credit-note export file."""
    from returnbridge.flows.confirm.credit_file import import_credit_notes_csv
    from returnbridge.flows.engine.runtime import Runtime

    rt = Runtime.from_settings(load(config))
    try:
        result = import_credit_notes_csv(rt, file, actor or getpass.getuser())
    except ValueError as exc:
        err.print(f"[red]error[/red]: {escape(str(exc))}", soft_wrap=True)
        raise typer.Exit(1) from None
    finally:
        rt.close()
    out.print(f"{result.rows} row(s): {result.confirmed} confirmed, {result.already} "
              f"already confirmed, {result.mismatches} with a different value "
              f"(amount_mismatch), {len(result.unknown_refs)} unknown, "
              f"{len(result.errors)} refused.", highlight=False, soft_wrap=True)
    for ref in result.unknown_refs:
        out.print(f"  unknown AssociatedRef {escape(ref)}", highlight=False)
    for line, problem in result.errors:
        out.print(f"  line {line}: {escape(problem)}", highlight=False, soft_wrap=True)
    if result.errors or result.unknown_refs:
        raise typer.Exit(1)


@khaos_app.command("sweep")
def sweep(config: ConfigOpt = None) -> None:
    """Check every served return now: SOAP status export (when soap_url is set), pushed
    order statuses, and the confirmation SLA."""
    from returnbridge.flows.confirm.order_statuses import confirm_from_order_statuses
    from returnbridge.flows.confirm.sla import check_sla
    from returnbridge.flows.confirm.soap_sweep import sweep_unconfirmed
    from returnbridge.flows.engine.runtime import Runtime

    settings = load(config)
    rt = Runtime.from_settings(settings)
    try:
        pushed = confirm_from_order_statuses(rt)
        out.print(f"order-status pushes moved {pushed} return(s)")
        if settings.khaos.soap_url:
            with rt.khaos_soap_client() as client:
                result = sweep_unconfirmed(rt, client)
            out.print(f"SOAP: {result.checked} checked in {result.calls} call(s), "
                      f"{result.imported} imported, {result.confirmed} credit-confirmed, "
                      f"{len(result.not_found)} not found in Khaos", highlight=False)
            for error in result.errors:
                err.print(f"  [red]{escape(error)}[/red]", soft_wrap=True)
        late = check_sla(rt)
        out.print(f"{late} return(s) past the confirmation SLA")
    finally:
        rt.close()


@khaos_app.command("load-customers")
def load_customers(
    file: Annotated[Path | None, typer.Argument(
        help="Khaos customer export (CSV with Email and URN columns). Without a file, desktop "
        "Khaos is asked (SOAP ExportCompany) about the customers of returns held as "
        "unknown_customer.", dir_okay=False)] = None,
    config: ConfigOpt = None,
    actor: Annotated[str | None, typer.Option(help="Who is loading (default: your "
                                              "login name).")] = None,
) -> None:
    """Fill the customer mirror (email -> URN) and release the returns it unblocks."""
    from returnbridge.flows.decide.customers import load_customers_csv, lookup_unknown_customers
    from returnbridge.flows.engine.runtime import Runtime

    settings = load(config)
    rt = Runtime.from_settings(settings)
    who = actor or getpass.getuser()
    try:
        if file is not None:
            result = load_customers_csv(rt, file, actor=who)
        elif settings.khaos.soap_url:
            with rt.khaos_soap_client() as soap:
                result = lookup_unknown_customers(rt, soap, actor=who)
        else:
            err.print("give a customer export file, or set [khaos].soap_url to ask desktop "
                      "Khaos", soft_wrap=True)
            raise typer.Exit(2)
    except (ValueError, OSError) as exc:
        err.print(f"[red]error[/red]: {escape(str(exc))}", soft_wrap=True)
        raise typer.Exit(1) from None
    finally:
        rt.close()
    released = result.reevaluated.released if result.reevaluated else 0
    out.print(f"{result.rows} customer(s) read: {result.inserted} added, {result.updated} "
              f"updated, {len(result.skipped)} skipped; {released} held return(s) released.",
              highlight=False, soft_wrap=True)
    for problem in result.skipped:
        out.print(f"  {escape(problem)}", highlight=False, soft_wrap=True)
