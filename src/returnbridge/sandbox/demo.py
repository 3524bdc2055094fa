"""``returnbridge demo``: the whole path on SQLite with local sandboxes, in one command."""

from __future__ import annotations

import tempfile
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from returnbridge.composition import load_settings
from returnbridge.erp.khaos.soap import KhaosSoapClient
from returnbridge.flows.confirm.soap_sweep import sweep_unconfirmed
from returnbridge.flows.engine.runtime import Runtime
from returnbridge.sandbox.khaos.emulator import KhaosSandbox
from returnbridge.sandbox.loop.samples import CATALOGUE, demo_payloads
from returnbridge.sandbox.loop.sender import LoopSender
from returnbridge.sandbox.service import ServiceProcess, free_port
from returnbridge.sandbox.shopify.api import ShopifySandbox
from returnbridge.sandbox.zigzag.samples import SampleItem, event, journey, refund_total
from returnbridge.sandbox.zigzag.sender import ZigZagSender
from returnbridge.store.db import make_engine
from returnbridge.store.migrate import upgrade

LOOP_SECRET = "demo-loop-webhook-secret"
KHAOS_USER, KHAOS_PASSWORD = "khaos", "demo-channel-password"
API_TOKEN = "demo-api-token"
FALLBACK_URN = "LOOPWEB"
RESTOCK_REASON, WRITE_OFF_REASON, NO_STOCK_REASON = "6", "7", "11"
ZIGZAG_SECRET = "demo-zigzag-secret"
ZIGZAG_URN = "ZZWEB"
ZIGZAG_REF, ZIGZAG_ORDER = "RTN-000123", "#100085875"
ZIGZAG_SKUS = ("30D24LRED", "30D24LBLU")
ZIGZAG_ITEMS = (SampleItem("30D24LRED", unit_price="44.99", unit_tax="7.50"),
                SampleItem("30D24LBLU", unit_price="49.99", unit_tax="8.33",
                           disposition="Damaged"))
ZIGZAG_PARTIAL = Decimal("80.00")  # ZigZag asks for less than the 94.98 credit note
# Money safety: a store-credit request and a return whose order already has a goodwill refund.
ZIGZAG_STORE_CREDIT = ("RTN-000124", "#100085876")
ZIGZAG_GOODWILL = ("RTN-000125", "#100085877")
ZIGZAG_ONE = (SampleItem("30D24LRED", unit_price="44.99", unit_tax="7.50"),)


def write_demo_config(directory: Path, port: int, db_url: str | None = None,
                      soap_url: str = "", shopify: dict[str, Any] | None = None) -> Path:
    """A working configuration for the sandboxes (SQLite in ``directory`` by default)."""
    path = directory / "returnbridge.toml"
    url = db_url or f"sqlite:///{directory / 'returnbridge.db'}"
    path.write_text(f"""\
[database]
url = "{url}"

[server]
port = {port}
public_base_url = "http://127.0.0.1:{port}"

[api]
tokens = ["{API_TOKEN}"]
metrics_public = true  # a local demo on 127.0.0.1: Prometheus may scrape without a token

[loop]
webhook_secrets = ["{LOOP_SECRET}"]
fallback_customer_urn = "{FALLBACK_URN}"

[khaos]
channel_username = "{KHAOS_USER}"
channel_password = "{KHAOS_PASSWORD}"
soap_url = "{soap_url}"

[zigzag]
webhook_secret = "{ZIGZAG_SECRET}"
fallback_customer_urn = "{ZIGZAG_URN}"
retailer_code = "GL123"
store_credit_action = "shopify_store_credit"

[policy]
keep_item_reason_id = "{NO_STOCK_REASON}"
fallback_address_line1 = "Unit 4, Returns Hub"
fallback_address_town = "Grantham"
fallback_address_postcode = "NG31 7FZ"
{_shopify_section(shopify)}
[log]
format = "json"

[[mapping.reasons]]
reason = "Arrived damaged"
khaos_reason_id = "{WRITE_OFF_REASON}"
processing = "write_off"

[[mapping.reasons]]
disposition = "write_off"
khaos_reason_id = "{WRITE_OFF_REASON}"
processing = "write_off"

[[mapping.reasons]]
khaos_reason_id = "{RESTOCK_REASON}"
processing = "restock"
""", encoding="utf-8")
    return path


def _shopify_section(shopify: dict[str, Any] | None) -> str:
    if not shopify:
        return ""
    return (f'\n[shopify]\nshop_domain = "{shopify["shop_domain"]}"\n'
            f'admin_token = "{shopify["admin_token"]}"\nbase_url = "{shopify["base_url"]}"\n'
            f'api_version = "{shopify["api_version"]}"\nrefund_gate_seconds = 1\n')


def _soap_url(port: int) -> str:
    return f"http://127.0.0.1:{port}/KhaosSandbox.exe/soap/IKosWeb"


def _khaos_sandbox(base_url: str, soap_port: int) -> KhaosSandbox:
    """A Khaos system with the shop's catalogue (10 of each at site 1), the web customer and
    a restock and a write-off return reason, serving SOAP on the configured port."""
    khaos = KhaosSandbox(f"{base_url}/khaos/config.json", KHAOS_USER, KHAOS_PASSWORD,
                         reasons={RESTOCK_REASON: "restock", WRITE_OFF_REASON: "write_off",
                                  NO_STOCK_REASON: "no_stock"})
    for sku, (title, price) in CATALOGUE.items():
        khaos.add_item(sku, description=title, sell_price=price, levels={1: 10})
    khaos.add_customer(FALLBACK_URN, "webshop@example.com", "Web shop customers")
    khaos.add_customer(ZIGZAG_URN, "zigzag@example.com", "ZigZag customers")
    for sku in ZIGZAG_SKUS:
        khaos.add_item(sku, description=sku, levels={1: 10})
    khaos.serve_soap(soap_port)
    return khaos


def _wait_processed(api: httpx.Client, refs: list[str], timeout: float) -> dict[str, Any]:
    views: dict[str, Any] = {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for ref in refs:
            if ref in views:
                continue
            r = api.get(f"/api/v1/returns/{ref}")
            if r.status_code == 200:
                views[ref] = r.json()
        if len(views) == len(refs):
            return views
        time.sleep(0.2)
    return views


def _wait_status(api: httpx.Client, ref: str, status: str, timeout: float) -> dict[str, Any]:
    view: dict[str, Any] = {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = api.get(f"/api/v1/returns/{ref}")
        if r.status_code == 200:
            view = r.json()
            if view["khaos_status"] == status:
                break
        time.sleep(0.3)
    return view


def run_demo(*, keep_running: bool, returns: int, console: Console) -> int:
    with tempfile.TemporaryDirectory(prefix="returnbridge-demo-") as tmp:
        directory = Path(tmp)
        port = free_port()
        soap_port = free_port()
        shopify = ShopifySandbox().start()
        shopify.add_order(ZIGZAG_ORDER, str(refund_total(ZIGZAG_ITEMS)))
        shopify.add_order(ZIGZAG_STORE_CREDIT[1], str(refund_total(ZIGZAG_ONE)))
        shopify.add_order(ZIGZAG_GOODWILL[1], str(refund_total(ZIGZAG_ONE)))
        # Customer service already refunded this one by hand, as a goodwill gesture.
        shopify.add_manual_refund(ZIGZAG_GOODWILL[1], str(refund_total(ZIGZAG_ONE)),
                                  "Goodwill - parcel late, refunded by CS")
        config = write_demo_config(directory, port, soap_url=_soap_url(soap_port),
                                   shopify=shopify.settings())
        settings = load_settings(config)
        engine = make_engine(settings.database.url)
        upgrade(engine)
        engine.dispose()
        console.print(f"[bold]returnbridge demo[/bold] in {directory}")
        service = ServiceProcess(config, port, directory / "service.log")
        started = time.monotonic()
        service.start()
        console.print(f"service up at {service.base_url} "
                      f"({time.monotonic() - started:.1f}s)")
        try:
            return _scenario(service, returns, console, keep_running, directory, soap_port,
                             shopify)
        finally:
            service.stop()
            shopify.stop()


def _zigzag_events() -> list[dict[str, Any]]:
    """Three ZigZag returns: a partial refund request, a store-credit request, and one whose
    order already carries a goodwill refund made by hand."""
    at = datetime(2026, 3, 9, 12, 0, tzinfo=UTC)
    sc_ref, sc_order = ZIGZAG_STORE_CREDIT
    gw_ref, gw_order = ZIGZAG_GOODWILL
    return [
        *journey(ZIGZAG_REF, ZIGZAG_ITEMS),
        event("RefundRequested", ZIGZAG_REF, (), occurred_at=at, refund_amount=ZIGZAG_PARTIAL),
        *journey(sc_ref, ZIGZAG_ONE, order_number=sc_order.lstrip("#")),
        event("RefundRequested", sc_ref, (), occurred_at=at, refund_method="store_credit",
              refund_amount=refund_total(ZIGZAG_ONE), order_number=sc_order.lstrip("#")),
        *journey(gw_ref, ZIGZAG_ONE, order_number=gw_order.lstrip("#")),
        event("RefundRequested", gw_ref, (), occurred_at=at,
              refund_amount=refund_total(ZIGZAG_ONE), order_number=gw_order.lstrip("#")),
    ]


def _wait_exception(api: httpx.Client, ref: str, kind: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        page = api.get("/api/v1/exceptions",
                       params={"status": "open", "ref": ref, "type": kind}).json()
        for exc in page.get("exceptions", []):
            if exc["associated_ref"] == ref and exc["type"] == kind:
                return dict(exc)
        time.sleep(0.3)
    return {}


def _scenario(service: ServiceProcess, count: int, console: Console, keep_running: bool,
              directory: Path, soap_port: int, shopify: ShopifySandbox) -> int:
    sender = LoopSender(f"{service.base_url}/webhooks/loop", LOOP_SECRET)
    payloads = demo_payloads(count)
    refs = [f"LR-{p['id']}" for p in payloads]
    for payload in payloads:
        sender.send(payload)
    duplicate = sender.send(payloads[0])
    forged = sender.send(payloads[1], secret="not-the-secret")
    console.print(f"Loop sandbox sent {len(payloads)} signed returns "
                  f"(all answered {sorted({s for _, s in sender.log[:len(payloads)]})}), "
                  f"one duplicate delivery (answered {duplicate.status_code}) and one forged "
                  f"delivery (answered {forged.status_code}).", soft_wrap=True)
    sender.close()
    zz = ZigZagSender(f"{service.base_url}/webhooks/zigzag", secret=ZIGZAG_SECRET)
    zz_answers = {r.status_code for r in zz.deliver(_zigzag_events(), duplicates=1,
                                                     shuffle_seed=4)}
    zz.close()
    zz_refs = [f"ZZ-{r}" for r in (ZIGZAG_REF, ZIGZAG_STORE_CREDIT[0], ZIGZAG_GOODWILL[0])]
    console.print(f"ZigZag sandbox sent the events of returns {', '.join(zz_refs)} twice each, "
                  f"out of order (answered {sorted(zz_answers)}).", soft_wrap=True)
    refs.extend(zz_refs)

    api = httpx.Client(base_url=service.base_url, timeout=10,
                       headers={"Authorization": f"Bearer {API_TOKEN}"})
    _wait_processed(api, refs, timeout=60)
    khaos = _khaos_sandbox(service.base_url, soap_port)
    stock_before = khaos.level("30D24LRED")
    khaos.fetch_config()
    khaos.poll()
    khaos.poll()  # a second scheduled poll finds nothing new: nothing is served twice
    # The warehouse books in the Loop parcels and processes those returns in Khaos, which
    # raises their credit notes (ZigZag returns were graded by ZigZag: processed on import).
    booked = [r.associated_ref for r in khaos.imported.values() if not r.processed]
    for ref in booked:
        khaos.process_by_ref(ref)
    rt = Runtime.from_settings(load_settings(directory / "returnbridge.toml"))
    try:
        with KhaosSoapClient(khaos.soap_url, timeout=10) as soap:
            sweep = sweep_unconfirmed(rt, soap)  # desktop SOAP: find the credit notes
    finally:
        rt.close()
    zz_ref, sc_ref, gw_ref = zz_refs
    zz_view = _wait_status(api, zz_ref, "done", timeout=60)
    sc_view = _wait_status(api, sc_ref, "done", timeout=60)
    hold = _wait_exception(api, gw_ref, "duplicate_refund_suspected", timeout=60)
    views = [api.get(f"/api/v1/returns/{ref}").json() for ref in refs]
    gw_view = api.get(f"/api/v1/returns/{gw_ref}").json()
    api.close()

    table = Table(title="Returns")
    for col in ("AssociatedRef", "source state", "Khaos status", "lines", "Khaos import"):
        table.add_column(col)
    for v in views:
        imported = khaos.imported.get(v["associated_ref"])
        failure = next((f.reason for f in khaos.failures
                        if f.associated_ref == v["associated_ref"]), "")
        outcome = (f"imported, credit note {imported.credit_note_code}" if imported
                   else failure or v.get("waiting_for") or "-")
        table.add_row(v["associated_ref"], v["source_state"], v["khaos_status"],
                      ", ".join(f"{ln['quantity']}x {ln['sku']} (reason "
                                f"{ln['khaos_reason_id']})" for ln in v["lines"]),
                      outcome)
    console.print(table)
    served = sum(1 for v in views
                 if v["khaos_status"] in ("served", "imported", "credit_confirmed",
                                          "refund_recorded", "done"))
    console.print(
        f"Received {len(refs)} returns; served {served} to Khaos in "
        f"{khaos.polls} poll request(s); the Khaos sandbox imported {len(khaos.imported)} "
        f"and refused {len(khaos.failures)}.", soft_wrap=True
    )
    console.print(
        f"The warehouse processed {len(booked)} return(s) in Khaos once their parcels "
        f"arrived; desktop SOAP sweep: {sweep.confirmed} credit note(s) confirmed in "
        f"{sweep.calls} ExportOrderStatusEx call(s).", soft_wrap=True
    )

    console.print("\n[bold]Money safety (ZigZag)[/bold]")
    refunds = shopify.order(ZIGZAG_ORDER).refunds
    zz_khaos = khaos.imported.get(zz_ref)
    credit = zz_view.get("credit_note", {})
    zz_ok = (zz_view.get("khaos_status") == "done" and len(refunds) == 1
             and refunds[0].amount == ZIGZAG_PARTIAL)
    console.print(
        f"{zz_ref}: graded -> imported processed by Khaos -> credit note "
        f"{credit.get('code') or '?'} ({credit.get('value') or '?'} GBP) -> ZigZag asked for "
        f"{ZIGZAG_PARTIAL} GBP -> {len(refunds)} Shopify refund(s) of "
        f"{', '.join(str(r.amount) for r in refunds) or '-'} GBP"
        + (f" noted '{escape(refunds[0].note)}'" if refunds else "")
        + f" -> {zz_view.get('khaos_status')} "
        + f"(Khaos return processed: {bool(zz_khaos and zz_khaos.processed)}).",
        soft_wrap=True)
    sc_order = shopify.order(ZIGZAG_STORE_CREDIT[1])
    sc_balance = shopify.store_credit_balance(sc_order.customer_id, "GBP")
    sc_ok = (sc_view.get("khaos_status") == "done" and not sc_order.refunds
             and sc_balance == refund_total(ZIGZAG_ONE))
    console.print(
        f"{sc_ref}: ZigZag asked for store credit -> {sc_balance} GBP credited to the "
        f"customer's Shopify store credit, {len(sc_order.refunds)} card refund(s) -> "
        f"{sc_view.get('khaos_status')}.", soft_wrap=True)
    gw_order = shopify.order(ZIGZAG_GOODWILL[1])
    stock_after = khaos.level("30D24LRED")
    gw_khaos = khaos.imported.get(gw_ref)
    gw_ok = (bool(hold) and len(gw_order.refunds) == 1 and gw_khaos is not None
             and gw_khaos.stock_moved and gw_view.get("khaos_status") == "credit_confirmed")
    console.print(
        f"{gw_ref}: the order already had a goodwill refund made by hand -> refund held for "
        f"finance ({hold.get('type', 'no exception!')}, owner {hold.get('owner', '?')}); "
        f"no second refund ({len(gw_order.refunds)} refund on the order) -> "
        f"{gw_view.get('khaos_status')}; its stock moved anyway "
        f"(stock moved in Khaos: {bool(gw_khaos and gw_khaos.stock_moved)}).", soft_wrap=True)
    console.print(
        f"Khaos stock of 30D24LRED: {stock_before} before, {stock_after} after (three "
        "resellable ZigZag units back on sale, whatever happened to the money).",
        soft_wrap=True)
    ok = (len(khaos.imported) > 0 and not khaos.failures and served == len(khaos.imported)
          and sweep.confirmed == len(khaos.imported) and zz_ok and sc_ok and gw_ok
          and stock_after == stock_before + 3)
    ok = month_end_pack(console) and ok
    console.print("All checks passed." if ok else "[red]Something did not go as expected "
                  f"(see {directory / 'service.log'}).[/red]")
    if keep_running:
        console.print(
            f"\nStill running (Ctrl-C to stop):\n"
            f"  service      {service.base_url}  (API token {API_TOKEN})\n"
            f"  Loop webhook {service.base_url}/webhooks/loop  (secret {LOOP_SECRET})\n"
            f"  Khaos config {service.base_url}/khaos/config.json  "
            f"({KHAOS_USER} / {KHAOS_PASSWORD})\n"
            f"  Khaos SOAP   {khaos.soap_url}\n"
            f"  Khaos state  {khaos.state_url}\n"
            f"  data         {directory}")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
    khaos.close()
    return 0 if ok else 1


def month_end_pack(console: Console, size: int = 500) -> bool:
    """A small sandbox month (planted discrepancies) reconciled into a month-end pack that
    outlives the demo; prints where it is."""
    from returnbridge.flows.reconcile import pack
    from returnbridge.flows.reconcile.engine import Scope
    from returnbridge.sandbox.month import found_keys, generate, load_legs, planted_keys
    from returnbridge.store.db import session_factory
    from returnbridge.store.unit_of_work import UnitOfWork

    where = Path(tempfile.gettempdir()) / "returnbridge-demo-pack"
    where.mkdir(parents=True, exist_ok=True)
    db = where / "month.db"
    db.unlink(missing_ok=True)
    period = "2026-10"
    engine = make_engine(f"sqlite:///{db}")
    upgrade(engine)
    month = generate(period, size)
    with engine.begin() as conn:
        load_legs(conn, month)
    with UnitOfWork(session_factory(engine)) as uow:
        result = pack.build(uow, Scope(period), where)
    engine.dispose()
    exact = found_keys(result.differences) == planted_keys(month)
    s = result.summary
    console.print(
        f"Month-end reconciliation of a sandbox month ({size} returns, "
        f"{len(month.planted)} planted discrepancies): {len(result.differences)} "
        f"difference(s) found ({'all planted, nothing else' if exact else 'MISMATCH'}), "
        f"unexplained residual {s['residual_unexplained']}.", soft_wrap=True)
    html = where / f"reconciliation-{period}.html"
    console.print(f"Month-end pack: {where} (open {html.as_uri()}; "
                  f"reconciliation-{period}.xlsx for finance)", soft_wrap=True)
    return exact and s["residual_unexplained"] == "0.00"
