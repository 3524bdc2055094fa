"""StockUpload benchmark: a large Khaos StockItems push into the real service over HTTP.

Khaos pushes the whole catalogue on first link ("in batches until done"; batch size is not
documented), so one request may carry tens of thousands of items, and any answer but 200 (a
timeout included) makes Khaos send it again. This starts ``returnbridge serve`` as a real
process (SQLite by default, PostgreSQL with ``--postgres``) and POSTs, over loopback:

1. the first upload of N items (all new),
2. the same body again (Khaos retrying; nothing may change),
3. the body with 10% of the items edited (StockCode, options, barcodes),
4. N/100 StockStatusUpload pushes of 100 levels each (the documented maximum per push).

In the same run a baseline does the irreducible work for the same body on the same backend:
parse the JSON and insert one row per item (StockID, StockCode, raw JSON) in one transaction
with a single executemany. The report gives seconds per request and the ratio to the baseline,
against the 100 s default request timeout of .NET's HttpClient (Khaos's own timeout is not
documented).

    uv run --frozen python bench/stock_upload.py [--items N] [--postgres [URL]]
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import psycopg
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from returnbridge.sandbox.demo import KHAOS_PASSWORD, KHAOS_USER, write_demo_config
from returnbridge.sandbox.scratch import scratch_database
from returnbridge.sandbox.service import ServiceProcess, free_port
from returnbridge.store.db import make_engine
from returnbridge.store.migrate import upgrade
from returnbridge.store.models import StockBarcode, StockItem, StockLevel

DEFAULT_ITEMS = 20_000
DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"
REQUEST_TIMEOUT_S = 300.0
KHAOS_TIMEOUT_S = 100.0  # .NET HttpClient default; the Khaos value is undocumented


# --------------------------------------------------------------------------- workload

def stock_item(i: int, edited: bool = False) -> dict[str, Any]:
    """One item shaped like the vendor example (tests fixtures/khaos/stock_items.json)."""
    code = f"SKU-{i:06d}" + ("-R" if edited else "")
    return {
        "StockID": str(100_000 + i), "StockCode": code,
        "ShortDescription": f"Benchmark item {i} / Black / {i % 13 + 3}UK",
        "OtherRef": f"SHOP-{i:06d}",
        "BuyPrice": {"Net": 4.5}, "SellPrice": {"Gross": 19.99},
        "ChannelListingPrice": {"Gross": 19.99},
        "TaxRate": {"Code": "1", "ID": "1", "Name": "Standard"},
        "StockType1": {"ID": "18", "Name": "Footwear"},
        "StockType2": {"ID": "14", "Name": "[Footwear] Shoe"},
        "Options": {"PublishOnWeb": not edited, "Discontinued": False, "DropShipItem": False,
                    "DiscountsDisabled": False, "RunToZero": False,
                    "VatReliefQualified": False, "StockControlled": True, "FreeText": False,
                    "NonPhysical": False, "CustomOptions": []},
        "SalesMultiple": 1.0, "LeadTime": 1, "ListingPrices": [], "SupplierInfo": [],
        "Images": [], "UserDefinedFields": [],
        "Barcodes": [{"Barcode": f"50{i:011d}", "Type": {"ID": "1"}}]
        + ([{"Barcode": f"71{i:011d}", "Type": {"ID": "2"}}] if edited or i % 3 == 0 else []),
    }


def stock_items_body(count: int, edited_every: int = 0) -> bytes:
    items = [stock_item(i, edited=bool(edited_every) and i % edited_every == 0)
             for i in range(count)]
    return json.dumps({"Deleted": [], "Items": items}).encode()


def stock_status_bodies(count: int) -> list[bytes]:
    bodies = []
    for start in range(0, count, 100):
        statuses = [{"StockCode": f"SKU-{i:06d}", "StockID": str(100_000 + i), "SiteID": 1,
                     "Levels": {"Available": float(i % 50), "OnOrder": 0.0}}
                    for i in range(start, min(start + 100, count))]
        bodies.append(json.dumps({"Statuses": statuses}).encode())
    return bodies


# --------------------------------------------------------------------------- baseline

def baseline_sqlite(path: Path, body: bytes) -> float:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("CREATE TABLE items (stock_id TEXT PRIMARY KEY, stock_code TEXT, raw TEXT)")
    started = time.perf_counter()
    items = json.loads(body)["Items"]
    with conn:
        conn.executemany("INSERT INTO items VALUES (?, ?, ?)",
                         [(it["StockID"], it["StockCode"], json.dumps(it)) for it in items])
    elapsed = time.perf_counter() - started
    conn.close()
    return elapsed


def baseline_postgres(url: str, body: bytes) -> float:
    conninfo = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(conninfo) as conn:
        conn.execute("CREATE TABLE bench_items (stock_id TEXT PRIMARY KEY, stock_code TEXT, "
                     "raw JSON)")
        conn.commit()
        started = time.perf_counter()
        items = json.loads(body)["Items"]
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO bench_items VALUES (%s, %s, %s)",
                            [(it["StockID"], it["StockCode"], json.dumps(it)) for it in items])
        conn.commit()
        elapsed = time.perf_counter() - started
        conn.execute("DROP TABLE bench_items")
        conn.commit()
    return elapsed


# --------------------------------------------------------------------------- service

def write_config(directory: Path, port: int, database_url: str | None) -> tuple[Path, str]:
    config = write_demo_config(directory, port)
    sqlite_url = f"sqlite:///{directory / 'returnbridge.db'}"
    text = config.read_text(encoding="utf-8")
    if database_url is not None:
        text = text.replace(f'url = "{sqlite_url}"', f'url = "{database_url}"', 1)
    text = text.replace("[khaos]\n", "[khaos]\nmax_push_bytes = 500000000\n", 1)
    config.write_text(text, encoding="utf-8")
    return config, database_url or sqlite_url


def counts(url: str) -> tuple[int, int, int]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return (conn.scalar(select(func.count()).select_from(StockItem)) or 0,
                    conn.scalar(select(func.count()).select_from(StockBarcode)) or 0,
                    conn.scalar(select(func.count()).select_from(StockLevel)) or 0)
    finally:
        engine.dispose()


def timed_post(client: httpx.Client, path: str, body: bytes) -> tuple[float, dict[str, Any]]:
    started = time.perf_counter()
    response = client.post(path, content=body, headers={"Content-Type": "application/json"})
    elapsed = time.perf_counter() - started
    if response.status_code != 200:
        raise RuntimeError(f"{path} answered {response.status_code}: {response.text[:300]}")
    result: dict[str, Any] = response.json()
    return elapsed, result


def run(items: int, directory: Path, database_url: str | None) -> None:
    first = stock_items_body(items)
    edited = stock_items_body(items, edited_every=10)
    levels = stock_status_bodies(items)
    print(f"items: {items}, body: {len(first) / 1e6:.1f} MB, "
          f"backend: {'postgresql' if database_url else 'sqlite'}")
    base_s = (baseline_postgres(database_url, first) if database_url
              else baseline_sqlite(directory / "baseline.db", first))
    print(f"baseline (json.loads + one executemany INSERT, one commit): {base_s:.2f} s "
          f"({items / base_s:,.0f} items/s)")

    port = free_port()
    config, url = write_config(directory, port, database_url)
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    service = ServiceProcess(config, port, directory / "service.log")
    try:
        service.start()
        with httpx.Client(base_url=service.base_url, auth=(KHAOS_USER, KHAOS_PASSWORD),
                          timeout=REQUEST_TIMEOUT_S) as client:
            rows: list[tuple[str, float, dict[str, Any]]] = []
            for label, body in (("first upload (all new)", first),
                                ("same body again (no change)", first),
                                ("10% of items edited", edited)):
                elapsed, result = timed_post(client, "/khaos/stock", body)
                rows.append((label, elapsed, result))
            level_times = [timed_post(client, "/khaos/stock-status", b)[0] for b in levels]
        for label, elapsed, result in rows:
            verdict = "within" if elapsed < KHAOS_TIMEOUT_S else "OVER"
            print(f"POST /khaos/stock, {label}: {elapsed:.2f} s "
                  f"({items / elapsed:,.0f} items/s; {elapsed / base_s:.1f}x baseline; "
                  f"{verdict} {KHAOS_TIMEOUT_S:.0f} s) inserted={result['inserted']} "
                  f"updated={result['updated']} unchanged={result['unchanged']}")
        level_times.sort()
        p50 = level_times[len(level_times) // 2]
        p99 = level_times[min(len(level_times) - 1, int(len(level_times) * 0.99))]
        print(f"POST /khaos/stock-status x{len(level_times)} (100 levels each): "
              f"p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, "
              f"total {sum(level_times):.2f} s")
        stored_items, stored_barcodes, stored_levels = counts(url)
        print(f"mirror: {stored_items} items, {stored_barcodes} barcodes, "
              f"{stored_levels} levels")
    finally:
        service.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=DEFAULT_ITEMS,
                        help=f"items in the upload (default {DEFAULT_ITEMS})")
    parser.add_argument("--postgres", nargs="?", const=DEFAULT_POSTGRES, default=None,
                        metavar="URL", help="run on a scratch PostgreSQL database created "
                        f"from this server URL (default {DEFAULT_POSTGRES})")
    args = parser.parse_args()
    if args.items < 1:
        parser.error("--items must be at least 1")
    with tempfile.TemporaryDirectory(prefix="rb-stock-bench-") as tmp:
        if args.postgres:
            with scratch_database(args.postgres, prefix="rb_bench") as url:
                run(args.items, Path(tmp), url)
        else:
            run(args.items, Path(tmp), None)


if __name__ == "__main__":
    main()
