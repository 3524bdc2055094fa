"""``returnbridge demo``: the whole path on SQLite with local sandboxes, in one command."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from returnbridge.config import load_settings
from returnbridge.erp.khaos.soap import KhaosSoapClient
from returnbridge.flows.khaos_confirm import sweep_unconfirmed
from returnbridge.flows.runtime import Runtime
from returnbridge.sandbox.khaos.emulator import KhaosSandbox
from returnbridge.sandbox.loop.samples import CATALOGUE, demo_payloads
from returnbridge.sandbox.loop.sender import LoopSender
from returnbridge.sandbox.service import ServiceProcess, free_port
from returnbridge.store.db import make_engine
from returnbridge.store.migrate import upgrade

LOOP_SECRET = "demo-loop-webhook-secret"
KHAOS_USER, KHAOS_PASSWORD = "khaos", "demo-channel-password"
API_TOKEN = "demo-api-token"
FALLBACK_URN = "LOOPWEB"
RESTOCK_REASON, WRITE_OFF_REASON = "6", "7"


def write_demo_config(directory: Path, port: int, db_url: str | None = None,
                      soap_url: str = "") -> Path:
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

[loop]
webhook_secrets = ["{LOOP_SECRET}"]
fallback_customer_urn = "{FALLBACK_URN}"

[khaos]
channel_username = "{KHAOS_USER}"
channel_password = "{KHAOS_PASSWORD}"
soap_url = "{soap_url}"

[log]
format = "json"

[[mapping.reasons]]
reason = "Arrived damaged"
khaos_reason_id = "{WRITE_OFF_REASON}"
processing = "write_off"

[[mapping.reasons]]
khaos_reason_id = "{RESTOCK_REASON}"
processing = "restock"
""", encoding="utf-8")
    return path


def _soap_url(port: int) -> str:
    return f"http://127.0.0.1:{port}/KhaosSandbox.exe/soap/IKosWeb"


def _khaos_sandbox(base_url: str, soap_port: int) -> KhaosSandbox:
    """A Khaos system with the shop's catalogue (10 of each at site 1), the web customer and
    a restock and a write-off return reason, serving SOAP on the configured port."""
    khaos = KhaosSandbox(f"{base_url}/khaos/config.json", KHAOS_USER, KHAOS_PASSWORD,
                         reasons={RESTOCK_REASON: "restock", WRITE_OFF_REASON: "write_off"})
    for sku, (title, price) in CATALOGUE.items():
        khaos.add_item(sku, description=title, sell_price=price, levels={1: 10})
    khaos.add_customer(FALLBACK_URN, "webshop@example.com", "Web shop customers")
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


def run_demo(*, keep_running: bool, returns: int, console: Console) -> int:
    with tempfile.TemporaryDirectory(prefix="returnbridge-demo-") as tmp:
        directory = Path(tmp)
        port = free_port()
        soap_port = free_port()
        config = write_demo_config(directory, port, soap_url=_soap_url(soap_port))
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
            return _scenario(service, returns, console, keep_running, directory, soap_port)
        finally:
            service.stop()


def _scenario(service: ServiceProcess, count: int, console: Console, keep_running: bool,
              directory: Path, soap_port: int) -> int:
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

    api = httpx.Client(base_url=service.base_url, timeout=10,
                       headers={"Authorization": f"Bearer {API_TOKEN}"})
    _wait_processed(api, refs, timeout=60)
    khaos = _khaos_sandbox(service.base_url, soap_port)
    khaos.fetch_config()
    khaos.poll()
    khaos.poll()  # a second scheduled poll finds nothing new: nothing is served twice
    rt = Runtime.from_settings(load_settings(directory / "returnbridge.toml"))
    try:
        with KhaosSoapClient(khaos.soap_url, timeout=10) as soap:
            sweep = sweep_unconfirmed(rt, soap)  # desktop SOAP: find the credit notes
    finally:
        rt.close()
    views = [api.get(f"/api/v1/returns/{ref}").json() for ref in refs]
    api.close()

    table = Table(title="Returns")
    for col in ("AssociatedRef", "Loop state", "Khaos status", "lines", "Khaos import"):
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
                 if v["khaos_status"] in ("served", "imported", "credit_confirmed"))
    console.print(
        f"Received {len(payloads)} returns; served {served} to Khaos in "
        f"{khaos.polls} poll request(s); the Khaos sandbox imported {len(khaos.imported)} "
        f"and refused {len(khaos.failures)}.", soft_wrap=True
    )
    console.print(
        f"Desktop SOAP sweep: {sweep.confirmed} credit note(s) confirmed in {sweep.calls} "
        f"ExportOrderStatusEx call(s).", soft_wrap=True
    )
    ok = (len(khaos.imported) > 0 and not khaos.failures and served == len(khaos.imported)
          and sweep.confirmed == len(khaos.imported))
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
