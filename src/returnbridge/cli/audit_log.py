"""``returnbridge audit-log verify|seal``: is the audit log intact?"""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.markup import escape

from returnbridge.cli.common import ConfigOpt, err, out, runtime

app = typer.Typer(no_args_is_help=True, help="Check the audit log's hash chain and anchor.")


@app.command("verify")
def verify(
    config: ConfigOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Check every audit row's hash, the row count and the sealed anchor. Exit 1 when the
    log was changed, naming the rows."""
    from returnbridge.store import audit

    with runtime(config) as rt, rt.sessions() as session:
        result = audit.verify(session)
    if as_json:
        out.print_json(json.dumps({
            "ok": result.ok, "rows": result.rows, "last_row": result.head_id,
            "sealed_with_key": result.keyed, "broken_rows": result.broken_rows,
            "problems": result.problems, "notes": result.notes}))
    else:
        for problem in result.problems:
            err.print(f"[red]broken[/red] {escape(problem)}", soft_wrap=True, highlight=False)
        for note in result.notes:
            out.print(f"[yellow]note[/yellow] {escape(note)}", soft_wrap=True,
                      highlight=False)
        if result.ok:
            out.print(f"audit log intact: {result.rows} row(s), last row {result.head_id}"
                      + (", anchor sealed with [audit].hmac_key" if result.keyed else ""),
                      highlight=False)
        else:
            err.print(f"audit log NOT intact: {len(result.problems)} problem(s) in "
                      f"{result.rows} row(s). Restore from a backup or investigate who had "
                      "write access to the database.", highlight=False)
    if not result.ok:
        raise typer.Exit(1)


@app.command("seal")
def seal(config: ConfigOpt = None) -> None:
    """Seal the anchor with [audit].hmac_key (after setting a key on an existing log).
    Refuses when the log does not verify."""
    from returnbridge.store import audit

    with runtime(config) as rt:
        key = rt.settings.audit.hmac_key.get_secret_value()
        if not key:
            err.print("no [audit].hmac_key is configured; nothing to seal with.")
            raise typer.Exit(2)
        with rt.sessions() as session, session.begin():
            result = audit.seal(session, key)
    if not result.ok:
        for problem in result.problems:
            err.print(f"[red]broken[/red] {escape(problem)}", soft_wrap=True, highlight=False)
        err.print("not sealed: the audit log does not verify.")
        raise typer.Exit(1)
    out.print(f"anchor sealed: {result.rows} row(s), last row {result.head_id}.",
              highlight=False)
