"""``returnbridge users add|list|disable|enable|set-role|set-password``: console users."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from returnbridge.cli.common import ByOpt, ConfigOpt, default_actor, err, out, runtime

app = typer.Typer(no_args_is_help=True,
                  help="Console users: named people with a role (cx, warehouse, finance, admin).")
RoleArg = Annotated[str, typer.Option("--role", help="cx, warehouse, finance or admin.")]


def _password_from_stdin() -> str:
    text = sys.stdin.readline().rstrip("\r\n")
    if not text:
        err.print("no password on standard input (pipe it in: "
                  "printf '%s\\n' \"$PW\" | returnbridge users add ...)", style="red")
        raise typer.Exit(1)
    return text


def _run(config: Any, fn: Callable[[Any], str]) -> None:
    from returnbridge.flows.console.accounts import AccountError

    with runtime(config) as rt:
        try:
            with rt.unit_of_work() as uow:
                message = fn(uow)
        except AccountError as exc:
            err.print(escape(str(exc)), style="red", soft_wrap=True, highlight=False)
            raise typer.Exit(1) from None
    out.print(message, highlight=False, soft_wrap=True)


@app.command("add")
def add(
    username: Annotated[str, typer.Argument(help="Sign-in name, e.g. alice.")],
    role: RoleArg,
    password_stdin: Annotated[bool, typer.Option(
        "--password-stdin", help="Read the password from the first line of standard input "
        "(required: passwords never go on the command line).")] = False,
    name: Annotated[str, typer.Option("--name", help="Name shown in the console.")] = "",
    config: ConfigOpt = None,
    by: ByOpt = None,
) -> None:
    """Add a console user (the password is hashed with argon2id)."""
    from returnbridge.flows.console.accounts import add_user

    if not password_stdin:
        err.print("use --password-stdin and pipe the password in", style="red")
        raise typer.Exit(2)
    password = _password_from_stdin()
    actor = "cli:" + default_actor(by)

    def go(s: Any) -> str:
        row = add_user(s, username, role, password, by=actor, display_name=name)
        return f"added {row.username} ({row.role})"

    _run(config, go)


@app.command("list")
def list_cmd(config: ConfigOpt = None,
             as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False
             ) -> None:
    """List console users with their role and last sign-in."""
    from returnbridge.flows.console.accounts import list_users

    with runtime(config) as rt, rt.unit_of_work() as uow:
        rows = [{"username": u.username, "name": u.display_name, "role": u.role,
                 "disabled": u.disabled,
                 "last_login_at": u.last_login_at.isoformat() if u.last_login_at else None}
                for u in list_users(uow)]
    if as_json:
        out.print_json(json.dumps(rows))
        return
    table = Table("user", "name", "role", "status", "last sign-in")
    for r in rows:
        table.add_row(escape(str(r["username"])), escape(str(r["name"])), str(r["role"]),
                      "disabled" if r["disabled"] else "active",
                      str(r["last_login_at"] or "never")[:19])
    out.print(table)


@app.command("disable")
def disable(username: Annotated[str, typer.Argument()], config: ConfigOpt = None,
            by: ByOpt = None) -> None:
    """Disable a user; their open sessions end at once."""
    from returnbridge.flows.console.accounts import set_disabled

    actor = "cli:" + default_actor(by)
    _run(config, lambda s: f"disabled {set_disabled(s, username, True, by=actor).username}")


@app.command("enable")
def enable(username: Annotated[str, typer.Argument()], config: ConfigOpt = None,
           by: ByOpt = None) -> None:
    """Enable a disabled user again."""
    from returnbridge.flows.console.accounts import set_disabled

    actor = "cli:" + default_actor(by)
    _run(config, lambda s: f"enabled {set_disabled(s, username, False, by=actor).username}")


@app.command("set-role")
def set_role_cmd(username: Annotated[str, typer.Argument()],
                 role: Annotated[str, typer.Argument(help="cx, warehouse, finance or admin.")],
                 config: ConfigOpt = None, by: ByOpt = None) -> None:
    """Change a user's role."""
    from returnbridge.flows.console.accounts import set_role

    actor = "cli:" + default_actor(by)
    _run(config, lambda s: f"{set_role(s, username, role, by=actor).username} is now {role}")


@app.command("set-password")
def set_password_cmd(
    username: Annotated[str, typer.Argument()],
    password_stdin: Annotated[bool, typer.Option("--password-stdin",
                                                 help="Read it from standard input.")] = False,
    config: ConfigOpt = None, by: ByOpt = None,
) -> None:
    """Set a new password; the user's open sessions end."""
    from returnbridge.flows.console.accounts import set_password

    if not password_stdin:
        err.print("use --password-stdin and pipe the password in", style="red")
        raise typer.Exit(2)
    password = _password_from_stdin()
    actor = "cli:" + default_actor(by)
    _run(config, lambda s: f"new password set for "
         f"{set_password(s, username, password, by=actor).username}")
