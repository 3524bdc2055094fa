"""``returnbridge returns show REF``: one return as Khaos, the platform and returnbridge see it."""

from __future__ import annotations

import json
import re
from typing import Annotated, Any

import typer
from rich.markup import escape

from returnbridge.cli.common import ConfigOpt, JsonOpt, err, load, out

returns_app = typer.Typer(no_args_is_help=True, help="Look at returns.")


@returns_app.command("show")
def returns_show(
    ref: Annotated[str, typer.Argument(help="AssociatedRef, e.g. LR-12345.")],
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show one return: lines, Khaos status, timeline and open exceptions."""
    from returnbridge.flows.console.queries import return_view
    from returnbridge.flows.engine.runtime import Runtime

    rt = Runtime.from_settings(load(config))
    view = return_view(rt, ref)
    rt.close()
    if view is None:
        err.print(f"no return with AssociatedRef {ref!r}")
        raise typer.Exit(1)
    if as_json:
        out.print_json(json.dumps(view))
        return
    _print_return(view)


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def _t(value: Any) -> str:
    """Text from a return (SKUs, reasons, messages come from outside) made safe to print:
    no Rich markup, no terminal escape codes."""
    return escape(_CONTROL.sub("\N{REPLACEMENT CHARACTER}", str(value)))


def _print_return(view: dict[str, Any]) -> None:
    cur = _t(view["currency"])
    out.print(f"[bold]{_t(view['associated_ref'])}[/bold]  {_t(view['source'])} return "
              f"{_t(view['source_return_id'])}, order {_t(view['order_ref'])}", highlight=False)
    out.print(f"state {_t(view['state'])} (source: {_t(view['source_state'])}), Khaos: "
              f"[bold]{_t(view['khaos_status'])}[/bold]"
              + (f", waiting: {_t(view['waiting_for'])}" if view["waiting_for"] else ""),
              highlight=False)
    for line in view["lines"]:
        out.print(f"  {_t(line['quantity'])} x {_t(line['sku'])} @ {_t(line['unit_gross'])} "
                  f"{cur}  reason {_t(repr(line['reason']))} -> Khaos reason "
                  f"{_t(line['khaos_reason_id'] or '(unmapped)')}", highlight=False)
    if view["credit_note"]["code"]:
        stage = view["credit_note"].get("stage")
        out.print(f"  credit note {_t(view['credit_note']['code'])} "
                  f"({_t(view['credit_note']['value'] or '?')} {cur})"
                  + (f", stage {_t(stage)}" if stage else ""), highlight=False)
    asked = view.get("refund_request")
    if asked:
        out.print(f"  refund requested by {_t(view['source'])}: "
                  f"{_t(asked.get('amount') or 'the credited amount')} "
                  f"{_t(asked.get('currency') or view['currency'])} to "
                  f"{_t(str(asked.get('method', '')).replace('_', ' '))}", highlight=False)
    for r in view.get("refunds", []):
        who = "by returnbridge" if r["origin"] == "returnbridge" else "outside returnbridge"
        out.print(f"  refund {_t(r['amount'])} {_t(r['currency'])} {who} "
                  f"({_t(r['provider'])} {_t(r['provider_refund_id'] or '-')})",
                  highlight=False)
    for item in view.get("reconciliation_items", []):
        ref = f" {item['reference']}" if item["reference"] else ""
        out.print(_t(f"  reconciliation [{item['status']}] {item['category']} "
                     f"{item['amount']} {item['currency']}{ref}: {item['note']}"),
                  highlight=False, soft_wrap=True)
    if view.get("follow_up_of"):
        out.print(f"  follow-up of {_t(view['follow_up_of'])}", highlight=False)
    for ref in view.get("follow_ups", []):
        out.print(f"  follow-up document {_t(ref)}", highlight=False)
    for t in view["timeline"]:
        out.print(f"  {_t(t['at'][:19])}  {_t(t['kind']):<18} {_t(t['message'])}",
                  highlight=False, soft_wrap=True)
    for e in view["open_exceptions"]:
        out.print(f"  [red]{_t(e['type'])}[/red] ({_t(e['owner'])}): {_t(e['message'])} "
                  f"Next: {_t(e['next_action'])}", highlight=False, soft_wrap=True)
