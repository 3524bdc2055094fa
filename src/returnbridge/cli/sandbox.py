"""``returnbridge sandbox …``: run one local sandbox until Ctrl-C, to try returnbridge (or
another integration) against Loop, ZigZag, Shopify or Khaos without credentials."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer

from returnbridge.cli.common import load, out

sandbox_app = typer.Typer(no_args_is_help=True, help="Run a local sandbox of Loop, ZigZag, "
                          "Shopify or Khaos Control.")

PortOpt = Annotated[int, typer.Option(help="Port to listen on (0: any free port).")]


def _wait() -> None:
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        pass


@sandbox_app.command("loop")
def loop(
    port: PortOpt = 0,
    webhook_url: Annotated[str, typer.Option(help="Where to send signed webhooks, e.g. "
                                             "http://127.0.0.1:8000/webhooks/loop.")] = "",
    secret: Annotated[str, typer.Option(help="Webhook signing secret.")] = "sandbox-secret",  # noqa: S107 - a sandbox default
    api_key: Annotated[str, typer.Option(help="X-Authorization key the API accepts.")]
    = "sandbox-loop-key",
    drop_rate: Annotated[float, typer.Option(help="Share of webhooks never delivered.")] = 0.0,
    duplicate_rate: Annotated[float, typer.Option(help="Share delivered twice.")] = 0.0,
) -> None:
    """The Loop API (list, details, ASN, actions) and a signed webhook sender; create and
    advance returns through its /_sandbox control API."""
    from returnbridge.sandbox.loop.dispatch import WebhookDispatcher
    from returnbridge.sandbox.loop.server import LoopSandboxServer
    from returnbridge.sandbox.loop.world import LoopWorld

    dispatcher = WebhookDispatcher(webhook_url, secret, drop_rate=drop_rate,
                                   duplicate_rate=duplicate_rate, immediate=True)
    server = LoopSandboxServer(LoopWorld(dispatcher=dispatcher), api_key=api_key,
                               port=port or None)
    server.start()
    out.print(json.dumps({"loop": {"base_url": server.base_url, "api_key": api_key,
                                   "webhook_secrets": [secret]}}, indent=2), soft_wrap=True)
    out.print(f"control API: {server.base_url.rsplit('/api/v1', 1)[0]}/_sandbox", soft_wrap=True)
    _wait()
    server.stop()


@sandbox_app.command("zigzag")
def zigzag(port: PortOpt = 0) -> None:
    """The ZigZag API (token endpoint, ExchangeStocks/Update, NonReturnableProducts)."""
    from returnbridge.sandbox.zigzag.api import ZigZagApiSandbox

    sandbox = ZigZagApiSandbox().start(port or None)
    out.print(json.dumps({"zigzag": sandbox.settings()}, indent=2), soft_wrap=True)
    _wait()
    sandbox.stop()


@sandbox_app.command("shopify")
def shopify(
    port: PortOpt = 0,
    order: Annotated[list[str] | None, typer.Option(help="An order to create, NAME=TOTAL "
                                                     "(repeatable), e.g. 1001=44.99.")] = None,
) -> None:
    """The Shopify Admin GraphQL subset used for refunds."""
    from returnbridge.sandbox.shopify.api import ShopifySandbox

    sandbox = ShopifySandbox().start(port or None)
    for spec in order or []:
        name, _, total = spec.partition("=")
        sandbox.add_order(name, total or "0")
    out.print(json.dumps({"shopify": sandbox.settings()}, indent=2), soft_wrap=True)
    _wait()
    sandbox.stop()


@sandbox_app.command("khaos")
def khaos(
    config_url: Annotated[str, typer.Option(help="returnbridge's channel configuration URL.")]
    = "http://127.0.0.1:8000/khaos/config.json",
    username: Annotated[str, typer.Option(help="Channel user name.")] = "khaos",
    password: Annotated[str, typer.Option(help="Channel password.")] = "",
    soap_port: Annotated[int, typer.Option(help="Port for the SOAP service (0: any).")] = 0,
) -> None:
    """A Khaos Control system that polls the channel, imports returns, raises credit notes,
    pushes stock and serves the desktop SOAP calls (open master data: any SKU, customer
    and reason is accepted)."""
    from returnbridge.sandbox.khaos.emulator import KhaosSandbox

    sandbox = KhaosSandbox(config_url, username, password)
    soap = sandbox.serve_soap(soap_port or None)
    sandbox.start_polling()
    out.print(json.dumps({"khaos": {"soap_url": soap}, "state": sandbox.state_url},
                         indent=2), soft_wrap=True)
    _wait()
    sandbox.stop_polling()
    sandbox.close()


@sandbox_app.command("month")
def month(
    period: Annotated[str, typer.Option(help="The month to fill, YYYY-MM.")] = "2026-10",
    size: Annotated[int, typer.Option(help="Returns in the month.")] = 20_000,
    seed: Annotated[int, typer.Option(help="Random seed (the same seed, the same month).")]
    = 13,
    replace: Annotated[bool, typer.Option(help="Empty the reconciliation legs first.")] = True,
    config: Annotated[str | None, typer.Option("--config", "-c",
                                               help="Configuration file.")] = None,
) -> None:
    """Fill the configured database's reconciliation legs with a realistic month with planted
    discrepancies; then run 'returnbridge reconcile --period PERIOD --no-refresh'."""
    from returnbridge.sandbox.month import clear_legs, generate, load_legs
    from returnbridge.store.db import make_engine
    from returnbridge.store.migrate import upgrade

    settings = load(Path(config) if config else None)
    engine = make_engine(settings.database.url)
    upgrade(engine)
    data = generate(period, size, seed=seed)
    with engine.begin() as conn:
        if replace:
            clear_legs(conn)
        load_legs(conn, data)
    engine.dispose()
    kinds: dict[str, int] = {}
    for p in data.planted:
        kinds[p.category.value] = kinds.get(p.category.value, 0) + 1
    out.print(f"{data.size} returns, {len(data.credit_notes)} credit notes, "
              f"{len(data.payments)} payments in {period}; planted: "
              + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items())))
