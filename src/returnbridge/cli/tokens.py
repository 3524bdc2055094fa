"""``returnbridge tokens create|list|revoke``: named API tokens with a scope."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from returnbridge.cli.common import ByOpt, ConfigOpt, default_actor, err, out, runtime

app = typer.Typer(no_args_is_help=True,
                  help="Named API tokens for /api/v1 with a scope: read, act or admin.")


@app.command("create")
def create(
    name: Annotated[str, typer.Option("--name", help="What the token is for, e.g. "
                                      "finance-sheet. Shown in the audit log.")],
    scope: Annotated[str, typer.Option("--scope", help="read (GET only), act (also "
                                       "exception actions), admin (everything).")],
    config: ConfigOpt = None, by: ByOpt = None,
) -> None:
    """Create a token; it is printed once (only its SHA-256 is stored)."""
    from returnbridge.flows.console.accounts import AccountError, create_token

    with runtime(config) as rt:
        try:
            with rt.unit_of_work() as uow:
                row, token = create_token(uow, name, scope, by="cli:" + default_actor(by))
                label = f"{row.name} ({row.scope})"
        except AccountError as exc:
            err.print(escape(str(exc)), style="red", soft_wrap=True, highlight=False)
            raise typer.Exit(1) from None
    err.print(f"created token {escape(label)}; it is shown only now:", highlight=False)
    print(token)


@app.command("list")
def list_cmd(config: ConfigOpt = None,
             as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False
             ) -> None:
    """List named tokens (never the tokens themselves)."""
    from returnbridge.flows.console.accounts import list_tokens

    with runtime(config) as rt, rt.unit_of_work() as uow:
        rows = [{"name": t.name, "scope": t.scope, "prefix": t.prefix,
                 "created_at": t.created_at.isoformat(), "created_by": t.created_by,
                 "revoked_at": t.revoked_at.isoformat() if t.revoked_at else None,
                 "last_used_at": t.last_used_at.isoformat() if t.last_used_at else None}
                for t in list_tokens(uow)]
    if as_json:
        out.print_json(json.dumps(rows))
        return
    table = Table("name", "scope", "starts with", "created", "last used", "status")
    for r in rows:
        table.add_row(escape(str(r["name"])), str(r["scope"]), str(r["prefix"]) + "…",
                      str(r["created_at"])[:19], str(r["last_used_at"] or "never")[:19],
                      "revoked" if r["revoked_at"] else "active")
    out.print(table)


@app.command("revoke")
def revoke(name: Annotated[str, typer.Argument()], config: ConfigOpt = None,
           by: ByOpt = None) -> None:
    """Revoke a token; it is refused from the next request on."""
    from returnbridge.flows.console.accounts import AccountError, revoke_token

    with runtime(config) as rt:
        try:
            with rt.unit_of_work() as uow:
                revoke_token(uow, name, by="cli:" + default_actor(by))
        except AccountError as exc:
            err.print(escape(str(exc)), style="red", soft_wrap=True, highlight=False)
            raise typer.Exit(1) from None
    out.print(f"revoked {escape(name)}", highlight=False)
