"""The ``returnbridge`` command line. Thin: parse, call one flow, print."""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from returnbridge import __version__
from returnbridge.cli.alerts import alerts_app, doctor
from returnbridge.cli.audit import audit
from returnbridge.cli.audit_log import app as audit_log_app
from returnbridge.cli.backfill import backfill_app
from returnbridge.cli.common import (
    ConfigOpt,
    configure_logging,
    err,
    load,
    out,
    require_schema,
    settle_heap,
)
from returnbridge.cli.events import app as events_app
from returnbridge.cli.exceptions import app as exceptions_app
from returnbridge.cli.khaos import khaos_app
from returnbridge.cli.reconcile import reconcile
from returnbridge.cli.returns import returns_app
from returnbridge.cli.sandbox import sandbox_app
from returnbridge.cli.suggest import mapping_app, suggest
from returnbridge.cli.tokens import app as tokens_app
from returnbridge.cli.users import app as users_app
from returnbridge.composition import load_settings
from returnbridge.config import ConfigError

if TYPE_CHECKING:
    from collections.abc import Callable

    from fastapi import FastAPI

    from returnbridge.flows.engine.runtime import Runtime

app = typer.Typer(no_args_is_help=True, add_completion=False,
                  help="Returns platforms (Loop Returns, ZigZag) to Khaos Control.")
app.add_typer(sandbox_app, name="sandbox")
app.add_typer(returns_app, name="returns")
app.add_typer(backfill_app, name="backfill")
app.add_typer(exceptions_app, name="exceptions")
app.add_typer(events_app, name="events")
app.add_typer(khaos_app, name="khaos")
app.add_typer(alerts_app, name="alerts")
app.command("doctor")(doctor)
app.add_typer(mapping_app, name="mapping")
app.command("suggest")(suggest)
app.add_typer(users_app, name="users")
app.add_typer(tokens_app, name="tokens")
app.command("audit")(audit)
app.command("reconcile")(reconcile)
app.add_typer(audit_log_app, name="audit-log")


def _show_version(value: bool) -> None:
    if value:
        out.print(f"returnbridge {__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[bool, typer.Option(
        "--version", callback=_show_version, is_eager=True,
        help="Print the version and exit.")] = False,
) -> None:
    """Returns platforms (Loop Returns, ZigZag) to Khaos Control."""


@app.command()
def init(
    path: Annotated[Path, typer.Argument(help="Where to write the file.")] = Path(
        "returnbridge.toml"),
    force: Annotated[bool, typer.Option(help="Overwrite an existing file.")] = False,
) -> None:
    """Write a commented configuration file with every key and its meaning."""
    from returnbridge.config_docs import config_template

    if path.exists() and not force:
        err.print(f"{path} already exists; use --force to overwrite it.")
        raise typer.Exit(1)
    # Owner-only from the first byte: the file will hold secrets.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # --force over an existing, more open file
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(config_template())
    out.print(f"Wrote {path} (readable by you only). Fill in the secrets, then run: "
              "returnbridge check-config")


@app.command("check-config")
def check_config(config: ConfigOpt = None) -> None:
    """Report every problem with the configuration, in plain words."""
    from returnbridge.checks import (
        Level,
        check_alerts,
        check_database,
        check_file_permissions,
        check_settings,
    )
    from returnbridge.config import config_path

    try:
        settings = load_settings(config)
    except ConfigError as exc:
        err.print(f"[red]error[/red]: the configuration cannot be loaded "
                  f"({escape(str(exc.path or 'defaults'))}):", soft_wrap=True)
        for problem in exc.problems:
            err.print(f"  - {escape(problem)}", soft_wrap=True, highlight=False)
        raise typer.Exit(1) from None
    findings = (check_settings(settings) + check_file_permissions(config_path(config))
                + check_database(settings) + check_alerts(settings))
    colours = {Level.ERROR: "red", Level.WARNING: "yellow", Level.NOTE: "cyan"}
    for finding in findings:
        c = colours[finding.level]
        out.print(f"[{c}]{finding.level.value}[/{c}] {escape(finding.key)}: "
                  f"{escape(finding.message)}", highlight=False, soft_wrap=True)
    errors = sum(1 for x in findings if x.level is Level.ERROR)
    warnings = sum(1 for x in findings if x.level is Level.WARNING)
    out.print(f"{errors} error(s), {warnings} warning(s).")
    if errors:
        raise typer.Exit(1)


@app.command()
def migrate(config: ConfigOpt = None) -> None:
    """Create or upgrade the database schema."""
    from returnbridge.store.db import make_engine
    from returnbridge.store.migrate import upgrade

    settings = load(config)
    engine = make_engine(settings.database.url)
    before, after = upgrade(engine)
    where = engine.url.render_as_string(hide_password=True)
    if before == after:
        out.print(f"{where} is already at schema {after}.")
    else:
        out.print(f"{where}: schema {before or 'empty'} -> {after}.")
    engine.dispose()


@app.command()
def serve(
    config: ConfigOpt = None,
    worker: Annotated[bool, typer.Option(help="Also run workflows in this process.")] = True,
    host: Annotated[str | None, typer.Option(help="Override [server].host.")] = None,
    port: Annotated[int | None, typer.Option(help="Override [server].port.")] = None,
) -> None:
    """Run the HTTP service (webhooks, Khaos channel, API) and, by default, the worker
    (in a child process or in threads: [server].worker_mode)."""
    from returnbridge.flows.engine.durable import Durable
    from returnbridge.flows.engine.runtime import Runtime
    from returnbridge.flows.engine.schedule_watch import ScheduleWatch
    from returnbridge.flows.engine.worker_child import worker_in_child
    from returnbridge.web.app import create_app

    settings = load(config)
    configure_logging(settings)
    require_schema(settings)
    rt = Runtime.from_settings(settings)
    if worker and worker_in_child(settings):
        _serve_with_worker_child(rt, config, host, port)
        return
    durable = Durable(rt, worker=worker)
    durable.start()
    # The event worker is CPU-bound Python; hand the interpreter lock to the request thread
    # sooner (default 5 ms) so webhook answers do not queue behind a batch.
    sys.setswitchinterval(0.0005)
    web = create_app(rt, None, wake=durable.wake)
    durable.defer_to_requests(web.state.ctx.in_flight.busy)
    if worker:
        _run_http(rt, web, host, port, then=durable.stop)
        return
    watch = ScheduleWatch(rt)  # no jobs here: notice when no worker runs them either
    watch.start()

    def stop_all() -> None:
        watch.stop()
        durable.stop()

    _run_http(rt, web, host, port, then=stop_all)


def _serve_with_worker_child(rt: Runtime, config: ConfigOpt, host: str | None,
                             port: int | None) -> None:
    """The HTTP server here; the event worker, jobs and queues in a child process
    (flows/engine/worker_child.py). This process runs no workflows, so it starts no
    workflow engine: the request path never waits for one."""
    from returnbridge.flows.engine.schedule_watch import ScheduleWatch
    from returnbridge.flows.engine.worker_child import WorkerChild, worker_command
    from returnbridge.flows.exceptions.worker_health import (
        report_worker_down,
        resolve_worker_down,
    )
    from returnbridge.web.app import create_app

    child = WorkerChild(worker_command(str(config) if config else None),
                        on_down=lambda exits, minutes, code: report_worker_down(
                            rt, exits, minutes, code),
                        on_stable=lambda minutes: resolve_worker_down(rt, minutes))
    child.start()
    watch = ScheduleWatch(rt)  # the jobs run in the child: notice if they stop
    watch.start()
    web = create_app(rt, None, wake=child.wake)

    def stop_all() -> None:
        watch.stop()
        child.stop()

    _run_http(rt, web, host, port, then=stop_all)


def _run_http(rt: Runtime, web: FastAPI, host: str | None, port: int | None, *,
              then: Callable[[], None]) -> None:
    """Serve ``web`` until stopped; then ``then`` (stop the workflows) and close ``rt``."""
    from returnbridge.web.limits import uvicorn_options
    from returnbridge.web.server import run as run_server

    settings = rt.settings
    settle_heap()
    try:
        run_server(web, host=host or settings.server.host,
                   port=port or settings.server.port, log_config=None,
                   **uvicorn_options(settings))
    finally:
        then()
        rt.close()


@app.command()
def worker(
    config: ConfigOpt = None,
    parent_pipe: Annotated[bool, typer.Option(
        hidden=True, help="Started by 'serve': wake on each byte of standard input, stop at "
        "its end (the parent is gone).")] = False,
) -> None:
    """Run workflows without the HTTP server (scale out next to 'serve --no-worker')."""
    from returnbridge.flows.engine.durable import Durable
    from returnbridge.flows.engine.runtime import Runtime

    settings = load(config)
    configure_logging(settings)
    require_schema(settings)
    rt = Runtime.from_settings(settings)
    durable = Durable(rt, worker=True)
    durable.start()
    settle_heap()
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    if parent_pipe:
        from returnbridge.flows.engine.worker_child import follow_parent

        threading.Thread(target=follow_parent, args=(durable.wake, stop), name="parent-pipe",
                         daemon=True).start()
    else:
        out.print("worker running; Ctrl-C to stop")
    stop.wait()
    durable.stop()
    rt.close()


@app.command()
def demo(
    keep_running: Annotated[bool, typer.Option(
        help="Leave the service and sandboxes running and print their URLs.")] = False,
    returns: Annotated[int, typer.Option(help="How many Loop returns to send (the seven "
                                         "kinds of return repeat).")] = 7,
) -> None:
    """Run the whole path on SQLite with local sandboxes of Loop and Khaos."""
    from returnbridge.sandbox.demo import run_demo

    code = run_demo(keep_running=keep_running, returns=returns, console=out)
    raise typer.Exit(code)


@app.command("config-docs", hidden=True)
def config_docs() -> None:
    """Print docs/configuration.md (generated from the settings model)."""
    from returnbridge.config_docs import configuration_markdown

    sys.stdout.write(configuration_markdown())


def main() -> None:
    app()
