"""Reconciliation benchmark (issue #13): a month of N returns (1,000,000 by default) with
their credit notes and refunds, reconciled into the full month-end pack.

1. A sandbox month is generated in chunks (``sandbox/month.py``, ~5% planted
   discrepancies) and bulk-inserted into the three leg tables (executemany on SQLite, COPY
   on PostgreSQL). Not timed against the target.
2. Baseline, in a fresh process: read the same rows (the three leg tables, streamed) and
   do nothing with them.
3. Reconcile, in a fresh process: the set-based matching statement streamed into every
   writer (JSON, one CSV per table, XLSX, HTML), as ``returnbridge reconcile`` does.

Each child reports wall seconds and peak RSS (getrusage). Targets: reconcile <= 20 s and
<= 1 GB peak RSS; the ratio to the baseline is printed. Every planted discrepancy must be
found (checked, not timed).

    uv run --frozen python bench/reconcile.py [--returns N] [--postgres [URL]] [--sqlite]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from returnbridge.flows.reconcile import pack
from returnbridge.flows.reconcile.engine import Scope
from returnbridge.sandbox.month import found_keys, generate, load_legs, planted_keys
from returnbridge.store.db import make_engine, session_factory
from returnbridge.store.migrate import upgrade
from returnbridge.store.models import ReconCreditNoteLeg, ReconPaymentLeg, ReconPlatformLeg
from returnbridge.store.unit_of_work import UnitOfWork

PERIOD = "2026-10"
CHUNK = 50_000
TARGET_S = 20.0
TARGET_RSS_MB = 1024.0
DEFAULT_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def child(mode: str, url: str, out: str) -> None:
    engine = make_engine(url)
    t0 = time.perf_counter()
    rows = 0
    if mode == "baseline":
        with engine.connect() as conn:
            for model in (ReconPlatformLeg, ReconCreditNoteLeg, ReconPaymentLeg):
                stmt = sa.select(model.__table__).execution_options(
                    stream_results=True, yield_per=5000)
                for _ in conn.execute(stmt):
                    rows += 1
        result = None
    else:
        with UnitOfWork(session_factory(engine)) as uow:
            result = pack.build(uow, Scope(PERIOD), Path(out))
        rows = result.summary["returns"]
    seconds = time.perf_counter() - t0
    engine.dispose()
    report = {"seconds": seconds, "rss_mb": _rss_mb(), "rows": rows}
    if result is not None:
        report["found"] = sorted([list(map(str, k)) for k in found_keys(result.differences)])
        report["residual"] = result.summary["residual_unexplained"]
    print(json.dumps(report))


def _run_child(mode: str, url: str, out: Path) -> dict[str, object]:
    proc = subprocess.run([sys.executable, __file__, "--child", mode, "--url", url,
                           "--out", str(out)], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{mode} failed:\n{proc.stderr[-4000:]}")
    result: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def fill(url: str, n: int) -> set[tuple[str, str, str]]:
    engine = make_engine(url)
    upgrade(engine)
    planted: set[tuple[str, str, str]] = set()
    t0 = time.perf_counter()
    for start in range(0, n, CHUNK):
        month = generate(PERIOD, min(CHUNK, n - start), seed=start + 1, offset=start)
        with engine.begin() as conn:
            load_legs(conn, month)
        planted |= {(k, c, str(a)) for k, c, a in planted_keys(month)}
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("ANALYZE")
    engine.dispose()
    print(f"  filled {n} returns ({len(planted)} planted discrepancies) in "
          f"{time.perf_counter() - t0:.1f} s", flush=True)
    return planted


FIGURES: list[dict[str, object]] = []  # for --json (bench/run_all.py)


def bench(label: str, url: str, n: int, work: Path) -> bool:
    print(f"reconcile [{label}] month of {n} returns", flush=True)
    planted = fill(url, n)
    base = _run_child("baseline", url, work / "base")
    rec = _run_child("reconcile", url, work / f"pack-{label}")
    found = {tuple(k) for k in rec["found"]}  # type: ignore[attr-defined]
    exact = found == planted and rec["residual"] == "0.00"
    secs, rss = float(rec["seconds"]), float(rec["rss_mb"])  # type: ignore[arg-type]
    bsecs = float(base["seconds"])  # type: ignore[arg-type]
    ok = secs <= TARGET_S and rss <= TARGET_RSS_MB and exact
    print(f"  baseline (read the same {base['rows']} rows): {bsecs:.2f} s, "
          f"{float(base['rss_mb']):.0f} MB peak RSS")  # type: ignore[arg-type]
    print(f"  reconcile + full pack: {secs:.2f} s (target <= {TARGET_S:.0f} s), "
          f"{rss:.0f} MB peak RSS (target <= {TARGET_RSS_MB:.0f} MB), "
          f"ratio to baseline {secs / bsecs:.1f}x")
    print(f"  planted found exactly: {exact} ({len(planted)} planted, {len(found)} flagged, "
          f"residual {rec['residual']})")
    print(f"  {'PASS' if ok else 'FAIL'}", flush=True)
    FIGURES.append({"database": label, "returns": n, "seconds": secs, "rss_mb": rss,
                    "baseline_seconds": bsecs, "exact": exact})
    return ok


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--returns", type=int, default=1_000_000)
    ap.add_argument("--postgres", nargs="?", const=DEFAULT_POSTGRES, default=None)
    ap.add_argument("--sqlite", action="store_true", help="SQLite only")
    ap.add_argument("--child", choices=("baseline", "reconcile"))
    ap.add_argument("--url")
    ap.add_argument("--out")
    ap.add_argument("--json", help="also write the figures to this file (bench/run_all.py)")
    args = ap.parse_args()
    if args.child:
        child(args.child, args.url, args.out)
        return 0
    results = []
    with tempfile.TemporaryDirectory(prefix="rb-bench-recon-") as tmp:
        work = Path(tmp)
        results.append(bench("sqlite", f"sqlite:///{work / 'recon.db'}", args.returns, work))
        if not args.sqlite:
            admin = make_url(args.postgres or DEFAULT_POSTGRES)
            name = f"rb_bench_{uuid.uuid4().hex[:8]}"
            eng = sa.create_engine(admin, isolation_level="AUTOCOMMIT")
            with eng.connect() as c:
                c.exec_driver_sql(f'CREATE DATABASE "{name}"')
            try:
                url = admin.set(database=name).render_as_string(hide_password=False)
                results.append(bench("postgresql", url, args.returns, work))
            finally:
                with eng.connect() as c:
                    c.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                eng.dispose()
    if args.json:
        Path(args.json).write_text(json.dumps(FIGURES), encoding="utf-8")
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
