"""Refunds do what the platform decided, never more (ARCHITECTURE 11): the amount ZigZag asked
for (capped at the confirmed credit note), the method it asked for (store credit is never a
card refund), and nothing at all without a request.

ZigZag events arrive over real HTTP at /webhooks/zigzag; refunds go to the Shopify sandbox
over real HTTP; every test runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from returnbridge.cli import app as cli_app
from returnbridge.cli import common as cli_common
from returnbridge.flows.confirm.by_hand import confirm_credit
from returnbridge.flows.engine.runtime import Runtime
from returnbridge.flows.khaos.serve import serve_page
from returnbridge.flows.refunds.gate import (
    WAITING_FOR_DECISION,
    Action,
    due_refs,
    run_refund_gate,
    workflow_id,
)
from returnbridge.payments.shopify.client import ShopifyClient
from returnbridge.sandbox.shopify.api import ShopifySandbox
from returnbridge.sandbox.zigzag.samples import event, journey
from tests.conftest import LiveApp, start_live_app
from tests.refunds.test_refund_gate import ITEMS, MAPPING, ORDER, POLICY, ZZ, _open, _send

CREDIT = Decimal("44.99")
AT = datetime(2026, 3, 12, tzinfo=UTC)


@pytest.fixture
def shopify() -> Iterator[ShopifySandbox]:
    sandbox = ShopifySandbox().start()
    sandbox.add_order(ORDER, "44.99")
    try:
        yield sandbox
    finally:
        sandbox.stop()


def _app(runtime_factory: Callable[..., Runtime], shopify: ShopifySandbox,
         **zigzag: object) -> LiveApp:
    return start_live_app(runtime_factory, zigzag={**ZZ, **zigzag}, mapping=MAPPING,
                          policy=POLICY, shopify=shopify.settings())


@pytest.fixture
def app(runtime_factory: Callable[..., Runtime], shopify: ShopifySandbox) -> Iterator[LiveApp]:
    live = _app(runtime_factory, shopify)
    try:
        yield live
    finally:
        live.stop()


def _credited(app: LiveApp, ref: str, *, amount: str | None = None,
              method: str | None = None) -> str:
    """Graded at ZigZag, handed to Khaos, credit note 44.99 confirmed; ZigZag's refund
    request (if ``method`` is given) with ``amount``."""
    _send(app, journey(ref, ITEMS))
    if method is not None:
        _send(app, [event("RefundRequested", ref, (), occurred_at=AT, refund_amount=amount,
                          refund_method=method)])
    assert f"ZZ-{ref}" in serve_page(app.rt).refs
    confirm_credit(app.rt, f"ZZ-{ref}", "CN000500", CREDIT, "finance@shop", "seen in Khaos")
    return f"ZZ-{ref}"


def _gate(app: LiveApp, ref: str) -> Action:
    with ShopifyClient(app.rt.settings.shopify) as client:
        return run_refund_gate(app.rt, ref, client, None).action


def _view(app: LiveApp, ref: str) -> dict[str, object]:
    with app.api() as api:
        response = api.get(f"/api/v1/returns/{ref}")
    assert response.status_code == 200
    body: dict[str, object] = response.json()
    return body


def test_a_partial_refund_request_pays_exactly_what_was_asked(app: LiveApp,
                                                            shopify: ShopifySandbox) -> None:
    ref = _credited(app, "RTN-30", amount="30.00", method="original_payment")
    assert _gate(app, ref) is Action.PAY
    assert _gate(app, ref) is Action.NOT_READY  # done; nothing more
    (refund,) = shopify.order(f"#{ORDER}").refunds
    assert refund.amount == Decimal("30.00")
    assert len(shopify.refund_calls()) == 1
    assert _open(app.rt, "amount_mismatch") == []
    view = _view(app, ref)
    assert view["khaos_status"] == "done"
    assert [(r["amount"], r["origin"]) for r in view["refunds"]] == [  # type: ignore[attr-defined]
        ("30.00", "returnbridge")]
    assert view["refund_request"]["amount"] == "30.00"  # type: ignore[index]


def test_an_over_ask_is_capped_at_the_credit_note_with_one_amount_mismatch(
        app: LiveApp, shopify: ShopifySandbox) -> None:
    ref = _credited(app, "RTN-60", amount="60.00", method="original_payment")
    assert _gate(app, ref) is Action.PAY
    _gate(app, ref)  # a second run changes nothing
    (refund,) = shopify.order(f"#{ORDER}").refunds
    assert refund.amount == CREDIT
    (mismatch,) = _open(app.rt, "amount_mismatch")
    assert mismatch.owner == "finance" and mismatch.count == 1
    assert "60.00" in mismatch.message and "44.99" in mismatch.message
    assert mismatch.associated_ref == ref


def test_store_credit_is_never_a_card_refund_but_a_finance_task_by_default(
        app: LiveApp, shopify: ShopifySandbox) -> None:
    ref = _credited(app, "RTN-SC", amount="44.99", method="store_credit")
    assert _gate(app, ref) is Action.FINANCE
    _gate(app, ref)
    assert shopify.refund_calls() == [] and shopify.order(f"#{ORDER}").refunds == []
    (task,) = _open(app.rt, "finance_task")
    assert task.owner == "finance" and task.associated_ref == ref
    for named in ("44.99 GBP", "ann.lee@example.com", "CN000500"):
        assert named in task.next_action
    assert "Do not refund the card" in task.next_action
    view = _view(app, ref)
    assert view["khaos_status"] == "done"
    assert [e["type"] for e in view["open_exceptions"]] == ["finance_task"]  # type: ignore[attr-defined]


def test_an_unknown_refund_method_pays_nothing_and_asks_finance(
        app: LiveApp, shopify: ShopifySandbox) -> None:
    ref = _credited(app, "RTN-BNPL", amount="44.99", method="klarna_voucher")
    assert _gate(app, ref) is Action.FINANCE
    assert shopify.refund_calls() == []
    (task,) = _open(app.rt, "finance_task")
    assert "klarna_voucher" in task.message


def test_no_refund_request_means_no_payment_and_a_visible_wait(
        app: LiveApp, shopify: ShopifySandbox, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    ref = _credited(app, "RTN-NONE")
    assert due_refs(app.rt) == [ref]
    assert workflow_id(app.rt, ref) is None  # the scheduler starts nothing, and says why
    assert due_refs(app.rt) == []  # a waiting return never crowds out the others
    assert _gate(app, ref) is Action.WAIT
    assert _gate(app, ref) is Action.WAIT
    assert shopify.refund_calls() == []
    view = _view(app, ref)
    assert view["khaos_status"] == "credit_confirmed"
    assert view["waiting_for"] == WAITING_FOR_DECISION
    waits = [t["message"] for t in view["timeline"]  # type: ignore[attr-defined]
             if WAITING_FOR_DECISION in t["message"]]
    assert len(waits) == 1 and "CN000500" in waits[0]

    config = tmp_path / "returnbridge.toml"
    config.write_text(f'[database]\nurl = "{app.rt.settings.database.url}"\n', encoding="utf-8")
    monkeypatch.setattr(cli_common, "out", Console(width=200))
    monkeypatch.setattr("returnbridge.cli.returns.out", cli_common.out)
    shown = CliRunner().invoke(cli_app, ["returns", "show", ref, "--config", str(config)],
                               env={"COLUMNS": "200", "RB_CONFIG": ""})
    assert shown.exit_code == 0, shown.output
    assert f"waiting: {WAITING_FOR_DECISION}" in shown.output

    # ZigZag decides; the next run pays what it asked for and the wait is gone.
    _send(app, [event("RefundRequested", "RTN-NONE", (), occurred_at=AT,
                      refund_amount="44.99")])
    assert due_refs(app.rt) == [ref] and workflow_id(app.rt, ref) == f"refund:{ref}"
    assert _gate(app, ref) is Action.PAY
    assert [r.amount for r in shopify.order(f"#{ORDER}").refunds] == [CREDIT]
    assert _view(app, ref)["waiting_for"] == ""


def test_retailers_without_a_refund_event_opt_in_to_refunding_the_credit(
        runtime_factory: Callable[..., Runtime], shopify: ShopifySandbox) -> None:
    live = _app(runtime_factory, shopify, refund_without_request=True)
    try:
        ref = _credited(live, "RTN-OPT")
        assert _gate(live, ref) is Action.PAY
    finally:
        live.stop()
    assert [r.amount for r in shopify.order(f"#{ORDER}").refunds] == [CREDIT]


@pytest.mark.parametrize("action", ["shopify_store_credit", "gift_card"])
def test_store_credit_through_the_configured_shopify_action_never_a_card_refund(
        runtime_factory: Callable[..., Runtime], shopify: ShopifySandbox, action: str) -> None:
    live = _app(runtime_factory, shopify, store_credit_action=action)
    try:
        ref = _credited(live, "RTN-SC2", amount="30.00", method="store_credit")
        assert _gate(live, ref) is Action.CREDIT
        assert _gate(live, ref) is Action.NOT_READY  # done: never twice
        view = _view(live, ref)
    finally:
        live.stop()
    order = shopify.order(f"#{ORDER}")
    assert shopify.refund_calls() == [] and order.refunds == []  # no card refund
    if action == "gift_card":
        (card,) = shopify.gift_cards
        assert (card.amount, card.customer_id) == (Decimal("30.00"), order.customer_id)
        paid_id = card.id
    else:
        assert shopify.store_credit_balance(order.customer_id, "GBP") == Decimal("30.00")
        (credit,) = shopify.store_credits
        paid_id = credit.id
    assert view["khaos_status"] == "done"
    (refund,) = view["refunds"]  # type: ignore[misc]
    assert (refund["amount"], refund["provider_refund_id"]) == ("30.00", paid_id)
    timeline = [t["message"] for t in view["timeline"]]  # type: ignore[attr-defined]
    assert any(paid_id in m and "tagged with credit note CN000500" in m for m in timeline)
    # Recording it against the credit note in Khaos is finance's task, naming the payment.
    [task] = [e for e in view["open_exceptions"]  # type: ignore[attr-defined]
              if e["type"] == "finance_task"]
    assert paid_id in task["next_action"] and "CN000500" in task["next_action"]
