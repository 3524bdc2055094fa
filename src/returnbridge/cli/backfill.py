"""``returnbridge backfill loop --since DATE [--until DATE]``: Loop history into the event store.

Thin: parse the dates, call :func:`returnbridge.sources.loop.backstop.run_backfill` with a Rich
progress bar, print a summary. An interrupted run (Ctrl-C, a crash, a Loop outage) resumes
from its last saved page when started again with the same ``--since``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from returnbridge.cli.common import ConfigOpt, configure_logging, err, load, out, require_schema

backfill_app = typer.Typer(no_args_is_help=True,
                           help="Read history from a returns platform's API.")


def parse_date(value: str) -> datetime:
    """``YYYY-MM-DD`` (midnight UTC) or an ISO 8601 timestamp; no zone means UTC."""
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a date (use YYYY-MM-DD or ISO 8601)"
                                 ) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


@backfill_app.command("loop")
def backfill_loop(
    since: Annotated[str, typer.Option("--since", help="Start of the range (YYYY-MM-DD or "
                                       "ISO 8601; no zone = UTC), by Loop's updated_at.")],
    until: Annotated[str | None, typer.Option("--until", help="End of the range (default: "
                                              "now, or the interrupted run's end).")] = None,
    apply: Annotated[bool, typer.Option("--apply/--no-apply", help="Also apply the new "
                                        "events here instead of leaving them to the running "
                                        "service.")] = False,
    config: ConfigOpt = None,
) -> None:
    """Store every Loop return updated in a date range as an event (deduplicated), so that
    the service processes anything it has not seen. Safe to repeat; resumes after an
    interrupt."""
    from returnbridge.flows.engine.runtime import Runtime
    from returnbridge.sources.loop.backstop import (
        BackfillProgress,
        backfill_position,
        run_backfill,
    )
    from returnbridge.sources.loop.client import LoopError

    start = parse_date(since)
    end = parse_date(until) if until else None
    settings = load(config)
    configure_logging(settings)
    if not settings.loop.api_key.get_secret_value():
        err.print("[red]error[/red]: [loop].api_key is not set (a key with the Returns scope "
                  "from Loop Admin > Developer Tools).")
        raise typer.Exit(2)
    require_schema(settings)
    rt = Runtime.from_settings(settings)
    saved = backfill_position(rt)
    if saved and saved[0] == start and (end is None or saved[1] == end):
        out.print(f"Resuming the interrupted backfill at slice {saved[2] + 1}.")
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[detail]}"), TimeElapsedColumn(),
                  console=out, transient=False) as bar:
        task = bar.add_task("Loop backfill", total=None, detail="")

        def show(p: BackfillProgress) -> None:
            window = (f"{p.window[0]:%Y-%m-%d}..{p.window[1]:%Y-%m-%d}" if p.window else "")
            bar.update(task, total=p.slices_total, completed=p.slices_done,
                       detail=f"{window} {p.state}: {p.returns_seen} returns, "
                       f"{p.new_events} new")

        try:
            result = run_backfill(rt, start, end, progress=show)
        except KeyboardInterrupt:
            bar.stop()
            err.print("Interrupted. Run the same command again to resume where it stopped.")
            rt.close()
            raise typer.Exit(130) from None
        except LoopError as exc:
            bar.stop()
            err.print(f"[red]Loop API error[/red]: {escape(str(exc))}\nThe position is saved; "
                      "run the same command again to resume.", soft_wrap=True)
            rt.close()
            raise typer.Exit(1) from None
    applied = 0
    if apply:
        from returnbridge.flows.ingest.apply import apply_event

        for event_id in result.new_event_ids:
            apply_event(rt, event_id)
            applied += 1
    rt.close()
    table = Table(title="Loop backfill", show_header=False)
    table.add_row("range", f"{result.since.isoformat()} .. {result.until.isoformat()}")
    table.add_row("resumed", "yes" if result.resumed else "no")
    table.add_row("pages", str(result.pages))
    table.add_row("returns seen", str(result.returns_seen))
    table.add_row("new events stored", str(len(result.new_events)))
    table.add_row("already known", str(result.already_known))
    table.add_row("not seen by webhook", str(result.gaps))
    table.add_row("rate-limit waits", f"{result.throttled} (local), {result.rate_limited} "
                  "(429 from Loop)")
    if apply:
        table.add_row("applied here", str(applied))
    out.print(table)
