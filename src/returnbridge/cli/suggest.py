"""``returnbridge mapping suggest`` and ``returnbridge suggest ID``: suggestions that say why
(docs/suggestions.md). Nothing is applied: a person copies what fits."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.markup import escape

from returnbridge.cli.common import ConfigOpt, err, load, out

mapping_app = typer.Typer(no_args_is_help=True, help="Reason mapping helpers.")


@mapping_app.command("suggest")
def mapping_suggest(
    min_confidence: Annotated[float, typer.Option(
        "--min-confidence", help="Leave out suggestions below this confidence (0..1).")] = 0.0,
    config: ConfigOpt = None,
) -> None:
    """Print [[mapping.reasons]] entries for the open unmapped_return_reason exceptions,
    each with its confidence and evidence, learned from returns already in Khaos."""
    from returnbridge.domain.suggest import toml_snippet
    from returnbridge.flows.engine.runtime import Runtime
    from returnbridge.flows.exceptions.suggestions import mapping_suggestions

    rt = Runtime.from_settings(load(config))
    try:
        gaps = mapping_suggestions(rt)
    finally:
        rt.close()
    if not gaps:
        err.print("No open unmapped_return_reason exceptions: nothing to suggest.")
        return
    print("# Suggested by 'returnbridge mapping suggest': check each entry before adding it to")
    print("# returnbridge.toml. The confidence ranks suggestions; it is not a probability.\n")
    for gap in gaps:
        what = (f"{gap.exceptions} open exception(s): source {gap.source}, reason "
                f"{gap.reason!r}, condition {gap.condition!r}, disposition {gap.disposition}")
        s = gap.suggestion
        if s is None or s.confidence < min_confidence:
            why = ("no suggestion: no similar reason with this disposition has gone to Khaos "
                   "yet" if s is None else f"suggestion below --min-confidence "
                   f"({s.confidence:.2f})")
            print(f"# {what}\n# {why}\n")
            continue
        print(f"# {what}")
        print(toml_snippet(s, source=gap.source, condition=gap.condition or "*") + "\n")


def suggest(
    exception_id: Annotated[int, typer.Argument(help="A sku_mismatch or unknown_customer "
                                                "exception id.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    config: ConfigOpt = None,
) -> None:
    """Candidates for one exception: catalogue items for sku_mismatch, Khaos customers for
    unknown_customer, each with a confidence and why."""
    from returnbridge.flows.engine.runtime import Runtime
    from returnbridge.flows.exceptions.suggestions import customer_suggestions, sku_suggestions

    rt = Runtime.from_settings(load(config))
    try:
        with rt.unit_of_work() as uow:
            row = uow.exceptions.get(exception_id)
            kind = row.type if row is not None else None
        if kind == "sku_mismatch":
            subject, candidates = sku_suggestions(rt, exception_id)
            about = f"SKU {subject}"
        elif kind == "unknown_customer":
            who, candidates = customer_suggestions(rt, exception_id)
            about = ", ".join(f"{k} {v}" for k, v in who.items() if v)
        else:
            err.print(f"exception {exception_id} is "
                      + (f"a {kind}" if kind else "not there")
                      + "; suggestions exist for sku_mismatch and unknown_customer "
                      "('returnbridge mapping suggest' for unmapped reasons)", style="red")
            raise typer.Exit(1)
    finally:
        rt.close()
    rows = [{"candidate": c.key, "confidence": c.confidence, "evidence": c.evidence,
             "why": c.why} for c in candidates]
    if as_json:
        out.print_json(json.dumps({"exception_id": exception_id, "about": about,
                                   "candidates": rows}))
        return
    out.print(f"Candidates for {escape(about)} (best first; confidence ranks, it is not a "
              "probability):", highlight=False)
    if not rows:
        out.print("  none: nothing similar enough was found")
    for r in rows:
        why = escape(str(r["why"]))
        out.print(f"  {escape(str(r['candidate']))}  {r['confidence']:.2f}  {why}",
                  highlight=False)
