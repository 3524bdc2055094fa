"""Every throughput and footprint target of issue 12 (and the console's page time, issue 14)
in ONE table (``make bench``).

Runs the bench scripts as separate processes (each starts real ``returnbridge serve`` /
``worker`` processes), collects their figures and prints, per target: the figure, the
baseline it is compared with (measured in the same run where there is one), the ratio and
pass/fail. Absolute figures depend on the machine and its load; the ratios are what to
compare between runs. The load average at the start and end is printed with the table.

    uv run --frozen python bench/run_all.py [--events N] [--no-postgres]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


@dataclass
class Row:
    target: str
    goal: str
    figure: str
    baseline: str = ""
    ratio: str = ""
    ok: bool | None = None  # None: not measured


def ingest(events: int, *, postgres: bool = False, workers: int = 1, rate: float = 0.0,
           backlog: bool = False, per_return: int = 1) -> dict[str, float]:
    args = ["--events", str(events), "--workers", str(workers),
            "--events-per-return", str(per_return)]
    if backlog:
        args.append("--backlog")
    if postgres:
        args.append("--postgres")
    if rate:
        args += ["--rate", str(rate)]
    figures: dict[str, float] = _figures_of("ingest.py", *args)
    return figures


def idle_cpu(seconds: float = 30.0) -> float:
    """Share of one core an idle ``serve`` (SQLite, demo config) uses after warming up."""
    sys.path.insert(0, str(HERE))
    from soak import demo_service  # bench/soak.py

    with tempfile.TemporaryDirectory() as tmp:
        service = demo_service(Path(tmp), "idle.log")
        try:
            assert service.proc is not None
            time.sleep(10)  # startup work (imports, first scheduler ticks) is not idle
            before = _cpu_seconds(service.proc.pid)
            time.sleep(seconds)
            return (_cpu_seconds(service.proc.pid) - before) / seconds
        finally:
            service.stop()


def _cpu_seconds(pid: int) -> float:
    """utime + stime of the process, its threads and its children (serve's worker child,
    when it has one), in seconds."""
    from returnbridge.sandbox.service import process_tree

    total = 0
    for member in process_tree(pid):
        try:
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def _figures_of(script: str, *args: str, empty: str = "{}") -> Any:
    """Run ``bench/<script> <args> --json F`` and read F (``empty`` when it wrote nothing)."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as out:
        path = Path(out.name)
    cmd = [sys.executable, str(HERE / script), *args, "--json", str(path)]
    print("$", " ".join(cmd[1:]), flush=True)
    subprocess.run(cmd, check=False)
    try:
        figures = json.loads(path.read_text(encoding="utf-8") or empty)
    except (OSError, ValueError):
        figures = json.loads(empty)
    path.unlink(missing_ok=True)
    return figures


def backfill_budget() -> dict[str, float]:
    """bench/backfill.py --budget: a 120-day backfill against the rate-limited sandbox."""
    figures: dict[str, float] = _figures_of("backfill.py", "--budget")
    return figures


def soak(minutes: float) -> dict[str, float]:
    """bench/soak.py: serve under a steady load, its RSS sampled."""
    figures: dict[str, float] = _figures_of("soak.py", "--minutes", str(minutes))
    return figures


def xml_push_memory() -> tuple[float, float]:
    """(streamed multiple of body size, baseline multiple) from bench/xml_push_memory.py."""
    print("$ bench/xml_push_memory.py", flush=True)
    out = subprocess.run([sys.executable, str(HERE / "xml_push_memory.py")],
                         capture_output=True, text=True, check=False).stdout
    print(out, flush=True)
    found = dict(re.findall(r"xml_push_memory (\w+): peak RSS \+\S+ MB = ([\d.]+)x", out))
    return float(found.get("full", "nan")), float(found.get("baseline", "nan"))


def suggester_rows() -> list[Row]:
    """Precision@1 of the suggesters on the labelled sets (bench/suggest.py): no target,
    the figure is what the docs may claim."""
    sys.path.insert(0, str(HERE))
    import suggest  # bench/suggest.py

    rows = []
    for score in (suggest.reasons(), suggest.skus(), suggest.customers()):
        rows.append(Row(f"suggester precision@1, {score.name} ({score.cases} labelled)",
                        "(info)", fmt(score.precision_at_1 * 100, "%", 1),
                        f"coverage {fmt(score.coverage * 100, '%', 0)}",
                        f"{score.right}/{score.answered}"))
    return rows


def console_pages(*, postgres: bool = False) -> dict[str, Any]:
    """bench/console.py's figures: every console page with 100,000 returns, and the same
    pages with 1,000 returns measured in the same run (the baseline)."""
    figures: dict[str, Any] = _figures_of("console.py", *(["--postgres"] if postgres else []))
    return figures


def console_row(figures: dict[str, Any], db: str) -> Row:
    full, base = figures.get("full") or {}, figures.get("baseline") or {}
    worst, slowest = full.get("worst_median_ms"), full.get("worst_max_ms")
    base_ms = base.get("worst_median_ms")
    n = int(full.get("returns") or 100_000)
    return Row(f"console, slowest page ({full.get('worst_page', '?')}), {n:,} returns, {db}",
               "<= 300 ms", f"{fmt(worst, ' ms')} (max {fmt(slowest, ' ms')})",
               f"{fmt(base_ms, ' ms')} with {int(base.get('returns') or 0):,}",
               fmt(worst / base_ms if worst and base_ms else None, "", 2),
               bool(worst and worst <= 300))


def reconcile_rows(returns: int, *, postgres: bool) -> list[Row]:
    """bench/reconcile.py's figures: a month of ``returns`` reconciled into the full pack,
    against reading the same rows (the baseline, same run)."""
    figures: list[dict[str, Any]] = _figures_of(
        "reconcile.py", "--returns", str(returns), *([] if postgres else ["--sqlite"]),
        empty="[]")
    rows = []
    for f in figures:
        secs, base = float(f["seconds"]), float(f["baseline_seconds"])
        rows.append(Row(f"reconcile a month, {int(f['returns']):,} returns, {f['database']}",
                        "<= 20 s, <= 1 GB",
                        f"{fmt(secs, ' s', 1)}, {fmt(float(f['rss_mb']), ' MB')}"
                        + ("" if f["exact"] else ", planted gaps NOT all found"),
                        f"read only {fmt(base, ' s', 1)}", fmt(secs / base if base else None,
                                                               "x", 1),
                        bool(secs <= 20 and float(f["rss_mb"]) <= 1024 and f["exact"])))
    return rows


def fmt(value: float | None, unit: str = "", digits: int = 0) -> str:
    if value is None or value != value:  # NaN
        return "n/a"
    return f"{value:,.{digits}f}{unit}"


def load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1500)
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--backlog-events", type=int, default=4000,
                        help="stored webhooks for the PostgreSQL catch-up rows")
    parser.add_argument("--recon-returns", type=int, default=1_000_000,
                        help="returns in the reconciliation month (the target is 1,000,000)")
    parser.add_argument("--soak-minutes", type=float, default=10.0,
                        help="how long serve runs under steady load for the RSS row")
    args = parser.parse_args()
    load_start = load()
    rows: list[Row] = []

    sq = ingest(args.events)
    acc, base = sq.get("accepted_per_s"), sq.get("baseline_per_s")
    rows.append(Row("ingest, SQLite (processing on)", ">= 2,000/s", fmt(acc, "/s"),
                    fmt(base, "/s"), fmt(acc / base if acc and base else None, "", 3),
                    bool(acc and acc >= 2000)))
    rows.append(Row("ingest vs baseline, SQLite", ">= 0.50", fmt(acc / base if acc and base
                    else None, "", 3), fmt(base, "/s"), "",
                    bool(acc and base and acc / base >= 0.5)))
    http = sq.get("http_baseline_per_s")
    rows.append(Row("ingest vs HTTP baseline, SQLite (bare ASGI app: HMAC + INSERT)", "(info)",
                    fmt(acc / http if acc and http else None, "", 3), fmt(http, "/s"), ""))
    e2e = sq.get("processed_per_s")
    rows.append(Row("end to end, SQLite", ">= 300 returns/s", fmt(e2e, "/s", 1), "", "",
                    bool(e2e and e2e >= 300)))
    # Real returns have 3-6 events; most are updates of a return already stored.
    life = ingest(args.events, per_return=3)
    rows.append(Row("end to end, SQLite, 3 events a return (created, updated, closed)",
                    "(info: sizing)", fmt(life.get("processed_per_s"), "/s", 1), "", ""))
    page = sq.get("khaos_page_ms")
    rows.append(Row(f"Khaos page JSON ({int(sq.get('khaos_page_returns', 0))} returns)",
                    "<= 300 ms", fmt(page, " ms"), "", "", bool(page and page <= 300)))
    xml = sq.get("khaos_page_xml_ms")
    rows.append(Row(f"Khaos page XML ({int(sq.get('khaos_page_xml_returns', 0))} returns "
                    "asked by name, in process)", "<= 300 ms", fmt(xml, " ms"), "", "",
                    bool(xml and xml <= 300)))

    paced = ingest(min(args.events, 5000), rate=500)
    p99 = paced.get("p99_ms")
    rows.append(Row("p99 at 500/s offered, SQLite", "<= 25 ms", fmt(p99, " ms", 1),
                    f"achieved {fmt(paced.get('accepted_per_s'), '/s')}", "",
                    bool(p99 and p99 <= 25)))

    if not args.no_postgres:
        pg1 = ingest(args.events, postgres=True, workers=1)
        pg2 = ingest(args.events, postgres=True, workers=2)
        a1, b1 = pg1.get("accepted_per_s"), pg1.get("baseline_per_s")
        rows.append(Row("ingest, PostgreSQL (1 worker)", "(info)", fmt(a1, "/s"),
                        fmt(b1, "/s"), fmt(a1 / b1 if a1 and b1 else None, "", 3)))
        e1, e2 = pg1.get("processed_per_s"), pg2.get("processed_per_s")
        rows.append(Row("end to end, PostgreSQL, 1 worker", "(info)", fmt(e1, "/s", 1)))
        gain = (e2 / e1 - 1) if e1 and e2 else None
        rows.append(Row("end to end, PostgreSQL, 2 workers", "+70% over 1 worker",
                        fmt(e2, "/s", 1), fmt(e1, "/s", 1),
                        fmt(gain * 100 if gain is not None else None, "%", 0),
                        bool(gain is not None and gain >= 0.7)))
        # The same question without the webhooks' own CPU on the two shared cores: a stored
        # backlog (outage catch-up, bulk close) worked off by 1, then 2, worker processes.
        c1 = ingest(args.backlog_events, postgres=True, workers=1, backlog=True)
        c2 = ingest(args.backlog_events, postgres=True, workers=2, backlog=True)
        r1, r2 = c1.get("backlog_per_s"), c2.get("backlog_per_s")
        gain = (r2 / r1 - 1) if r1 and r2 else None
        rows.append(Row("backlog catch-up, PostgreSQL, 2 workers (webhooks stored first)",
                        "+70% over 1 worker", fmt(r2, "/s", 1), fmt(r1, "/s", 1),
                        fmt(gain * 100 if gain is not None else None, "%", 0),
                        bool(gain is not None and gain >= 0.7)))

    rows.append(console_row(console_pages(), "SQLite"))
    if not args.no_postgres:
        rows.append(console_row(console_pages(postgres=True), "PostgreSQL"))

    rows.extend(reconcile_rows(args.recon_returns, postgres=not args.no_postgres))

    idle = idle_cpu()
    rows.append(Row("idle serve CPU", "<= 2% of a core", fmt(idle * 100, "%", 2), "", "",
                    idle <= 0.02))
    streamed, whole = xml_push_memory()
    rows.append(Row("XML push peak RSS", "<= 4x body", fmt(streamed, "x", 1),
                    f"whole tree {fmt(whole, 'x', 1)}", "", streamed <= 4))
    budget = backfill_budget()
    share = budget.get("share")
    rows.append(Row("backfill share of Loop's rate budget (120 days, 100k returns)", ">= 90%",
                    fmt(share * 100 if share else None, "%", 1),
                    f"{fmt(budget.get('steady_per_minute'), '/min')} of 300/min",
                    f"429s {int(budget.get('rate_limited', -1))}",
                    bool(share and share >= 0.9 and budget.get("rate_limited") == 0
                         and budget.get("new_events") == budget.get("returns"))))
    soaked = soak(args.soak_minutes)
    growth = soaked.get("growth")
    rows.append(Row(f"serve RSS over {args.soak_minutes:g} minutes of steady load",
                    "flat (last minute within 10% of the second)",
                    fmt(growth * 100 if growth is not None else None, "%", 1),
                    f"{fmt(soaked.get('warm_mb'), ' MB')} -> {fmt(soaked.get('end_mb'), ' MB')}",
                    f"slope {fmt(soaked.get('slope_mb_per_min'), ' MB/min', 2)}",
                    bool(growth is not None and growth <= 0.10
                         and soaked.get("accepted") == soaked.get("sent"))))
    rows.extend(suggester_rows())

    print(f"\nreturnbridge bench: {args.events} webhooks per run; load average at start "
          f"{load_start}, at end {load()} ({os.cpu_count()} CPUs)")
    header = ("target", "goal", "figure", "baseline", "ratio", "result")
    table = [header] + [(r.target, r.goal, r.figure, r.baseline, r.ratio,
                         "n/a" if r.ok is None else ("PASS" if r.ok else "FAIL"))
                        for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    for n, line in enumerate(table):
        print(" | ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)))
        if n == 0:
            print("-+-".join("-" * w for w in widths))


if __name__ == "__main__":
    main()
